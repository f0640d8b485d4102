"""The playback core: one connection's match of a live client against a recording, sans-I/O.

In the style of h11 and wsproto (STYLE.md principle 3), ``PlaybackCore`` does no I/O and
reads no clock: the trio server (``playback.py``) feeds it the live client's messages and
the time, and performs the actions it answers with (``SendFrame``, ``CloseConnection``,
``Diverge``), waking it at ``next_deadline()``. Tests drive it with plain calls.

Theory of operation (docs/playback.md, "The matching model"):

**Partial order.** The recording fixes, for every recorded server frame, the client events
and the amount of input audio that preceded it; the frame goes out once the live client
has sent those (and, at recorded pace, once its gap has passed). Nothing else is ordered:
client events may arrive in any order, early ones are held for the frame that needs them,
and audio is one stream compared however it is chunked. A live event is matched against
the unmatched recorded client events, in recorded order; the first that every matcher
accepts is its partner.

**Bounded waiting.** A live event that arrives ahead of something the recording had before
it (a control event that overtakes the last audio chunks, or a second ``session.update``
that overtakes the first) is accepted, and the frame that needs the missing part waits
for it: ``reorder_wait`` of wall time, plus, for audio, the time the missing audio takes
to speak. Then it is a mismatch (a skipped event, or audio the client never sent). A
control event may overtake at most ``audio_lead`` of audio.

**Mismatches.** A live event that matches no unmatched recorded event is a mismatch (a
duplicate when it matches one the client already sent); with ``fail`` the connection
closes with 1008 at once, with ``warn`` it goes on (the live event stands in for the best
candidate). Events after the recording's last client event fail at once. A client that
sends nothing for ``client_timeout`` while the recording waits for it fails, in either
mode (issue 21: nothing hangs).

**Ids.** ``client_ids.py``: ids the client chose are learned from each matched event and
substituted in every later server frame.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from rtrec.replay.client_ids import IdMap, id_strings, learn, rewrite_frame, substitute
from rtrec.replay.matchers import AudioMode, Candidate, MatchSpec, field_diff, without
from rtrec.schemas.dialects import REALTIME_GA, Dialect, dialect_of

__all__ = [
    "APPEND",
    "AudioGate",
    "CloseConnection",
    "Diverge",
    "Expect",
    "Mismatch",
    "OnMismatch",
    "Pace",
    "Plan",
    "PlaybackCore",
    "RecordedHandshake",
    "Recording",
    "Rules",
    "Send",
    "SendFrame",
    "SessionReport",
    "Step",
]

#: The Realtime API's input audio append (each dialect names its own: ``Dialect.input_append``).
APPEND: Final = "input_audio_buffer.append"
#: The client events that configure the session; a new episode replays the live ones.
UPDATES: Final = frozenset({"session.update", "transcription_session.update"})
#: The close code for a mismatch in ``fail`` mode: policy violation (RFC 6455 §7.4.1).
MISMATCH_CLOSE_CODE: Final = 1008
_CANDIDATES: Final = 3
#: Query parameters of the handshake that must be as recorded (PROTOCOL.md §1).
CHECKED_QUERY: Final = ("model", "intent", "call_id")


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
class RecordedHandshake:
    """What the recorded client's opening handshake showed (secrets already redacted)."""

    seq: int
    path: str
    #: the client sent credentials (an Authorization or api-key header, or the browser's
    #: ``openai-insecure-api-key.`` subprotocol)
    credentials: bool
    #: the dialect's ``sessions.protocol`` (``src/rtrec/schemas/dialects.py``: ga, beta, live)
    protocol: str


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
    #: the client's handshake, when the recording kept it
    handshake: RecordedHandshake | None = None
    #: the recorded session's dialect (``rtrec.schemas.dialects``): which client event
    #: streams the input audio, and in which field
    dialect: Dialect = REALTIME_GA

    @property
    def expected(self) -> tuple[Expect, ...]:
        """The recorded client events, in order."""
        return tuple(s for s in self.steps if isinstance(s, Expect))


def input_append(dialect: Dialect) -> tuple[str | None, str]:
    """The client event that streams input audio in ``dialect`` and the field holding its
    base64 audio; (None, "") where the client sends none (a GPT-Live sideband)."""
    kind = dialect.input_append
    return (None, "") if kind is None else (kind, dialect.audio[kind].key)


def has_credentials(headers: Sequence[tuple[str, str]], subprotocols: Sequence[str]) -> bool:
    """Whether a handshake carries credentials: an Authorization or api-key header, or the
    browser's ``openai-insecure-api-key.`` subprotocol (PROTOCOL.md §1)."""
    names = {k.lower(): v for k, v in headers}
    return (
        bool(names.get("authorization", "").strip())
        or bool(names.get("api-key", "").strip())
        or any(p.startswith("openai-insecure-api-key.") for p in subprotocols)
    )


# ---------------------------------------------------------------- reports


@attrs.frozen
class Mismatch:
    """One live client event (or audio, or the handshake) that did not match the recording."""

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
    #: recorded audio appends the live client never sent: (how many, milliseconds)
    unsent_audio: tuple[int, float] = (0, 0.0)
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
    #: the connection's number on its server (1 for the first)
    connection: int = 1
    #: ids the live client chose for the recorded ones (recorded -> live), where they differ
    ids: dict[str, str] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        """Every recorded client event came and matched, and nothing else came (server
        frames after the client's last event may go unsent: the client left, as it may);
        or, in record mode new_episodes, the live upstream took over where it did not."""
        return (
            not self.mismatches
            and not self.unsent
            and not self.unsent_audio[0]
            and not self.extra
            and self.upstream_error is None
        )

    def fingerprint(self) -> tuple[str, ...]:
        """What makes two failed connections 'the same failure' (for collapsing a client
        that reconnects after each mismatch into one report)."""
        return tuple(m.summary for m in self.mismatches) + tuple(
            f"unsent {seq}" for seq, _ in self.unsent
        )

    def render(self) -> str:
        """A readable summary with every mismatch report."""
        head = (
            f"playback of {self.session_id} (connection {self.connection}): "
            f"{self.matched} client events matched, "
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
        if self.unsent or self.unsent_audio[0]:
            listed = [f"seq {seq} {kind}" for seq, kind in self.unsent[:10]]
            if len(self.unsent) > 10:
                listed.append(f"+{len(self.unsent) - 10} more")
            count, ms = self.unsent_audio
            if count:
                listed.append(f"{count} audio appends ({ms:.0f} ms of audio)")
            parts.append(f"recorded client events never sent: {', '.join(listed)}")
        if self.extra:
            kinds = ", ".join(str(e.get("type")) for e in self.extra[:10])
            parts.append(f"live events after the recording's last client event: {kinds}")
        return "\n".join(parts)


# ---------------------------------------------------------------- actions


@attrs.frozen
class SendFrame:
    """Send this message to the client."""

    message: str | bytes


@attrs.frozen
class CloseConnection:
    """Close the connection with this code and reason; the core is done."""

    code: int
    reason: str


@attrs.frozen
class Diverge:
    """Record mode new_episodes: the client left the recording; a live upstream takes over
    (``PlaybackCore.unanswered`` and ``played`` say from where). The core is done."""

    mismatch: Mismatch


Action = SendFrame | CloseConnection | Diverge


@attrs.frozen
class Rules:
    """How a connection is matched (``PlaybackOptions`` without the I/O parts)."""

    pace: Pace = attrs.field(factory=Pace)
    match: MatchSpec = attrs.field(factory=MatchSpec)
    on_mismatch: OnMismatch = OnMismatch.FAIL
    #: seconds the client may send nothing while the recording waits for it (None: forever)
    client_timeout: float | None = None
    #: seconds a live event that arrived ahead of something the recording had before it
    #: waits for that something (plus, for audio, the missing audio's own duration)
    reorder_wait: float = 0.5
    #: milliseconds of recorded audio a control event may overtake
    audio_lead_ms: float = 2000.0
    #: compare the handshake (path, query, protocol, credentials) with the recording
    check_handshake: bool = True
    #: a mismatch hands the session to a live upstream (``Diverge``) instead
    falls_through: bool = False


# ---------------------------------------------------------------- the plan


@attrs.frozen
class _Frame:
    """A recorded server frame with what must precede it."""

    send: Send
    needs_events: int  # recorded client events before it (an index into Plan.expected)
    needs_audio: int  # bytes of recorded input audio before it
    prev_t: int | None  # recorded time of the previous server frame
    client_t: int | None  # recorded time of the last client step since that frame


@attrs.frozen
class _Event:
    """A recorded client event with where it sits in the recording."""

    step: Expect
    audio_pos: int  # bytes of recorded input audio before it
    chosen: frozenset[str]  # the ids in it the client chose (first seen here)


@attrs.frozen(eq=False)
class Plan:
    """A recording prepared for matching; made once per server (``Plan.of``)."""

    recording: Recording
    frames: tuple[_Frame, ...]
    events: tuple[_Event, ...]
    gates: tuple[AudioGate, ...]
    width: int
    sample_rate: int
    gate_starts: tuple[int, ...] = ()

    @classmethod
    def of(cls, recording: Recording) -> Plan:
        """Prepare ``recording``: each frame's prerequisites, each event's client ids."""
        frames: list[_Frame] = []
        events: list[_Event] = []
        gates: list[AudioGate] = []
        audio = 0
        known: set[str] = set()
        prev_t: int | None = None
        client_t: int | None = None
        for step in recording.steps:
            if isinstance(step, Send):
                frames.append(_Frame(step, len(events), audio, prev_t, client_t))
                prev_t, client_t = step.t_ns, None
                if isinstance(step.message, str) and '"' in step.message:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        known.update(id_strings(orjson.loads(step.message)))
            elif isinstance(step, AudioGate):
                audio = step.end
                gates.append(step)
                client_t = step.t_ns
            else:
                mine = set(id_strings(step.event)) - known
                known.update(mine)
                events.append(_Event(step, audio, frozenset(mine)))
                client_t = step.t_ns
        width, rate = (gates[-1].width, gates[-1].sample_rate) if gates else (2, 24000)
        starts = tuple(g.start for g in gates)
        return cls(recording, tuple(frames), tuple(events), tuple(gates), width, rate, starts)

    def ms(self, nbytes: int) -> float:
        """Milliseconds of input audio in ``nbytes``."""
        return nbytes / self.width * 1000 / self.sample_rate


# ---------------------------------------------------------------- the core


def parse_message(message: str | bytes) -> dict[str, Any]:
    """A client message as an event; one that is not a JSON object is kept as its text."""
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        return obj
    return {"type": None, "raw": _clip(repr(message), 200)}


@attrs.define
class _Live:
    """A live client event matched to a recorded one."""

    arrived: float
    message: str | bytes
    event: dict[str, Any]
    grace_until: float  # when what the recording had before it must have come


class PlaybackCore:
    """One connection's playback, without I/O.

    Feed it with ``receive`` (each client message), ``client_closed`` and ``advance``
    (time passing); perform the actions each returns, in order, and call ``advance`` at
    ``next_deadline()``. Times are seconds on any monotonic clock.
    """

    def __init__(self, plan: Plan, rules: Rules, now: float, *, connection: int = 1) -> None:
        self.plan = plan
        self.rules = rules
        self.report = SessionReport(plan.recording.session_id, connection=connection)
        self.ids = IdMap()
        self.done = False  # closed, diverged, or the client left
        #: the live client's matched session updates, as sent (a new episode replays them)
        self.updates: list[str | bytes] = []
        self.live_audio = bytearray()
        self._matched: dict[int, _Live] = {}  # recorded event index -> its live partner
        self._skipped: set[int] = set()  # passed over in warn mode, may still come
        self._open = 0  # no event before this one is open (``_first_open``)
        self._next = 0  # the next frame to send
        self._ready_at: float | None = None  # when the next frame's prerequisites were met
        self._anchor = now
        self._last_t: int | None = None
        self._last_activity = now
        self._forgiven = 0  # bytes of audio a warned mismatch let pass
        self._checked = 0  # bytes of live audio compared with the recording
        self._audio_failed = False
        self._diverging: str | bytes | None = None
        #: the client event that streams input audio (None: the client sends none)
        self._append_type, self._audio_key = input_append(plan.recording.dialect)

    # -- inputs

    def start(self, now: float) -> list[Action]:
        """The frames that go out before the client says anything."""
        return self._pump(now)

    def check_handshake(
        self, path: str, headers: Sequence[tuple[str, str]], subprotocols: Sequence[str]
    ) -> list[Action]:
        """Compare the live handshake with the recorded one; mismatches as for events."""
        recorded = self.plan.recording.handshake
        if recorded is None or not self.rules.check_handshake or self.rules.falls_through:
            return []
        problems = list(_handshake_differences(recorded, path, headers, subprotocols))
        actions: list[Action] = []
        for problem in problems:
            actions += self._mismatch(Mismatch(recorded.seq, "handshake", None, problem))
            if self.done:
                break
        return actions

    def receive(self, message: str | bytes, now: float) -> list[Action]:
        """A message from the live client."""
        if self.done:
            return []
        self._last_activity = now
        event = parse_message(message)
        if self._append_type is not None and event.get("type") == self._append_type:
            actions = self._append(event, message, now)
        else:
            actions = self._event(event, message, now)
        return actions + self._pump(now)

    def advance(self, now: float) -> list[Action]:
        """Time has passed: frames whose time has come, and waits that ran out."""
        if self.done:
            return []
        actions = self._pump(now)
        while not self.done:
            expiry = self._pending_expiry()
            if expiry is None or now < expiry[0]:
                break
            actions += expiry[1](now)
            actions += self._pump(now)
        return actions

    def client_closed(self) -> None:
        """The client closed (or the connection dropped): settle the report."""
        self.done = True
        self._settle()

    def next_deadline(self) -> float | None:
        """When ``advance`` must be called next (None: only on input)."""
        if self.done:
            return None
        if self._next < len(self.plan.frames) and self._prerequisites_met():
            return self._due()
        expiry = self._pending_expiry()
        return None if expiry is None else expiry[0]

    # -- what the shell needs for a new episode

    @property
    def played(self) -> int | None:
        """The seq of the last recorded step of the prefix fully played."""
        frames = self.plan.frames
        events = self.plan.events
        upto = frames[self._next].send.seq if self._next < len(frames) else math.inf
        last = frames[self._next - 1].send.seq if self._next else None
        # events after the last frame sent count while every event before them matched
        for i, ev in enumerate(events):
            if ev.step.seq >= upto or i not in self._matched:
                break
            if last is None or ev.step.seq > last:
                last = ev.step.seq
        for gate in self.plan.gates:
            if (
                gate.seq < upto
                and gate.end <= len(self.live_audio)
                and (last is None or gate.seq > last)
            ):
                last = gate.seq
        return last

    def unanswered(self) -> list[str | bytes]:
        """Client messages matched beyond the played prefix, then the one that diverged:
        what a live upstream must be sent, in the order they came."""
        played = self.played
        later = [
            live
            for i, live in self._matched.items()
            if played is None or self.plan.events[i].step.seq > played
        ]
        out = [live.message for live in sorted(later, key=lambda live: live.arrived)]
        if self._diverging is not None:
            out.append(self._diverging)
        return out

    # -- audio

    def _append(self, event: dict[str, Any], message: str | bytes, now: float) -> list[Action]:
        audio = event.get(self._audio_key)
        try:
            data = base64.b64decode(audio, validate=True) if isinstance(audio, str) else b""
        except binascii.Error:
            data = b""
        was_complete = self._completed()
        start = len(self.live_audio)
        self.live_audio += data
        live_id = event.get("event_id")
        if isinstance(live_id, str):
            gate = self._gate_at(start)
            if gate is not None and gate.event_id is not None:
                self.ids.offer(gate.event_id, live_id)
        spec = self.rules.match
        if spec.audio is AudioMode.IGNORE:
            return []
        if self.rules.falls_through and was_complete:
            # the recording is over: a live upstream answers from here (the audio is in
            # live_audio, which the switch sends on; not a message to forward)
            return self._mismatch(self._beyond(event))
        actions: list[Action] = []
        if spec.audio is AudioMode.SAMPLES:
            actions += self._compare()
        if not self.done and self._finished_recording():
            surplus = len(self.live_audio) - len(self.plan.recording.audio)
            if surplus > self._tolerance():
                actions += self._mismatch(self._surplus(surplus))
        return actions

    def _gate_at(self, offset: int) -> AudioGate | None:
        i = bisect.bisect_right(self.plan.gate_starts, offset) - 1
        if i >= 0 and offset < self.plan.gates[i].end:
            return self.plan.gates[i]
        return None

    def _tolerance(self) -> int:
        spec = self.rules.match
        if spec.audio is not AudioMode.DURATION:
            return 0
        return int(spec.audio_tolerance_ms * self.plan.sample_rate / 1000) * self.plan.width

    def _compare(self) -> list[Action]:
        recorded = self.plan.recording.audio
        upto = min(len(self.live_audio), len(recorded))
        if self._audio_failed or upto <= self._checked:
            return []
        live = bytes(self.live_audio[self._checked : upto])
        start, self._checked = self._checked, upto
        if live == recorded[start:upto]:
            return []
        theirs = recorded[start:upto]
        first = next(i for i, (a, b) in enumerate(zip(live, theirs, strict=True)) if a != b)
        at = (start + first) // self.plan.width
        self._audio_failed = True  # one report: what follows differs too, most likely
        gate = self._gate_at(start + first)
        return self._mismatch(
            Mismatch(
                gate.seq if gate is not None else -1,
                self._append_type,
                None,
                f"appended audio differs from the recording from sample {at} "
                f"({at * 1000 / self.plan.sample_rate:.1f} ms into the input stream)",
            )
        )

    def _surplus(self, surplus: int) -> Mismatch:
        seq = self.plan.gates[-1].seq if self.plan.gates else -1
        return Mismatch(
            seq,
            self._append_type,
            None,
            f"the client appended {self.plan.ms(surplus):.0f} ms more audio than the "
            "recording holds",
        )

    def _audio_have(self) -> int:
        return len(self.live_audio) + self._forgiven + self._tolerance()

    # -- control events

    def _event(self, event: dict[str, Any], message: str | bytes, now: float) -> list[Action]:
        found = self._find(event)
        if found is not None:
            index, ids = found
            return self._accept(index, ids, event, message, now)
        if self.rules.falls_through:
            self._diverging = message
        if self._finished_recording() or len(self._matched) == len(self.plan.events):
            return self._mismatch(self._beyond(event), extra=event)
        return self._unmatched(event, message, now)

    def _candidates_in_order(self) -> Iterator[int]:
        events = range(len(self.plan.events))
        yield from (i for i in events if i not in self._matched and i not in self._skipped)
        yield from (i for i in sorted(self._skipped) if i not in self._matched)

    def _expected_for(self, i: int, live: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """Recorded event ``i`` as the live client would send it: the ids already mapped
        substituted, the ones it chooses now taken from ``live``."""
        ev = self.plan.events[i]
        recorded = substitute(ev.step.event, self.ids.forward)
        found: dict[str, str] = {}
        return learn(recorded, live, ev.chosen, self.ids, found), found

    def _find(self, live: dict[str, Any]) -> tuple[int, dict[str, str]] | None:
        spec = self.rules.match
        for i in self._candidates_in_order():
            expected, found = self._expected_for(i, live)
            if all(failure is None for _, failure in spec.verdicts(expected, live)):
                return i, found
        return None

    def _accept(
        self,
        index: int,
        found: dict[str, str],
        event: dict[str, Any],
        message: str | bytes,
        now: float,
        *,
        counted: bool = True,
    ) -> list[Action]:
        for recorded, live in found.items():
            self.ids.add(recorded, live)
        recorded_id, live_id = (
            self.plan.events[index].step.event.get("event_id"),
            event.get("event_id"),
        )
        if isinstance(recorded_id, str) and isinstance(live_id, str):
            self.ids.offer(recorded_id, live_id)
        self._skipped.discard(index)
        if counted:
            self.report.matched += 1
        if event.get("type") in UPDATES:
            self.updates.append(message)
        # the audio the recording had before this event and the live client has not sent
        owed = self.plan.events[index].audio_pos - self._audio_have()
        if self.rules.match.audio is AudioMode.IGNORE:
            owed = 0
        wait = self.rules.reorder_wait + max(owed, 0) / self.plan.width / self.plan.sample_rate
        self._matched[index] = _Live(now, message, event, now + wait)
        if owed > 0 and self.plan.ms(owed) > self.rules.audio_lead_ms:
            return self._audio_short(index, now, beyond_lead=True)
        return []

    def _unmatched(self, event: dict[str, Any], message: str | bytes, now: float) -> list[Action]:
        spec = self.rules.match
        open_ = list(self._candidates_in_order())
        ranked = []
        for i in open_:
            expected, _ = self._expected_for(i, event)
            ranked.append(
                Candidate(
                    self.plan.events[i].step.seq,
                    self.plan.events[i].step.event,
                    tuple(spec.verdicts(expected, event)),
                    i - open_[0],
                )
            )
        ranked.sort(key=lambda c: (-c.passed, c.distance))
        duplicate = self._duplicate_of(event)
        best = ranked[0]
        index = next(i for i in open_ if self.plan.events[i].step.seq == best.seq)
        kind, live_kind = best.recorded.get("type"), event.get("type")
        if duplicate is not None:
            summary = (
                f"{live_kind} again: it matches recorded seq {duplicate}, which the client "
                "already sent"
            )
        else:
            failed = [f"{name} ({failure})" for name, failure in best.verdicts if failure]
            head = f"{kind} differs" if kind == live_kind else f"expected {kind}, got {live_kind}"
            summary = f"{head}: " + "; ".join(failed)
        expected, _ = self._expected_for(index, event)
        diff = tuple(field_diff(without(expected, ("event_id",)), without(event, ("event_id",))))
        mismatch = Mismatch(best.seq, kind, event, summary, tuple(ranked[:_CANDIDATES]), diff[:20])
        actions = self._mismatch(mismatch)
        if not self.done and duplicate is None:
            # warn: the live event stands in for the closest recorded one
            actions += self._accept(index, {}, event, message, now, counted=False)
        return actions

    def _duplicate_of(self, live: dict[str, Any]) -> int | None:
        spec = self.rules.match
        for i in sorted(self._matched):
            recorded = substitute(self.plan.events[i].step.event, self.ids.forward)
            if all(failure is None for _, failure in spec.verdicts(recorded, live)):
                return self.plan.events[i].step.seq
        return None

    def _beyond(self, event: Mapping[str, Any]) -> Mismatch:
        played = self.played
        return Mismatch(
            played if played is not None else -1,
            None,
            event,
            f"the client sent {event.get('type')} after the recording's last client event",
        )

    def _completed(self) -> bool:
        """Every step of the recording played, its audio included."""
        return self._finished_recording() and (
            self.rules.match.audio is AudioMode.IGNORE
            or self._audio_have() >= len(self.plan.recording.audio)
        )

    def _finished_recording(self) -> bool:
        """Every frame sent and every recorded client event matched."""
        return self._next >= len(self.plan.frames) and len(self._matched) == len(self.plan.events)

    # -- mismatches

    def _mismatch(
        self, mismatch: Mismatch, *, extra: Mapping[str, Any] | None = None
    ) -> list[Action]:
        if self.rules.falls_through:
            self.done = True
            self.report.diverged, self.report.switched_after = mismatch, self.played
            self.report.completed = self._completed()  # the rest is the upstream's
            return [Diverge(mismatch)]
        self.report.mismatches.append(mismatch)
        if extra is not None:
            self.report.extra.append(extra)
        if self.rules.on_mismatch is OnMismatch.FAIL:
            return self._close(MISMATCH_CLOSE_CODE, mismatch.reason())
        return []

    def _close(self, code: int, reason: str) -> list[Action]:
        self.done = True
        self.report.close = (code, reason)
        self._settle(closing=True)
        return [CloseConnection(code, reason)]

    def _settle(self, *, closing: bool = False) -> None:
        report = self.report
        report.completed = self._completed()
        report.ids = self.ids.changed
        sent = set(self._matched)
        report.unsent = [
            (ev.step.seq, ev.step.event.get("type"))
            for i, ev in enumerate(self.plan.events)
            if i not in sent
        ]
        if self.rules.match.audio is not AudioMode.IGNORE:
            have = self._audio_have()
            missing = [g for g in self.plan.gates if g.end > have]
            if missing:
                owed = missing[-1].end - max(have, missing[0].start)
                report.unsent_audio = (len(missing), self.plan.ms(owed))
            surplus = len(self.live_audio) - len(self.plan.recording.audio)
            if (
                not closing
                and surplus > self._tolerance()
                and not any(m.summary.startswith("the client appended") for m in report.mismatches)
            ):
                report.mismatches.append(self._surplus(surplus))

    # -- the frames

    def _first_open(self) -> int:
        """The first recorded client event neither matched nor skipped."""
        while self._open < len(self.plan.events) and (
            self._open in self._matched or self._open in self._skipped
        ):
            self._open += 1
        return self._open

    def _prerequisites_met(self) -> bool:
        frame = self.plan.frames[self._next]
        if self._first_open() < frame.needs_events:
            return False
        if self.rules.match.audio is AudioMode.IGNORE:
            return True
        return self._audio_have() >= frame.needs_audio

    def _due(self) -> float:
        frame = self.plan.frames[self._next]
        pace = self.rules.pace
        assert self._ready_at is not None
        due = self._anchor
        if self._last_t is not None:
            due += pace.delay(frame.send.t_ns - self._last_t)
        if frame.client_t is not None:
            due = max(due, self._ready_at + pace.delay(frame.send.t_ns - frame.client_t))
        return due

    def _pump(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while not self.done and self._next < len(self.plan.frames):
            if not self._prerequisites_met():
                self._ready_at = None
                break
            if self._ready_at is None:
                self._ready_at = now
            due = self._due()
            if now < due:
                break
            frame = self.plan.frames[self._next]
            actions.append(SendFrame(rewrite_frame(frame.send.message, self.ids)))
            self.report.server_frames_sent += 1
            self._anchor, self._last_t = due, frame.send.t_ns
            self._last_activity = max(self._last_activity, now)
            self._next += 1
            self._ready_at = None
        if not self.done and self.plan.recording.server_close is not None and self._completed():
            code, reason = self.plan.recording.server_close
            actions += self._close(code, reason)
        return actions

    # -- waiting

    def _pending_expiry(self) -> tuple[float, Any] | None:
        if self._blocked():
            return self._expiry()
        timeout = self.rules.client_timeout
        if (
            timeout is not None
            and self._next >= len(self.plan.frames)
            and self.plan.recording.server_close is None
        ):
            return (self._last_activity + timeout, self._idle_at_end)
        return None

    def _idle_at_end(self, now: float) -> list[Action]:
        """The recording is over (its client closed it) and this client has been silent
        for the client timeout: close normally, so that nothing hangs on a reply the
        recording does not have."""
        return self._close(1000, "rtrec playback: the recording ends here")

    def _blocked(self) -> bool:
        """The recording waits for the client (not for the clock)."""
        if self._next < len(self.plan.frames):
            return not self._prerequisites_met()
        return self._first_open() < len(self.plan.events)

    def _awaited(self) -> tuple[int | None, bool]:
        """The first recorded client event the recording waits for (None: audio), and
        whether audio is awaited."""
        limit = (
            self.plan.frames[self._next].needs_events
            if self._next < len(self.plan.frames)
            else len(self.plan.events)
        )
        first = self._first_open()
        missing = first if first < limit else None
        audio = (
            self._next < len(self.plan.frames)
            and self.rules.match.audio is not AudioMode.IGNORE
            and self._audio_have() < self.plan.frames[self._next].needs_audio
        )
        return missing, audio

    def _expiry(self) -> tuple[float, Any] | None:
        """The earliest wait that can run out, and what to do then."""
        missing, audio = self._awaited()
        options: list[tuple[float, Any]] = []
        if missing is not None:
            ahead = [j for j in self._matched if j > missing]
            if ahead:
                first = min(ahead, key=lambda j: self._matched[j].grace_until)
                options.append(
                    (
                        self._matched[first].grace_until,
                        lambda now, m=missing, j=first: self._skip(m, j),
                    )
                )
        if audio:
            have = self._audio_have()
            ahead = [
                j
                for j, ev in enumerate(self.plan.events)
                if j in self._matched and ev.audio_pos > have
            ]
            if ahead:
                first = min(ahead, key=lambda j: self._matched[j].grace_until)
                options.append(
                    (
                        self._matched[first].grace_until,
                        lambda now, j=first: self._audio_short(j, now, beyond_lead=False),
                    )
                )
        timeout = self.rules.client_timeout
        if timeout is not None:
            options.append((self._last_activity + timeout, self._timed_out))
        return min(options, key=lambda o: o[0]) if options else None

    def _skip(self, missing: int, ahead: int) -> list[Action]:
        """Recorded events before ``ahead`` never came within its wait."""
        skipped = [
            i for i in range(missing, ahead) if i not in self._matched and i not in self._skipped
        ]
        ev = self.plan.events[missing].step
        live = self._matched[ahead]
        kind, live_kind = ev.event.get("type"), live.event.get("type")
        summary = (
            f"expected {kind}, got {live_kind}, which matches recorded seq "
            f"{self.plan.events[ahead].step.seq}: {len(skipped)} recorded client event(s) skipped"
        )
        wait = self.rules.reorder_wait
        mismatch = Mismatch(
            ev.seq, kind, live.event, summary + f" (none came within {wait * 1000:.0f} ms)"
        )
        actions = self._mismatch(mismatch)
        self._skipped.update(skipped)
        return actions

    def _audio_short(self, index: int, now: float, *, beyond_lead: bool) -> list[Action]:
        """A control event came before audio the recording had before it, and the audio
        did not follow (or it overtook more than ``audio_lead_ms``)."""
        ev = self.plan.events[index]
        live = self._matched[index]
        have = len(self.live_audio) + self._forgiven
        owed = ev.audio_pos - self._audio_have()
        why = (
            f"more than the {self.rules.audio_lead_ms:.0f} ms a control event may overtake"
            if beyond_lead
            else f"and no more came within {(live.grace_until - live.arrived) * 1000:.0f} ms"
        )
        gate = self._gate_at(max(ev.audio_pos - 1, 0))
        mismatch = Mismatch(
            gate.seq if gate is not None else ev.step.seq,
            self._append_type,
            live.event,
            f"the client sent {live.event.get('type')} after {self.plan.ms(have):.0f} ms of "
            f"audio; the recording had {self.plan.ms(ev.audio_pos):.0f} ms of audio at this "
            f"point ({self.plan.ms(owed):.0f} ms more, {why})",
        )
        actions = self._mismatch(mismatch)
        self._forgiven += max(owed, 0)  # warn: go on as if it had come
        return actions

    def _timed_out(self, now: float) -> list[Action]:
        missing, _ = self._awaited()
        timeout = self.rules.client_timeout
        if missing is not None:
            ev = self.plan.events[missing].step
            seq, kind = ev.seq, ev.event.get("type")
        else:
            frame = self.plan.frames[min(self._next, len(self.plan.frames) - 1)]
            gate = self._gate_at(max(frame.needs_audio - 1, 0))
            seq, kind = (gate.seq if gate is not None else frame.send.seq), self._append_type
        mismatch = Mismatch(
            seq,
            kind,
            None,
            f"the client sent nothing for {timeout:g} s while recorded {kind} was awaited",
        )
        # nothing to go on with, whatever on_mismatch says
        self.report.mismatches.append(mismatch)
        return self._close(MISMATCH_CLOSE_CODE, mismatch.reason())


def _handshake_differences(
    recorded: RecordedHandshake,
    path: str,
    headers: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
) -> Iterator[str]:
    want, got = urlsplit(recorded.path), urlsplit(path)
    if want.path.rstrip("/") != got.path.rstrip("/"):
        yield f"handshake path {got.path!r} != recorded {want.path!r}"
    want_q, got_q = parse_qs(want.query), parse_qs(got.query)
    for name in CHECKED_QUERY:
        a, b = want_q.get(name), got_q.get(name)
        if a != b:
            shown_a = a[0] if a else "(none)"
            shown_b = b[0] if b else "(none)"
            yield f"handshake query {name}={shown_b} != recorded {name}={shown_a}"
    protocol = dialect_of(path, headers, subprotocols).name
    if protocol != recorded.protocol:
        how = "an OpenAI-Beta: realtime=v1 header or the openai-beta.realtime-v1 subprotocol"
        yield (
            f"handshake selects the {protocol} protocol; the recording is {recorded.protocol} "
            f"({how} selects beta)"
        )
    if has_credentials(headers, subprotocols) != recorded.credentials:
        yield (
            "handshake carries no credentials; the recorded client sent some"
            if recorded.credentials
            else "handshake carries credentials; the recorded client sent none"
        )
