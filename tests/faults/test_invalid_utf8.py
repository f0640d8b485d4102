"""A text frame that is not UTF-8 is the sender's protocol error, not rtrec's failure
(issue 15, defect 4): the sender is closed with 1007, so is the other side, the session is
`closed` (not `failed`), and the bad frame is kept raw in the log, never forwarded.

Both peers are rtrec's own WebSocket layer over real loopback sockets (the only way to put
invalid UTF-8 in a text frame is below a WebSocket library's API: the protocol object's
``send_text``); the log is a real DuckDB file.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest
import trio

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.store.reader import open_log_reader, read_frames, read_sessions
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import Closed, WebSocket, accept_handshake, connect

BAD = b'{"type":"x","text":"caf\xe9"}'  # Latin-1, not UTF-8


async def _send_invalid_text(ws: WebSocket) -> None:
    ws.protocol.send_text(BAD)
    await ws._flush()


@pytest.mark.parametrize("sender", ["client", "server"])
async def test_invalid_utf8_closes_the_sender_with_1007_and_keeps_the_frame(
    tmp_path: Path, sender: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After one good frame each way, the sender's invalid text frame: both sides get 1007,
    nothing of it reaches the other side, the row says closed 1007 by the recorder, and the
    frame's bytes are in the log with a parse error; no traceback is logged."""
    db = tmp_path / "log.duckdb"
    seen: dict[str, object] = {}
    server_closed = trio.Event()

    async def upstream_handler(stream: trio.SocketStream) -> None:
        async with stream:  # serve_tcp leaves closing it to the handler
            await upstream_session(stream)

    async def upstream_session(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=None)
        ws = await handshake.accept(None)
        seen["server got"] = await ws.receive()
        await ws.send('{"type":"session.created"}')
        if sender == "server":
            await _send_invalid_text(ws)
        try:
            while True:
                seen.setdefault("server extra", await ws.receive())
        except Closed as exc:
            seen["server closed"] = (exc.code, exc.reason)
            server_closed.set()

    with trio.fail_after(20):
        async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
            (listener,) = await nursery.start(
                functools.partial(trio.serve_tcp, upstream_handler, 0, host="127.0.0.1")
            )
            upstream = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/v1"
            recorder = Recorder(writer, ProxyOptions(upstream=upstream))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            ws = await connect(f"{url}/realtime?model=m", max_size=None)
            await ws.send('{"type":"session.update"}')
            assert await ws.receive() == '{"type":"session.created"}'
            if sender == "client":
                await _send_invalid_text(ws)
            with pytest.raises(Closed) as closed:
                await ws.receive()  # nothing more arrives: the close
            await ws.close()
            await server_closed.wait()  # the upstream's close handshake, driven by the proxy
            await recorder.close_sessions()
            nursery.cancel_scope.cancel()
    assert (closed.value.code, closed.value.reason) == (1007, "invalid UTF-8 in a text message")
    assert seen["server closed"] == (1007, "invalid UTF-8 in a text message")
    assert "server extra" not in seen
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        frames = list(read_frames(log, session.session_id))
    assert (session.status, session.close_code, session.closed_by) == ("closed", 1007, "recorder")
    (bad,) = [f for f in frames if f.parse_error and "UTF-8" in f.parse_error]
    assert bad.payload_bin == BAD
    assert bad.direction.value == sender
    assert bad.kind.value == "text"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
