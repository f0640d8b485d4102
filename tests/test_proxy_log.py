"""The proxy with the real log writer: failures on either side are closed loudly and logged.

An upstream that drops its TCP connection mid-response, and a log whose audio cannot be
written: in both cases the client learns why from the close frame, and the log says so.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import orjson
import pybase64
import trio

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.store.reader import read_frames, read_sessions
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import Closed, WebSocket, accept_handshake, connect


async def receive_until_closed(ws: WebSocket) -> tuple[list[str | bytes], Closed]:
    """Every message until the connection closes, and how it closed."""
    received: list[str | bytes] = []
    while True:
        try:
            received.append(await ws.receive())
        except Closed as closed:
            return received, closed


async def append_until_closed(ws: WebSocket) -> Closed:
    """Stream 100 ms appends (for at most 5 s) while reading, as a real client does, until
    the proxy closes the connection."""
    audio = pybase64.b64encode(bytes(4800)).decode()
    frame = orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()

    async def stream() -> None:
        for _ in range(100):
            try:
                await ws.send(frame)
            except Closed:
                return
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream)
        _, closed = await receive_until_closed(ws)
        nursery.cancel_scope.cancel()
    return closed


async def dropping_upstream(
    deltas: int | None, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """An upstream that says session.created, then on the first client event starts a
    response, sends ``deltas`` audio deltas and vanishes (TCP closed without a close
    frame); with ``deltas=None`` it only listens."""

    async def handle(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=None)
        ws = await handshake.accept(None)
        await ws.send('{"type":"session.created","event_id":"e","session":{"type":"realtime"}}')
        if deltas is None:
            with contextlib.suppress(Closed):
                while True:
                    await ws.receive()
            return
        await ws.receive()  # response.create
        await ws.send('{"type":"response.created","event_id":"e0","response":{"id":"resp_1"}}')
        for i in range(deltas):
            audio = pybase64.b64encode(bytes(4800)).decode()
            event = {
                "type": "response.output_audio.delta",
                "event_id": f"e{i + 1}",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "delta": audio,
            }
            await ws.send(orjson.dumps(event).decode())
        await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        )
        task_status.started(f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1")


async def test_upstream_dropping_mid_response_closes_the_client_with_1011(tmp_path: Path) -> None:
    """The client receives every delta the server sent, then 1011; the log has them all and
    says the server closed with 1006."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
            upstream = await nursery.start(dropping_upstream, 5)
            recorder = Recorder(writer, ProxyOptions(upstream=upstream))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            ws = await connect(f"{url}/realtime", max_size=None)
            await ws.receive()  # session.created
            await ws.send('{"type":"response.create"}')
            received, closed = await receive_until_closed(ws)
            await ws.close()
            await recorder.close_sessions()
            nursery.cancel_scope.cancel()
    assert len(received) == 6  # response.created and five deltas
    assert closed.code == 1011
    (session,) = read_sessions(db)
    assert (session.status, session.close_code, session.closed_by) == ("closed", 1006, "server")
    frames = [f for f in read_frames(db, session.session_id) if f.direction == "server"]
    assert len(frames) == 7  # session.created, response.created, five deltas
    assert sum(f.audio.samples for f in frames if f.audio) == 5 * 2400


async def test_a_failing_audio_write_closes_the_session_with_the_reason(tmp_path: Path) -> None:
    """When the archive cannot be written, the client is closed with 1011 and the cause,
    the upstream too, and the session row says failed: nothing passes unrecorded."""
    db = tmp_path / "log.duckdb"
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    with trio.fail_after(30):
        async with open_log_writer(db, audio_dir) as writer, trio.open_nursery() as nursery:
            upstream = await nursery.start(dropping_upstream, None)
            recorder = Recorder(writer, ProxyOptions(upstream=upstream))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            ws = await connect(f"{url}/realtime", max_size=None)
            await ws.receive()  # session.created: the session row is in the writer's queue
            await writer.flush()
            # the writer answers readers from this very loop: read from a thread
            (session,) = await trio.to_thread.run_sync(read_sessions, db)
            # a file where the session's audio folder must go: the next audio write fails
            (audio_dir / session.session_id).write_text("not a folder")
            closed = await append_until_closed(ws)
            await ws.close()
            nursery.cancel_scope.cancel()
    assert closed.code == 1011
    assert closed.reason.startswith("FileExistsError: "), closed.reason  # the cause first
    (session,) = read_sessions(db)
    assert session.status == "failed"
