"""A peer that stops reading cannot hold the other side's close hostage (issue 15, defect 5).

The upstream accepts the session and never reads again; the client sends 4 MB
(far more than the stalled TCP connection holds) and closes. The recorder keeps
reading the client, answers its close at once, ends the upstream side, and the log says
the client closed and how many logged frames the upstream never took.
"""

from __future__ import annotations

import socket

import orjson
import trio

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.store.reader import open_log_reader, read_frames, read_sessions
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import accept_handshake, connect

MESSAGES = 32
SIZE = 128 << 10


async def test_an_upstream_that_stops_reading_does_not_block_the_clients_close(tmp_path) -> None:
    """The client's close is answered by the recorder (a clean 1000 both ways, not 1006),
    the row says the client closed, and the close mark counts the frames logged but never
    delivered; every frame the client sent is in the log."""
    db = tmp_path / "log.duckdb"
    accepted = trio.Event()

    async def stalled(stream: trio.SocketStream) -> None:
        async with stream:  # serve_listeners leaves closing it to the handler
            handshake = await accept_handshake(stream, max_size=None)
            await handshake.accept(None)
            accepted.set()
            await trio.sleep_forever()  # never reads again: its socket's window closes

    # a small receive buffer, so that the window closes after kilobytes, not megabytes
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.bind(("127.0.0.1", 0))
    sock.listen()
    upstream = f"ws://127.0.0.1:{sock.getsockname()[1]}/v1"

    with sock, trio.fail_after(20):
        async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, stalled, [trio.SocketListener(sock)])
            recorder = Recorder(writer, ProxyOptions(upstream=upstream, close_linger=1.0))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            ws = await connect(f"{url}/realtime?model=m", max_size=None)
            await accepted.wait()
            for n in range(MESSAGES):
                await ws.send(orjson.dumps({"type": "x", "n": n, "pad": "p" * SIZE}).decode())
            await ws.close(1000, "bye", linger=10)
            await recorder.close_sessions()
            nursery.cancel_scope.cancel()
    assert ws.protocol.close_rcvd is not None  # the recorder answered the close frame
    assert ws.protocol.close_rcvd.code == 1000
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        frames = list(read_frames(log, session.session_id))
    assert (session.status, session.close_code, session.closed_by) == ("closed", 1000, "client")
    sent = [f for f in frames if f.type == "x"]
    assert len(sent) == MESSAGES
    (close,) = [orjson.loads(f.payload or "") for f in frames if f.type == "rtrec.close"]
    assert 0 < close["undelivered"]["client"] <= MESSAGES
