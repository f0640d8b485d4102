"""What already held in the fault-injection run, kept so (issue 15): the proxy is byte-exact
under odd frames, and every upstream fault reaches the client with the right close code and
the log with the right row. Real sockets on loopback, a real DuckDB log."""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio
import trustme

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    rebuild_frame,
)
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import Closed, HandshakeRejected, WebSocket, accept_handshake, connect

BIG = 16 * 2**20
ODD: list[str | bytes] = [
    "not json {",
    "",
    "[1,2,3]",
    '{"type":"session.update","session":{"instructions":"héllo ✓ 🎧"}}',
    b"\x00\x01\x02binary\xff",
    b"",
    '{"type":"input_audio_buffer.append","audio":"' + "A" * (2 * 2**20) + '"}',
    '{"type":"x","pad":"' + "y" * (BIG - 64) + '"}',
]


Upstream = Callable[[WebSocket], Awaitable[None]]


async def _serve(behaviour: Upstream, stream: trio.SocketStream) -> None:
    async with stream:  # serve_tcp leaves closing it to the handler
        await _session(behaviour, stream)


async def _session(behaviour: Upstream, stream: trio.SocketStream) -> None:
    handshake = await accept_handshake(stream, max_size=2 * BIG)
    if behaviour is _reject:
        await handshake.reject(429, b'{"error":"slow down"}', [("Retry-After", "3")])
        return
    ws = await handshake.accept(None)
    await behaviour(ws)


async def _relay(db: Path, behaviour: Upstream, client: Callable[[str], Awaitable[object]]):
    async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(
                trio.serve_tcp, functools.partial(_serve, behaviour), 0, host="127.0.0.1"
            )
        )
        upstream = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/v1"
        recorder = Recorder(writer, ProxyOptions(upstream=upstream, max_message_size=2 * BIG))
        url = await nursery.start(recorder.serve, "127.0.0.1", 0)
        result = await client(f"{url}/realtime?model=m")
        await recorder.close_sessions()
        nursery.cancel_scope.cancel()
    return result


async def test_odd_frames_pass_byte_exact_and_rebuild_from_the_log(tmp_path: Path) -> None:
    """Invalid JSON, empty, binary, a fragmented message, 2 MiB of base64 audio and a 16 MiB
    frame: the upstream gets exactly what the client sent, the echo comes back exactly,
    and the log rebuilds every frame byte for byte."""
    db = tmp_path / "log.duckdb"
    got: list[str | bytes] = []

    async def echo(ws: WebSocket) -> None:
        try:
            while True:
                message = await ws.receive()
                got.append(message)
                await ws.send(message)
        except Closed:
            pass

    async def client(url: str) -> list[str | bytes]:
        ws = await connect(url, max_size=2 * BIG)
        back = []
        for message in ODD:
            await ws.send(message)
            back.append(await ws.receive())
        ws.protocol.send_text(b"frag", fin=False)  # one message in three frames
        ws.protocol.send_continuation(b"mented ", fin=False)
        ws.protocol.send_continuation("✓".encode(), fin=True)
        await ws._flush()
        back.append(await ws.receive())
        await ws.close()
        return back

    with trio.fail_after(60):
        back = await _relay(db, echo, client)
    expected = [*ODD, "fragmented ✓"]
    assert got == expected
    assert back == expected
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        frames = [f for f in read_frames(log, session.session_id) if f.kind.value != "mark"]
        with LogAudio.of_session(log, session.session_id) as audio:
            rebuilt = [rebuild_frame(f, audio) for f in frames]
    assert rebuilt == [m for m in expected for _ in range(2)]  # client, then the echo


async def _close_with(code: int, reason: str, ws: WebSocket) -> None:
    await ws.receive()
    await ws.close(code, reason)


async def _drop(ws: WebSocket) -> None:
    await ws.receive()
    await trio.aclose_forcefully(ws.stream)


async def _reject(ws: WebSocket) -> None:  # pragma: no cover - handled in _serve
    raise AssertionError


@pytest.mark.parametrize(
    ("behaviour", "client_sees", "row"),
    [
        (functools.partial(_close_with, 1000, "done"), (1000, "done"), ("closed", 1000, "server")),
        (
            functools.partial(_close_with, 1008, "policy"),
            (1008, "policy"),
            ("closed", 1008, "server"),
        ),
        (
            functools.partial(_close_with, 4001, "custom"),
            (4001, "custom"),
            ("closed", 4001, "server"),
        ),
        (functools.partial(_close_with, 1011, "boom"), (1011, "boom"), ("closed", 1011, "server")),
        (_drop, (1011, None), ("closed", 1006, "server")),
    ],
    ids=["1000", "1008", "4001", "1011", "dropped"],
)
async def test_upstream_closes_are_mirrored(tmp_path: Path, behaviour, client_sees, row) -> None:
    """Each way an upstream can end a session reaches the client with the same code and
    reason (a dropped connection, which has no close frame, as 1011), and the row records
    the upstream's own code and that the server closed."""
    db = tmp_path / "log.duckdb"

    async def client(url: str) -> Closed:
        ws = await connect(url, max_size=None)
        await ws.send('{"type":"response.create"}')
        with pytest.raises(Closed) as closed:
            await ws.receive()
        await ws.close()
        return closed.value

    with trio.fail_after(20):
        closed = await _relay(db, behaviour, client)
    assert closed.code == client_sees[0]
    if client_sees[1] is not None:
        assert closed.reason == client_sees[1]
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
    assert (session.status, session.close_code, session.closed_by) == row


async def test_a_rejected_handshake_passes_through_and_is_logged(tmp_path: Path) -> None:
    """An upstream's 429 reaches the client with its body and headers; the row is `rejected`."""
    db = tmp_path / "log.duckdb"

    async def client(url: str) -> HandshakeRejected:
        with pytest.raises(HandshakeRejected) as rejected:
            await connect(url, max_size=None)
        return rejected.value

    with trio.fail_after(20):
        rejected = await _relay(db, _reject, client)
    assert rejected.status == 429
    assert rejected.body == b'{"error":"slow down"}'
    assert ("Retry-After", "3") in rejected.headers
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
    assert session.status == "rejected"


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then closed: connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


@contextlib.contextmanager
def _full_backlog() -> Iterator[int]:
    """A loopback port whose listener never accepts and whose backlog is full, so the
    kernel drops new SYNs: a connect there hangs as on an unroutable address."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):  # enough to fill the accept queue and the SYN backlog
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            yield port
        finally:
            for filler in fillers:
                filler.close()


async def _plain_tcp(stream: trio.SocketStream) -> None:
    """Not TLS: answers whatever it gets with a line of plain HTTP."""
    async with stream:
        await stream.receive_some(4096)
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


async def _untrusted_tls(server_context: ssl.SSLContext, stream: trio.SocketStream) -> None:
    """TLS with a certificate from a CA the proxy does not trust."""
    tls = trio.SSLStream(stream, server_context, server_side=True)
    async with tls:
        with contextlib.suppress(trio.BrokenResourceError):
            await tls.do_handshake()


async def _silent(stream: trio.SocketStream) -> None:
    async with stream:
        await trio.sleep_forever()  # accepts TCP, never answers the handshake


def _tls_server_context() -> ssl.SSLContext:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("refused", "Connection refused"),
        ("no such host", "Name or service not known|Temporary failure in name resolution"),
        ("unroutable", "timed out after 1 s"),
        ("not TLS", "SSL|ssl|TLS"),
        ("untrusted TLS", "certificate verify failed"),
        ("handshake timeout", "timed out after 1 s"),
    ],
)
async def test_an_unreachable_upstream_is_a_502_naming_why(
    tmp_path: Path, case: str, reason: str
) -> None:
    """Each way an upstream cannot be reached gives the client a 502 whose one-line body
    names the problem (never empty after the colon), and a `failed` session whose close
    reason says the same, within the connect timeout (1 s here): nothing hangs."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            with contextlib.ExitStack() as stack:
                if case == "refused":
                    upstream = f"ws://127.0.0.1:{stack.enter_context(_refusing_port())}/v1"
                elif case == "no such host":
                    upstream = "ws://rtrec-no-such-host.invalid/v1"  # RFC 6761: never resolves
                elif case == "unroutable":
                    upstream = f"ws://127.0.0.1:{stack.enter_context(_full_backlog())}/v1"
                else:
                    handlers: dict[str, Callable[[trio.SocketStream], Awaitable[None]]] = {
                        "not TLS": _plain_tcp,
                        "untrusted TLS": functools.partial(_untrusted_tls, _tls_server_context()),
                        "handshake timeout": _silent,
                    }
                    handler = handlers[case]
                    (listener,) = await nursery.start(
                        functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
                    )
                    port = listener.socket.getsockname()[1]
                    scheme = "ws" if case == "handshake timeout" else "wss"
                    upstream = f"{scheme}://127.0.0.1:{port}/v1"
                async with open_log_writer(db, serve_queries=False) as writer:
                    options = ProxyOptions(upstream=upstream, connect_timeout=1.0)
                    recorder = Recorder(writer, options)
                    url = await nursery.start(recorder.serve, "127.0.0.1", 0)
                    with pytest.raises(HandshakeRejected) as rejected:
                        await connect(f"{url}/realtime?model=m", max_size=None)
                    await recorder.close_sessions()
                nursery.cancel_scope.cancel()
    assert rejected.value.status == 502
    body = rejected.value.body.decode()
    assert body.endswith("\n")
    assert "\n" not in body.rstrip("\n"), body  # one line
    found = re.fullmatch(rf"rtrec: upstream {re.escape(upstream)}\S* unreachable: (.+)\n", body)
    assert found, body
    cause = found.group(1)
    assert re.search(reason, cause), cause
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
    assert session.status == "failed"
    assert cause in (session.close_reason or ""), session.close_reason
