"""The driver's plan: what each recorded client event waited for, and which ids it names.

Sans-IO (no trio, no sockets, no files): ``compile_plan(frames, ...)`` reads a recorded
session's rows once and gives a ``DrivePlan``; ``Progress`` follows what a run's server side
has shown so far. The same ``Progress`` class reads the recording (to compile the plan) and
the new run (to decide when a step may go), so both runs are measured by one rule.

Theory of operation. A server event can only depend on client frames the proxy logged
before it: the proxy logs a client frame before forwarding it, so nothing the server does
can be caused by a frame with a larger ``seq``. Waiting, before sending the client event at
recorded ``seq`` s, for the new server to show again what the recording showed before s
therefore never deadlocks against a server that behaves as the recorded one did. What
"show again" means must survive a live model, which streams a different number of deltas
and picks different ids, so the waits are coarse and countable (``Wait``):

- **milestones** (the ``MILESTONES`` table): the n-th ``session.created``,
  ``session.updated``, ``response.created``, ``response.done`` or finished input
  transcription. A client event after the 2nd ``response.done`` of the recording waits for
  the 2nd ``response.done`` of the new run: "response.create after the previous
  response.done" of issue 6, and the same for everything else the client did after it.
- **ids**: a client event that names an id the server chose in the recording (an item, a
  function call, a response) waits until the new server has chosen the id in the same place
  (the n-th item, call or response by first appearance), and the id is rewritten to the new
  one. For a call that the recording had finished (arguments done) before the event, the
  wait is for the new call's arguments to be done too: a ``function_call_output`` goes out
  only after its call is complete.
- **heard audio**: a client event sent while a response was still streaming audio (a
  barge-in: the user talks over the reply) waits until the new run's response of the same
  rank has sent as much audio as the recording's had by then, or is done.

Deltas, rate limits and anything else are never waited for: their number is the model's
business, not the conversation's.

GPT-Live (LIVE.md) is read by the same rules through its own table (``ServerRules``,
chosen by the recording's dialect family in ``RULES``): its milestones are
``session.started``, ``session.updated``, the acknowledgements of context appends, mutes
and fixtures, and ``session.delegation.created``; a delegation's id is a server-chosen id
like an item's (a ``session.commentary.append`` for it waits for the new run's delegation
of the same rank, and names it); and a ``response.event`` is read as the Responses event
it carries, so the backend's responses and function calls count as Realtime's do (a
``function_call_output`` waits for its call to be done). Live output audio belongs to no
response and is never waited for: the media clock makes it follow the input the driver
sends.
"""

from __future__ import annotations

import bisect
import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeGuard

import attrs
import orjson

from rtrec.recorder.headers import HOP_BY_HOP
from rtrec.schemas.dialects import REALTIME_GA, Dialect, recorded_dialect
from rtrec.schemas.storage import Direction, FrameKind, FrameRecord

__all__ = [
    "AUDIO_DELTAS",
    "LIVE_RULES",
    "MILESTONES",
    "REALTIME_RULES",
    "RULES",
    "ClientStep",
    "DrivePlan",
    "EndStep",
    "IdKind",
    "Progress",
    "ServerRules",
    "Wait",
    "WaitKind",
    "compile_plan",
    "rewrite_ids",
]

#: Server event type -> the milestone it counts towards (GA and beta names).
MILESTONES: Final[Mapping[str, str]] = {
    "session.created": "session.created",
    "session.updated": "session.updated",
    "transcription_session.updated": "session.updated",
    "response.created": "response.created",
    "response.done": "response.done",
    "conversation.item.input_audio_transcription.completed": "input transcription",
    "conversation.item.input_audio_transcription.failed": "input transcription",
}
#: Server events carrying a response's audio in ``delta`` (GA, beta).
AUDIO_DELTAS: Final = frozenset({"response.output_audio.delta", "response.audio.delta"})
_ITEM_DONE: Final = frozenset({"response.output_item.done", "conversation.item.done"})
_SESSION_EVENTS: Final = frozenset(
    {"session.created", "session.updated", "transcription_session.updated"}
)
_TRANSCRIPTION_ENDS: Final = frozenset(
    {
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
    }
)


class IdKind(enum.StrEnum):
    """The ids a server chooses and a client may name later."""

    ITEM = "item"
    CALL = "call"
    RESPONSE = "response"
    #: a GPT-Live delegation (``session.delegation.created``), named by ``delegation_id``
    DELEGATION = "delegation"


def _as_is(event: Mapping[str, Any]) -> Mapping[str, Any]:
    return event


def _nested_response_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """A GPT-Live ``response.event`` read as the Responses event it carries (LIVE.md §3.7);
    any other event as it is."""
    nested = event.get("event")
    if event.get("type") == "response.event" and isinstance(nested, dict):
        return nested
    return event


@attrs.frozen
class ServerRules:
    """How one dialect family's server events are counted (see the module docstring)."""

    #: server event type -> the milestone it counts towards
    milestones: Mapping[str, str]
    #: the milestone without which a server is never idle (its session is not up yet)
    ready: str
    #: server events carrying a response's audio in ``delta``
    audio_deltas: frozenset[str]
    #: the event whose ids, calls and responses count (an envelope's payload)
    unwrap: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _as_is


REALTIME_RULES: Final = ServerRules(MILESTONES, "session.created", AUDIO_DELTAS)
LIVE_RULES: Final = ServerRules(
    {
        "session.started": "session.started",
        "session.updated": "session.updated",
        # terminal: a recording that saw it has the driver wait for it before closing, so a
        # close is confirmed and the work the server drains on session.close is in the log
        "session.closed": "session.closed",
        "session.delegation.created": "delegation",
        "session.instructions.appended": "instructions appended",
        "session.thinking.appended": "thinking appended",
        "session.commentary.appended": "commentary appended",
        "session.input_audio.muted": "muted",
        "session.input_audio.unmuted": "unmuted",
        "session.output_audio.fixture.played": "fixture played",
        "decision.item.created": "decision item created",
        "decision.item.deleted": "decision item deleted",
        # the backend's Responses stream, read out of response.event
        "response.created": "response.created",
        "response.completed": "response.done",
        "response.failed": "response.done",
        "response.incomplete": "response.done",
    },
    "session.started",
    frozenset(),
    _nested_response_event,
)
#: ``Dialect.family`` -> its rules
RULES: Final[Mapping[str, ServerRules]] = {"realtime": REALTIME_RULES, "live": LIVE_RULES}


class WaitKind(enum.StrEnum):
    """What a ``Wait`` waits for."""

    MILESTONE = "milestone"
    ID = "id"
    CALL_DONE = "call done"
    AUDIO = "audio"


def _b64_size(text: str) -> int:
    """Bytes a base64 string decodes to (without decoding it)."""
    pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return len(text) * 3 // 4 - pad


def _server_ids(event: Mapping[str, Any]) -> Iterator[tuple[IdKind, str]]:
    """The item, call and response ids a server event mentions, in a fixed order.

    ``previous_item_id`` is left out: it names an item, it never introduces one.
    """
    if isinstance(rid := event.get("response_id"), str):
        yield IdKind.RESPONSE, rid
    response = event.get("response")
    if isinstance(response, dict):
        if isinstance(rid := response.get("id"), str):
            yield IdKind.RESPONSE, rid
        output = response.get("output")
        for item in output if isinstance(output, list) else ():
            if isinstance(item, dict):
                yield from _item_ids(item)
    if isinstance(iid := event.get("item_id"), str):
        yield IdKind.ITEM, iid
    item = event.get("item")
    if isinstance(item, dict):
        yield from _item_ids(item)
    if isinstance(cid := event.get("call_id"), str):
        yield IdKind.CALL, cid
    delegation = event.get("delegation")
    if isinstance(delegation, dict) and isinstance(did := delegation.get("id"), str):
        yield IdKind.DELEGATION, did


def _item_ids(item: Mapping[str, Any]) -> Iterator[tuple[IdKind, str]]:
    if isinstance(iid := item.get("id"), str):
        yield IdKind.ITEM, iid
    if isinstance(cid := item.get("call_id"), str):
        yield IdKind.CALL, cid


def _calls_done(event: Mapping[str, Any], ends_response: bool) -> Iterator[str]:
    """The function calls whose arguments an event shows complete (``ends_response``: the
    event is a response's last, holding its whole output)."""
    kind = event.get("type")
    if kind == "response.function_call_arguments.done":
        if isinstance(cid := event.get("call_id"), str):
            yield cid
    elif kind in _ITEM_DONE:
        item = event.get("item")
        if _is_call(item):
            yield item["call_id"]
    elif ends_response:
        response = event.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        for item in output if isinstance(output, list) else ():
            if _is_call(item):
                yield item["call_id"]


def _response_id(event: Mapping[str, Any]) -> Any:
    response = event.get("response")
    return response.get("id") if isinstance(response, dict) else None


def _is_call(item: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(item, dict)
        and item.get("type") == "function_call"
        and isinstance(item.get("call_id"), str)
    )


@attrs.define
class Progress:
    """What one run's server side has shown so far. Times are nanoseconds on that run's
    clock (the recording's ``t_ns``, or the driver's clock in a new run).

    ``feed`` it every server event in order; ``version`` changes whenever something a
    ``Wait`` can see changed.
    """

    #: milestone -> (time, seq) of its 1st, 2nd, ... occurrence
    milestones: dict[str, list[tuple[int, int]]] = attrs.Factory(dict)
    #: per kind, the ids in order of first appearance
    ids: dict[IdKind, list[str]] = attrs.Factory(lambda: {k: [] for k in IdKind})
    #: id -> (kind, rank from 1, time first seen, seq first seen)
    seen: dict[str, tuple[IdKind, int, int, int]] = attrs.Factory(dict)
    #: call id -> (time, seq) its arguments were done
    calls_done: dict[str, tuple[int, int]] = attrs.Factory(dict)
    #: response id -> [(total audio bytes so far, time, seq)] after each audio delta
    audio: dict[str, list[tuple[int, int, int]]] = attrs.Factory(dict)
    #: response id -> (time, seq) of its response.done
    done: dict[str, tuple[int, int]] = attrs.Factory(dict)
    #: the response of the latest audio delta
    speaking: str | None = None
    #: ``error`` events, as sent
    errors: list[Mapping[str, Any]] = attrs.Factory(list)
    version: int = 0
    #: responses created and not done yet, id -> seq of response.created
    open_responses: dict[str, int] = attrs.Factory(dict)
    #: committed input audio items whose transcription has not come yet, id -> seq committed
    transcribing: dict[str, int] = attrs.Factory(dict)
    #: the session transcribes input audio (as the latest session event configured it)
    transcription_on: bool = False
    #: the session's turn detection creates a response when it ends a turn
    vad_responds: bool = False
    #: seq of a speech_started not followed by speech_stopped yet
    hearing: int | None = None
    #: seq of a speech_stopped whose turn has no response.created yet (``vad_responds``)
    turn_pending: int | None = None
    #: how this dialect's server events count
    rules: ServerRules = REALTIME_RULES

    def feed(
        self, event: Mapping[str, Any], t: int, seq: int, *, audio_bytes: int | None = None
    ) -> None:
        """Take one server event.

        Args:
            event: the decoded event.
            t: when it arrived, in nanoseconds.
            seq: its position (the recorded ``seq``, or a count in a new run).
            audio_bytes: for an audio delta whose ``delta`` was cut out of the payload (the
                log keeps audio in FLAC), its size in wire bytes.
        """
        rules = self.rules
        event = rules.unwrap(event)
        kind = event.get("type")
        self.version += 1
        milestone = rules.milestones.get(kind) if isinstance(kind, str) else None
        if milestone is not None:
            self.milestones.setdefault(milestone, []).append((t, seq))
        for id_kind, value in _server_ids(event):
            if value not in self.seen:
                ranks = self.ids[id_kind]
                ranks.append(value)
                self.seen[value] = (id_kind, len(ranks), t, seq)
        for call in _calls_done(event, milestone == "response.done"):
            self.calls_done.setdefault(call, (t, seq))
        if kind in rules.audio_deltas and isinstance(rid := event.get("response_id"), str):
            if audio_bytes is None:
                delta = event.get("delta")
                audio_bytes = _b64_size(delta) if isinstance(delta, str) else 0
            runs = self.audio.setdefault(rid, [])
            runs.append(((runs[-1][0] if runs else 0) + audio_bytes, t, seq))
            self.speaking = rid
        elif milestone == "response.done":
            response = event.get("response")
            if isinstance(response, dict) and isinstance(rid := response.get("id"), str):
                self.done.setdefault(rid, (t, seq))
        elif kind == "error":
            self.errors.append(event)
        self._follow_activity(kind, milestone, event, seq)

    def _follow_activity(
        self, kind: Any, milestone: str | None, event: Mapping[str, Any], seq: int
    ) -> None:
        """Keep what ``pending`` reports: open responses, transcriptions, VAD turns."""
        if kind in _SESSION_EVENTS and isinstance(session := event.get("session"), dict):
            self._configure(session)
            if kind == "transcription_session.updated" or session.get("type") == "transcription":
                self.vad_responds = False  # a transcription session never responds
        elif milestone == "response.created":
            if isinstance(rid := _response_id(event), str):
                self.open_responses[rid] = seq
            self.turn_pending = None
        elif milestone == "response.done":
            if isinstance(rid := _response_id(event), str):
                self.open_responses.pop(rid, None)
        elif kind == "input_audio_buffer.speech_started":
            self.hearing = seq
        elif kind == "input_audio_buffer.speech_stopped":
            self.hearing = None
            if self.vad_responds:
                self.turn_pending = seq
        elif kind == "input_audio_buffer.committed":
            if self.transcription_on and isinstance(iid := event.get("item_id"), str):
                self.transcribing[iid] = seq
        elif kind in _TRANSCRIPTION_ENDS and isinstance(iid := event.get("item_id"), str):
            self.transcribing.pop(iid, None)

    def _configure(self, session: Mapping[str, Any]) -> None:
        """Follow the session's transcription and turn detection (GA: under
        ``audio.input``; beta: top level). A key that is absent leaves the setting as it was."""
        audio = session.get("audio")
        ga = audio.get("input") if isinstance(audio, dict) else None
        where = ga if isinstance(ga, dict) else session
        key = "transcription" if where is ga else "input_audio_transcription"
        if key in where:
            self.transcription_on = isinstance(where[key], dict)
        if "turn_detection" in where:
            vad = where["turn_detection"]
            self.vad_responds = isinstance(vad, dict) and vad.get("create_response") is not False

    def pending(self) -> str | None:
        """What the server may still send on its own, in words; None when it is idle: the
        session is created, every response.created has its response.done, no speech is
        being heard, no turn its VAD ended awaits its response, and no input transcription
        is outstanding. Only then can a quiet server be taken to have nothing more to say."""
        if not self.milestones.get(self.rules.ready):
            return self.rules.ready
        if self.open_responses:
            rid, seq = next(iter(self.open_responses.items()))
            return f"the response.done of {rid} (created at seq {seq})"
        if self.hearing is not None:
            return f"the speech_stopped after the speech_started at seq {self.hearing}"
        if self.turn_pending is not None:
            return f"the response to the turn VAD ended at seq {self.turn_pending}"
        if self.transcribing:
            iid, seq = next(iter(self.transcribing.items()))
            return f"the input transcription of {iid} (committed at seq {seq})"
        return None

    def feed_message(self, message: str | bytes, t: int, seq: int) -> Mapping[str, Any] | None:
        """Take one server message as it arrived; returns it decoded (None: not a JSON
        object, which changes nothing)."""
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        self.feed(event, t, seq)
        return event

    def id_at(self, kind: IdKind, rank: int) -> str | None:
        """The ``rank``-th id of ``kind`` (from 1), once seen."""
        ranks = self.ids[kind]
        return ranks[rank - 1] if rank <= len(ranks) else None


@attrs.frozen
class Wait:
    """One thing a client step waits for, and where the recording met it.

    ``name`` is the milestone or the id kind; ``n`` the count (milestones) or rank (ids,
    calls, responses); ``amount`` the audio bytes (``AUDIO``).
    """

    kind: WaitKind
    name: str
    n: int
    recorded_seq: int
    recorded_t: int
    amount: int = 0
    recorded_id: str | None = None

    def met_at(self, progress: Progress) -> int | None:
        """When ``progress``'s run met this wait (its time), or None if it has not yet."""
        if self.kind is WaitKind.MILESTONE:
            times = progress.milestones.get(self.name, ())
            return times[self.n - 1][0] if len(times) >= self.n else None
        id_kind = IdKind(self.name)
        value = progress.id_at(id_kind, self.n)
        if value is None:
            return None
        if self.kind is WaitKind.ID:
            return progress.seen[value][2]
        if self.kind is WaitKind.CALL_DONE:
            done = progress.calls_done.get(value)
            return None if done is None else done[0]
        runs = progress.audio.get(value, [])
        at = bisect.bisect_left(runs, self.amount, key=lambda run: run[0])  # totals only grow
        if at < len(runs):
            return runs[at][1]
        finished = progress.done.get(value)
        return None if finished is None else finished[0]

    def describe(self) -> str:
        """What is awaited, in words, with where the recording had it."""
        where = f"recorded seq {self.recorded_seq}"
        if self.kind is WaitKind.MILESTONE:
            return f"{self.name} #{self.n} ({where})"
        named = f" ({self.recorded_id} in the recording)" if self.recorded_id else ""
        if self.kind is WaitKind.ID:
            return f"{self.name} #{self.n}{named}, first seen at {where}"
        if self.kind is WaitKind.CALL_DONE:
            return f"the arguments of call #{self.n}{named} to be done ({where})"
        return (
            f"{self.amount} bytes of output audio of response #{self.n}{named}, or its "
            f"response.done ({where})"
        )


@attrs.frozen
class ClientStep:
    """One recorded client frame to send, what it waits for, and the ids it names."""

    seq: int
    t_ns: int
    type: str | None
    frame: FrameRecord
    waits: tuple[Wait, ...]
    #: (recorded id, kind, rank) of the server-chosen ids the frame names
    ids: tuple[tuple[str, IdKind, int], ...] = ()

    def describe(self) -> str:
        """``recorded seq 12 (response.create)``."""
        return f"recorded seq {self.seq} ({self.type or self.frame.kind.value})"


@attrs.frozen
class EndStep:
    """How the recording ended: what the client had seen by then, and who closed."""

    t_ns: int
    waits: tuple[Wait, ...]
    closed_by: str | None
    code: int | None
    reason: str


@attrs.frozen
class DrivePlan:
    """A recorded session's client side, ready to drive (``compile_plan``)."""

    session_id: str
    protocol: str
    #: path and query of the recorded handshake (``/v1/realtime?model=...``)
    request_path: str
    #: the recorded handshake's headers worth sending again (no secrets, nothing hop-by-hop)
    headers: tuple[tuple[str, str], ...]
    #: subprotocols the recorded client offered, without key-carrying ones
    subprotocols: tuple[str, ...]
    #: the handshake's time in the recording (steps are paced from it)
    start_t: int
    steps: tuple[ClientStep, ...]
    end: EndStep
    #: the recording's server side, as followed while compiling
    recorded: Progress
    #: the recording's dialect (``rtrec.schemas.dialects``)
    dialect: Dialect = REALTIME_GA

    @property
    def appends(self) -> int:
        """How many steps are audio appends."""
        return sum(1 for s in self.steps if s.type == self.dialect.input_append)

    def progress(self) -> Progress:
        """A new run's ``Progress``, counting by the recording's rules."""
        return Progress(rules=self.recorded.rules)


# The handshake's own headers, hop-by-hop ones and the key: never sent again from a log.
_NOT_REPLAYED: Final = HOP_BY_HOP | {"authorization", "cookie"}
_KEY_SUBPROTOCOL: Final = "openai-insecure-api-key."
_REDACTED: Final = "[REDACTED]"


def replayable_headers(request_headers: str) -> tuple[tuple[str, str], ...]:
    """The headers of a recorded handshake (``sessions.request_headers``, redacted JSON)
    that a new handshake should send again: ``OpenAI-Beta``, ``User-Agent`` and the like;
    never the key, the handshake's own, or anything redacted."""
    try:
        headers = orjson.loads(request_headers)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(headers, dict):
        return ()
    return tuple(
        (str(k), v)
        for k, v in headers.items()
        if isinstance(v, str) and k.lower() not in _NOT_REPLAYED and _REDACTED not in v
    )


def _client_ids(node: Any, known: Mapping[str, Any], top: bool = True) -> Iterator[str]:
    """String values of a client event that are ids the server chose before it; the
    event's own ``event_id`` is the client's and is never one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not (top and key == "event_id"):
                yield from _client_ids(value, known, top=False)
    elif isinstance(node, list):
        for value in node:
            yield from _client_ids(value, known, top=False)
    elif isinstance(node, str) and node in known:
        yield node


def _decode(frame: FrameRecord) -> dict[str, Any] | None:
    if frame.kind is not FrameKind.TEXT or frame.payload is None:
        return None
    try:
        obj = orjson.loads(frame.payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class _Compiler:
    """Walks the recording once, keeping the waits of the current point."""

    def __init__(self, rules: ServerRules) -> None:
        self.progress = Progress(rules=rules)
        self._version = -1
        self._base: tuple[Wait, ...] = ()

    def base_waits(self) -> tuple[Wait, ...]:
        """The milestone and heard-audio waits at this point (shared while nothing changes)."""
        if self._version == self.progress.version:
            return self._base
        p = self.progress
        waits = [
            Wait(WaitKind.MILESTONE, name, len(times), times[-1][1], times[-1][0])
            for name, times in p.milestones.items()
        ]
        rid = p.speaking
        if rid is not None and rid not in p.done and p.audio.get(rid):
            total, t, seq = p.audio[rid][-1]
            kind, rank, _, _ = p.seen[rid]
            waits.append(Wait(WaitKind.AUDIO, kind.value, rank, seq, t, total, rid))
        self._base, self._version = tuple(waits), p.version
        return self._base

    def id_waits(
        self, event: Mapping[str, Any]
    ) -> tuple[list[Wait], list[tuple[str, IdKind, int]]]:
        p = self.progress
        waits: list[Wait] = []
        ids: list[tuple[str, IdKind, int]] = []
        for value in dict.fromkeys(_client_ids(event, p.seen)):
            kind, rank, t, seq = p.seen[value]
            ids.append((value, kind, rank))
            done = p.calls_done.get(value) if kind is IdKind.CALL else None
            if done is not None:
                waits.append(Wait(WaitKind.CALL_DONE, kind.value, rank, done[1], done[0], 0, value))
            else:
                waits.append(Wait(WaitKind.ID, kind.value, rank, seq, t, 0, value))
        return waits, ids


def compile_plan(
    frames: Iterable[FrameRecord],
    *,
    session_id: str,
    protocol: str,
    request_path: str,
    request_headers: str,
    closed_by: str | None,
    close_code: int | None,
    close_reason: str | None,
) -> DrivePlan:
    """Compile a recorded session's rows into a ``DrivePlan``.

    Args:
        frames: the session's rows in ``seq`` order (audio stays in the archive: the
            driver rebuilds each frame when it sends it).
        session_id: the recorded session.
        protocol: ``ga``, ``beta`` or ``live`` (``sessions.protocol``).
        request_path: the recorded handshake's path and query.
        request_headers: the recorded handshake's headers (redacted JSON).
        closed_by, close_code, close_reason: how the recording ended.
    """
    dialect = recorded_dialect(protocol, request_path)
    compiler = _Compiler(RULES[dialect.family])
    steps: list[ClientStep] = []
    subprotocols: tuple[str, ...] = ()
    start_t = 0
    end_t: int | None = None
    last_t = 0
    for frame in frames:
        last_t = max(last_t, frame.t_ns)
        if frame.direction is Direction.RECORDER:
            mark = _decode_mark(frame)
            if frame.type == "rtrec.handshake":
                start_t = frame.t_ns
                offered = mark.get("subprotocols")
                if isinstance(offered, list):
                    subprotocols = tuple(
                        p
                        for p in offered
                        if isinstance(p, str) and not p.startswith(_KEY_SUBPROTOCOL)
                    )
            elif frame.type == "rtrec.close":
                end_t = frame.t_ns
            continue
        if frame.direction is Direction.SERVER:
            event = _decode(frame)
            if event is not None:
                span = frame.audio
                size = None
                if span is not None and span.cut_at is not None:
                    size = span.samples * span.encoding.bytes_per_sample
                compiler.progress.feed(event, frame.t_ns, frame.seq, audio_bytes=size)
            continue
        event = _decode(frame)
        waits, ids = compiler.id_waits(event) if event is not None else ([], [])
        kind = event.get("type") if event is not None else frame.type
        steps.append(
            ClientStep(
                seq=frame.seq,
                t_ns=frame.t_ns,
                type=kind if isinstance(kind, str) else None,
                frame=frame,
                waits=compiler.base_waits() + tuple(waits),
                ids=tuple(ids),
            )
        )
    end = EndStep(
        t_ns=end_t if end_t is not None else last_t,
        waits=compiler.base_waits(),
        closed_by=closed_by,
        code=close_code,
        reason=close_reason or "",
    )
    return DrivePlan(
        session_id=session_id,
        protocol=protocol,
        request_path=request_path,
        headers=replayable_headers(request_headers),
        subprotocols=subprotocols,
        start_t=start_t,
        steps=tuple(steps),
        end=end,
        recorded=compiler.progress,
        dialect=dialect,
    )


def _decode_mark(frame: FrameRecord) -> dict[str, Any]:
    try:
        obj = orjson.loads(frame.payload or "{}")
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def rewrite_ids(
    message: str | bytes, ids: Sequence[tuple[str, IdKind, int]], progress: Progress
) -> str | bytes:
    """``message`` with each recorded server-chosen id replaced by the one the new run
    chose in its place. Only the id tokens change, so the rest stays byte for byte.

    Raises:
        LookupError: an id the new run has not chosen yet (wait for it first).
    """
    if not ids or not isinstance(message, str):
        return message
    for old, kind, rank in ids:
        new = progress.id_at(kind, rank)
        if new is None:
            raise LookupError(f"the new run has no {kind} #{rank} yet (recorded {old})")
        if new != old:
            replacement = orjson.dumps(new).decode()
            token = re.compile(r'("event_id"\s*:\s*)?' + re.escape(orjson.dumps(old).decode()))
            # the client's own event_id is never a server's id, whatever it looks like
            message = token.sub(functools.partial(_swap, replacement), message)
    return message


def _swap(replacement: str, match: re.Match[str]) -> str:
    return match[0] if match[1] else replacement
