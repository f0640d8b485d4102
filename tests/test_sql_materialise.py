"""Items and turns materialised when a session closes: by the recorder (its log writer's
``on_session_closed`` hook, run beside the committer), by ``rtrec index`` for the rest, and
read back through the ``turns`` view, which computes the turns of sessions not indexed yet
from their events. The materialised rows equal what ``rtrec index --redo`` writes and what
the events say, derived by hand here."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.cli.demo import run_demo
from rtrec.replay.index import index_log, index_session
from rtrec.schemas.storage import Direction, FrameRecord, turns_query
from rtrec.store.log import open_log
from rtrec.store.parquet import export_parquet, open_parquet
from rtrec.store.reader import open_log_reader, read_frames
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import connect
from tests.faults.kit import recorder_process
from tests.logdata import SessionScript
from tests.test_sql_views import Conversation, write

AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
TRANSCRIPT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta")
TEXT_DELTAS = ("response.output_text.delta", "response.text.delta")
USER_SIDE = {
    "input_audio_buffer.speech_started": "start",
    "input_audio_buffer.speech_stopped": "end",
    "input_audio_buffer.committed": "commit",
}


def payload(frame: FrameRecord) -> dict[str, Any]:
    """A frame's JSON."""
    assert frame.payload is not None
    return dict(orjson.loads(frame.payload))


def turns_by_hand(frames: list[FrameRecord]) -> list[dict[str, Any]]:
    """Each response.created with the latest user-side events since the previous one, the
    input append that carried the end of speech, and the response's first deltas."""
    turns: list[dict[str, Any]] = []
    since: dict[str, Any] = {}
    for f in frames:
        ms = f.t_ns / 1e6
        if f.direction is Direction.SERVER and f.type in USER_SIDE:
            since[USER_SIDE[f.type]] = ms
            if f.type == "input_audio_buffer.speech_stopped":
                since["end_audio"] = payload(f)["audio_end_ms"]
        elif f.direction is Direction.CLIENT and f.type == "response.create":
            since["create"] = ms
        elif f.direction is Direction.SERVER and f.type == "response.created":
            turns.append(
                {"response_id": payload(f)["response"]["id"], "created": ms, **since}
                | {"audio": None, "transcript": None, "text": None, "done": None}
            )
            since = {}
        elif f.direction is Direction.SERVER and turns:
            rid = f.response_id
            if f.type == "response.done":
                rid = payload(f)["response"]["id"]
            turn = next((t for t in turns if t["response_id"] == rid), None)
            kind = (
                "audio"
                if f.type in AUDIO_DELTAS
                else "transcript"
                if f.type in TRANSCRIPT_DELTAS
                else "text"
                if f.type in TEXT_DELTAS
                else "done"
                if f.type == "response.done"
                else None
            )
            if turn is not None and kind is not None and turn[kind] is None:
                turn[kind] = ms
    appends = [
        (f.audio.offset / f.audio.sample_rate * 1000, f.audio, f.t_ns / 1e6)
        for f in frames
        if f.audio is not None and f.audio.stream == "input" and f.audio.samples
    ]
    for turn in turns:
        turn["sent"] = None
        if "end_audio" in turn:
            for start, span, ms in appends:
                end = (span.offset + span.samples) / span.sample_rate * 1000
                if start < turn["end_audio"] <= end:
                    turn["sent"] = ms
    return turns


def gap(a: float | None, b: float | None) -> float | None:
    """``a - b``, or None when either is missing."""
    return None if a is None or b is None else a - b


def check_turns(rows: list[dict[str, Any]], frames: list[FrameRecord]) -> None:
    """The turns' columns equal what ``turns_by_hand`` derives from the frames."""
    expected = turns_by_hand(frames)
    assert [r["response_id"] for r in rows] == [t["response_id"] for t in expected]
    for number, (row, t) in enumerate(zip(rows, expected, strict=True), start=1):
        want = {
            "turn": number,
            "speech_start_ms": t.get("start"),
            "speech_end_ms": t.get("end"),
            "speech_end_audio_ms": t.get("end_audio"),
            "speech_end_sent_ms": t["sent"],
            "committed_ms": t.get("commit"),
            "response_create_ms": t.get("create"),
            "response_created_ms": t["created"],
            "first_audio_ms": t["audio"],
            "first_transcript_ms": t["transcript"],
            "first_text_ms": t["text"],
            "response_done_ms": t["done"],
        }
        assert {k: row[k] for k in want} == want, f"turn {number}"
        latencies = {
            "speech_end_to_first_audio_ms": gap(t["audio"], t.get("end")),
            "speech_sent_to_first_audio_ms": gap(t["audio"], t["sent"]),
            "created_to_first_audio_ms": gap(t["audio"], t["created"]),
            "create_to_first_audio_ms": gap(t["audio"], t.get("create")),
            "speech_end_to_first_text_ms": gap(t["transcript"] or t["text"], t.get("end")),
            "commit_to_created_ms": gap(t["created"], t.get("commit")),
            "response_ms": gap(t["done"], t["created"]),
        }
        for name, value in latencies.items():
            assert row[name] == (None if value is None else pytest.approx(value)), name


def materialised(db: Path) -> dict[str, list[dict[str, Any]]]:
    """``items``, ``indexed_turns``, ``indexed_summary`` (all columns), and which sessions
    ``indexed`` lists."""
    with open_log_reader(db) as log:
        return {
            "items": log.rows("SELECT * FROM items ORDER BY session_id, first_seq"),
            "turns": log.rows("SELECT * FROM indexed_turns ORDER BY session_id, turn"),
            "summary": log.rows("SELECT * FROM indexed_summary ORDER BY session_id"),
            "indexed": log.rows("SELECT session_id, events FROM indexed ORDER BY session_id"),
        }


async def test_a_recorded_session_is_indexed_when_it_closes(tmp_path: Path) -> None:
    """`rtrec demo` (recorder + simulator, real log): once the writer is done, the session's
    items and turns are there without `rtrec index`, match its events, and equal what
    `rtrec index --redo` writes."""
    db = tmp_path / "demo.duckdb"
    with trio.fail_after(60):
        session_id = await run_demo(db, "fast")
    before = materialised(db)
    with open_log_reader(db) as log:
        frames = list(read_frames(log, session_id))
        turns = log.rows("SELECT * FROM turns ORDER BY turn")
    assert before["indexed"] == [{"session_id": session_id, "events": len(frames)}]
    assert before["turns"] == turns  # the view reads the materialised rows
    check_turns(before["turns"], frames)
    assert len(turns) == 4
    assert turns[1]["speech_end_to_first_audio_ms"] > 0  # a voice turn, timed

    items = before["items"]
    assert [i["position"] for i in items] == list(range(len(items)))
    kinds = [(i["type"], i["role"]) for i in items]
    assert kinds.count(("message", "user")) == 3  # the text turn, two spoken turns
    assert kinds.count(("function_call", None)) == 1
    deltas: dict[str, str] = {}
    for f in frames:
        if f.type in TRANSCRIPT_DELTAS and f.item_id is not None:
            deltas[f.item_id] = deltas.get(f.item_id, "") + payload(f)["delta"]
    spoken = [i for i in items if i["role"] == "assistant" and i["audio_s"] > 0]
    assert spoken
    assert {i["item_id"]: i["transcript"] for i in spoken} == {k: deltas[k] for k in deltas}

    redone = CliRunner().invoke(cli, ["index", "--redo", "--db", str(db)])
    assert redone.exit_code == 0, redone.output
    assert f"indexed 1 session, {len(items)} items" in redone.output
    assert materialised(db) == before


async def test_the_hook_runs_beside_the_committer_after_the_close_is_committed(
    tmp_path: Path,
) -> None:
    """While the hook for one session is still running, other sessions' frames are committed;
    the hook sees its session closed; its rows are readable while the writer runs."""
    db = tmp_path / "rtrec.duckdb"
    first, second = Conversation(), Conversation()
    release = threading.Event()
    seen: list[str] = []
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def hook(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        row = con.execute("SELECT status FROM sessions WHERE session_id = ?", [session_id])
        seen.append(str(row.fetchall()[0][0]))
        assert release.wait(30)  # held until the test saw the other session committed
        index_session(con, session_id)
        trio.from_thread.run_sync(done.set, trio_token=token)

    with trio.fail_after(60):
        async with open_log_writer(db, on_session_closed=hook) as writer:
            for m in first.s.messages:
                await writer.send(m)
            await writer.flush()
            for m in second.s.messages[:-1]:  # all but its close
                await writer.send(m)
            await writer.flush()  # committed while the hook waits
            committed = writer.statistics().committed
            release.set()
            await done.wait()
            rows = await trio.to_thread.run_sync(materialised, db)  # via the control socket
    assert seen == ["closed"]
    assert committed == len(first.s.messages) + len(second.s.messages) - 1
    assert rows["indexed"] == [{"session_id": first.s.session_id, "events": len(first.s.frames())}]
    assert [t["response_id"] for t in rows["turns"]] == ["resp_1", "resp_2", "resp_3"]


async def test_a_failing_hook_leaves_the_recording_intact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged with the session id; the session is recorded whole and
    closed, `turns` still answers from its events, and `rtrec index` indexes it later."""
    db = tmp_path / "rtrec.duckdb"
    c = Conversation()

    def hook(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        raise RuntimeError("the disk for items is on fire")

    with trio.fail_after(60), caplog.at_level(logging.ERROR, "rtrec.store.writer"):
        async with open_log_writer(db, on_session_closed=hook) as writer:
            for m in c.s.messages:
                await writer.send(m)
    (record,) = caplog.records
    assert c.s.session_id in record.getMessage()
    assert "rtrec index" in record.getMessage()
    assert record.exc_info is not None
    assert "on fire" in str(record.exc_info[1])
    assert materialised(db) == {"items": [], "turns": [], "summary": [], "indexed": []}
    with open_log_reader(db) as log:
        (session,) = log.rows("SELECT status FROM sessions")
        frames = list(read_frames(log, c.s.session_id))
        turns = log.rows("SELECT * FROM turns ORDER BY turn")
    assert session["status"] == "closed"
    assert len(frames) == len(c.s.frames())
    check_turns(turns, frames)
    assert index_log(db) == {c.s.session_id: 5}
    assert materialised(db)["turns"] == turns


async def test_a_cancelled_writer_still_runs_the_hook_on_what_it_commits(tmp_path: Path) -> None:
    """A writer whose block is cancelled before a session's close is committed commits it
    on the way out and still runs the hook on that session, instead of crashing trio (the
    hook's task was cancelled while the writer's thread still had a close to hand over)."""
    db = tmp_path / "rtrec.duckdb"
    c = Conversation()
    seen: list[str] = []

    def hook(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        seen.append(session_id)

    with trio.fail_after(60), trio.CancelScope() as scope:
        async with open_log_writer(db, commit_interval=60, on_session_closed=hook) as writer:
            for m in c.s.messages:
                await writer.send(m)
            scope.cancel()  # the close is queued, not committed (60 s interval)
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert seen == [c.s.session_id]
    with open_log_reader(db) as log:
        assert log.rows("SELECT status FROM sessions") == [{"status": "closed"}]


def test_views_mix_indexed_and_unindexed_sessions_also_over_parquet(tmp_path: Path) -> None:
    """With one session indexed and two not (one without events), `turns` and
    `session_summary` give what they gave before any indexing, computed from the events
    alone, on the log and over its Parquet export."""
    indexed, pending, empty = Conversation(), Conversation(), SessionScript()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, indexed.s, pending.s, empty)
    open_log(db)[0].close()  # marks `empty`, left open by the writer, interrupted
    queries = {
        "turns": "SELECT * FROM turns ORDER BY session_id, turn",
        "session_summary": "SELECT * FROM session_summary ORDER BY session_id",
    }
    with open_log_reader(db) as log:
        before = {name: log.rows(sql) for name, sql in queries.items()}
        assert before["turns"] == log.rows(
            f"SELECT * FROM ({turns_query()}) ORDER BY session_id, turn"
        )
    con, _ = open_log(db)
    try:
        index_session(con, indexed.s.session_id)
    finally:
        con.close()
    rows = materialised(db)
    assert {r["session_id"] for r in rows["turns"]} == {indexed.s.session_id}
    assert [r["session_id"] for r in rows["summary"]] == [indexed.s.session_id]
    with open_log_reader(db) as log:
        assert {name: log.rows(sql) for name, sql in queries.items()} == before
    assert len(before["turns"]) == 6
    assert len(before["session_summary"]) == 3
    export_parquet(db, tmp_path / "lake")
    lake = open_parquet(tmp_path / "lake")
    try:
        over_parquet = {n: lake.sql(q).to_arrow_table().to_pylist() for n, q in queries.items()}
    finally:
        lake.close()
    assert over_parquet == before


def test_a_version_2_log_gets_turns_for_the_sessions_it_had_indexed(tmp_path: Path) -> None:
    """Opening a log of schema 2 (items indexed, no indexed_turns nor indexed_summary)
    materialises the turns and figures of its indexed sessions, equal to what indexing
    writes, and leaves the others to the views."""
    one, two = Conversation(), SessionScript()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, one.s, two)
    index_log(db)
    expected = materialised(db)
    con, _ = open_log(db)
    try:  # back to version 2: the two tables and the views reading them were not there
        con.execute("DROP VIEW turns; DROP VIEW session_summary")
        con.execute("DROP TABLE indexed_turns; DROP TABLE indexed_summary")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    finally:
        con.close()
    con, report = open_log(db)
    con.close()
    assert report.migrated_from == 2
    assert expected["turns"]
    assert len(expected["summary"]) == 1  # a session without events has no figures
    assert materialised(db) == expected


def test_indexing_in_one_read_or_one_per_session_writes_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rtrec index` reading many sessions per scan writes what one scan per session (the
    recorder's hook) writes."""
    scripts = [Conversation().s, SessionScript(), Conversation().s]
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, *scripts)
    assert len(index_log(db)) == 3
    together = materialised(db)
    monkeypatch.setattr("rtrec.replay.index._ROWS_PER_READ", 1)
    assert len(index_log(db, redo=True)) == 3
    assert materialised(db) == together
    con, _ = open_log(db)
    try:
        for script in scripts:
            index_session(con, script.session_id)
    finally:
        con.close()
    assert materialised(db) == together
    assert len(together["turns"]) == 6


@pytest.mark.parametrize("index", [True, False], ids=["default", "no-index"])
async def test_rtrec_record_indexes_the_sessions_it_records(tmp_path: Path, index: bool) -> None:
    """`rtrec record --upstream sim` as a process: a text turn through it is indexed by the
    time Ctrl-C has stopped it, without `rtrec index`; with --no-index it is left to
    `rtrec index`, which writes the same rows."""
    db = tmp_path / "log.duckdb"
    options = () if index else ("--no-index",)
    with trio.fail_after(60):
        async with recorder_process(db, "sim", tmp_path / "recorder.log", *options) as (
            process,
            url,
        ):
            ws = await connect(
                f"{url}/realtime?model=gpt-realtime",
                headers=[("Authorization", "Bearer sk-test-not-a-real-key")],
                max_size=None,
            )
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What time is it?"}],
            }
            await ws.send(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
            await ws.send(orjson.dumps({"type": "response.create"}).decode())
            while orjson.loads(await ws.receive())["type"] != "response.done":
                pass
            await ws.close()
            process.send_signal(signal.SIGINT)
            await process.wait()
    assert process.returncode == 0, (tmp_path / "recorder.log").read_text()
    if not index:
        assert materialised(db)["indexed"] == []
        index_log(db)
    rows = materialised(db)
    with open_log_reader(db) as log:
        (session,) = log.rows("SELECT session_id, status FROM sessions")
        frames = list(read_frames(log, session["session_id"]))
    assert session["status"] == "closed"
    assert rows["indexed"] == [{"session_id": session["session_id"], "events": len(frames)}]
    assert (rows["items"][0]["role"], rows["items"][0]["text"]) == ("user", "What time is it?")
    assert any(i["role"] == "assistant" for i in rows["items"])
    check_turns(rows["turns"], frames)
    assert len(rows["turns"]) == 1


def test_a_failed_response_is_an_error_indexed_or_not(tmp_path: Path) -> None:
    """A `response.done` with status failed is listed in `errors` with its code and message
    (or "response failed" without one) and counted in the summary, before and after
    indexing."""
    s = SessionScript()
    for rid, error in (("resp_f1", {"code": "server_error", "message": "boom"}), ("resp_f2", {})):
        s.event(Direction.SERVER, {"type": "response.created", "response": {"id": rid}})
        status = {"type": "failed", "error": error} if error else {"type": "failed"}
        s.event(
            Direction.SERVER,
            {
                "type": "response.done",
                "response": {"id": rid, "status": "failed", "status_details": status},
            },
        )
    s.close()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, s)
    errors = "SELECT source, error_type, code, message, caused_by FROM errors ORDER BY seq"
    summary = "SELECT responses, failed_responses, errors FROM session_summary"
    for _ in range(2):
        with open_log_reader(db) as log:
            assert log.rows(errors) == [
                {
                    "source": "response",
                    "error_type": "failed",
                    "code": "server_error",
                    "message": "boom",
                    "caused_by": "resp_f1",
                },
                {
                    "source": "response",
                    "error_type": "failed",
                    "code": None,
                    "message": "response failed",
                    "caused_by": "resp_f2",
                },
            ]
            assert log.rows(summary) == [{"responses": 2, "failed_responses": 2, "errors": 2}]
        index_log(db)
    assert len(materialised(db)["summary"]) == 1
