"""The playback server: a recorded session served back as if it were the Realtime server.

    recording = load_recording(Path("fixtures/sessions/weather"))   # a bundle, or a log
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_playback, recording)       # ws://127.0.0.1:PORT/v1
        ...  # point any client at url (AsyncOpenAI(websocket_base_url=url), a browser, ...)

Each connection walks the recording in ``seq`` order (DESIGN.md, Replay):

- a recorded server frame is sent, rebuilt byte for byte from the log and the FLAC archive,
  at the recorded pace relative to the previous step (scaled, or at once);
- a recorded client event is awaited from the live client and matched (``matchers.py``);
- recorded audio appends are gates on the amount of audio the live client has appended so
  far, and their audio is compared as one stream, so a client that chunks its audio in
  20 ms appends matches a recording made with 100 ms appends.

So no server event goes out before the client events that preceded it in the recording, and
every run sends the same bytes. The one exception is deliberate: an ``error`` event naming
a client ``event_id`` is rewritten to name the id the live client used for that event.

A mismatch is written up as a ``Mismatch`` (the live event, the nearest recorded
candidates, each matcher's verdict, a field diff). With ``on_mismatch="fail"`` the session
closes with code 1008 and a short reason; with ``"warn"`` it goes on. Every connection's
``SessionReport`` lands in the ``PlaybackReports`` the caller passed in.

This module is not imported by ``rtrec.replay`` (it needs trio, the log and soundfile).
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
import math
import textwrap
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import orjson
import trio

from rtrec.recorder.bundle import _load_frames, _load_manifest
from rtrec.recorder.reader import (
    AudioSource,
    LogAudio,
    StreamInfo,
    read_frames,
    read_sessions,
    rebuild_frame,
    resolve_session,
)
from rtrec.recorder.tls import TlsServer
from rtrec.recorder.ws import Closed, NotWebSocket, WebSocket, accept_handshake, peer_name
from rtrec.replay.matchers import AudioMode, Candidate, MatchSpec, field_diff, without
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import Direction, FrameKind, FrameRecord, Stream

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Fallthrough",
    "Mismatch",
    "OnMismatch",
    "Pace",
    "PlaybackOptions",
    "PlaybackReports",
    "Recording",
    "SessionReport",
    "Switch",
    "load_recording",
    "serve_playback",
]

#: Largest client message accepted (a 15 MiB append is 20 MiB of base64), as the simulator.
MAX_MESSAGE_SIZE: Final = 32 * 2**20
#: Client messages read ahead of the walk. The reader must keep draining the socket while the
#: walker sleeps for pacing; beyond this the client feels back-pressure, nothing is dropped.
MESSAGE_QUEUE_SIZE: Final = 256
#: Seconds a connection may take to send its opening handshake (TLS included).
HANDSHAKE_TIMEOUT: Final = 20.0
#: The close code for a mismatch in ``fail`` mode: policy violation (RFC 6455 §7.4.1).
MISMATCH_CLOSE_CODE: Final = 1008
APPEND: Final = "input_audio_buffer.append"
#: The client events that configure the session; a new episode replays the live ones.
_UPDATES: Final = frozenset({"session.update", "transcription_session.update"})
_CANDIDATES: Final = 3
_log: Final = logging.getLogger("rtrec.playback")


class OnMismatch(enum.StrEnum):
    """What a mismatch does to the session."""

    FAIL = "fail"
    WARN = "warn"


@attrs.frozen
class Pace:
    """How recorded gaps between events are reproduced: ``speed`` 1.0 is the recorded pace,
    2.0 twice as fast, ``math.inf`` instant (``Pace.parse("recorded"|"instant"|"2")``)."""

    speed: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Pace:
        """``recorded``, ``instant`` or a positive speed factor.

        Raises:
            ValueError: anything else.
        """
        if text == "recorded":
            return cls(1.0)
        if text == "instant":
            return cls(math.inf)
        try:
            speed = float(text)
        except ValueError:
            speed = 0.0
        if not speed > 0:
            raise ValueError(
                f"pace {text!r}: give 'recorded', 'instant' or a speed factor above 0 (2 = 2x)"
            )
        return cls(speed)

    def delay(self, gap_ns: int) -> float:
        """Seconds to wait for a recorded gap of ``gap_ns``."""
        return 0.0 if math.isinf(self.speed) else max(gap_ns, 0) / 1e9 / self.speed


# ---------------------------------------------------------------- the recording as steps


@attrs.frozen
class Send:
    """A recorded server frame, to send as it was."""

    seq: int
    t_ns: int
    message: str | bytes
    error_event_id: str | None  # the client event_id an ``error`` event names


@attrs.frozen
class Expect:
    """A recorded client event (not an audio append), to await and match."""

    seq: int
    t_ns: int
    event: Mapping[str, Any]
    index: int  # its position among the recording's Expect steps
    message: str | bytes = ""  # as the recorded client sent it


@attrs.frozen
class AudioGate:
    """A recorded audio append: the live client must have appended ``end`` bytes of audio."""

    seq: int
    t_ns: int
    start: int  # offset of this append's audio in the recorded input stream, in bytes
    end: int
    width: int  # bytes per sample
    sample_rate: int
    event_id: str | None


Step = Send | Expect | AudioGate


@attrs.frozen
class Recording:
    """A recorded session compiled into playback steps (``load_recording``)."""

    session_id: str
    protocol: str
    subprotocol: str | None
    steps: tuple[Step, ...]
    #: the whole recorded input audio, in the wire encoding, as the appends carried it
    audio: bytes
    #: the server closed the recording: (code, reason); None when the client did
    server_close: tuple[int, str] | None

    @property
    def expected(self) -> tuple[Expect, ...]:
        """The recorded client events, in order."""
        return tuple(s for s in self.steps if isinstance(s, Expect))


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
) -> Recording:
    """Turn a session's frames into playback steps (the audio read back from ``audio``)."""
    steps: list[Step] = []
    stream = bytearray()
    n_expect = 0
    for frame in frames:
        if frame.direction is Direction.RECORDER or frame.kind is FrameKind.MARK:
            continue
        message = rebuild_frame(frame, audio)
        if frame.direction is Direction.SERVER:
            named = None
            if frame.type == "error" and isinstance(message, str):
                error = (_parse(message) or {}).get("error")
                if isinstance(error, dict) and isinstance(error.get("event_id"), str):
                    named = error["event_id"]
            steps.append(Send(frame.seq, frame.t_ns, message, named))
            continue
        obj = _parse(message) if isinstance(message, str) else None
        if obj is not None and obj.get("type") == APPEND and isinstance(obj.get("audio"), str):
            data = base64.b64decode(obj["audio"])
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
    return Recording(session_id, protocol, subprotocol, tuple(steps), bytes(stream), server_close)


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
        )


# ---------------------------------------------------------------- reports


@attrs.frozen
class Mismatch:
    """One live client event (or audio) that did not match the recording."""

    #: the recorded step that was expected (its seq and type)
    expected_seq: int
    expected_type: str | None
    #: the live event (None: the client closed, or the mismatch is in its audio)
    live: Mapping[str, Any] | None
    summary: str
    candidates: tuple[Candidate, ...] = ()
    diff: tuple[str, ...] = ()

    def render(self) -> str:
        """The readable report: what was expected, what came, the nearest candidates, the
        matchers' verdicts and a field diff."""
        lines = [f"playback mismatch at recorded seq {self.expected_seq}: {self.summary}"]
        if self.live is not None:
            lines.append("  live event: " + _clip(orjson.dumps(self.live).decode(), 300))
        if self.candidates:
            lines.append("  nearest recorded client events:")
            for c in self.candidates:
                verdicts = ", ".join(
                    f"{name} ok" if failure is None else f"{name} FAILED ({failure})"
                    for name, failure in c.verdicts
                )
                lines.append(
                    f"    seq {c.seq} {c.recorded.get('type')} (+{c.distance} in order): {verdicts}"
                )
        if self.diff:
            lines.append("  field diff against the expected event:")
            lines += [f"    {line}" for line in self.diff]
        return "\n".join(lines)

    def reason(self) -> str:
        """A close reason that fits a close frame (123 bytes)."""
        text = f"rtrec playback: seq {self.expected_seq}: {self.summary}"
        data = text.encode()
        return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@attrs.define
class SessionReport:
    """What happened on one playback connection."""

    session_id: str
    mismatches: list[Mismatch] = attrs.Factory(list)
    #: recorded client events the live client never sent (seq, type)
    unsent: list[tuple[int, str | None]] = attrs.Factory(list)
    #: live events after the recording's last client event
    extra: list[Mapping[str, Any]] = attrs.Factory(list)
    matched: int = 0
    server_frames_sent: int = 0
    completed: bool = False  # every step of the recording was played
    close: tuple[int, str] | None = None
    #: record mode new_episodes: what made the client leave the recording (the live
    #: upstream answered from there on), and the seq of the last recorded step played
    diverged: Mismatch | None = None
    switched_after: int | None = None
    #: the live upstream could not take over (unreachable, rejected the handshake or the
    #: conversation it was brought to); the client was closed with this reason
    upstream_error: str | None = None
    #: what could not be brought over to the upstream exactly (see docs/playback.md)
    seed_notes: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        """Every recorded client event came and matched, and nothing else came (server
        frames after the client's last event may go unsent: the client left, as it may);
        or, in record mode new_episodes, the live upstream took over where it did not."""
        return (
            not self.mismatches
            and not self.unsent
            and not self.extra
            and self.upstream_error is None
        )

    def render(self) -> str:
        """A readable summary with every mismatch report."""
        head = (
            f"playback of {self.session_id}: {self.matched} client events matched, "
            f"{self.server_frames_sent} server frames sent, "
            f"{'complete' if self.completed else 'incomplete'}"
        )
        parts = [head]
        if self.diverged is not None:
            after = "the start" if self.switched_after is None else f"seq {self.switched_after}"
            parts.append(
                f"new episode: the client left the recording after {after} "
                f"({self.diverged.summary}); the live upstream answered from there"
            )
            parts += [f"  seeding: {note}" for note in self.seed_notes]
        if self.upstream_error is not None:
            parts.append(f"the live upstream could not take over: {self.upstream_error}")
        parts += [m.render() for m in self.mismatches]
        if self.unsent:
            listed = ", ".join(f"seq {seq} {kind}" for seq, kind in self.unsent[:10])
            more = f" (+{len(self.unsent) - 10} more)" if len(self.unsent) > 10 else ""
            parts.append(f"recorded client events never sent: {listed}{more}")
        if self.extra:
            kinds = ", ".join(str(e.get("type")) for e in self.extra[:10])
            parts.append(f"live events after the recording's last client event: {kinds}")
        return "\n".join(parts)


@attrs.define
class PlaybackReports:
    """The reports of every connection a playback server served, newest last."""

    sessions: list[SessionReport] = attrs.Factory(list)
    #: connections being served now
    active: int = 0
    _changed: trio.Event = attrs.Factory(trio.Event)

    def add(self, report: SessionReport) -> None:
        """Record a finished (or failed) connection's report."""
        self.sessions.append(report)

    def _opened(self) -> None:
        self.active += 1

    def _closed(self, report: SessionReport | None) -> None:
        if report is not None:
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
    #: seconds a client may stay silent while a recorded client event is awaited; then the
    #: session fails (whatever ``on_mismatch`` says: there is nothing to go on with).
    #: None waits as long as the client stays connected.
    client_timeout: float | None = None
    #: record mode new_episodes: where a client that leaves the recording goes (None: a
    #: mismatch fails or warns, as ``on_mismatch`` says)
    fallthrough: Fallthrough | None = None


# ---------------------------------------------------------------- one connection


class _ClientGone(Exception):
    """The live client closed; the walk stops."""


class _Failed(Exception):
    """A mismatch in ``fail`` mode; the session closes."""


class _Diverged(Exception):
    """With a fallthrough: the live client left the recording; a live upstream takes over."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(mismatch.summary)
        self.mismatch = mismatch


class _Walk:
    """One connection's walk through the recording."""

    def __init__(
        self,
        recording: Recording,
        options: PlaybackOptions,
        ws: WebSocket,
        inbox: trio.MemoryReceiveChannel[str | bytes],
        report: SessionReport,
    ) -> None:
        self.rec = recording
        self.opts = options
        self.ws = ws
        self.inbox = inbox
        self.report = report
        # live events read ahead and put back, with the message each came in (so that a
        # switch to a live upstream forwards the client's bytes, never a re-encoding)
        self.pending: deque[tuple[dict[str, Any], str | bytes]] = deque()
        self.current: str | bytes = ""  # the message of the last event ``_next_live`` gave
        #: the live client's matched session updates, as sent (a new episode replays them)
        self.updates: list[str | bytes] = []
        #: the seq of the last recorded step played (None before the first)
        self.played: int | None = None
        self.live_audio = bytearray()
        self.checked = 0  # bytes of live audio already compared with the recording
        self.ids: dict[str, str] = {}  # recorded client event_id -> the live client's
        self.anchor = trio.current_time()
        self.last_t: int | None = None
        self.expect_index = 0

    # -- live side

    async def _next_live(self, step: Expect) -> dict[str, Any]:
        """The next live client event that is not an audio append (appends are absorbed:
        with ``--audio ignore`` too, so that a new episode knows the audio not yet committed)."""
        while True:
            event, message = self.pending.popleft() if self.pending else await self._receive(step)
            if event.get("type") == APPEND:
                self._absorb(event)
                continue
            self.current = message
            return event

    async def _receive(self, awaited: Expect | AudioGate) -> tuple[dict[str, Any], str | bytes]:
        timeout = self.opts.client_timeout
        message: str | bytes | None = None
        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                message = await self.inbox.receive()
            except trio.EndOfChannel:
                raise _ClientGone from None
        if message is None:
            kind = awaited.event.get("type") if isinstance(awaited, Expect) else APPEND
            mismatch = Mismatch(
                awaited.seq,
                kind,
                None,
                f"the client sent nothing for {timeout:g} s while recorded {kind} was awaited",
            )
            self.report.mismatches.append(mismatch)
            raise _Failed(mismatch.reason())
        obj = _parse(message)
        if obj is None:
            return {"type": None, "raw": _clip(repr(message), 200)}, message
        return obj, message

    def _absorb(self, event: Mapping[str, Any]) -> None:
        audio = event.get("audio")
        try:
            data = base64.b64decode(audio, validate=True) if isinstance(audio, str) else b""
        except binascii.Error:
            data = b""
        self.live_audio += data

    # -- pacing

    async def _pace(self, t_ns: int) -> None:
        if self.last_t is not None:
            target = self.anchor + self.opts.pace.delay(t_ns - self.last_t)
            # Anchored on the previous target, not on when the send finished, so lateness
            # never accumulates along a run of server frames.
            await trio.sleep_until(target)
            self.anchor = target
        self.last_t = t_ns

    def _arrived(self, t_ns: int) -> None:
        self.anchor = trio.current_time()
        self.last_t = t_ns

    # -- mismatches

    async def _mismatch(self, mismatch: Mismatch) -> None:
        if self.opts.fallthrough is not None:
            raise _Diverged(mismatch)
        self.report.mismatches.append(mismatch)
        if self.opts.on_mismatch is OnMismatch.FAIL:
            raise _Failed(mismatch.reason())

    def _candidates(self, live: Mapping[str, Any]) -> list[Candidate]:
        spec = self.opts.match
        found = []
        for step in self.rec.expected[self.expect_index :]:
            verdicts = tuple(spec.verdicts(step.event, live))
            found.append(Candidate(step.seq, step.event, verdicts, step.index - self.expect_index))
        found.sort(key=lambda c: (-c.passed, c.distance))
        return found

    # -- steps

    async def run(self) -> None:
        for step in self.rec.steps:
            if isinstance(step, Send):
                await self._pace(step.t_ns)
                await self._send(step)
            elif isinstance(step, AudioGate):
                await self._gate(step)
            else:
                await self._expect(step)
            self.played = step.seq
        await self._finish_audio()
        self.report.completed = True

    async def _send(self, step: Send) -> None:
        message = step.message
        if step.error_event_id is not None and step.error_event_id in self.ids:
            assert isinstance(message, str)
            old = orjson.dumps(step.error_event_id).decode()
            new = orjson.dumps(self.ids[step.error_event_id]).decode()
            head, sep, tail = message.partition('"error"')
            message = head + sep + tail.replace(f'"event_id":{old}', f'"event_id":{new}', 1)
        await self.ws.send(message)
        self.report.server_frames_sent += 1

    async def _gate(self, step: AudioGate) -> None:
        spec = self.opts.match
        if spec.audio is AudioMode.IGNORE:
            return
        tolerance = (
            int(spec.audio_tolerance_ms * step.sample_rate / 1000) * step.width
            if spec.audio is AudioMode.DURATION
            else 0
        )
        need = step.end - tolerance
        while len(self.live_audio) < need:
            event, message = self.pending.popleft() if self.pending else await self._receive(step)
            if event.get("type") == APPEND:
                if isinstance(event.get("event_id"), str) and step.event_id is not None:
                    self.ids[step.event_id] = event["event_id"]
                self._absorb(event)
                continue
            # the client moved on with less audio than the recording had at this point
            self.pending.appendleft((event, message))
            ms = (step.end - len(self.live_audio)) / step.width * 1000 / step.sample_rate
            await self._mismatch(
                Mismatch(
                    step.seq,
                    APPEND,
                    event,
                    f"the client sent {event.get('type')} after "
                    f"{self._ms(len(self.live_audio), step)} of audio; the recording had "
                    f"{self._ms(step.end, step)} of audio at this point ({ms:.0f} ms more)",
                )
            )
            break
        self._arrived(step.t_ns)
        if spec.audio is AudioMode.SAMPLES:
            await self._compare(step, min(step.end, len(self.live_audio)))

    @staticmethod
    def _ms(nbytes: int, step: AudioGate) -> str:
        return f"{nbytes / step.width * 1000 / step.sample_rate:.0f} ms"

    async def _compare(self, step: AudioGate, upto: int) -> None:
        if upto <= self.checked:
            return
        live = bytes(self.live_audio[self.checked : upto])
        recorded = self.rec.audio[self.checked : upto]
        start = self.checked
        self.checked = upto
        if live != recorded:
            first = next(i for i, (a, b) in enumerate(zip(live, recorded, strict=True)) if a != b)
            at = (start + first) // step.width
            await self._mismatch(
                Mismatch(
                    step.seq,
                    APPEND,
                    None,
                    f"appended audio differs from the recording from sample {at} "
                    f"({at * 1000 / step.sample_rate:.1f} ms into the input stream)",
                )
            )

    async def beyond(self) -> None:
        """With a fallthrough, after the recording's last step when the client closed it:
        any message the client sends now leaves the recording; returns when it closes."""
        async for message in self.inbox:
            event = _parse(message) or {"type": None, "raw": _clip(repr(message), 200)}
            if event.get("type") == APPEND:
                self._absorb(event)
            else:
                self.pending.append((event, message))
            raise self._beyond_recording(event)

    def _beyond_recording(self, event: dict[str, Any]) -> _Diverged:
        return _Diverged(
            Mismatch(
                self.played if self.played is not None else -1,
                None,
                event,
                f"the client sent {event.get('type')} after the recording's last client event",
            )
        )

    async def _finish_audio(self) -> None:
        """After the last step: audio the client appended beyond the recording's."""
        if self.opts.fallthrough is not None and self.pending:
            event = self.pending[0][0]
            raise self._beyond_recording(event)
        while self.pending:
            event, _ = self.pending.popleft()
            if event.get("type") == APPEND:
                self._absorb(event)
            else:
                self.report.extra.append(event)
        spec = self.opts.match
        if spec.audio is AudioMode.IGNORE:
            return
        gates = [s for s in self.rec.steps if isinstance(s, AudioGate)]
        width, rate = (gates[-1].width, gates[-1].sample_rate) if gates else (2, 24000)
        tolerance = 0
        if spec.audio is AudioMode.DURATION:
            tolerance = int(spec.audio_tolerance_ms * rate / 1000) * width
        surplus = len(self.live_audio) - len(self.rec.audio)
        if surplus > tolerance:
            ms = surplus / width * 1000 / rate
            await self._mismatch(
                Mismatch(
                    gates[-1].seq if gates else -1,
                    APPEND,
                    None,
                    f"the client appended {ms:.0f} ms more audio than the recording holds",
                )
            )

    async def _expect(self, step: Expect) -> None:
        live = await self._next_live(step)
        self._arrived(step.t_ns)
        verdicts = self.opts.match.verdicts(step.event, live)
        if all(failure is None for _, failure in verdicts):
            self._matched(step, live)
            return
        candidates = self._candidates(live)
        ahead = next((c for c in candidates if c.matches and c.distance > 0), None)
        failed = [f"{name} ({failure})" for name, failure in verdicts if failure is not None]
        kind, live_kind = step.event.get("type"), live.get("type")
        head = f"{kind} differs" if kind == live_kind else f"expected {kind}, got {live_kind}"
        summary = f"{head}: " + "; ".join(failed)
        if ahead is not None:
            summary = (
                f"expected {kind}, got {live_kind}, which matches recorded seq {ahead.seq}: "
                f"{ahead.distance} recorded client event(s) skipped"
            )
        diff = tuple(field_diff(without(step.event, ("event_id",)), without(live, ("event_id",))))
        mismatch = Mismatch(
            step.seq, kind, live, summary, tuple(candidates[:_CANDIDATES]), diff[:20]
        )
        if self.opts.fallthrough is not None:
            # a new episode: the live upstream answers this event, and all that follows
            self.pending.appendleft((live, self.current))
            raise _Diverged(mismatch)
        if ahead is not None:
            # this recorded event was skipped; the live one is kept for the step it matches
            self.report.unsent.append((step.seq, kind))
            self.expect_index = step.index + 1
            self.pending.appendleft((live, self.current))
        else:
            self._matched(step, live, counted=False)  # answered, wrongly
        await self._mismatch(mismatch)

    def _matched(self, step: Expect, live: Mapping[str, Any], *, counted: bool = True) -> None:
        self.expect_index = step.index + 1
        if live.get("type") in _UPDATES:
            self.updates.append(self.current)
        recorded_id, live_id = step.event.get("event_id"), live.get("event_id")
        if isinstance(recorded_id, str) and isinstance(live_id, str):
            self.ids[recorded_id] = live_id
        if counted:
            self.report.matched += 1


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
    recording: Recording,
    options: PlaybackOptions,
    reports: PlaybackReports,
) -> None:
    reports._opened()
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            handshake = await accept_handshake(stream, max_size=MAX_MESSAGE_SIZE)
        offered = handshake.subprotocols
        ws = await handshake.accept(choose_subprotocol(offered, recording.subprotocol))
    except NotWebSocket as exc:
        _log.warning("rtrec playback: %s from %s", exc, peer_name(stream))
        reports._closed(None)
        return
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
        await trio.aclose_forcefully(stream)  # gone before a whole request, or too slow
        reports._closed(None)
        return
    report = SessionReport(recording.session_id)
    send, inbox = trio.open_memory_channel[str | bytes](MESSAGE_QUEUE_SIZE)
    walk = _Walk(recording, options, ws, inbox, report)
    failed: str | None = None
    fallthrough = options.fallthrough
    handed_over: tuple[int, str] | None = None  # the close the fallthrough asks for
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_client, ws, send, report)
            try:
                await walk.run()
                if fallthrough is not None and recording.server_close is None:
                    await walk.beyond()
            except (_ClientGone, Closed):
                pass
            except _Failed as exc:
                failed = str(exc)
            except _Diverged as exc:
                report.diverged, report.switched_after = exc.mismatch, walk.played
            if report.diverged is not None:
                assert fallthrough is not None
                handed_over = await _take_over(
                    fallthrough,
                    Switch(
                        recording,
                        handshake.path,
                        tuple(handshake.headers),
                        tuple(offered),
                        ws,
                        inbox,
                        tuple(message for _, message in walk.pending),
                        bytes(walk.live_audio),
                        walk.played,
                        tuple(walk.updates),
                        report,
                    ),
                )
            elif report.completed and failed is None and recording.server_close is None:
                # the client closed the recording: wait for it; whatever it sends is extra
                async for message in inbox:
                    event = _parse(message) or {"type": None}
                    if event.get("type") != APPEND:
                        report.extra.append(event)
            # the reader stops here: close() below reads the socket itself
            nursery.cancel_scope.cancel()
        if failed is not None:
            report.close = (MISMATCH_CLOSE_CODE, failed)
            await ws.close(MISMATCH_CLOSE_CODE, failed)
        elif handed_over is not None:
            report.close = handed_over
            await ws.close(*handed_over)
        elif report.completed and recording.server_close is not None:
            report.close = recording.server_close
            await ws.close(*recording.server_close)
        if not report.completed and report.diverged is None:
            walk.report.unsent += [
                (s.seq, s.event.get("type")) for s in recording.expected[walk.expect_index :]
            ]
    finally:
        with trio.CancelScope(shield=True):
            await ws.close(linger=0.5)
        reports._closed(report)


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
        tls: listen with TLS (``rtrec.recorder.tls.load_tls``).
        task_status: trio's start protocol.

    Raises:
        OSError: the address cannot be bound.
    """
    sink = reports if reports is not None else PlaybackReports()
    listeners = await trio.open_tcp_listeners(port, host=host)

    context = None if tls is None else tls.context

    async def handle(stream: trio.SocketStream) -> None:
        wrapped: trio.abc.Stream = stream
        if context is not None:
            wrapped = trio.SSLStream(stream, context, server_side=True)
        await _play(wrapped, recording, options or PlaybackOptions(), sink)

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
