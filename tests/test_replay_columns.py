"""Rebuilding from a log's columns (``read_frame_columns``, what ``rtrec replay`` does) gives
exactly the states the row-by-row path gives (``read_frames`` + ``rebuild``): for the fixture
sessions, a long synthetic voice session written by the real log writer and a live log, at
the end and at any point of time travel, with and without stable ids and audio checksums.
Rows no record can hold are refused by name, and rows stored out of order come sorted.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import trio
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.cli.replay import load_session
from rtrec.replay import Replay, canonical_json, rebuild
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.storage import Direction
from rtrec.store.bundle import import_bundle
from rtrec.store.log import LogError, open_log
from rtrec.store.reader import LogAudio, read_frame_columns, read_frames
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript, speech, voice_session

SESSIONS = Path(__file__).parent.parent / "fixtures" / "sessions"
BUNDLES = sorted(p.name for p in SESSIONS.iterdir() if (p / "session.json").is_file())
SERVER, CLIENT = Direction.SERVER, Direction.CLIENT


def rtrec(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def old_path(db: Path, session_id: str, every: int = 1024) -> Replay:
    """The row-by-row path: a FrameRecord per row, folded as records."""
    return rebuild(list(read_frames(db, session_id)), checkpoint_every=every)


def assert_same(old: Replay, new: Replay, audio: LogAudio, points: list[int | str]) -> None:
    """Equal states at the end and at every point given; equal canonical JSON at the end
    (with and without stable ids) and at a few of the points."""
    assert new.state == old.state
    for stable in (False, True):
        assert canonical_json(new.state, stable_ids=stable, audio=audio) == canonical_json(
            old.state, stable_ids=stable, audio=audio
        )
    for n, point in enumerate(points):
        a, b = old.at(point), new.at(point)
        assert b == a, point
        if n % 10 == 0:
            assert canonical_json(b) == canonical_json(a), point


async def write_log(db: Path, script: SessionScript) -> None:
    """Record a scripted session through the real log writer."""
    with trio.fail_after(60):
        async with open_log_writer(db) as writer:
            for message in script.messages:
                await writer.send(message)


# --------------------------------------------------------------------------- the rows


async def test_columns_hold_the_rows_read_frames_gives(tmp_path: Path) -> None:
    """Every row of a log (G.711, inline audio, invalid JSON, binary frames) comes back from
    FrameColumns as the FrameRecord read_frames gives, by index, slice and iteration."""
    db = tmp_path / "log.duckdb"
    script = voice_session(with_g711=True)
    script.close()
    await write_log(db, script)
    records = list(read_frames(db, script.session_id))
    cols = read_frame_columns(db, script.session_id)
    assert len(cols) == len(records) == len(script.frames())
    assert list(cols) == records
    assert cols[-1] == records[-1]
    assert cols[2:5] == tuple(records[2:5])
    with pytest.raises(IndexError):
        cols[len(records)]
    assert FrameColumns.from_records(records)[3] == records[3]


async def test_columns_keep_wall_times_far_in_the_future(tmp_path: Path) -> None:
    """A wall time past what int64 nanoseconds hold (year 2262) reads back exact, as
    read_frames gives it."""
    db = tmp_path / "log.duckdb"
    script = voice_session()
    script.close()
    await write_log(db, script)
    con = duckdb.connect(str(db))
    con.execute("UPDATE events SET wall_time = '3000-01-01 00:00:00.000001+00' WHERE seq = 2")
    con.close()
    records = list(read_frames(db, script.session_id))
    cols = read_frame_columns(db, script.session_id)
    assert cols.wall_ns[2] == records[2].wall_ns == 32_503_680_000_000_001_000
    assert list(cols) == records


async def test_columns_come_in_seq_order_whatever_the_storage_order(tmp_path: Path) -> None:
    """Rows stored out of seq order (rewritten by hand, say) are read in seq order."""
    db = tmp_path / "log.duckdb"
    script = voice_session()
    script.close()
    await write_log(db, script)
    con = duckdb.connect(str(db))
    con.execute("CREATE TEMP TABLE shuffled AS SELECT * FROM events ORDER BY hash(seq)")
    con.execute("DELETE FROM events")
    con.execute("INSERT INTO events SELECT * FROM shuffled")
    stored = [s for (s,) in con.execute("SELECT seq FROM events").fetchall()]
    con.close()
    assert stored != sorted(stored)
    cols = read_frame_columns(db, script.session_id)
    assert list(cols) == list(read_frames(db, script.session_id))
    assert list(cols.seq) == sorted(stored)


def test_columns_of_an_unknown_session_are_empty(tmp_path: Path) -> None:
    """A session id without rows gives empty columns, which rebuild to the initial state."""
    db = tmp_path / "log.duckdb"
    open_log(db)[0].close()
    cols = read_frame_columns(db, "nope")
    assert len(cols) == 0
    assert rebuild(cols).state == rebuild([]).state


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("direction", "'sideways'", "row seq 3: direction 'sideways' is not one rtrec knows"),
        ("audio_rate", "NULL", "row seq 3: audio_stream and audio_rate are not both set"),
    ],
)
async def test_rows_no_record_can_hold_are_named(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    """A row with an unknown direction, or half an audio span, stops the replay with an
    error naming the row (exit 2 from the command), never a wrong conversation."""
    db = tmp_path / "log.duckdb"
    script = voice_session()
    script.close()
    await write_log(db, script)
    con = duckdb.connect(str(db))
    con.execute(f"UPDATE events SET {column} = {value} WHERE seq = 3")
    con.close()
    with pytest.raises(LogError, match=message):
        load_session(script.session_id, db)
    result = rtrec("replay", script.session_id, "--db", db)
    assert result.exit_code == 2
    assert message in result.output


def test_rebuild_rejects_columns_out_of_seq_order() -> None:
    """Columns whose seqs do not increase are refused, naming the two seqs, as rows are."""
    script = voice_session()
    records = script.frames()
    swapped = [records[0], records[2], records[1], *records[3:]]
    with pytest.raises(ValueError, match="seq 1 follows seq 2"):
        rebuild(FrameColumns.from_records(swapped))


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", BUNDLES)
def test_fixture_sessions_rebuild_the_same_from_columns(name: str, tmp_path: Path) -> None:
    """Each fixture session imported into a log rebuilds from its columns to the states of
    the row-by-row path: at the end, after every seq, and at every 250 ms."""
    db = tmp_path / "log.duckdb"
    session_id = import_bundle(db, SESSIONS / name)
    new = load_session(session_id, db)
    old = old_path(db, session_id)
    last = old.records[-1]
    times: list[int | str] = [f"{ms}ms" for ms in range(0, last.t_ns // 1_000_000 + 500, 250)]
    with new.audio:
        assert_same(old, new.replay, new.audio, [*range(-1, last.seq + 2, 10), *times])
        dense_old = old_path(db, session_id, every=16)
        dense_new = rebuild(read_frame_columns(db, session_id), checkpoint_every=16)
        assert_same(dense_old, dense_new, new.audio, [*range(-1, last.seq + 2)])


# --------------------------------------------------------------------------- a long session


def long_voice_session(turns: int) -> SessionScript:
    """A long GA voice session with the odd events a real one has: server VAD turns of
    streamed assistant audio and transcripts, deltas before their item, a two-digit and a
    nested content_index, barge-in with truncation, a cancelled response, function calls,
    late input transcriptions, malformed and unknown events, invalid and binary frames."""
    s = SessionScript()
    rng = random.Random(7)
    mic = np.resize(speech("weather"), 2400)
    voice = np.resize(speech("joke"), 240)
    s.event(
        SERVER,
        {
            "type": "session.created",
            "event_id": "event_0",
            "session": {"type": "realtime", "id": "sess_1", "object": "realtime.session"},
        },
    )
    previous: str | None = None
    appended_ms = 0
    for n in range(turns):
        user, item, resp = f"item_u{n}", f"item_a{n}", f"resp_{n}"
        start = appended_ms
        for k in range(5):
            s.audio_event(
                CLIENT,
                {"type": "input_audio_buffer.append", "event_id": f"evt_{n}_{k}"},
                "audio",
                mic,
            )
            appended_ms += 100
        s.event(
            SERVER,
            {
                "type": "input_audio_buffer.speech_started",
                "event_id": f"e{n}a",
                "item_id": user,
                "audio_start_ms": start,
            },
        )
        s.event(
            SERVER,
            {
                "type": "input_audio_buffer.speech_stopped",
                "event_id": f"e{n}b",
                "item_id": user,
                "audio_end_ms": appended_ms - 50,
            },
        )
        s.event(
            SERVER,
            {
                "type": "input_audio_buffer.committed",
                "event_id": f"e{n}c",
                "item_id": user,
                "previous_item_id": previous,
            },
        )
        user_item = {
            "id": user,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        for kind in ("added", "done"):
            s.event(
                SERVER,
                {
                    "type": f"conversation.item.{kind}",
                    "event_id": f"e{n}{kind}",
                    "previous_item_id": previous,
                    "item": user_item,
                },
            )
        previous = user
        index = 12 if n % 6 == 2 else 0
        delta = {"response_id": resp, "item_id": item, "output_index": 0, "content_index": index}
        if n % 6 == 1:  # audio before the response and its item: a shell, then filled
            s.audio_event(
                SERVER,
                {"type": "response.output_audio.delta", "event_id": f"e{n}early", **delta},
                "delta",
                voice,
            )
        s.event(
            SERVER,
            {
                "type": "response.created",
                "event_id": f"e{n}rc",
                "response": {"id": resp, "object": "realtime.response", "status": "in_progress"},
            },
        )
        assistant = {
            "id": item,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        s.event(
            SERVER,
            {
                "type": "response.output_item.added",
                "event_id": f"e{n}oia",
                "response_id": resp,
                "output_index": 0,
                "item": assistant,
            },
        )
        s.event(
            SERVER,
            {
                "type": "conversation.item.added",
                "event_id": f"e{n}cia",
                "previous_item_id": previous,
                "item": assistant,
            },
        )
        s.event(
            SERVER,
            {
                "type": "response.content_part.added",
                "event_id": f"e{n}cpa",
                **delta,
                "part": {"type": "audio", "transcript": ""},
            },
        )
        words = []
        for k in range(30):
            extra = {"meta": {"content_index": 3}} if n % 6 == 0 and k == 7 else {}
            s.audio_event(
                SERVER,
                {"type": "response.output_audio.delta", "event_id": f"e{n}d{k}", **delta, **extra},
                "delta",
                voice,
            )
            if k % 3 == 0:
                word = rng.choice(["the", " weather", " is", " sunny", " ✓"])
                words.append(word)
                s.event(
                    SERVER,
                    {
                        "type": "response.output_audio_transcript.delta",
                        "event_id": f"e{n}t{k}",
                        **delta,
                        "delta": word if not (n % 9 == 4 and k == 9) else 42,
                    },
                )
        said = "".join(words)
        cancelled = n % 6 == 4
        if n % 6 == 5:  # a function call in the same response
            call = f"item_c{n}"
            s.event(
                SERVER,
                {
                    "type": "response.output_item.added",
                    "event_id": f"e{n}fca",
                    "response_id": resp,
                    "output_index": 1,
                    "item": {
                        "id": call,
                        "type": "function_call",
                        "status": "in_progress",
                        "name": "get_weather",
                        "call_id": f"call_{n}",
                        "arguments": "",
                    },
                },
            )
            for piece in ('{"city":', ' "Paris"}'):
                s.event(
                    SERVER,
                    {
                        "type": "response.function_call_arguments.delta",
                        "event_id": f"e{n}fd{len(piece)}",
                        "response_id": resp,
                        "item_id": call,
                        "output_index": 1,
                        "call_id": f"call_{n}",
                        "delta": piece,
                    },
                )
        for kind, body in (
            ("response.output_audio.done", {}),
            ("response.output_audio_transcript.done", {"transcript": said}),
            ("response.content_part.done", {"part": {"type": "audio", "transcript": said}}),
        ):
            s.event(SERVER, {"type": kind, "event_id": f"e{n}{kind}", **delta, **body})
        done_item = {
            **assistant,
            "status": "incomplete" if cancelled else "completed",
            "content": [{"type": "output_audio", "transcript": said}],
        }
        s.event(
            SERVER,
            {
                "type": "response.output_item.done",
                "event_id": f"e{n}oid",
                "response_id": resp,
                "output_index": 0,
                "item": done_item,
            },
        )
        s.event(
            SERVER,
            {
                "type": "response.done",
                "event_id": f"e{n}rd",
                "response": {
                    "id": resp,
                    "object": "realtime.response",
                    "status": "cancelled" if cancelled else "completed",
                    "status_details": {"type": "cancelled", "reason": "turn_detected"}
                    if cancelled
                    else None,
                    "output": [done_item],
                    "usage": {"total_tokens": 100 + n, "input_tokens": 60, "output_tokens": 40 + n},
                },
            },
        )
        if n % 6 == 3:  # barge-in heard after the response ended
            s.event(
                CLIENT,
                {
                    "type": "conversation.item.truncate",
                    "event_id": f"evt_{n}_tr",
                    "item_id": item,
                    "content_index": 0,
                    "audio_end_ms": 120,
                },
            )
            s.event(
                SERVER,
                {
                    "type": "conversation.item.truncated",
                    "event_id": f"e{n}tr",
                    "item_id": item,
                    "content_index": 0,
                    "audio_end_ms": 120,
                },
            )
        s.event(
            SERVER,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": f"e{n}tc",
                "item_id": user,
                "content_index": 0,
                "transcript": f"turn {n}",
            },
        )
        s.event(
            SERVER,
            {
                "type": "rate_limits.updated",
                "event_id": f"e{n}rl",
                "rate_limits": [{"name": "tokens", "limit": 1000, "remaining": 900 - n}],
            },
        )
        previous = item
        if n % 7 == 6:
            s.event(SERVER, {"type": "response.from_the_future", "event_id": f"e{n}x"})
            s.invalid(SERVER, '{"type": "response.output_audio.delta", oops')
            s.binary(CLIENT, bytes([n % 256]) * 7)
    return s


async def test_a_long_voice_session_rebuilds_the_same_from_columns(tmp_path: Path) -> None:
    """A long voice session recorded by the real writer rebuilds from its columns to the
    states of the row-by-row path, at the end and at hundreds of seqs and times, with the
    default checkpoints and with dense ones; `rtrec replay --json [--at]` prints them."""
    db = tmp_path / "log.duckdb"
    script = long_voice_session(turns=60)
    script.close()
    await write_log(db, script)
    sid = script.session_id
    rows = len(script.frames())
    assert rows > 3 * 1024  # several default checkpoints
    new = load_session(sid, db)
    old = old_path(db, sid)
    assert old.state.anomalies
    assert old.state.invalid_frames
    assert old.state.binary_frames
    assert {p.truncated_at_ms for i in old.state.items.values() for p in i.parts} >= {120}
    last = old.records[-1]
    rng = random.Random(3)
    points: list[int | str] = [-1, 0, 1023, 1024, 1025, 2048, last.seq, last.seq + 1]
    points += rng.sample(range(last.seq), 200)
    points += [f"{rng.uniform(0, last.t_ns / 1e9):.4f}s" for _ in range(40)]
    with new.audio:
        assert_same(old, new.replay, new.audio, points[:40])
        dense_old = old_path(db, sid, every=61)
        dense_new = rebuild(read_frame_columns(db, sid), checkpoint_every=61)
        assert_same(dense_old, dense_new, new.audio, points)
        for at in ("12.5s", str(last.seq // 2)):
            shown = rtrec("replay", sid, "--db", db, "--json", "--at", at)
            assert shown.output == canonical_json(old.at(at), audio=new.audio)
        shown = rtrec("replay", sid, "--db", db, "--json", "--stable-ids")
        assert shown.output == canonical_json(old.state, stable_ids=True, audio=new.audio)


async def test_a_live_session_replays_from_another_process(tmp_path: Path) -> None:
    """While the recorder holds the log, `rtrec replay --json` in another process rebuilds
    the committed rows through the control socket, to the state of the row-by-row path."""
    db = tmp_path / "log.duckdb"
    script = long_voice_session(turns=4)
    with trio.fail_after(60):
        async with open_log_writer(db, commit_interval=60) as writer:
            for message in script.messages:
                await writer.send(message)
            await writer.flush()
            command = [sys.executable, "-m", "rtrec", "replay", script.session_id, "--json"]
            done = await trio.run_process(
                [*command, "--db", str(db)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    old = old_path(db, script.session_id)
    with LogAudio.of_session(db, script.session_id) as audio:
        expected = canonical_json(old.state, audio=audio)
    assert json.loads(done.stdout) == json.loads(expected)


RACING_READER = """
import json, sys
sys.path.insert(0, {root!r})
import rtrec.store.reader as reader
from rtrec.cli.replay import load_session

real, asked = reader.live_writer, []

def racing(path):
    asked.append(path)  # the first answer predates the recorder: "none is running"
    return None if len(asked) == 1 else real(path)

reader.live_writer = racing
loaded = load_session(sys.argv[2], sys.argv[1])
print(json.dumps({{"events": loaded.replay.state.events, "asked": len(asked)}}))
"""


async def test_a_recorder_that_starts_while_replay_opens_the_log_answers_it(
    tmp_path: Path,
) -> None:
    """When the file turns out locked by a recorder that started after replay looked for
    one, replay asks the recorder's socket instead of failing."""
    db = tmp_path / "log.duckdb"
    script = long_voice_session(turns=2)
    root = str(Path(__file__).resolve().parent.parent)
    with trio.fail_after(60):
        async with open_log_writer(db, commit_interval=60) as writer:
            for message in script.messages:
                await writer.send(message)
            await writer.flush()
            code = RACING_READER.format(root=root)
            done = await trio.run_process(
                [sys.executable, "-c", code, str(db), script.session_id],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["events"] == len(script.frames())
    assert out["asked"] >= 2
