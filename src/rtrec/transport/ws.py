"""WebSocket connections for trio, driven by the ``websockets`` package's sans-I/O protocol.

Why not trio-websocket: measured here, its wsproto core costs 115-230 CPU-us per 6.5 KB
frame where ``websockets``' protocol objects (C-accelerated masking, a generator parser)
cost 2-3x less, and trio-websocket 0.12 leaks the client socket when the server closes or
rejects the handshake (reproduced without rtrec). Trio stays the I/O layer: this module is
the thin shell of STYLE.md principle 3 — one ``receive_some`` loop per connection, a FIFO
lock around writes, and the protocol object decides everything else (pongs, close
handshake, limits).

Messages are whole: fragments are reassembled before ``receive`` returns (a relay forwards
messages, not frames), text as ``str`` and binary as ``bytes``. Control frames never reach
the caller; pings are answered per hop by the protocol.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import typing
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Final

import attrs
import trio
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from rtrec.schemas.errors import RtrecError

__all__ = [
    "Closed",
    "HandshakeRejected",
    "InvalidText",
    "NotWebSocket",
    "ServerHandshake",
    "WebSocket",
    "accept_handshake",
    "connect",
    "open_inbox",
    "peer_name",
    "serve_websocket",
]

RECEIVE_SIZE: Final = 64 * 2**10

_log = logging.getLogger("rtrec.transport")


class Closed(RtrecError):
    """The connection is closed. ``code``/``reason`` are the peer's close frame if it sent
    one first (``by_peer``), else ours; 1006 when the TCP connection ended without one."""

    def __init__(self, code: int, reason: str, *, by_peer: bool) -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
        self.by_peer = by_peer


class InvalidText(Closed):
    """The peer sent a text message that is not UTF-8, so we closed with 1007 (RFC 6455
    §8.1: the endpoint receiving it must fail the connection). ``data`` is the message's
    bytes, for the log: it was not delivered."""

    def __init__(self, data: bytes) -> None:
        super().__init__(1007, INVALID_TEXT_REASON, by_peer=False)
        self.data = data


#: The close reason sent with 1007.
INVALID_TEXT_REASON: Final = "invalid UTF-8 in a text message"


@attrs.frozen
class HandshakeRejected(RtrecError):
    """The server answered the opening handshake with something other than 101."""

    status: int
    reason_phrase: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __str__(self) -> str:
        return f"handshake rejected: {self.status} {self.reason_phrase}"


class NotWebSocket(RtrecError):
    """A client's opening handshake was not a WebSocket upgrade (plain HTTP, a health
    check, garbage): it has been answered with ``status`` and the connection closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"not a WebSocket handshake: {status} ({detail})")
        self.status = status
        self.detail = detail


class WebSocket:
    """One open WebSocket connection (either side) over a trio stream."""

    def __init__(
        self, stream: trio.abc.Stream, protocol: Protocol, pending: Sequence[Frame] = ()
    ) -> None:
        self.stream = stream
        self.protocol = protocol
        self._events: deque[Frame] = deque(pending)
        self._send_lock = trio.StrictFIFOLock()
        #: bytes taken from the protocol, not yet written (see ``_flush``)
        self._outgoing: deque[bytes] = deque()
        self._parts: list[bytes | bytearray | memoryview] = []
        self._opcode = Opcode.TEXT
        self._closed: Closed | None = None
        self.subprotocol: str | None = protocol.subprotocol if protocol.subprotocol else None

    @property
    def close_received(self) -> bool:
        """Whether the peer's close frame has arrived (``receive`` may still have messages
        that came before it)."""
        return self.protocol.close_rcvd is not None

    @property
    def closed(self) -> Closed | None:
        """How the connection closed, once it has."""
        return self._closed

    async def receive(self) -> str | bytes:
        """The next whole message.

        Raises:
            Closed: the connection closed (the peer's close frame, a protocol failure such
                as an oversized message, or a dropped TCP connection).
        """
        while True:
            while self._events:
                frame = self._events.popleft()
                opcode = frame.opcode
                data = frame.data
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if frame.fin:
                        if opcode is Opcode.BINARY:
                            return bytes(data)
                        return await self._text(data)
                    self._opcode, self._parts = opcode, [data]
                elif opcode is Opcode.CONT:
                    self._parts.append(data)
                    if frame.fin:
                        whole, self._parts = b"".join(self._parts), []  # always bytes
                        return await self._text(whole) if self._opcode is Opcode.TEXT else whole
                elif opcode is Opcode.CLOSE:
                    await self._flush()  # the protocol queued its close reply
                    raise self._close_state()
            if self._closed is not None:
                raise self._closed
            received = await self._read()
            self._events.extend(_frames(self.protocol.events_received()))
            await self._flush()
            if not received or (self.protocol.state is not OPEN and not self._events):
                raise self._close_state()

    async def _text(self, data: bytes | bytearray | memoryview) -> str:
        """A text message's str; one that is not UTF-8 closes the connection with 1007."""
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError:
            pass
        if self.protocol.state is OPEN:
            self.protocol.send_close(1007, INVALID_TEXT_REASON)
            await self._flush()
        self._closed = InvalidText(bytes(data))
        raise self._closed

    async def send(self, message: str | bytes) -> None:
        """Send one message, as a text frame for ``str``, binary for ``bytes``.

        Raises:
            Closed: the connection is closed.
        """
        if self._closed is not None or self.protocol.state is not OPEN:
            raise self._closed or self._close_state()
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        await self._flush()

    async def close(self, code: int = 1000, reason: str = "", *, linger: float = 2.0) -> None:
        """Send a close frame, wait (up to ``linger`` s) for the peer's, then close the socket.

        Idempotent; never raises for a connection that is already gone. A peer that does
        not read cannot hold it longer than ``linger``: sending the close frame counts too.
        """
        with trio.move_on_after(linger):
            if self.protocol.state is OPEN:
                self.protocol.send_close(code, reason)
            await self._flush()  # and what an interrupted flush left (a reader's close frame)
            while self.protocol.state is not CLOSED:
                received = await self._read()
                self.protocol.events_received()  # messages after our close are discarded
                await self._flush()
                if not received:
                    break
        if self._closed is None:
            self._closed = self._close_state()
        await trio.aclose_forcefully(self.stream)

    async def _read(self) -> bool:
        """Feed one read from the socket to the protocol; False at the end of the stream."""
        try:
            received = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            received = b""
        if received:
            self.protocol.receive_data(typing.cast(bytes, received))
        else:
            self.protocol.receive_eof()
        return bool(received)

    def _close_state(self) -> Closed:
        if self._closed is None:
            proto = self.protocol
            rcvd, sent = proto.close_rcvd, proto.close_sent
            if rcvd is not None and (sent is None or proto.close_rcvd_then_sent):
                self._closed = Closed(rcvd.code, rcvd.reason, by_peer=True)
            elif sent is not None:
                self._closed = Closed(sent.code, sent.reason, by_peer=False)
            else:
                self._closed = Closed(
                    1006, "connection dropped without a close frame", by_peer=True
                )
        return self._closed

    async def _flush(self) -> None:
        """Send what the protocol has queued, in order, under the write lock.

        The bytes wait in ``_outgoing`` until their turn: a task cancelled while it waits
        for the lock (a reader stopped while another task writes) leaves them for the next
        flush, rather than losing a close frame or pong the protocol counts as sent.
        """
        self._outgoing.extend(self.protocol.data_to_send())
        if not self._outgoing:
            return
        async with self._send_lock:
            while self._outgoing:
                data = self._outgoing.popleft()
                try:
                    if data:
                        await self.stream.send_all(data)
                    elif isinstance(self.stream, trio.SocketStream):
                        await self.stream.send_eof()  # half-close: the protocol is done writing
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._outgoing.clear()
                    self.protocol.receive_eof()
                    return


def _frames(events: Sequence[object]) -> list[Frame]:
    return [e for e in events if isinstance(e, Frame)]


async def _read_handshake(
    stream: trio.abc.Stream, protocol: Protocol
) -> tuple[Request | Response, list[Frame]]:
    """Feed the stream to the protocol until the handshake message is parsed."""
    start = b""  # the first bytes, for the request line
    while True:
        events = protocol.events_received()
        for i, event in enumerate(events):
            if isinstance(event, Request | Response):
                return event, [e for e in events[i + 1 :] if isinstance(e, Frame)]
        if isinstance(protocol, ServerProtocol) and protocol.handshake_exc is not None:
            raise _Unparsable(str(protocol.handshake_exc), _request_line(start))
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise trio.BrokenResourceError("connection closed during the WebSocket handshake")
        if b"\r\n" not in start and len(start) < 8192:
            start += data[:8192]
        protocol.receive_data(typing.cast(bytes, data))


def _request_line(start: bytes) -> tuple[str, str] | None:
    """The method and HTTP version of a request line beginning ``start`` (None: not one)."""
    line = start.partition(b"\r\n")[0]
    m = re.fullmatch(rb"([A-Z]{3,10}) \S+ (HTTP/\d\.\d)", line)
    return None if m is None else (m.group(1).decode(), m.group(2).decode())


@attrs.define
class ServerHandshake:
    """A client's opening handshake, waiting for ``accept`` or ``reject``."""

    stream: trio.abc.Stream
    protocol: ServerProtocol
    request: Request
    _chosen: list[str | None] = attrs.field(factory=lambda: [None])

    @property
    def path(self) -> str:
        """Path and query as the client sent them."""
        return self.request.path

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Request headers as sent (names keep their case)."""
        return list(self.request.headers.raw_items())

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols the client offered, in order."""
        offered: list[str] = []
        for value in self.request.headers.get_all("Sec-WebSocket-Protocol"):
            offered += [p.strip() for p in value.split(",") if p.strip()]
        return offered

    async def accept(self, subprotocol: str | None) -> WebSocket:
        """Complete the handshake (101) selecting ``subprotocol``."""
        self._chosen[0] = subprotocol
        response = self.protocol.accept(self.request)
        self.protocol.send_response(response)
        ws = WebSocket(self.stream, self.protocol)
        await ws._flush()
        if response.status_code != 101:
            await trio.aclose_forcefully(self.stream)
            raise HandshakeRejected(
                response.status_code, response.reason_phrase, (), bytes(response.body or b"")
            )
        return ws

    async def reject(
        self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = (), reason: str = ""
    ) -> None:
        """Answer with an HTTP error instead of a WebSocket, then close."""
        out = Headers()
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                out[name] = value
        out["Content-Length"] = str(len(body))
        out["Connection"] = "close"
        try:
            phrase = reason or HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        self.protocol.send_response(Response(status, phrase, out, body))
        ws = WebSocket(self.stream, self.protocol)
        await ws._flush()
        await trio.aclose_forcefully(self.stream)


async def accept_handshake(stream: trio.abc.Stream, *, max_size: int | None) -> ServerHandshake:
    """Read a client's opening handshake from ``stream``.

    A request that is not a WebSocket upgrade is answered here (400, 405, 426, ... as the
    ``websockets`` protocol decides; 400 for bytes that are not HTTP) and the stream closed,
    so that a server never has to: a health check or ``curl`` must not end it.

    Raises:
        NotWebSocket: the request was answered with an HTTP error and the stream closed.
        trio.BrokenResourceError: the client left (or TLS failed) before a whole request.
    """
    holder: list[str | None] = [None]

    def select(_proto: ServerProtocol, _offered: Sequence[Subprotocol]) -> Subprotocol | None:
        return Subprotocol(holder[0]) if holder[0] else None

    protocol = ServerProtocol(max_size=max_size, select_subprotocol=select)
    try:
        request, _ = await _read_handshake(stream, protocol)
    except _Unparsable as exc:
        # the protocol answers oversized request lines and headers (414, 431) itself
        queued = [data for data in protocol.data_to_send() if data] or _refusal(exc.line)
        if not queued:
            body = "rtrec: not an HTTP request; this is a WebSocket server\n"
            queued = [_plain_answer(400, "Bad Request", body)]
        await _answer(stream, queued)
        raise NotWebSocket(int(queued[0].split(b" ", 2)[1]), str(exc)) from None
    assert isinstance(request, Request)
    # Validate now (accept() is pure but for attributes it sets again when called for real),
    # so that no server connects anywhere for a request it must refuse.
    check = protocol.accept(request)
    if check.status_code != 101:
        protocol.send_response(check)
        await _answer(stream, protocol.data_to_send())
        detail = str(protocol.handshake_exc) if protocol.handshake_exc else check.reason_phrase
        raise NotWebSocket(check.status_code, detail)
    protocol.handshake_exc = None
    return ServerHandshake(stream, protocol, request, holder)


async def serve_websocket(
    handler: Callable[[ServerHandshake], Awaitable[None]],
    listeners: Sequence[trio.abc.Listener[Any]],
    *,
    max_size: int | None,
    name: str,
    handshake_timeout: float = 60.0,
    task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket clients on ``listeners`` until cancelled.

    Each client's opening handshake is read in a task of its own and given to ``handler``,
    which accepts or rejects it and then runs the connection. A request that is not a
    WebSocket upgrade is answered by ``accept_handshake`` and logged as a warning with the
    client's address (``name`` says which server: ``"rtrec sim"``); a client that leaves
    or stalls (``handshake_timeout``) before a whole request is dropped. Either way the
    server serves on. The stream is closed once ``handler`` returns.
    """

    async def connection(stream: trio.abc.Stream) -> None:
        peer = peer_name(stream)
        try:
            with trio.fail_after(handshake_timeout):
                handshake = await accept_handshake(stream, max_size=max_size)
        except NotWebSocket as exc:
            _log.warning("%s: %s from %s", name, exc, peer)
            return
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(stream)  # gone before a whole request, or too slow
            return
        try:
            await handler(handshake)
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(connection, list(listeners), task_status=task_status)


@contextlib.asynccontextmanager
async def open_inbox(
    ws: WebSocket, size: int
) -> AsyncIterator[trio.MemoryReceiveChannel[str | bytes]]:
    """Read ``ws`` in a task of its own, queuing up to ``size`` messages.

    The caller takes messages from the channel it yields, and may wait for one with a
    deadline: cancelling a channel's receive loses nothing, where cancelling
    ``WebSocket.receive`` could drop a pong it was sending. Meanwhile the socket is read
    (pings answered, the peer's close seen) while the caller works, up to ``size`` messages
    ahead. The channel ends when the connection closes (``ws.closed`` says how); leaving
    the block stops the reader, so ``ws.close`` may follow.
    """
    send, receive = trio.open_memory_channel[str | bytes](size)

    async def read() -> None:
        async with send:
            with contextlib.suppress(Closed):
                while True:
                    await send.send(await ws.receive())

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            try:
                yield receive
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps what the caller's block raised: give it back as raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def peer_name(stream: trio.abc.Stream) -> str:
    """``HOST:PORT`` of the client on ``stream`` (a socket, or TLS over one), for logs."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            return "a client that left"
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "a client"


class _Unparsable(Exception):
    """The client's bytes are not a request the protocol parses (``line``: the method and
    version of its request line, when it has one)."""

    def __init__(self, message: str, line: tuple[str, str] | None) -> None:
        super().__init__(message)
        self.line = line


def _refusal(line: tuple[str, str] | None) -> list[bytes]:
    """What websockets 17 answers to a request line it does not take, for the releases
    before it (15 and 16 cannot parse one: they leave rtrec to answer 400)."""
    if line is None:
        return []
    method, version = line
    if method != "GET":
        body = f"Failed to open a WebSocket connection: unsupported HTTP method: {method}\n"
        return [_plain_answer(405, "Method Not Allowed", body, [("Allow", "GET")])]
    if version != "HTTP/1.1":
        body = f"Failed to open a WebSocket connection: unsupported protocol: {version}\n"
        return [_plain_answer(505, "HTTP Version Not Supported", body)]
    return []


def _plain_answer(
    status: int, phrase: str, body: str, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A complete HTTP error response with a text body, closing the connection."""
    response = Response(status, phrase, Headers(headers), body.encode())
    response.headers["Content-Length"] = str(len(response.body or b""))
    response.headers["Connection"] = "close"
    return response.serialize()


async def _answer(stream: trio.abc.Stream, writes: Sequence[bytes]) -> None:
    try:
        for data in writes:
            if data:
                await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client already left: nothing to answer
    finally:
        await trio.aclose_forcefully(stream)


async def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    max_size: int | None,
    ssl_context: ssl.SSLContext | None = None,
) -> WebSocket:
    """Open a client connection to ``url`` (ws:// or wss://).

    Raises:
        HandshakeRejected: the server answered with an HTTP error (status, headers, body).
        OSError, trio.BrokenResourceError: the server could not be reached.
    """
    uri = parse_uri(url)
    stream: trio.abc.Stream = await trio.open_tcp_stream(uri.host, uri.port)
    try:
        if uri.secure:
            tls = trio.SSLStream(
                stream, ssl_context or ssl.create_default_context(), server_hostname=uri.host
            )
            await tls.do_handshake()
            stream = tls
        protocol = ClientProtocol(
            uri, subprotocols=[Subprotocol(p) for p in subprotocols] or None, max_size=max_size
        )
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        protocol.send_request(request)
        for data in protocol.data_to_send():
            if data:
                await stream.send_all(data)
        response, frames = await _read_handshake(stream, protocol)
        assert isinstance(response, Response)
        # Not ``protocol.state is not OPEN``: a server that accepts and closes at once
        # (1011) sends its close frame with the 101, and the protocol is then CLOSING; the
        # WebSocket below hands that close frame over as the session's first event.
        if protocol.handshake_exc is not None or response.status_code != 101:
            raise HandshakeRejected(
                response.status_code,
                response.reason_phrase,
                tuple(response.headers.raw_items()),
                bytes(response.body or b""),
            )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return WebSocket(stream, protocol, frames)
