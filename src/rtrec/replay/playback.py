"""The playback server: a recorded session served back as if it were the Realtime server.

    recording = load_recording(Path("fixtures/sessions/weather"))   # a bundle, or a log
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_playback, recording)       # ws://127.0.0.1:PORT/v1
        ...  # point any client at url (AsyncOpenAI(websocket_base_url=url), a browser, ...)

This module is the I/O shell: it loads a recording (a bundle or a log, rebuilt byte for
byte from the FLAC archive), accepts connections (TLS optional), and moves messages and
time between each connection and its ``PlaybackCore`` (``playback_core.py``), which
decides everything else: the matching model (partial order, bounded reordering, client
ids, tolerances), pacing, mismatches and reports. docs/playback.md describes the model.

Every connection is matched and reported on its own (``SessionReport``, in the
``PlaybackReports`` the caller passed in); a client that reconnects after a mismatch and
fails the same way again is counted on the earlier report, not written up again.

This module is not imported by ``rtrec.replay`` (it needs trio, the log and soundfile).
"""

from __future__ import annotations

import base64
import logging
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import orjson
import trio

from rtrec.replay.matchers import MatchSpec
from rtrec.replay.playback_core import (
    MISMATCH_CLOSE_CODE,
    AudioGate,
    CloseConnection,
    Diverge,
    Expect,
    Mismatch,
    OnMismatch,
    Pace,
    Plan,
    PlaybackCore,
    RecordedHandshake,
    Recording,
    Rules,
    Send,
    SendFrame,
    SessionReport,
    Step,
    has_credentials,
    input_append,
)
from rtrec.schemas.dialects import recorded_dialect
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import Direction, FrameKind, FrameRecord, Stream
from rtrec.store.bundle import _load_frames, _load_manifest
from rtrec.store.reader import (
    AudioSource,
    LogAudio,
    StreamInfo,
    read_frames,
    read_sessions,
    rebuild_frame,
    resolve_session,
)
from rtrec.transport.tls import TlsServer
from rtrec.transport.ws import Closed, NotWebSocket, WebSocket, accept_handshake, peer_name

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MISMATCH_CLOSE_CODE",
    "AudioGate",
    "Expect",
    "Fallthrough",
    "Mismatch",
    "OnMismatch",
    "Pace",
    "PlaybackOptions",
    "PlaybackReports",
    "Recording",
    "Send",
    "SessionReport",
    "Switch",
    "choose_subprotocol",
    "compile_recording",
    "load_recording",
    "serve_playback",
]

#: Largest client message accepted (a 15 MiB append is 20 MiB of base64), as the simulator.
MAX_MESSAGE_SIZE: Final = 32 * 2**20
#: Client messages read ahead of the core. The reader keeps draining the socket while the
#: core waits for pacing; beyond this the client feels back-pressure, nothing is dropped.
MESSAGE_QUEUE_SIZE: Final = 256
#: Seconds a connection may take to send its opening handshake (TLS included).
HANDSHAKE_TIMEOUT: Final = 20.0
#: Identical failed connections in a row that are written up; later ones are counted.
REPEATS_SHOWN: Final = 2
_log: Final = logging.getLogger("rtrec.playback")


def _parse(text: str | bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def compile_recording(
    frames: Sequence[FrameRecord],
    audio: AudioSource,
    *,
    session_id: str,
    protocol: str,
    subprotocol: str | None,
    server_close: tuple[int, str] | None,
    request_headers: str | None = None,
    request_path: str | None = None,
) -> Recording:
    """Turn a session's frames into playback steps (the audio read back from ``audio``).

    ``request_headers`` (the session's redacted headers, JSON) and the recorder's
    ``rtrec.handshake`` mark give the recorded handshake, which live handshakes are
    checked against. ``protocol`` and ``request_path`` (the session row's) give the
    dialect, which names the client event that streams input audio (``audio gates``).
    """
    dialect = recorded_dialect(protocol, request_path)
    append, key = input_append(dialect)
    steps: list[Step] = []
    stream = bytearray()
    n_expect = 0
    handshake: RecordedHandshake | None = None
    for frame in frames:
        if frame.direction is Direction.RECORDER or frame.kind is FrameKind.MARK:
            if frame.type == "rtrec.handshake" and handshake is None:
                handshake = _recorded_handshake(frame, protocol, request_headers)
            continue
        message = rebuild_frame(frame, audio)
        if frame.direction is Direction.SERVER:
            steps.append(Send(frame.seq, frame.t_ns, message))
            continue
        obj = _parse(message) if isinstance(message, str) else None
        if obj is not None and obj.get("type") == append and isinstance(obj.get(key), str):
            data = base64.b64decode(obj[key])
            span = frame.audio
            width = 1 if span is not None and span.encoding is not AudioEncoding.PCM16 else 2
            rate = span.sample_rate if span is not None else AudioEncoding.PCM16.sample_rate
            start = len(stream)
            stream += data
            event_id = obj.get("event_id")
            steps.append(
                AudioGate(
                    frame.seq,
                    frame.t_ns,
                    start,
                    len(stream),
                    width,
                    rate,
                    event_id if isinstance(event_id, str) else None,
                )
            )
            continue
        event = obj if obj is not None else {"type": None, "raw": repr(message)[:200]}
        steps.append(Expect(frame.seq, frame.t_ns, event, n_expect, message))
        n_expect += 1
    return Recording(
        session_id,
        protocol,
        subprotocol,
        tuple(steps),
        bytes(stream),
        server_close,
        handshake,
        dialect,
    )


def _recorded_handshake(
    mark: FrameRecord, protocol: str, request_headers: str | None
) -> RecordedHandshake | None:
    detail = _parse(mark.payload or "") or {}
    path, offered = detail.get("path"), detail.get("subprotocols")
    if not isinstance(path, str) or not isinstance(offered, list):
        return None
    try:
        headers = orjson.loads(request_headers) if request_headers else {}
    except orjson.JSONDecodeError:
        headers = {}
    pairs = [(str(k), str(v)) for k, v in headers.items()] if isinstance(headers, dict) else []
    credentials = has_credentials(pairs, [str(p) for p in offered])
    return RecordedHandshake(mark.seq, path, credentials, protocol)


def _server_close(closed_by: str | None, code: int | None, reason: str | None) -> Any:
    if closed_by == Direction.SERVER.value and code is not None:
        return (int(code), reason or "")
    return None


def load_recording(source: Path | str, session: str | None = None) -> Recording:
    """A recorded session, from a bundle directory or from a log.

    Args:
        source: a bundle directory (``rtrec export``), or a log file.
        session: for a log, the session id or a unique prefix of it.

    Raises:
        BundleError: the bundle is damaged.
        SessionNotFound: no single session of the log matches ``session``.
        ValueError: a log without ``session``.
    """
    source = Path(source)
    if source.is_dir():
        manifest = _load_manifest(source)
        row = manifest["session"]
        sid = str(row["session_id"])
        streams = [
            StreamInfo(
                session_id=sid,
                stream=Stream(entry["stream"]),
                sample_rate=int(entry["sample_rate"]),
                path=source / str(entry["file"]),
                frames=int(entry["frames"]),
                sha256=str(entry["sha256"]),
            )
            for entry in manifest["audio_streams"]
        ]
        with LogAudio(streams) as audio:
            return compile_recording(
                list(_load_frames(source, sid)),
                audio,
                session_id=sid,
                protocol=str(row["protocol"]),
                subprotocol=row["subprotocol"],
                server_close=_server_close(
                    row["closed_by"], row["close_code"], row["close_reason"]
                ),
                request_headers=row.get("request_headers"),
                request_path=row.get("request_path"),
            )
    if session is None:
        raise ValueError(f"{source} is a log: name the session to play back")
    sid = resolve_session(source, session)
    (info,) = read_sessions(source, [sid])
    with LogAudio.of_session(source, sid) as audio:
        return compile_recording(
            list(read_frames(source, sid)),
            audio,
            session_id=sid,
            protocol=info.protocol,
            subprotocol=info.subprotocol,
            server_close=_server_close(info.closed_by, info.close_code, info.close_reason),
            request_headers=info.request_headers,
            request_path=info.request_path,
        )


# ---------------------------------------------------------------- the server


@attrs.define
class PlaybackReports:
    """The reports of every connection a playback server served, newest last."""

    sessions: list[SessionReport] = attrs.Factory(list)
    #: connections being served now
    active: int = 0
    #: WebSocket connections accepted so far (the next one is number ``connections + 1``)
    connections: int = 0
    #: the reports of the WebSocket connections being served now, as they fill in (a
    #: mismatch is in one before its close frame is sent: the pytest plugin judges a test
    #: by them the moment it ends)
    open: list[SessionReport] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)

    def add(self, report: SessionReport) -> None:
        """Record a finished (or failed) connection's report."""
        self.sessions.append(report)

    def repeats(self, report: SessionReport) -> int:
        """How many failed connections right before ``report`` failed the same way (a
        client that reconnects after each mismatch)."""
        if report.ok:
            return 0
        position = next(i for i, r in enumerate(self.sessions) if r is report)
        count = 0
        for earlier in reversed(self.sessions[:position]):
            if earlier.ok or earlier.fingerprint() != report.fingerprint():
                break
            count += 1
        return count

    def _opened(self) -> None:
        self.active += 1

    def _numbered(self) -> int:
        """The number of a WebSocket connection just accepted (requests that were not
        WebSocket handshakes are not counted)."""
        self.connections += 1
        return self.connections

    def _started(self, report: SessionReport) -> None:
        self.open.append(report)

    def _closed(self, report: SessionReport | None) -> None:
        if report is not None:
            self.open = [r for r in self.open if r is not report]
            self.add(report)
        self.active -= 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_idle(self) -> None:
        """Return once no connection is being served (call it in the server's trio loop:
        a client that has closed its side may still be being checked)."""
        while self.active:
            await self._changed.wait()


@attrs.frozen(eq=False)
class Switch:
    """A playback connection leaving its recording for a live upstream (record mode
    new_episodes): everything the ``Fallthrough`` needs to take the session over."""

    recording: Recording
    #: the client's handshake: request path, end-to-end headers, offered subprotocols
    path: str
    headers: tuple[tuple[str, str], ...]
    subprotocols: tuple[str, ...]
    client: WebSocket
    #: the client's messages still to come, as they arrive
    inbox: trio.MemoryReceiveChannel[str | bytes]
    #: client messages already read and not answered, oldest first (the first one is the
    #: event that left the recording, when an event did)
    pending: tuple[str | bytes, ...]
    #: every byte of audio the live client appended, in the wire encoding
    live_audio: bytes
    #: the seq of the last recorded step played (None: none was)
    played: int | None
    #: the live client's session updates that matched the recording, as it sent them
    updates: tuple[str | bytes, ...]
    report: SessionReport


class Fallthrough(Protocol):
    """Takes a session over when its live client leaves the recording (record mode
    new_episodes; ``rtrec.replay.episodes.LiveUpstream``). It relays until one side is
    done (the client's socket is the playback server's to close); problems go in
    ``switch.report``."""

    async def __call__(self, switch: Switch) -> tuple[int, str] | None:
        """Serve the rest of the session; return the close to send the client, or None
        when the client closed first."""
        ...


@attrs.frozen
class PlaybackOptions:
    """How the playback server plays a recording."""

    pace: Pace = attrs.field(factory=Pace)
    match: MatchSpec = attrs.field(factory=MatchSpec)
    on_mismatch: OnMismatch = OnMismatch.FAIL
    #: seconds a client may stay silent while the recording waits for it; then the session
    #: fails (whatever ``on_mismatch`` says: there is nothing to go on with). After the
    #: recording's end the connection is closed (1000) instead. None: wait while the
    #: client stays connected.
    client_timeout: float | None = 60.0
    #: record mode new_episodes: where a client that leaves the recording goes (None: a
    #: mismatch fails or warns, as ``on_mismatch`` says)
    fallthrough: Fallthrough | None = None
    #: seconds a live event that came ahead of something the recording had before it
    #: waits for it (plus the duration of missing audio); docs/playback.md argues 0.5
    reorder_wait: float = 0.5
    #: milliseconds of recorded audio a control event may overtake
    audio_lead_ms: float = 2000.0
    #: compare each handshake (path, model/intent/call_id, protocol, credentials) with
    #: the recording's
    check_handshake: bool = True

    def rules(self) -> Rules:
        """The core's share of the options."""
        return Rules(
            self.pace,
            self.match,
            self.on_mismatch,
            self.client_timeout,
            self.reorder_wait,
            self.audio_lead_ms,
            self.check_handshake,
            self.fallthrough is not None,
        )


async def _read_client(
    ws: WebSocket, send: trio.MemorySendChannel[str | bytes], report: SessionReport
) -> None:
    async with send:
        try:
            while True:
                await send.send(await ws.receive())
        except Closed as closed:
            if report.close is None:
                report.close = (closed.code, closed.reason)


async def _take_over(fallthrough: Fallthrough, switch: Switch) -> tuple[int, str] | None:
    """Run the fallthrough; a bug of ours ends this session loudly, never the server."""
    try:
        return await fallthrough(switch)
    except Exception as exc:
        _log.exception("playback of %s: the fallthrough failed", switch.recording.session_id)
        switch.report.upstream_error = f"internal error: {type(exc).__name__}: {exc}"
        return (1011, "rtrec new_episodes: internal error (see the server's log)")


async def _play(
    stream: trio.abc.Stream,
    plan: Plan,
    options: PlaybackOptions,
    reports: PlaybackReports,
) -> None:
    reports._opened()
    recording = plan.recording
    peer = peer_name(stream)
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            handshake = await accept_handshake(stream, max_size=MAX_MESSAGE_SIZE)
        offered = handshake.subprotocols
        ws = await handshake.accept(choose_subprotocol(offered, recording.subprotocol))
    except NotWebSocket as exc:
        _log.warning("rtrec playback: %s from %s", exc, peer)
        reports._closed(None)
        return
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
        await trio.aclose_forcefully(stream)  # gone before a whole request, or too slow
        reports._closed(None)
        return
    number = reports._numbered()
    core = PlaybackCore(plan, options.rules(), trio.current_time(), connection=number)
    report = core.report
    reports._started(report)
    send, inbox = trio.open_memory_channel[str | bytes](MESSAGE_QUEUE_SIZE)
    close: CloseConnection | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_client, ws, send, report)
            now = trio.current_time()
            actions = core.check_handshake(handshake.path, handshake.headers, offered)
            actions += core.start(now)
            diverged = False
            while True:
                for action in actions:
                    if isinstance(action, SendFrame):
                        try:
                            await ws.send(action.message)
                        except Closed:
                            core.client_closed()
                            break
                    elif isinstance(action, CloseConnection):
                        close = action
                    elif isinstance(action, Diverge):
                        diverged = True
                if core.done:
                    break
                deadline = core.next_deadline()
                message: str | bytes | None = None
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    try:
                        message = await inbox.receive()
                    except trio.EndOfChannel:
                        core.client_closed()
                        break
                now = trio.current_time()
                actions = core.advance(now) if message is None else core.receive(message, now)
            if diverged:
                assert options.fallthrough is not None
                close = await _handed_over(
                    options.fallthrough,
                    Switch(
                        recording,
                        handshake.path,
                        tuple(handshake.headers),
                        tuple(offered),
                        ws,
                        inbox,
                        tuple(core.unanswered()),
                        bytes(core.live_audio),
                        core.played,
                        tuple(core.updates),
                        report,
                    ),
                )
            # the reader stops here: close() below reads the socket itself
            nursery.cancel_scope.cancel()
        if close is not None:
            report.close = (close.code, close.reason)
            await ws.close(close.code, close.reason)
    finally:
        with trio.CancelScope(shield=True):
            await ws.close(linger=0.5)
        reports._closed(report)


async def _handed_over(fallthrough: Fallthrough, switch: Switch) -> CloseConnection | None:
    closing = await _take_over(fallthrough, switch)
    return None if closing is None else CloseConnection(*closing)


def choose_subprotocol(offered: Sequence[str], recorded: str | None) -> str | None:
    """The subprotocol to answer: ``realtime`` when offered (as the service and the
    simulator do; a browser fails a handshake that selects none of its offers), else the
    one the recording chose when offered, else none."""
    if "realtime" in offered:
        return "realtime"
    return recorded if recorded is not None and recorded in offered else None


async def serve_playback(
    recording: Recording,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    options: PlaybackOptions | None = None,
    reports: PlaybackReports | None = None,
    tls: TlsServer | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``recording`` to every client that connects, until cancelled.

    Reports its base URL, ``ws://HOST:PORT/v1`` (``wss://`` with ``tls``), through
    ``task_status.started``. A request that is not a WebSocket upgrade is answered with an
    HTTP error and logged; the server goes on. The subprotocol answered is
    ``choose_subprotocol``'s.

    Args:
        recording: from ``load_recording``.
        host: the address to bind; 127.0.0.1 unless told otherwise.
        port: 0 picks a free one.
        options: pace, matchers and what a mismatch does.
        reports: where each connection's ``SessionReport`` goes when it ends.
        tls: listen with TLS (``rtrec.transport.tls.load_tls``).
        task_status: trio's start protocol.

    Raises:
        OSError: the address cannot be bound.
    """
    sink = reports if reports is not None else PlaybackReports()
    listeners = await trio.open_tcp_listeners(port, host=host)

    context = None if tls is None else tls.context

    plan = Plan.of(recording)

    async def handle(stream: trio.SocketStream) -> None:
        wrapped: trio.abc.Stream = stream
        if context is not None:
            wrapped = trio.SSLStream(stream, context, server_side=True)
        await _play(wrapped, plan, options or PlaybackOptions(), sink)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        bound = listeners[0].socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "ws" if tls is None else "wss"
        task_status.started(f"{scheme}://{shown}:{bound}/v1")


def describe(recording: Recording) -> str:
    """One paragraph about a recording, for the command line."""
    sends = sum(1 for s in recording.steps if isinstance(s, Send))
    gates = sum(1 for s in recording.steps if isinstance(s, AudioGate))
    return textwrap.fill(
        f"session {recording.session_id} ({recording.protocol}): {sends} server frames, "
        f"{len(recording.expected)} client events, {gates} audio appends",
        100,
    )
