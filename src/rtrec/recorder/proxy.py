"""The recording proxy: a transparent WebSocket relay between a client and the upstream.

For each client handshake, the proxy opens the same path and query upstream with the
client's end-to-end headers and subprotocols, answers the client with the upstream's
choice (or its rejection: same status, headers and body), then relays every message both
ways, unchanged, text or binary, parsable or not. Each message is captured
(``capture.py``) the moment it arrives, so ``seq`` is the order the proxy saw; it is then
handed to the log sink, and forwarded only once the sink holds it. A full sink slows the
relay down (back-pressure) and never drops anything; a failed sink closes every session
with 1011 and a reason that starts with the cause (``disk full: ...``): traffic never
passes unrecorded.

Closing mirrors what each side did: the other side is closed with the same code and
reason. Codes that cannot be sent in a close frame (1005: no code; 1006: dropped without a
close frame; 1015: TLS) become 1000 and 1011. Pings are answered per hop.
"""

from __future__ import annotations

import collections
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Final, TypeAlias
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson
import trio

from rtrec._version import __version__
from rtrec.recorder.capture import SessionCapture
from rtrec.recorder.headers import HOP_BY_HOP
from rtrec.recorder.ids import uuid7
from rtrec.recorder.redact import (
    PathRedactor,
    redact_headers,
    redact_path,
    redact_subprotocols,
    redact_text,
)
from rtrec.schemas.dialects import dialect_of
from rtrec.schemas.errors import describe_error
from rtrec.schemas.storage import (
    AudioChunk,
    Direction,
    FrameRecord,
    SessionClose,
    SessionRecord,
    SessionStatus,
)
from rtrec.store.sink import LogSink, OfferingSink, RecordingFailed
from rtrec.transport.tls import TlsServer
from rtrec.transport.ws import (
    Closed,
    HandshakeRejected,
    InvalidText,
    NotWebSocket,
    ServerHandshake,
    WebSocket,
    accept_handshake,
    connect,
    peer_name,
)

__all__ = ["DEFAULT_UPSTREAM", "ProxyOptions", "Recorder", "serve_recorder"]

DEFAULT_UPSTREAM: Final = "wss://api.openai.com/v1"
BASE_PATH: Final = "/v1"

# Headers of a rejected upstream handshake that describe that response's own framing.
_REJECT_DROP: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "date", "server"}
)
_UNSENDABLE: Final = {1005: 1000, 1006: 1011, 1015: 1011}
_log: Final = logging.getLogger("rtrec.recorder")

#: Returns (nanoseconds since the session started, wall-clock nanoseconds).
_Clock: TypeAlias = Callable[[], tuple[int, int]]


@attrs.frozen(kw_only=True)
class ProxyOptions:
    """How the proxy relays and records."""

    upstream: str = DEFAULT_UPSTREAM
    #: Largest message relayed; a larger one closes both sides with 1009.
    max_message_size: int = 16 * 2**20
    connect_timeout: float = 20.0
    #: How long a close waits for the peer's close frame before dropping the socket; also
    #: how long frames already read wait to be delivered once their sender has closed.
    close_linger: float = 2.0
    #: Bytes read ahead of a peer that is not reading (beyond one message): the relay keeps
    #: reading the other side that far, so that its close is seen (docs/recorder.md).
    read_ahead: int = 4 << 20
    record_audio: bool = True
    redact_paths: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@attrs.define(eq=False)
class _Closing:
    """The first side to close decides the session's close."""

    by: Direction | None = None
    code: int | None = None
    reason: str = ""

    def note(self, by: Direction, closed: Closed) -> None:
        if self.by is None:
            self.by, self.code, self.reason = by, closed.code, closed.reason


class _Outbox:
    """Messages of one direction read (and logged) but not yet delivered.

    The reader puts, the forwarder takes; ``put`` waits while more than ``limit`` bytes
    wait (one message is always let in), so a peer that stops reading slows the other side
    down as before, yet the other side's close is still read.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.messages: collections.deque[str | bytes] = collections.deque()
        self.size = 0
        self.closed = False
        self._changed = trio.Event()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def put(self, message: str | bytes, *, wait: bool = True) -> None:
        """Queue ``message``; wait for room unless ``wait`` is False (it is in memory
        anyway: its sender has closed, and what came before the close was read)."""
        while wait and self.messages and self.size + len(message) > self.limit:
            await self._changed.wait()
        self.messages.append(message)
        self.size += len(message)
        self._wake()

    async def take(self) -> str | bytes | None:
        """The next message; None once closed and empty."""
        while not self.messages:
            if self.closed:
                return None
            await self._changed.wait()
        return self.messages[0]  # removed by ``done`` once delivered

    def done(self) -> None:
        message = self.messages.popleft()
        self.size -= len(message)
        self._wake()

    async def drained(self) -> None:
        while self.messages:
            await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        self._wake()


class _Session:
    """The state of one relayed session."""

    def __init__(
        self,
        record: SessionRecord,
        capture: SessionCapture,
        client: WebSocket,
        upstream: WebSocket,
        now: _Clock,
    ) -> None:
        self.record = record
        self.capture = capture
        self.client = client
        self.upstream = upstream
        self.now = now
        self.closing = _Closing()
        self.failure: list[str] = []
        #: frames captured and waiting for room in the sink: while there are any, later
        #: frames wait behind them, in order (one order per session, both directions)
        self.backlog = 0
        self.log_lock = trio.StrictFIFOLock()
        #: per direction: frames logged but never delivered (their receiver stopped reading)
        self.undelivered: dict[Direction, int] = {}


class Recorder:
    """Serves the recording proxy; one instance holds any number of concurrent sessions."""

    def __init__(self, sink: LogSink, options: ProxyOptions | None = None) -> None:
        self.sink = sink
        self.options = options or ProxyOptions()
        self._redactor = PathRedactor(self.options.redact_paths)
        self._ssl = ssl.create_default_context()
        # session id -> (the scope that cancels its relay, set once it has fully ended)
        self._sessions: dict[str, tuple[trio.CancelScope, trio.Event]] = {}
        self._closing_all: tuple[int, str] | None = None

    @property
    def active_sessions(self) -> int:
        """Sessions currently relaying."""
        return len(self._sessions)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        tls: TlsServer | None = None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for clients until cancelled; ``task_status.started`` gets the base URL
        (``wss://`` with ``tls``)."""
        context = None if tls is None else tls.context

        async def handler(stream: trio.SocketStream) -> None:
            if context is None:
                await self._handle_stream(stream)
            else:
                await self._handle_stream(trio.SSLStream(stream, context, server_side=True))

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, handler, port, host=host, handler_nursery=nursery)
            )
            nursery.start_soon(self._close_all_on_failure)
            bound = listeners[0].socket.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            scheme = "ws" if tls is None else "wss"
            task_status.started(f"{scheme}://{shown}:{bound}{BASE_PATH}")

    async def close_sessions(
        self, code: int = 1001, reason: str = "rtrec is shutting down"
    ) -> None:
        """Close every session cleanly (close frames both ways, log entries written) and
        refuse new ones; returns when all sessions have ended."""
        self._closing_all = (code, reason)
        for scope, _ in list(self._sessions.values()):
            scope.cancel()
        for _, done in list(self._sessions.values()):
            await done.wait()

    async def _close_all_on_failure(self) -> None:
        await self.sink.failed.wait()
        await self.close_sessions(1011, _failure_reason(self.sink.failure))

    # ------------------------------------------------------------------ one session

    def _upstream_url(self, path: str) -> str:
        base = urlsplit(self.options.upstream)
        rest = path[len(BASE_PATH) :] if path.startswith(BASE_PATH) else path
        return f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{rest}"

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        peer = peer_name(stream)
        try:
            with trio.fail_after(self.options.connect_timeout):
                handshake = await accept_handshake(stream, max_size=self.options.max_message_size)
        except NotWebSocket as exc:
            _log.warning("rtrec record: %s from %s", exc, peer)
            return
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
            await trio.aclose_forcefully(stream)  # gone before a whole request, or too slow
            return
        if self._closing_all is not None or self.sink.failed.is_set():
            await handshake.reject(503, b"rtrec: the recorder is not accepting sessions\n")
            return
        await self._handle(handshake)

    async def _handle(self, handshake: ServerHandshake) -> None:
        t0 = time.monotonic_ns()
        session_id = uuid7()
        headers = handshake.headers
        forward = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        offered = handshake.subprotocols
        upstream_url = self._upstream_url(handshake.path)
        dialect = dialect_of(handshake.path, headers, offered)
        capture = SessionCapture(
            session_id,
            dialect=dialect,
            record_audio=self.options.record_audio,
            redact_paths=self._redactor,
        )
        record = SessionRecord(
            session_id=session_id,
            started_wall_ns=time.time_ns(),
            upstream_url=redact_path(upstream_url),
            request_path=redact_path(handshake.path),
            model=_query_param(handshake.path, "model"),
            protocol=dialect.name,
            request_headers=orjson.dumps(dict(redact_headers(headers))).decode(),
            subprotocol=None,
            tags=orjson.dumps(dict(self.options.tags)).decode(),
            rtrec_version=__version__,
        )

        def now() -> tuple[int, int]:
            return time.monotonic_ns() - t0, time.time_ns()

        try:
            with trio.fail_after(self.options.connect_timeout):
                upstream = await connect(
                    upstream_url,
                    subprotocols=offered,
                    headers=forward,
                    max_size=self.options.max_message_size,
                    ssl_context=self._ssl,
                )
        except HandshakeRejected as exc:
            await self._rejected(handshake, record, capture, exc, now)
            return
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ValueError) as exc:
            await self._unreachable(handshake, record, capture, exc, now)
            return
        try:
            client = await handshake.accept(upstream.subprotocol)
        except (HandshakeRejected, trio.BrokenResourceError, trio.ClosedResourceError):
            await upstream.close(1001, "client went away during the handshake")
            return
        record = attrs.evolve(record, subprotocol=upstream.subprotocol)
        await self._relay_session(
            record, capture, client, upstream, redact_subprotocols(offered), now
        )

    async def _relay_session(
        self,
        record: SessionRecord,
        capture: SessionCapture,
        client: WebSocket,
        upstream: WebSocket,
        offered: list[str],
        now: _Clock,
    ) -> None:
        session = _Session(record, capture, client, upstream, now)
        scope, done = trio.CancelScope(), trio.Event()
        self._sessions[record.session_id] = (scope, done)
        try:
            await self.sink.send(record)
            t, wall = now()
            detail = {
                "path": record.request_path,
                "subprotocols": offered,
                "subprotocol": upstream.subprotocol,
            }
            await self.sink.send(capture.mark("rtrec.handshake", detail, t, wall))
            with scope:
                async with trio.open_nursery() as nursery:
                    for src, dst, direction in (
                        (client, upstream, Direction.CLIENT),
                        (upstream, client, Direction.SERVER),
                    ):
                        nursery.start_soon(self._pump, session, src, dst, direction, nursery)
        except RecordingFailed as exc:
            session.failure.append(str(exc))
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(session)
            del self._sessions[record.session_id]
            done.set()

    async def _pump(
        self,
        session: _Session,
        src: WebSocket,
        dst: WebSocket,
        direction: Direction,
        nursery: trio.Nursery,
    ) -> None:
        """Relay one direction until its source closes.

        A reader task logs each message and hands it to a forwarder task: a receiver that
        stops reading then holds up its own deliveries, never the reading of the sender,
        whose close frame is answered at once (frames it sent before, already logged,
        get ``close_linger`` seconds to be delivered).
        """
        outbox = _Outbox(self.options.read_ahead)
        try:
            async with trio.open_nursery() as relay:
                relay.start_soon(self._forward, session, outbox, dst, direction, nursery)
                await self._read(session, src, outbox, direction)
                with trio.move_on_after(self.options.close_linger):
                    await outbox.drained()
                relay.cancel_scope.cancel()
        except Exception as exc:
            # A bug of ours must end this session loudly, never the whole recorder, and
            # never let traffic pass unrecorded.
            _log.exception(
                "session %s: internal error relaying %s frames",
                session.capture.session_id,
                direction,
            )
            session.failure.append(f"internal error: {describe_error(exc)}")
        finally:
            # however the session ends (a close, a cancel): what was logged and not taken
            if outbox.messages:
                session.undelivered[direction] = len(outbox.messages)
        nursery.cancel_scope.cancel()

    async def _read(
        self, session: _Session, src: WebSocket, outbox: _Outbox, direction: Direction
    ) -> None:
        """Read, log and queue the messages of one direction until its source closes."""
        capture, now = session.capture, session.now
        while True:
            try:
                message = await src.receive()
            except InvalidText as exc:
                # not forwarded: the sender was closed with 1007; the log keeps it raw
                session.closing.note(Direction.RECORDER, exc)
                t, wall = now()
                record = capture.invalid_text(direction, exc.data, t, wall)
                try:
                    await self._log(session, record, None)
                except RecordingFailed as failed:
                    session.failure.append(str(failed))
                return
            except Closed as exc:
                # by_peer: that side closed; else its protocol failed (e.g. 1009: too big)
                session.closing.note(direction if exc.by_peer else Direction.RECORDER, exc)
                return
            t, wall = now()
            # Capture and offer with no await in between, so that records reach the
            # log in seq order with each AudioChunk right after its frame.
            record, chunk = capture.frame(direction, message, t, wall)
            try:
                await self._log(session, record, chunk)
            except RecordingFailed as exc:
                session.failure.append(str(exc))
                return
            await outbox.put(message, wait=not src.close_received)

    async def _forward(
        self,
        session: _Session,
        outbox: _Outbox,
        dst: WebSocket,
        direction: Direction,
        nursery: trio.Nursery,
    ) -> None:
        """Deliver what ``_read`` queued, in order; the session ends if ``dst`` closes."""
        other = Direction.SERVER if direction is Direction.CLIENT else Direction.CLIENT
        while (message := await outbox.take()) is not None:
            try:
                await dst.send(message)
            except Closed as exc:
                session.closing.note(other, exc)
                nursery.cancel_scope.cancel()
                return
            outbox.done()

    async def _log(self, session: _Session, record: FrameRecord, chunk: AudioChunk | None) -> None:
        """Hand a frame's records to the sink; return once the sink holds them.

        Call it right after capturing the frame, with no await in between: records then
        reach the log in seq order, each AudioChunk right after its frame.

        Raises:
            RecordingFailed: the sink failed.
        """
        sink = self.sink
        # the usual case: straight into the sink, no task switch
        if (
            isinstance(sink, OfferingSink)
            and not session.backlog
            and (sink.offer(record) if chunk is None else sink.offer(record, chunk))
        ):
            return
        # The sink is full: wait for room, in capture order, before the frame goes on (a
        # frame is forwarded only once the log holds it).
        session.backlog += 1
        try:
            async with session.log_lock:
                await sink.send(record)
                if chunk is not None:
                    # a frame with audio is followed by its samples, always
                    with trio.CancelScope(shield=True):
                        await sink.send(chunk)
        finally:
            session.backlog -= 1

    async def _finish(self, session: _Session) -> None:
        record, capture, closing, failure = (
            session.record,
            session.capture,
            session.closing,
            session.failure,
        )
        status = SessionStatus.CLOSED
        if failure or self.sink.failed.is_set():
            reason = _failure_reason(failure[0] if failure else self.sink.failure)
            code, by, status = 1011, Direction.RECORDER, SessionStatus.FAILED
        elif closing.by is not None:
            code = closing.code if closing.code is not None else 1005
            reason, by = closing.reason, closing.by
        else:
            code, reason = self._closing_all or (1001, "rtrec is shutting down")
            by = Direction.RECORDER
        t, wall = session.now()
        try:
            # Logged before the sockets close, so that a slow close cannot lose it.
            detail: dict[str, object] = {"code": code, "reason": reason, "by": by.value}
            if session.undelivered:
                # logged, then never taken by a receiver that had stopped reading
                detail["undelivered"] = {d.value: n for d, n in session.undelivered.items()}
            await self.sink.send(capture.mark("rtrec.close", detail, t, wall))
            await self.sink.send(
                SessionClose(
                    session_id=record.session_id,
                    ended_wall_ns=wall,
                    status=status,
                    close_code=code,
                    close_reason=redact_text(reason),
                    closed_by=by,
                )
            )
        except RecordingFailed:
            pass  # the sink is gone; the next open of the log marks the session interrupted
        send_code = _UNSENDABLE.get(code, code)
        linger = self.options.close_linger
        async with trio.open_nursery() as nursery:
            for ws in (session.client, session.upstream):
                nursery.start_soon(
                    functools.partial(ws.close, send_code, _truncate_reason(reason), linger=linger)
                )

    # ------------------------------------------------------------------ failed handshakes

    async def _rejected(
        self,
        handshake: ServerHandshake,
        record: SessionRecord,
        capture: SessionCapture,
        exc: HandshakeRejected,
        now: _Clock,
    ) -> None:
        headers = [(k, v) for k, v in exc.headers if k.lower() not in _REJECT_DROP]
        detail = {
            "status": exc.status,
            "body": redact_text(exc.body.decode("utf-8", "replace"))[:4096],
        }
        # Logged first: the log knows of the rejection before the client does.
        await self._log_failed_handshake(
            record, capture, "rtrec.rejected", detail, now, SessionStatus.REJECTED
        )
        await handshake.reject(exc.status, exc.body, headers, exc.reason_phrase)

    async def _unreachable(
        self,
        handshake: ServerHandshake,
        record: SessionRecord,
        capture: SessionCapture,
        exc: BaseException,
        now: _Clock,
    ) -> None:
        cause = describe_error(exc, timeout=self.options.connect_timeout)
        message = f"rtrec: upstream {record.upstream_url} unreachable: {cause}"
        await self._log_failed_handshake(
            record, capture, "rtrec.unreachable", {"error": message}, now, SessionStatus.FAILED
        )
        await handshake.reject(502, message.encode() + b"\n")

    async def _log_failed_handshake(
        self,
        record: SessionRecord,
        capture: SessionCapture,
        mark: str,
        detail: dict[str, object],
        now: _Clock,
        status: SessionStatus,
    ) -> None:
        t, wall = now()
        try:
            await self.sink.send(record)
            await self.sink.send(capture.mark(mark, detail, t, wall))
            await self.sink.send(
                SessionClose(
                    session_id=record.session_id,
                    ended_wall_ns=wall,
                    status=status,
                    close_code=None,
                    close_reason=redact_text(orjson.dumps(detail).decode()),
                    closed_by=Direction.SERVER
                    if status is SessionStatus.REJECTED
                    else Direction.RECORDER,
                )
            )
        except RecordingFailed:
            pass


def _failure_reason(cause: str | None) -> str:
    """A close reason for a failed recording: the cause first (a close reason is cut at
    123 bytes), e.g. ``disk full: ... - rtrec stopped recording``."""
    return f"{cause or 'unknown failure'} - rtrec stopped recording"


def _truncate_reason(reason: str) -> str:
    """A close reason must fit a control frame: 123 bytes of UTF-8."""
    data = reason.encode()[:123]
    return data.decode("utf-8", "ignore")


def _query_param(path: str, name: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get(name)
    return values[0] if values else None


async def serve_recorder(
    sink: LogSink,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    options: ProxyOptions | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a recording proxy until cancelled; ``task_status.started`` gets its base URL
    (``ws://127.0.0.1:PORT/v1``).

    Cancelling stops it abruptly (each session still logs its close). For a clean stop,
    with close frames sent both ways, use ``Recorder`` and ``await close_sessions()``
    before cancelling, as ``rtrec record`` does on Ctrl-C.
    """
    await Recorder(sink, options).serve(host, port, task_status=task_status)
