"""The driver re-drives recorded fixture sessions against the simulator on loopback: a new
session lands in the log, its conversation equals the recorded one, server-chosen ids are
rewritten, the audio sent is the recorded audio, a server that stops answering gives a
timeout naming what was awaited, and an idle server ends a wait after the idle grace.

Rules (after trio-websocket's own test suite): real sockets on 127.0.0.1 port 0, a
``trio.fail_after`` cap per test, and no sleep that waits for something to happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest
import trio

from rtrec.replay import diff_conversations, rebuild
from rtrec.replay.driver import (
    DRIVE_TAG,
    DriveOptions,
    DriveReport,
    drive,
    drive_session,
    load_plan,
)
from rtrec.schemas.storage import Direction, FrameRecord, SessionStatus, Stream
from rtrec.store.audio import read_flac
from rtrec.store.bundle import read_bundle
from rtrec.store.reader import LogAudio, read_audio, read_sessions
from rtrec.transport.ws import Closed, ServerHandshake, WebSocket

from .drivekit import (
    SESSIONS,
    client_messages,
    drain,
    drive_fixture,
    events,
    serve_script,
    session_frames,
)

FIXTURES = [
    ("voice_turn", "demo"),
    ("text_turn", "demo"),
    ("function_call", "weather"),
    ("function_call_beta", "weather"),
    ("weather-ga", "demo"),  # recorded from the official SDK (tests/playkit.py)
    ("mcp_approval", "mcp"),  # the approval names the request the new run made
    ("transcription", "demo"),  # ?intent=transcription
]


@pytest.mark.parametrize(("name", "scenario"), FIXTURES)
async def test_redrive_records_an_equal_conversation(
    name: str, scenario: str, tmp_path: Path
) -> None:
    """Re-driving a fixture against its scenario (another seed, so other ids) records a new
    session, tagged with the old one's id, whose conversation equals the recorded one; the
    client frames sent are the recorded ones byte for byte but for the rewritten ids."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(60):
        result = await drive_fixture(name, db, scenario=scenario)
    report = result.report
    assert report.failure is None
    assert result.session_id is not None
    bundle = read_bundle(SESSIONS / name)
    (row,) = read_sessions(db)
    assert row.session_id == result.session_id
    assert orjson.loads(row.tags) == {DRIVE_TAG: bundle.session_id}
    assert (row.status, row.protocol) == (SessionStatus.CLOSED, bundle.session["protocol"])
    assert (row.close_code, row.closed_by) == (1000, "client")

    new = session_frames(db, result.session_id)
    assert diff_conversations(rebuild(bundle.frames).state, rebuild(new).state).equal

    with LogAudio(bundle.streams) as old_audio, LogAudio.of_session(db, row.session_id) as audio:
        recorded = client_messages(bundle.frames, old_audio)
        sent = client_messages(new, audio)
    for old_id, new_id in report.rewritten.items():
        recorded = [
            m.replace(f'"{old_id}"', f'"{new_id}"') if isinstance(m, str) else m for m in recorded
        ]
    assert sent == recorded
    assert report.sent == len(recorded)


async def test_function_call_output_carries_the_new_call_id(tmp_path: Path) -> None:
    """The function_call_output goes out after the new call's arguments are done, naming the
    call_id the new server chose, and response.create after the first response.done."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(60):
        result = await drive_fixture("function_call", db, scenario="weather", seed=11)
    assert result.session_id is not None
    frames = session_frames(db, result.session_id)
    (done,) = events(frames, Direction.SERVER, "response.function_call_arguments.done")
    (create,) = events(frames, Direction.CLIENT, "conversation.item.create")
    recorded = events(
        list(read_bundle(SESSIONS / "function_call").frames),
        Direction.CLIENT,
        "conversation.item.create",
    )[0]
    assert create["item"]["call_id"] == done["call_id"] != recorded["item"]["call_id"]
    assert result.report.rewritten == {recorded["item"]["call_id"]: done["call_id"]}

    seq_of = {f.seq: f for f in frames}
    order = [(f.direction, f.type) for f in sorted(seq_of.values(), key=lambda f: f.seq)]
    output_at = order.index((Direction.CLIENT, "conversation.item.create"))
    assert order.index((Direction.SERVER, "response.function_call_arguments.done")) < output_at
    first_done = order.index((Direction.SERVER, "response.done"))
    assert first_done < order.index((Direction.CLIENT, "response.create"))


async def test_appended_audio_is_the_recorded_audio(tmp_path: Path) -> None:
    """The audio the driver appends (read back from FLAC, in the recorded chunks) is archived
    in the new session sample for sample as the recording's input.flac holds it."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(60):
        result = await drive_fixture("voice_turn", db, scenario="demo")
    assert result.session_id is not None
    recorded, rate, complete = read_flac(SESSIONS / "voice_turn" / "input.flac")
    sent, sent_rate = read_audio(db, result.session_id, Stream.INPUT)
    assert complete
    assert rate == sent_rate == 24000
    assert len(sent) == len(recorded) > 24000
    assert np.array_equal(sent, recorded)


async def test_barge_in_waits_for_the_heard_audio(tmp_path: Path) -> None:
    """Against a simulator streaming in real time, the user's second utterance goes out only
    once the new reply has sent as much audio as the recording had (so it interrupts at the
    same point), the truncate names the new assistant item, and the conversations match."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(60):
        result = await drive_fixture(
            "barge_in", db, scenario="interrupt", seed=2, sim_pace="realtime", pace="recorded"
        )
    report = result.report
    assert report.failure is None
    assert result.session_id is not None
    bundle = read_bundle(SESSIONS / "barge_in")
    frames = session_frames(db, result.session_id)
    assert diff_conversations(rebuild(bundle.frames).state, rebuild(frames).state).equal

    (truncate,) = events(frames, Direction.CLIENT, "conversation.item.truncate")
    (old_truncate,) = events(list(bundle.frames), Direction.CLIENT, "conversation.item.truncate")
    assert report.rewritten == {old_truncate["item_id"]: truncate["item_id"]}
    assert truncate["item_id"] != old_truncate["item_id"]

    # the recorded second utterance: its first append came after the reply's first audio
    appends = [f for f in bundle.frames if f.type == "input_audio_buffer.append"]
    first_audio = next(f.seq for f in bundle.frames if f.type == "response.output_audio.delta")
    second = next(n for n, f in enumerate(appends) if f.seq > first_audio)

    def audio_before_append(rows: Sequence[FrameRecord], k: int) -> int:
        """Output audio bytes received before the k-th client append (from 0)."""
        total, seen = 0, 0
        for f in rows:
            if f.type == "response.output_audio.delta" and f.audio is not None:
                total += f.audio.samples * 2
            elif f.type == "input_audio_buffer.append":
                if seen == k:
                    return total
                seen += 1
        raise AssertionError(f"fewer than {k + 1} appends")

    recorded = audio_before_append(bundle.frames, second)
    assert recorded > 0
    assert audio_before_append(frames, second) >= recorded


async def test_silent_server_times_out_naming_the_awaited_event(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A server that accepts the session and never sends anything ends the drive after the
    wait timeout (virtual time) with a message naming the event awaited and the recorded
    event held back, and the driver closes with that message as the reason."""
    closes: list[tuple[int, str]] = []

    async def silent(ws: WebSocket, handshake: ServerHandshake) -> None:
        try:
            await drain(ws)
        except Closed as closed:
            closes.append((closed.code, closed.reason))

    plan, audio = load_plan(SESSIONS / "text_turn")
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_script, silent)
            with audio:
                report = await drive(
                    plan, url, audio, api_key="sk-test", options=DriveOptions(wait_timeout=60)
                )
            nursery.cancel_scope.cancel()
    expected = (
        "waited 60 s for session.created #1 (recorded seq 1) before sending "
        "recorded seq 3 (session.update)"
    )
    assert report.failure == expected
    assert report.sent == 0
    assert report.close is not None
    assert report.close[0] == 1000
    assert closes == [(1000, report.close[1])]
    assert report.close[1].startswith("rtrec drive: waited 60 s for session.created #1")


async def test_server_closing_midway_is_reported(tmp_path: Path) -> None:
    """A server that closes the session while the driver waits for it is named with its close
    code and reason, and the event that was awaited."""

    async def created_then_gone(ws: WebSocket, handshake: ServerHandshake) -> None:
        await ws.send('{"type":"session.created","event_id":"e1","session":{"id":"sess_1"}}')
        await ws.receive()  # session.update
        await ws.close(1011, "overloaded")

    db = tmp_path / "log.duckdb"
    plan, audio = load_plan(SESSIONS / "text_turn")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_script, created_then_gone)
            with audio:
                result = await drive_session(plan, audio, upstream=url, db=db, api_key="sk-test")
            nursery.cancel_scope.cancel()
    assert result.report.failure == (
        "the server closed the session (1011 overloaded) while the driver waited for "
        "session.updated #1 (recorded seq 4) before sending recorded seq 5 "
        "(conversation.item.create)"
    )
    assert result.report.sent == 1
    assert result.report.close == (1011, "overloaded", "server")
    (row,) = read_sessions(db)
    assert (row.close_code, row.closed_by) == (1011, "server")


async def test_rejected_handshake_is_reported(tmp_path: Path) -> None:
    """A server that refuses the key: the drive fails with the server's status and body, and
    the log holds the rejected attempt."""
    db = tmp_path / "log.duckdb"
    plan, audio = load_plan(SESSIONS / "text_turn")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            from rtrec.simulator import serve_simulator

            url = await nursery.start(serve_simulator)
            with audio:
                result = await drive_session(plan, audio, upstream=url, db=db, api_key="")
            nursery.cancel_scope.cancel()
    failure = result.report.failure or ""
    assert failure.startswith("the server rejected the handshake: 401")
    assert "Missing bearer or basic authentication" in failure
    (row,) = read_sessions(db)
    assert row.status == SessionStatus.REJECTED


async def _drive_text_turn(
    script: Callable[[WebSocket], Awaitable[None]], options: DriveOptions
) -> tuple[DriveReport, list[tuple[int, str]], float]:
    """Drive the text_turn fixture against ``script``; the report, the closes the server
    saw and how long the drive took on the clock."""
    closes: list[tuple[int, str]] = []

    async def handler(ws: WebSocket, handshake: ServerHandshake) -> None:
        try:
            await script(ws)
            await drain(ws)
        except Closed as closed:
            closes.append((closed.code, closed.reason))

    plan, audio = load_plan(SESSIONS / "text_turn")
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_script, handler)
            start = trio.current_time()
            with audio:
                report = await drive(plan, url, audio, api_key="sk-test", options=options)
            took = trio.current_time() - start
            nursery.cancel_scope.cancel()
    return report, closes, took


async def test_an_idle_server_ends_the_wait_after_the_grace(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A server that created the session but never confirms the session.update is idle:
    after the idle grace (virtual time), not the wait timeout, the drive stops as stalled,
    names the frames not sent and the awaited event, and closes 1000 saying so."""

    async def created_only(ws: WebSocket) -> None:
        await ws.send('{"type":"session.created","event_id":"e1","session":{"id":"sess_1"}}')

    options = DriveOptions(wait_timeout=60, idle_grace=1.5)
    report, closes, took = await _drive_text_turn(created_only, options)
    assert report.failure is None
    assert report.stalled == (
        "the server went idle (1.5 s quiet) while the driver waited for session.updated #1 "
        "(recorded seq 4)"
    )
    assert report.sent == 1
    assert report.unsent[0] == "recorded seq 5 (conversation.item.create)"
    assert len(report.unsent) == len(load_plan(SESSIONS / "text_turn")[0].steps) - 1
    line = report.not_sent()
    assert line is not None
    assert line.startswith(f"not sent: {len(report.unsent)} recorded client frames, ")
    assert line.endswith(report.stalled)
    assert 1.5 <= took < 60
    assert closes == [(1000, f"rtrec drive: {report.stalled}")]


async def test_a_response_in_progress_is_waited_for_until_the_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A server whose response was created and never done is not idle: however quiet, the
    wait lasts the whole wait timeout and fails as before (no stall)."""

    async def stuck(ws: WebSocket) -> None:
        await ws.send('{"type":"session.created","event_id":"e1","session":{"id":"sess_1"}}')
        await ws.send('{"type":"response.created","event_id":"e2","response":{"id":"resp_1"}}')

    report, _, took = await _drive_text_turn(stuck, DriveOptions(wait_timeout=60, idle_grace=1))
    assert report.stalled is None
    assert report.unsent == []
    assert report.failure == (
        "waited 60 s for session.updated #1 (recorded seq 4) before sending recorded seq 5 "
        "(conversation.item.create)"
    )
    assert took >= 60


async def test_a_server_idle_before_the_recorded_end_stalls_with_every_frame_sent(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A server that takes every client event but never responds: all recorded frames go
    out, and the wait before the close ends as a stall naming the response awaited."""

    async def never_responds(ws: WebSocket) -> None:
        await ws.send('{"type":"session.created","event_id":"e1","session":{"id":"sess_1"}}')
        await ws.receive()  # session.update
        await ws.send('{"type":"session.updated","event_id":"e2","session":{"id":"sess_1"}}')

    report, closes, _ = await _drive_text_turn(never_responds, DriveOptions(idle_grace=2))
    assert (report.failure, report.sent, report.unsent) == (None, 3, [])
    assert report.not_sent() == (
        "every recorded client frame was sent; then the server went idle (2 s quiet) while "
        "the driver waited for response.created #1 (recorded seq 9) before the close"
    )
    assert closes == [(1000, f"rtrec drive: {report.stalled}")]
