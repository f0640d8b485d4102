"""The reducer: a pure fold of the log's rows into a ``ConversationState``.

``apply(state, record)`` and ``fold(state, records)`` never change ``state``; they return a new
one. The protocol knowledge they use is in ``_rules.py``; this module is the mechanism.

How it stays fast. A voice session is mostly audio deltas and appends (about 40 events per
second of conversation), and building a typed event costs a few microseconds. So:

- The rows of hot event types take a fast path that never builds a typed event: an append
  needs only its ``AudioSpan`` and ``event_id`` columns; an audio delta its ``item_id``,
  ``response_id`` and ``AudioSpan`` columns plus the content index, read from the payload
  text; a text delta decodes its small payload with orjson. Any row a fast path does not
  fully understand goes down the typed path, so both give one result.
- Rows may come as ``FrameColumns`` (one list per column, what a log reader gives): then
  ``feed_columns`` takes the same fast paths straight from the lists, and builds a
  ``FrameRecord`` only for a row that leaves them, which then goes exactly the way
  ``feed_all`` sends it. Building a record per row costs more than folding it.
- A fold works on a private mutable draft and freezes once at the end (the model is Immer's
  ``produce`` and Clojure's transients; STYLE.md principle 1 asks for ``attrs.evolve`` per
  event, which would rebuild item, part and state for every 20 ms of audio). Deltas go to
  per-item accumulators that are merged into the frozen item when something else touches it,
  and at the end. ``apply(s, e) == fold(s, [e])``, and folding in any split gives the same
  state as folding at once: the Hypothesis tests check exactly that.

Every other event goes through the schema's lenient parser (what
``rtrec.schemas.from_json(payload, lenient=True)`` does) and one handler per event class
(beta classes subclass their GA class, so one handler serves both). An event the schema does
not know is counted, never fatal.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

import attrs
import orjson

from rtrec.replay import _rules as rules
from rtrec.replay._rules import AnomalyKind, Ordering, Predecessor
from rtrec.replay._state import (
    Anomaly,
    AudioRef,
    ClientEventRef,
    ConversationState,
    ErrorRecord,
    InputBuffer,
    InputRun,
    Item,
    Part,
    Placement,
    ResponseState,
    TextValue,
    Transcription,
)
from rtrec.schemas import events as ev
from rtrec.schemas.base import (
    UNSET,
    ClientEvent,
    Event,
    ServerEvent,
    UnknownEvent,
    Unset,
)
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.converter import event_types, from_dict
from rtrec.schemas.objects import BetaSession, BetaTranscriptionSession
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

__all__ = ["INITIAL", "apply", "fold", "order_items"]

#: The state before the first event.
INITIAL: Final = ConversationState()

_AUDIO_DELTA_TYPES: Final = rules.AUDIO_DELTA_TYPES
_TEXT_DELTA_FIELDS: Final[dict[str, str]] = dict(rules.TEXT_DELTA_FIELDS)  # dict: faster `in`
_APPEND: Final = "input_audio_buffer.append"
_CONTENT_INDEX: Final = '"content_index":'
_CONTENT_INDEX_VALUE: Final = re.compile(r'"content_index":\s*(\d+)\s*[,}]')
_DIGITS: Final = "0123456789"


# --------------------------------------------------------------------------- small helpers


class _Keep(enum.Enum):
    """The type of ``_KEEP``: "this event does not place the item"."""

    KEEP = "KEEP"


_KEEP: Final = _Keep.KEEP
_MISSING: Final = object()


def _content_index(payload: str) -> int | None:
    """The ``content_index`` of an audio delta's payload, read from the text without
    decoding it: the key must be there exactly once, with an integer value. None: let the
    JSON parser decide."""
    at = payload.find(_CONTENT_INDEX)
    if at < 0:
        return None
    start = at + 16
    digits = payload[start : start + 2]
    if len(digits) == 2 and digits[0] in _DIGITS and digits[1] in ",}":
        index = ord(digits[0]) - 48  # one digit, the usual case: no regex
    else:
        match = _CONTENT_INDEX_VALUE.match(payload, at)
        if match is None:
            return None
        index = int(match[1])
    if payload.find(_CONTENT_INDEX, start) >= 0:  # nested somewhere: let JSON decide
        return None
    return index


def _str(value: Any) -> str | None:
    return value if value.__class__ is str else None


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def _frozen(value: Any) -> Any:
    """A JSON value with every object made read-only and every array a tuple, so that what
    the state holds cannot be changed behind its back."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _concat_audio(head: tuple[AudioRef, ...], tail: list[AudioRef]) -> tuple[AudioRef, ...]:
    """``head + tail``, merging the stretches that meet (contiguous in the same stream)."""
    if not tail:
        return head
    if head:
        last, first = head[-1], tail[0]
        if (
            last.stream == first.stream
            and last.sample_rate == first.sample_rate
            and last.end == first.offset
        ):
            merged = attrs.evolve(last, samples=last.samples + first.samples)
            return (*head[:-1], merged, *tail[1:])
    return (*head, *tail)


class _AudioAcc:
    """Audio of one part gathered during a fold: closed stretches plus one open stretch."""

    __slots__ = ("closed", "offset", "rate", "samples", "stream")

    def __init__(self) -> None:
        self.closed: list[AudioRef] = []
        self.stream: Stream | None = None
        self.rate = 0
        self.offset = 0
        self.samples = 0

    def add(self, span: AudioSpan) -> None:
        self.extend(span.stream, span.sample_rate, span.offset, span.samples)

    def extend(self, stream: Stream, rate: int, offset: int, samples: int) -> None:
        """Add the audio of one delta: ``samples`` at ``offset`` of a stream and rate."""
        if stream == self.stream and rate == self.rate and self.offset + self.samples == offset:
            self.samples += samples
            return
        if self.stream is not None:
            self.closed.append(
                AudioRef(
                    stream=self.stream,
                    sample_rate=self.rate,
                    offset=self.offset,
                    samples=self.samples,
                )
            )
        self.stream, self.rate, self.offset, self.samples = stream, rate, offset, samples

    def refs(self) -> list[AudioRef]:
        if self.stream is None:
            return list(self.closed)
        return [
            *self.closed,
            AudioRef(
                stream=self.stream, sample_rate=self.rate, offset=self.offset, samples=self.samples
            ),
        ]


class _ItemAcc:
    """Everything deltas added to one item during a fold, not yet merged into the item."""

    __slots__ = ("args", "audio", "text")

    def __init__(self) -> None:
        self.audio: dict[int, _AudioAcc] = {}
        #: (content_index, "text" | "transcript") -> chunks; None: the text is final, drop
        self.text: dict[tuple[int, str], list[str] | None] = {}
        self.args: list[str] | None = None


def _slice_input(
    runs: list[InputRun], from_ms: float, to_ms: float
) -> tuple[tuple[AudioRef, ...], bool]:
    """The archived audio between two points of the input timeline, and whether the points
    lie beyond the audio the log holds."""
    end = runs[-1].end_ms if runs else 0.0
    out: list[AudioRef] = []
    for run in runs:
        lo, hi = max(from_ms, run.start_ms), min(to_ms, run.end_ms)
        if hi <= lo:
            continue
        a = round((lo - run.start_ms) * run.sample_rate / 1000)
        b = min(round((hi - run.start_ms) * run.sample_rate / 1000), run.samples)
        if b > a:
            out.append(
                AudioRef(
                    stream=run.stream,
                    sample_rate=run.sample_rate,
                    offset=run.offset + a,
                    samples=b - a,
                )
            )
    # a millisecond of slack: the service states offsets in whole milliseconds
    return tuple(out), to_ms > end + 1 or from_ms > end + 1


# --------------------------------------------------------------------------- ordering


def order_items(items: Mapping[str, Item]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Conversation order from the placements, and the orphans among the placed items.

    The conversation is a linked list (PROTOCOL.md §4.2): an item placed after P goes right
    after P, ahead of items placed after P earlier. So the order is a depth-first walk from
    the root (``previous_item_id`` null) visiting each item's successors newest first.
    Deleted items are walked (their successors keep their place) but not listed. Items
    whose predecessor the log never placed (a log that starts mid-session) follow, oldest
    first, and are the orphans; anything still unvisited (a cycle in a malformed log) last.
    """
    placed = {i.id: i for i in items.values() if i.placement is not None}
    children: dict[str | None, list[Item]] = {}
    orphan_roots: list[Item] = []
    for item in placed.values():
        assert item.placement is not None
        prev = item.placement.previous_item_id
        if prev is not None and prev not in placed:
            orphan_roots.append(item)
        else:
            children.setdefault(prev, []).append(item)
    for kids in children.values():
        kids.sort(key=lambda i: i.placement.seq if i.placement else 0, reverse=True)

    order: list[str] = []
    seen: set[str] = set()

    def walk(start: Item) -> None:
        stack = [start]
        while stack:
            item = stack.pop()
            if item.id in seen:
                continue
            seen.add(item.id)
            if item.deleted_seq is None:
                order.append(item.id)
            # reversed, so that the newest successor is popped (and listed) first
            stack.extend(reversed(children.get(item.id, ())))

    for root in children.get(None, ()):
        walk(root)
    orphan_roots.sort(key=lambda i: i.placement.seq if i.placement else 0)
    for root in orphan_roots:
        walk(root)
    orphans = [i.id for i in orphan_roots if i.deleted_seq is None]
    for item in sorted(placed.values(), key=lambda i: i.placement.seq if i.placement else 0):
        if item.id not in seen:
            orphans.append(item.id)
            walk(item)
    return tuple(order), tuple(orphans)


# --------------------------------------------------------------------------- the draft


class _Draft:
    """A mutable working copy of a state: what ``fold`` changes in place, then freezes.

    Nothing here is shared with the state it started from or with a state it froze: frozen
    values are replaced, never changed, and the dicts are copies.
    """

    __slots__ = (
        "acc",
        "anomalies",
        "binary_frames",
        "clears_pending",
        "client_events",
        "commits",
        "conversation_id",
        "created_audio",
        "created_audio_queue",
        "delta_seen",
        "errors",
        "events",
        "invalid_frames",
        "items",
        "marks",
        "new_client_events",
        "order",
        "order_dirty",
        "orphans",
        "pending_from",
        "playback",
        "protocol",
        "rate_limits",
        "rate_limits_seq",
        "responses",
        "run_offset",
        "run_rate",
        "run_samples",
        "run_start",
        "run_stream",
        "runs",
        "seq",
        "session",
        "session_seq",
        "session_started",
        "speech",
        "t_ns",
        "unarchived_audio",
        "unknown_types",
    )

    def __init__(self, base: ConversationState) -> None:
        self.seq = base.seq
        self.t_ns = base.t_ns
        self.events = base.events
        self.protocol = base.protocol
        self.session_started = base.session_started
        self.session = base.session
        self.session_seq = base.session_seq
        self.conversation_id = base.conversation_id
        self.items: dict[str, Item] = dict(base.items)
        self.order: list[str] = list(base.order)
        self.orphans: list[str] = list(base.orphans)
        self.order_dirty = False
        self.responses: dict[str, ResponseState] = dict(base.responses)
        self.errors = list(base.errors)
        self.rate_limits = base.rate_limits
        self.rate_limits_seq = base.rate_limits_seq
        self.playback = dict(base.playback)
        self.unknown_types = dict(base.unknown_types)
        self.marks = dict(base.marks)
        self.binary_frames = base.binary_frames
        self.unarchived_audio = base.unarchived_audio
        self.invalid_frames = list(base.invalid_frames)
        self.anomalies = list(base.anomalies)
        self.client_events = base.client_events
        #: client events of this fold by event_id: (seq, t_ns, type), tuples being cheaper
        #: than ClientEventRef for the thousands of appends a voice client may stamp
        self.new_client_events: dict[str, tuple[int, int, str]] = {}
        self.acc: dict[str, _ItemAcc] = {}
        #: responses known to have their first delta time (a cache of the hot check)
        self.delta_seen: set[str] = set()

        inp = base.input
        self.runs = list(inp.runs)
        # the last run stays open: appends that continue it only add samples
        last = self.runs.pop() if self.runs else None
        self.run_start = last.start_ms if last else 0.0
        self.run_stream: Stream | None = last.stream if last else None
        self.run_rate = last.sample_rate if last else 0
        self.run_offset = last.offset if last else 0
        self.run_samples = last.samples if last else 0
        self.pending_from = inp.pending_from_ms
        self.speech = dict(inp.speech)
        self.commits = list(inp.commits)
        self.clears_pending = inp.clears_pending
        self.created_audio = dict(inp.created_audio)
        self.created_audio_queue = list(inp.created_audio_queue)

    # ------------------------------------------------------------------ feeding

    def feed_all(self, records: Iterable[FrameRecord]) -> None:
        """Apply rows of the log, in order.

        This loop is where a voice session spends its time, so appends are handled inline
        and the deltas' fast paths are tried before anything is parsed. Comparisons use
        ``==``, not ``is``: a reader may hand over the enums' plain string values.
        """
        text, server, client = FrameKind.TEXT, Direction.SERVER, Direction.CLIENT
        audio_types, text_fields = _AUDIO_DELTA_TYPES, _TEXT_DELTA_FIELDS
        new_events = self.new_client_events
        count = 0
        last: FrameRecord | None = None
        for rec in records:
            count += 1
            last = rec
            payload = rec.payload
            if rec.kind == text and payload is not None:
                name = rec.type
                direction = rec.direction
                if direction == server:
                    if name in audio_types:
                        if self._fast_audio_delta(rec, payload):
                            continue
                    elif name in text_fields and self._fast_text_delta(
                        rec, payload, text_fields[name]
                    ):
                        continue
                elif name == _APPEND and direction == client:
                    event_id = rec.event_id
                    if event_id is not None:
                        new_events[event_id] = (rec.seq, rec.t_ns, _APPEND)
                    self._append(rec)
                    continue
            self._feed_other(rec)
        if last is not None:
            self.events += count
            self.seq, self.t_ns = last.seq, last.t_ns

    def feed_columns(self, cols: FrameColumns, start: int, stop: int) -> None:
        """Apply rows ``start:stop`` of a session's columns, in order.

        Exactly what ``feed_all(cols[start:stop])`` does, without a ``FrameRecord`` for the
        rows that take the hot paths: an append, and an audio or text delta to a part
        already open whose response has its first delta time. Every other row, and any case
        these paths do not settle, is built as a record and goes the way ``feed_all`` sends
        it, so the two share every rule.
        """
        if stop <= start:
            return
        text, server, client = FrameKind.TEXT, Direction.SERVER, Direction.CLIENT
        audio_types, text_fields = _AUDIO_DELTA_TYPES, _TEXT_DELTA_FIELDS
        new_events, accs, delta_seen = self.new_client_events, self.acc, self.delta_seen
        kinds, payloads, names, directions = cols.kind, cols.payload, cols.type, cols.direction
        seqs, times, event_ids = cols.seq, cols.t_ns, cols.event_id
        item_ids, response_ids, streams = cols.item_id, cols.response_id, cols.audio_stream
        # set on every row whose audio_stream is (a FrameColumns invariant)
        offsets = cast(Sequence[int], cols.audio_offset)
        counts = cast(Sequence[int], cols.audio_samples)
        rates = cast(Sequence[int], cols.audio_rate)
        loads, decode_error, content_index = orjson.loads, orjson.JSONDecodeError, _content_index
        for i in range(start, stop):
            payload = payloads[i]
            if kinds[i] == text and payload is not None:
                name = names[i]
                direction = directions[i]
                if direction == server:
                    if name in audio_types:
                        item_id = item_ids[i]
                        index = None if item_id is None else content_index(payload)
                        if item_id is None or index is None:
                            rec = cols.record(i)
                            if not self._parsed_audio_delta(rec, payload):
                                self._feed_other(rec)
                            continue
                        response_id = response_ids[i]
                        stream = streams[i]
                        if stream is not None and (
                            response_id is None or response_id in delta_seen
                        ):
                            acc = accs.get(item_id)
                            audio = acc.audio.get(index) if acc is not None else None
                            if audio is not None:
                                # _AudioAcc.extend, its usual case inlined: contiguous
                                offset = offsets[i]
                                if (
                                    offset == audio.offset + audio.samples
                                    and stream == audio.stream
                                    and rates[i] == audio.rate
                                ):
                                    audio.samples += counts[i]
                                else:
                                    audio.extend(stream, rates[i], offset, counts[i])
                                continue
                        self._audio_delta(cols.record(i), item_id, index, response_id)
                        continue
                    if name in text_fields:
                        field = text_fields[name]
                        try:
                            obj = loads(payload)
                        except decode_error:
                            obj = None
                        if obj.__class__ is dict:
                            item_id = obj.get("item_id")
                            index = obj.get("content_index")
                            delta = obj.get("delta")
                            if (
                                item_id.__class__ is str
                                and index.__class__ is int
                                and delta.__class__ is str
                            ):
                                response_id = _str(obj.get("response_id"))
                                if response_id is None or response_id in delta_seen:
                                    acc = accs.get(item_id)
                                    chunks = (
                                        _MISSING
                                        if acc is None
                                        else acc.text.get((index, field), _MISSING)
                                    )
                                    if chunks is None:  # the text is final: drop
                                        continue
                                    if chunks is not _MISSING:
                                        cast(list[str], chunks).append(delta)
                                        continue
                                self._text_delta(
                                    cols.record(i), item_id, index, field, delta, response_id
                                )
                                continue
                elif name == _APPEND and direction == client:
                    event_id = event_ids[i]
                    if event_id is not None:
                        new_events[event_id] = (seqs[i], times[i], _APPEND)
                    stream = streams[i]
                    if stream is None:
                        self.unarchived_audio += 1
                    elif (
                        offsets[i] == self.run_offset + self.run_samples
                        and rates[i] == self.run_rate
                        and stream == self.run_stream
                    ):
                        self.run_samples += counts[i]
                    else:
                        span = cols.record(i).audio
                        assert span is not None
                        self._new_run(span)
                    continue
            self._feed_other(cols.record(i))
        self.events += stop - start
        self.seq, self.t_ns = seqs[stop - 1], times[stop - 1]

    def _feed_other(self, rec: FrameRecord) -> None:
        """Everything but the fast paths: marks, binary and invalid frames, typed events."""
        if rec.kind != FrameKind.TEXT:
            if rec.kind == FrameKind.BINARY:
                self.binary_frames += 1
            else:
                key = rec.type or "?"
                self.marks[key] = self.marks.get(key, 0) + 1
            return
        if rec.direction == Direction.RECORDER:
            key = rec.type or "?"
            self.marks[key] = self.marks.get(key, 0) + 1
            return
        # ``parse_error`` is not a verdict: the recorder also sets it on a valid event whose
        # audio it could not archive. Whether the payload is JSON decides.
        payload = rec.payload
        if payload is None:
            self.invalid_frames.append(rec.seq)
            return
        # what rtrec.schemas.from_json(payload, lenient=True) does, keeping the decoded
        # object: handlers read nested objects from it rather than unstructure typed ones
        # back (the raw frame is the truth, STYLE.md principle 4)
        try:
            raw = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.invalid_frames.append(rec.seq)
            return
        if raw.__class__ is not dict:
            self.invalid_frames.append(rec.seq)
            return
        self._typed(rec, from_dict(raw, lenient=True), raw)

    def _typed(self, rec: FrameRecord, event: Event, raw: dict[str, Any]) -> None:
        if isinstance(event, UnknownEvent):
            self.unknown_types[event.type] = self.unknown_types.get(event.type, 0) + 1
            return
        if self.protocol is None:
            if event.type in rules.GA_ONLY_EVENT_TYPES:
                self.protocol = "ga"
            elif event.type in rules.BETA_EVENT_NAMES:
                self.protocol = "beta"
        if isinstance(event, ClientEvent):
            if rec.direction != Direction.CLIENT:
                self._anomaly(rec, AnomalyKind.WRONG_DIRECTION, f"client event {event.type}")
                return
            event_id = _str(event.event_id)
            if event_id is not None:
                self.new_client_events[event_id] = (rec.seq, rec.t_ns, event.type)
        elif isinstance(event, ServerEvent) and rec.direction != Direction.SERVER:
            self._anomaly(rec, AnomalyKind.WRONG_DIRECTION, f"server event {event.type}")
            return
        handler = _DISPATCH.get(type(event))
        if handler is not None:
            handler(self, rec, event, raw)

    def _anomaly(self, rec: FrameRecord, kind: AnomalyKind, detail: str) -> None:
        self.anomalies.append(Anomaly(seq=rec.seq, kind=kind, detail=detail))

    # ------------------------------------------------------------------ fast paths

    def _fast_audio_delta(self, rec: FrameRecord, payload: str) -> bool:
        # The row's columns name the item and response; the content index is read straight
        # from the text if it is there exactly once as an integer (one digit: no regex).
        # Anything else takes the parsing path.
        item_id = rec.item_id
        index = None if item_id is None else _content_index(payload)
        if item_id is None or index is None:
            return self._parsed_audio_delta(rec, payload)
        self._audio_delta(rec, item_id, index, rec.response_id)
        return True

    def _parsed_audio_delta(self, rec: FrameRecord, payload: str) -> bool:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if obj.__class__ is not dict:
            return False
        item_id = obj.get("item_id")
        index = obj.get("content_index")
        response_id = obj.get("response_id")
        if item_id.__class__ is not str or index.__class__ is not int:
            return False
        self._audio_delta(rec, item_id, index, _str(response_id))
        return True

    def _fast_text_delta(self, rec: FrameRecord, payload: str, field: str) -> bool:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if obj.__class__ is not dict:
            return False
        item_id = obj.get("item_id")
        index = obj.get("content_index")
        delta = obj.get("delta")
        if item_id.__class__ is not str or index.__class__ is not int:
            return False
        if delta.__class__ is not str:
            return False
        self._text_delta(rec, item_id, index, field, delta, _str(obj.get("response_id")))
        return True

    # ------------------------------------------------------------------ deltas

    def _audio_delta(
        self, rec: FrameRecord, item_id: str, index: int, response_id: str | None
    ) -> None:
        if response_id is not None and response_id not in self.delta_seen:
            self._first_delta(rec, response_id)
        span = rec.audio
        if span is None:
            self.unarchived_audio += 1
            return
        acc = self.acc.get(item_id)
        audio = acc.audio.get(index) if acc is not None else None
        if audio is None:
            self._ensure_part(rec, item_id, index, "audio", response_id)
            acc = self.acc.get(item_id)
            if acc is None:
                acc = self.acc[item_id] = _ItemAcc()
            audio = acc.audio[index] = _AudioAcc()
        audio.add(span)

    def _text_delta(
        self,
        rec: FrameRecord,
        item_id: str,
        index: int,
        field: str,
        delta: str,
        response_id: str | None,
    ) -> None:
        if response_id is not None and response_id not in self.delta_seen:
            self._first_delta(rec, response_id)
        acc = self.acc.get(item_id)
        key = (index, field)
        if acc is None or key not in acc.text:
            part = self._ensure_part(rec, item_id, index, field, response_id)
            acc = self.acc.get(item_id)
            if acc is None:
                acc = self.acc[item_id] = _ItemAcc()
            value: TextValue = getattr(part, field)
            acc.text[key] = None if value.final is not None else []
        chunks = acc.text[key]
        if chunks is not None:
            chunks.append(delta)

    def _args_delta(
        self, rec: FrameRecord, item_id: str, delta: str, response_id: str | None, kind: str
    ) -> None:
        if response_id is not None and response_id not in self.delta_seen:
            self._first_delta(rec, response_id)
        acc = self.acc.get(item_id)
        if acc is None or acc.args is None:
            item = self.items.get(item_id)  # without a flush, as in _ensure_part
            if item is None:
                self._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"arguments for {item_id}")
                item = self._new_item(
                    rec, item_id, type=kind, response_id=response_id, origin="response"
                )
                self.items[item_id] = item
            if item.arguments.final is not None:
                return
            acc = self.acc.get(item_id)
            if acc is None:
                acc = self.acc[item_id] = _ItemAcc()
            acc.args = []
        acc.args.append(delta)

    def _first_delta(self, rec: FrameRecord, response_id: str) -> None:
        resp = self._response(rec, response_id)
        if resp.first_delta_t_ns is None:
            self.responses[response_id] = attrs.evolve(resp, first_delta_t_ns=rec.t_ns)
        self.delta_seen.add(response_id)

    def _ensure_part(
        self, rec: FrameRecord, item_id: str, index: int, field: str, response_id: str | None
    ) -> Part:
        """The part a delta addresses; a shell item and part when the log has none yet
        (deltas may come before their item, PROTOCOL.md §8).

        It reads the item without merging its pending deltas: opening one accumulator must
        not flush the others, or interleaved audio and transcript deltas would rebuild the
        item at every step. Adding a part or a response id does not touch what is pending.
        """
        item = self.items.get(item_id)
        if item is None:
            self._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"{field} delta for {item_id}")
            item = self._new_item(
                rec,
                item_id,
                type="message",
                role="assistant",
                response_id=response_id,
                origin="response",
            )
        part = item.part(index)
        if part is None:
            part = Part(index=index, type=rules.DELTA_PART_TYPES[field])
            item = _with_part(item, part)
        if item.response_id is None and response_id is not None:
            item = attrs.evolve(item, response_id=response_id)
        self.items[item_id] = item
        return part

    # ------------------------------------------------------------------ items

    def _item(self, item_id: str) -> Item | None:
        """The item with every pending delta merged in (None if the log has not shown it)."""
        if item_id in self.acc:
            self._flush(item_id)
        return self.items.get(item_id)

    def _new_item(
        self,
        rec: FrameRecord,
        item_id: str,
        *,
        type: str | None = None,
        role: str | None = None,
        response_id: str | None = None,
        origin: str | None = None,
    ) -> Item:
        return Item(
            id=item_id,
            type=type,
            role=role,
            response_id=response_id,
            origin=origin,
            first_seq=rec.seq,
            first_t_ns=rec.t_ns,
        )

    def _item_or_new(self, rec: FrameRecord, item_id: str, **kwargs: Any) -> Item:
        item = self._item(item_id)
        return item if item is not None else self._new_item(rec, item_id, **kwargs)

    def _flush(self, item_id: str) -> None:
        acc = self.acc.pop(item_id)
        item = self.items[item_id]
        parts = {p.index: p for p in item.parts}
        for index, audio in acc.audio.items():
            part = parts[index]
            parts[index] = attrs.evolve(part, audio=_concat_audio(part.audio, audio.refs()))
        for (index, field), chunks in acc.text.items():
            if not chunks:
                continue
            part = parts[index]
            value: TextValue = getattr(part, field)
            grown = attrs.evolve(value, deltas=(value.deltas or "") + "".join(chunks))
            parts[index] = _set_text(part, field, grown)
        changes: dict[str, Any] = {"parts": tuple(parts[i] for i in sorted(parts))}
        if acc.args:
            args = item.arguments
            changes["arguments"] = attrs.evolve(
                args, deltas=(args.deltas or "") + "".join(acc.args)
            )
        self.items[item_id] = attrs.evolve(item, **changes)

    def _merge_snapshot(
        self,
        rec: FrameRecord,
        data: Any,
        *,
        response_id: str | None = None,
        origin: str | None = None,
        place: str | Unset | _Keep | None = _KEEP,
    ) -> Item | None:
        """Merge an item as an event states it (its JSON object) into the rebuilt item.

        PROTOCOL.md §8: merge, never overwrite accumulated audio or non-null text with nulls.
        ``place`` is the event's ``previous_item_id`` when the event places the item (see
        ``PREDECESSOR_RULES``); the item is placed if it is not already, in the same step.
        """
        if not isinstance(data, dict):
            self._anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type}: item is not an object")
            return None
        item_id = _str(data.get("id"))
        if item_id is None:
            self._anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type}: item without an id")
            return None
        item = self._item_or_new(rec, item_id)
        changes: dict[str, Any] = {}
        for key in ("type", "role", "name", "call_id", "output"):
            value = _str(data.get(key))
            if value is not None and value != getattr(item, key):
                changes[key] = value
        status = rules.final_status(item.status, _str(data.get("status")))
        if status != item.status:
            changes["status"] = status
        arguments = _str(data.get("arguments"))
        if arguments is not None and arguments != item.arguments.snapshot:
            changes["arguments"] = attrs.evolve(item.arguments, snapshot=arguments)
        if item.response_id is None and response_id is not None:
            changes["response_id"] = response_id
        if item.origin is None and origin is not None:
            changes["origin"] = origin
        content = data.get("content")
        if isinstance(content, list) and content:
            parts = {p.index: p for p in item.parts}
            for index, raw in enumerate(content):
                if isinstance(raw, dict):
                    parts[index] = _merge_part(parts.get(index) or Part(index=index), raw)
            merged = tuple(parts[i] for i in sorted(parts))
            if merged != item.parts:
                changes["parts"] = merged
        fields = {k: v for k, v in data.items() if k not in _ITEM_KEYS}
        if fields and any(item.fields.get(k, _MISSING) != v for k, v in fields.items()):
            changes["fields"] = _frozen({**item.fields, **fields})
        placed: str | _Keep | None = _KEEP
        if not isinstance(place, _Keep) and item.placement is None and item.deleted_seq is None:
            previous = place if place is not UNSET else item.declared_previous
            placed = self._predecessor(rec, item_id, previous)
            changes["placement"] = Placement(previous_item_id=placed, seq=rec.seq)
        if changes:
            item = attrs.evolve(item, **changes)
        self.items[item_id] = item
        if not isinstance(placed, _Keep):
            self._note_placed(item_id, placed)
        return item

    def _predecessor(
        self, rec: FrameRecord, item_id: str, previous: str | Unset | None
    ) -> str | None:
        """The item a declared predecessor puts ``item_id`` after (``Predecessor`` rules)."""
        kind = rules.predecessor(previous, isinstance(previous, str) and self._placed(previous))
        if kind is Predecessor.APPEND:
            return self._last_item()
        if kind is Predecessor.UNKNOWN:
            self._anomaly(
                rec, AnomalyKind.UNKNOWN_PREDECESSOR, f"{item_id} after unknown {previous}"
            )
        return previous if isinstance(previous, str) else None

    def _note_placed(self, item_id: str, previous: str | None) -> None:
        # The common case, appending after the last item, needs no walk: the walk would list
        # the new item right after its predecessor, which is last.
        if (
            not self.order_dirty
            and not self.orphans
            and previous == (self.order[-1] if self.order else None)
        ):
            self.order.append(item_id)
        else:
            self.order_dirty = True

    def _placed(self, item_id: str) -> bool:
        item = self.items.get(item_id)
        return item is not None and item.placement is not None

    def _last_item(self) -> str | None:
        self._settle_order()
        return self.order[-1] if self.order else None

    def _settle_order(self) -> None:
        if self.order_dirty:
            order, orphans = order_items(self.items)
            self.order, self.orphans = list(order), list(orphans)
            self.order_dirty = False

    def _attach_created_audio(self, item: Item) -> Item:
        """Give a user item the audio of the ``conversation.item.create`` that made it (by the
        id the client chose, else the oldest such create without an id; PROTOCOL.md §8)."""
        if item.role != "user" or item.origin is not None:
            return item
        if not any(p.type == "input_audio" for p in item.parts):
            return item
        found = self.created_audio.pop(item.id, None)
        if found is None and self.created_audio_queue:
            found = self.created_audio_queue.pop(0)
        if found is None:
            return item
        index, refs = found
        part = item.part(index) or Part(index=index, type="input_audio")
        item = _with_part(item, attrs.evolve(part, audio=refs))
        return attrs.evolve(item, origin="client")

    # ------------------------------------------------------------------ responses

    def _response(
        self, rec: FrameRecord, response_id: str, *, announce: bool = False
    ) -> ResponseState:
        resp = self.responses.get(response_id)
        if resp is None:
            if not announce:
                self._anomaly(rec, AnomalyKind.RESPONSE_NOT_SEEN, response_id)
            resp = self.responses[response_id] = ResponseState(id=response_id, first_seq=rec.seq)
        return resp

    def _merge_response(self, rec: FrameRecord, data: Any, *, done: bool) -> ResponseState | None:
        response_id = _str(data.get("id")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or response_id is None:
            self._anomaly(rec, AnomalyKind.MALFORMED, "response without an id")
            return None
        resp = self._response(rec, response_id, announce=not done)
        changes: dict[str, Any] = {}
        status = rules.final_status(resp.status, _str(data.get("status")))
        if status != resp.status:
            changes["status"] = status
        for key in ("status_details", "usage", "metadata"):
            value = data.get(key)
            if isinstance(value, dict):
                changes[key] = _frozen(value)
        conversation_id = _str(data.get("conversation_id"))
        if conversation_id is not None:
            changes["conversation_id"] = conversation_id
        output = data.get("output")
        if isinstance(output, list) and output:
            ids = [_str(o.get("id")) for o in output if isinstance(o, dict)]
            changes["output"] = tuple(i for i in ids if i is not None)
        params = {k: v for k, v in data.items() if k not in _RESPONSE_KEYS}
        if params:
            changes["params"] = _frozen({**resp.params, **params})
        if done:
            changes["done_seq"], changes["done_t_ns"] = rec.seq, rec.t_ns
        elif resp.created_seq is None:
            changes["created_seq"], changes["created_t_ns"] = rec.seq, rec.t_ns
        resp = attrs.evolve(resp, **changes)
        self.responses[response_id] = resp
        if isinstance(output, list):
            for snap_item in output:
                self._merge_snapshot(rec, snap_item, response_id=response_id, origin="response")
        return resp

    # ------------------------------------------------------------------ input audio

    def _appended_ms(self) -> float:
        if self.run_stream is None:
            return self.run_start
        return self.run_start + self.run_samples * 1000 / self.run_rate

    def _append(self, rec: FrameRecord) -> None:
        """Extend the open run of input audio by an append's span, or open a new run."""
        span = rec.audio
        if span is None:
            self.unarchived_audio += 1
        elif (
            span.offset == self.run_offset + self.run_samples
            and span.sample_rate == self.run_rate
            and span.stream == self.run_stream
        ):
            self.run_samples += span.samples
        else:
            self._new_run(span)

    def _new_run(self, span: AudioSpan) -> None:
        """Close the open run of input audio and open one at ``span``."""
        if self.run_stream is not None:
            self.runs.append(self._open_run())
            self.run_start = self._appended_ms()
        self.run_stream, self.run_rate = span.stream, span.sample_rate
        self.run_offset, self.run_samples = span.offset, span.samples

    def _open_run(self) -> InputRun:
        assert self.run_stream is not None
        return InputRun(
            start_ms=self.run_start,
            stream=self.run_stream,
            sample_rate=self.run_rate,
            offset=self.run_offset,
            samples=self.run_samples,
        )

    def _all_runs(self) -> list[InputRun]:
        return [*self.runs, self._open_run()] if self.run_stream is not None else self.runs

    def _slice(self, rec: FrameRecord, from_ms: float, to_ms: float) -> tuple[AudioRef, ...]:
        refs, out_of_range = _slice_input(self._all_runs(), from_ms, to_ms)
        if out_of_range:
            self._anomaly(
                rec,
                AnomalyKind.AUDIO_OUT_OF_RANGE,
                f"{from_ms:g}-{to_ms:g} ms of {self._appended_ms():g} ms appended",
            )
        return refs

    # ------------------------------------------------------------------ freezing

    def freeze(self) -> ConversationState:
        """The state as it stands; the draft stays usable."""
        for item_id in list(self.acc):
            self._flush(item_id)
        self._settle_order()
        self.client_events = self.client_events.with_layer(self.new_client_events)
        self.new_client_events = {}
        return ConversationState(
            seq=self.seq,
            t_ns=self.t_ns,
            events=self.events,
            protocol=self.protocol,
            session_started=self.session_started,
            session=self.session,
            session_seq=self.session_seq,
            conversation_id=self.conversation_id,
            items=MappingProxyType(dict(self.items)),
            order=tuple(self.order),
            orphans=tuple(self.orphans),
            responses=MappingProxyType(dict(self.responses)),
            input=InputBuffer(
                runs=tuple(self._all_runs()),
                pending_from_ms=self.pending_from,
                speech=MappingProxyType(dict(self.speech)),
                commits=tuple(self.commits),
                clears_pending=self.clears_pending,
                created_audio=MappingProxyType(dict(self.created_audio)),
                created_audio_queue=tuple(self.created_audio_queue),
            ),
            errors=tuple(self.errors),
            rate_limits=self.rate_limits,
            rate_limits_seq=self.rate_limits_seq,
            playback=MappingProxyType(dict(self.playback)),
            unknown_types=MappingProxyType(dict(self.unknown_types)),
            marks=MappingProxyType(dict(self.marks)),
            binary_frames=self.binary_frames,
            unarchived_audio=self.unarchived_audio,
            invalid_frames=tuple(self.invalid_frames),
            anomalies=tuple(self.anomalies),
            client_events=self.client_events,
        )


_ITEM_KEYS: Final = frozenset(
    {"id", "object", "type", "role", "status", "content", "name", "call_id", "arguments", "output"}
)
_PART_KEYS: Final = frozenset({"type", "text", "transcript", "audio"})
_RESPONSE_KEYS: Final = frozenset(
    {"id", "object", "status", "status_details", "usage", "metadata", "conversation_id", "output"}
)


def _with_part(item: Item, part: Part) -> Item:
    parts = {p.index: p for p in item.parts}
    parts[part.index] = part
    return attrs.evolve(item, parts=tuple(parts[i] for i in sorted(parts)))


def _set_text(part: Part, field: str, value: TextValue) -> Part:
    if field == "text":
        return attrs.evolve(part, text=value)
    return attrs.evolve(part, transcript=value)


def _merge_part(part: Part, raw: Mapping[str, Any]) -> Part:
    """A part with a snapshot of it (its JSON object) merged in; the same part if the
    snapshot says nothing new."""
    changes: dict[str, Any] = {}
    kind = _str(raw.get("type"))
    if kind is not None:
        kind = rules.PART_TYPE_ALIASES.get(kind, kind)
        if kind != part.type:
            changes["type"] = kind
    for field in ("text", "transcript"):
        value = _str(raw.get(field))
        current: TextValue = getattr(part, field)
        if value is not None and value != current.snapshot:
            changes[field] = attrs.evolve(current, snapshot=value)
    fields = {k: v for k, v in raw.items() if k not in _PART_KEYS}
    if fields and any(part.fields.get(k, _MISSING) != v for k, v in fields.items()):
        changes["fields"] = _frozen({**part.fields, **fields})
    return attrs.evolve(part, **changes) if changes else part


# --------------------------------------------------------------------------- handlers

_Handler = Callable[[_Draft, FrameRecord, Any, dict[str, Any]], None]
_HANDLERS: dict[type[Event], _Handler] = {}
_F = TypeVar("_F", bound=Callable[..., None])


def _handles(*classes: type[Event]) -> Callable[[_F], _F]:
    """Register the decorated function as the handler of ``classes`` (and their subclasses,
    unless a subclass has its own)."""

    def register(fn: _F) -> _F:
        for cls in classes:
            _HANDLERS[cls] = fn
        return fn

    return register


def _required_str(d: _Draft, rec: FrameRecord, value: Any, what: str) -> str | None:
    out = _str(value)
    if out is None:
        d._anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type}: {what} missing or not a string")
    return out


# ---- session

# Every handler takes (draft, row, typed event, decoded JSON object). The typed event is the
# schema's lenient view, for fields; nested objects that the state keeps (items, sessions,
# usage) are read from the JSON object, so nothing is unstructured back or lost.
Raw = dict[str, Any]


def _obj(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


@_handles(ev.SessionCreated, ev.SessionUpdated, ev.TranscriptionSessionUpdated)
def _session(
    d: _Draft,
    rec: FrameRecord,
    e: ev.SessionCreated | ev.SessionUpdated | ev.TranscriptionSessionUpdated,
    raw: Raw,
) -> None:
    session = _obj(raw.get("session"))
    if session is None:
        d._anomaly(rec, AnomalyKind.MALFORMED, f"{e.type} without a session object")
        return
    d.session, d.session_seq = _frozen(session), rec.seq
    if isinstance(e, ev.SessionCreated):
        d.session_started = True
    if isinstance(e, ev.TranscriptionSessionUpdated) or isinstance(
        e.session, BetaSession | BetaTranscriptionSession
    ):
        d.protocol = "beta"
    elif _str(session.get("type")) is not None:
        d.protocol = "ga"


@_handles(ev.ConversationCreated)
def _conversation_created(d: _Draft, rec: FrameRecord, e: ev.ConversationCreated, raw: Raw) -> None:
    conversation = _obj(raw.get("conversation"))
    if conversation is not None:
        d.conversation_id = _str(conversation.get("id"))


@_handles(ev.ErrorEvent)
def _error(d: _Draft, rec: FrameRecord, e: ev.ErrorEvent, raw: Raw) -> None:
    body = _obj(raw.get("error")) or {}
    client_event_id = _str(body.get("event_id"))
    caused_by = None
    if client_event_id is not None:
        found = d.new_client_events.get(client_event_id)
        caused_by = (
            ClientEventRef(seq=found[0], t_ns=found[1], type=found[2])
            if found is not None
            else d.client_events.get(client_event_id)
        )
    d.errors.append(
        ErrorRecord(
            seq=rec.seq,
            t_ns=rec.t_ns,
            event_id=_str(e.event_id),
            type=_str(body.get("type")),
            code=_str(body.get("code")),
            message=_str(body.get("message")),
            param=_str(body.get("param")),
            client_event_id=client_event_id,
            caused_by=caused_by,
            raw=_frozen(body),
        )
    )


@_handles(ev.RateLimitsUpdated)
def _rate_limits(d: _Draft, rec: FrameRecord, e: ev.RateLimitsUpdated, raw: Raw) -> None:
    limits = raw.get("rate_limits")
    if isinstance(limits, list):
        d.rate_limits = tuple(_frozen(x) for x in limits if isinstance(x, dict))
        d.rate_limits_seq = rec.seq


# ---- input audio buffer


@_handles(ev.InputAudioBufferAppend)
def _append(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferAppend, raw: Raw) -> None:
    d._append(rec)


@_handles(ev.InputAudioBufferCommit)
def _commit(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferCommit, raw: Raw) -> None:
    end = d._appended_ms()
    d.commits.append((d.pending_from, end))
    d.pending_from = end


@_handles(ev.InputAudioBufferClear)
def _clear(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferClear, raw: Raw) -> None:
    d.pending_from = d._appended_ms()
    d.clears_pending += 1


@_handles(ev.InputAudioBufferCleared)
def _cleared(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferCleared, raw: Raw) -> None:
    if d.clears_pending:
        d.clears_pending -= 1  # the client's clear already moved the pointer
    else:
        d.pending_from = d._appended_ms()


@_handles(ev.InputAudioBufferSpeechStarted)
def _speech_started(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferSpeechStarted, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.speech[item_id] = (_int(e.audio_start_ms), d.speech.get(item_id, (None, None))[1])


@_handles(ev.InputAudioBufferSpeechStopped)
def _speech_stopped(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferSpeechStopped, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.speech[item_id] = (d.speech.get(item_id, (None, None))[0], _int(e.audio_end_ms))


@_handles(ev.InputAudioBufferTimeoutTriggered)
def _timeout(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferTimeoutTriggered, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.speech[item_id] = (_int(e.audio_start_ms), _int(e.audio_end_ms))


@_handles(ev.InputAudioBufferCommitted)
def _committed(d: _Draft, rec: FrameRecord, e: ev.InputAudioBufferCommitted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    marks = d.speech.pop(item_id, None)
    if marks is not None:
        # server VAD: the item is the slice between the speech marks (PROTOCOL.md §5, §8)
        start = d.pending_from if marks[0] is None else marks[0]
        end = d._appended_ms() if marks[1] is None else marks[1]
        refs = d._slice(rec, start, end)
        if not d.session_started:
            d._anomaly(rec, AnomalyKind.INPUT_TIMELINE_UNKNOWN, f"{item_id}: {start}-{end} ms")
        d.pending_from = max(d.pending_from, float(end))
    elif d.commits:
        # a manual commit: what was appended between the previous commit/clear and it
        start, end = d.commits.pop(0)
        refs = d._slice(rec, start, end)
    else:
        d._anomaly(rec, AnomalyKind.COMMIT_WITHOUT_REQUEST, item_id)
        end = d._appended_ms()
        refs = d._slice(rec, d.pending_from, end)
        d.pending_from = end
    item = d._item_or_new(rec, item_id, type="message", role="user")
    part = attrs.evolve(item.part(0) or Part(index=0, type="input_audio"), audio=refs)
    parts = {p.index: p for p in item.parts} | {0: part}
    previous = e.previous_item_id
    d.items[item_id] = attrs.evolve(
        item,
        parts=tuple(parts[i] for i in sorted(parts)),
        origin="input_audio_buffer",
        declared_previous=previous if previous is None or isinstance(previous, str) else UNSET,
    )


# ---- conversation items


def _audio_part_index(item: dict[str, Any] | None) -> int | None:
    """The index of the first content part of an item's JSON that carries ``audio``."""
    content = item.get("content") if item is not None else None
    if not isinstance(content, list):
        return None
    return next((i for i, p in enumerate(content) if isinstance(p, dict) and "audio" in p), None)


@_handles(ev.ConversationItemCreate)
def _item_create(d: _Draft, rec: FrameRecord, e: ev.ConversationItemCreate, raw: Raw) -> None:
    item = _obj(raw.get("item"))
    index = _audio_part_index(item)
    if item is None or index is None:
        return
    span = rec.audio
    if span is None:
        d.unarchived_audio += 1
        return
    ref = AudioRef(
        stream=span.stream, sample_rate=span.sample_rate, offset=span.offset, samples=span.samples
    )
    item_id = _str(item.get("id"))
    if item_id is not None:
        d.created_audio[item_id] = (index, (ref,))
    else:
        d.created_audio_queue.append((index, (ref,)))


@_handles(ev.ConversationItemAdded, ev.ConversationItemCreated, ev.ConversationItemDone)
def _item_event(d: _Draft, rec: FrameRecord, e: ev.ConversationItemAdded, raw: Raw) -> None:
    previous = raw.get("previous_item_id", UNSET)
    if previous is not None and not isinstance(previous, str):
        previous = UNSET  # absent, or a malformed declaration that says nothing: append
    places = rules.PREDECESSOR_RULES.get(e.type, Ordering.PLACES) is Ordering.PLACES
    item = d._merge_snapshot(rec, raw.get("item"), place=previous if places else _KEEP)
    if item is not None:
        d.items[item.id] = d._attach_created_audio(item)


@_handles(ev.ConversationItemRetrieved)
def _item_retrieved(d: _Draft, rec: FrameRecord, e: ev.ConversationItemRetrieved, raw: Raw) -> None:
    data = _obj(raw.get("item"))
    item_id = _str(data.get("id")) if data is not None else None
    if item_id is not None and item_id not in d.items:
        d._anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"retrieved {item_id}")
    item = d._merge_snapshot(rec, data)
    index = _audio_part_index(data)
    span = rec.audio
    if item is None or index is None or span is None:
        return
    part = item.part(index)
    if part is not None:
        ref = AudioRef(
            stream=span.stream,
            sample_rate=span.sample_rate,
            offset=span.offset,
            samples=span.samples,
        )
        d.items[item.id] = _with_part(item, attrs.evolve(part, retrieved_audio=(ref,)))


@_handles(ev.ConversationItemTruncated)
def _item_truncated(d: _Draft, rec: FrameRecord, e: ev.ConversationItemTruncated, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index, end_ms = _int(e.content_index), _int(e.audio_end_ms)
    if item_id is None or index is None or end_ms is None:
        d._anomaly(rec, AnomalyKind.MALFORMED, "truncation without content_index/audio_end_ms")
        return
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"truncated {item_id}")
        item = d._new_item(rec, item_id, type="message", role="assistant")
    part = item.part(index) or Part(index=index, type="output_audio")
    d.items[item_id] = _with_part(item, attrs.evolve(part, truncated_at_ms=end_ms))


@_handles(ev.ConversationItemDeleted)
def _item_deleted(d: _Draft, rec: FrameRecord, e: ev.ConversationItemDeleted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"deleted {item_id}")
        item = d._new_item(rec, item_id)
    if item.deleted_seq is not None:
        return
    d.items[item_id] = attrs.evolve(item, deleted_seq=rec.seq)
    if item.placement is not None and not d.order_dirty:
        if item_id in d.order:
            d.order.remove(item_id)
        if item_id in d.orphans:
            d.orphans.remove(item_id)


# ---- user transcription


def _user_part(d: _Draft, rec: FrameRecord, item_id: str, index: int) -> tuple[Item, Part]:
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"transcription for {item_id}")
        item = d._new_item(rec, item_id, type="message", role="user")
    return item, item.part(index) or Part(index=index, type="input_audio")


@_handles(ev.InputAudioTranscriptionDelta)
def _transcription_delta(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionDelta, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, _int(e.content_index) or 0)
    delta = _str(e.delta) or ""
    changes: dict[str, Any] = {}
    if part.transcript.final is None:
        value = part.transcript
        changes["transcript"] = attrs.evolve(value, deltas=(value.deltas or "") + delta)
    if part.transcription is None:
        changes["transcription"] = Transcription(status="in_progress")
    d.items[item_id] = _with_part(item, attrs.evolve(part, **changes))


@_handles(ev.InputAudioTranscriptionCompleted)
def _transcription_completed(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionCompleted, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    transcript = _required_str(d, rec, e.transcript, "transcript")
    if item_id is None or transcript is None:
        return
    item, part = _user_part(d, rec, item_id, _int(e.content_index) or 0)
    old = part.transcription or Transcription(status="completed")
    logprobs, languages = raw.get("logprobs"), raw.get("languages")
    usage = _obj(raw.get("usage"))
    transcription = attrs.evolve(
        old,
        status="completed",
        usage=None if usage is None else _frozen(usage),
        logprobs=_frozen(logprobs) if isinstance(logprobs, list) else old.logprobs,
        languages=_frozen(languages) if isinstance(languages, list) else old.languages,
    )
    part = attrs.evolve(
        part,
        transcript=attrs.evolve(part.transcript, final=transcript),
        transcription=transcription,
    )
    d.items[item_id] = _with_part(item, part)


@_handles(ev.InputAudioTranscriptionFailed)
def _transcription_failed(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionFailed, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, _int(e.content_index) or 0)
    old = part.transcription or Transcription(status="failed")
    error = _obj(raw.get("error"))
    transcription = attrs.evolve(
        old, status="failed", error=None if error is None else _frozen(error)
    )
    d.items[item_id] = _with_part(item, attrs.evolve(part, transcription=transcription))


@_handles(ev.InputAudioTranscriptionSegment)
def _transcription_segment(
    d: _Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionSegment, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, _int(e.content_index) or 0)
    segment = {k: v for k, v in raw.items() if k not in _SEGMENT_SKIP}
    old = part.transcription or Transcription(status="in_progress")
    transcription = attrs.evolve(old, segments=(*old.segments, _frozen(segment)))
    d.items[item_id] = _with_part(item, attrs.evolve(part, transcription=transcription))


_SEGMENT_SKIP: Final = frozenset({"type", "event_id", "item_id", "content_index"})


# ---- responses


@_handles(ev.ResponseCreated)
def _response_created(d: _Draft, rec: FrameRecord, e: ev.ResponseCreated, raw: Raw) -> None:
    d._merge_response(rec, raw.get("response"), done=False)


@_handles(ev.ResponseDone)
def _response_done(d: _Draft, rec: FrameRecord, e: ev.ResponseDone, raw: Raw) -> None:
    resp = d._merge_response(rec, raw.get("response"), done=True)
    if resp is None:
        return
    item_status = rules.ITEM_STATUS_AFTER_RESPONSE.get(resp.status or "")
    if item_status is None:
        return
    for item_id in resp.output:
        item = d._item(item_id)
        if item is not None and item.status in (None, "in_progress"):
            d.items[item_id] = attrs.evolve(item, status=item_status)


@_handles(ev.ResponseOutputItemAdded, ev.ResponseOutputItemDone)
def _output_item(d: _Draft, rec: FrameRecord, e: ev.ResponseOutputItemAdded, raw: Raw) -> None:
    response_id = _str(e.response_id)
    item = d._merge_snapshot(rec, raw.get("item"), response_id=response_id, origin="response")
    index = _int(e.output_index)
    if item is None or response_id is None or index is None:
        return
    resp = d._response(rec, response_id)
    output = list(resp.output)
    if index < len(output):
        if output[index] == item.id:
            return
        output[index] = item.id
    else:
        output.append(item.id)
    d.responses[response_id] = attrs.evolve(resp, output=tuple(output))


@_handles(ev.ResponseContentPartAdded, ev.ResponseContentPartDone)
def _content_part(d: _Draft, rec: FrameRecord, e: ev.ResponseContentPartAdded, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = _int(e.content_index)
    part_json = _obj(raw.get("part"))
    if item_id is None or index is None or part_json is None:
        return
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"content part for {item_id}")
        item = d._new_item(
            rec,
            item_id,
            type="message",
            role="assistant",
            response_id=_str(e.response_id),
            origin="response",
        )
    part = _merge_part(item.part(index) or Part(index=index), part_json)
    d.items[item_id] = _with_part(item, part)


@_handles(ev.ResponseOutputAudioDelta)
def _audio_delta(d: _Draft, rec: FrameRecord, e: ev.ResponseOutputAudioDelta, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = _int(e.content_index)
    if item_id is not None and index is not None:
        d._audio_delta(rec, item_id, index, _str(e.response_id))


@_handles(ev.ResponseOutputTextDelta, ev.ResponseOutputAudioTranscriptDelta)
def _text_delta(d: _Draft, rec: FrameRecord, e: ev.ResponseOutputTextDelta, raw: Raw) -> None:
    field = rules.TEXT_DELTA_FIELDS.get(e.type)
    if field is None:  # a subclass under a name the rules do not list
        field = "text" if isinstance(e, ev.ResponseOutputTextDelta) else "transcript"
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = _int(e.content_index)
    delta = _str(e.delta)
    if item_id is not None and index is not None and delta is not None:
        d._text_delta(rec, item_id, index, field, delta, _str(e.response_id))


def _text_done(
    d: _Draft, rec: FrameRecord, item_id: Any, index: Any, field: str, value: Any
) -> None:
    item_id, index, value = _str(item_id), _int(index), _str(value)
    if item_id is None or index is None or value is None:
        d._anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type} without item_id/content_index/{field}")
        return
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"{field} for {item_id}")
        item = d._new_item(rec, item_id, type="message", role="assistant", origin="response")
    part = item.part(index) or Part(index=index, type=rules.DELTA_PART_TYPES[field])
    part = _set_text(part, field, attrs.evolve(getattr(part, field), final=value))
    d.items[item_id] = _with_part(item, part)


@_handles(ev.ResponseOutputTextDone)
def _output_text_done(d: _Draft, rec: FrameRecord, e: ev.ResponseOutputTextDone, raw: Raw) -> None:
    _text_done(d, rec, e.item_id, e.content_index, "text", e.text)


@_handles(ev.ResponseOutputAudioTranscriptDone)
def _transcript_done(
    d: _Draft, rec: FrameRecord, e: ev.ResponseOutputAudioTranscriptDone, raw: Raw
) -> None:
    _text_done(d, rec, e.item_id, e.content_index, "transcript", e.transcript)


@_handles(ev.ResponseFunctionCallArgumentsDelta, ev.ResponseMcpCallArgumentsDelta)
def _args_delta(
    d: _Draft, rec: FrameRecord, e: ev.ResponseFunctionCallArgumentsDelta, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    delta = _str(e.delta)
    if item_id is None or delta is None:
        return
    kind = "mcp_call" if isinstance(e, ev.ResponseMcpCallArgumentsDelta) else "function_call"
    d._args_delta(rec, item_id, delta, _str(e.response_id), kind)


@_handles(ev.ResponseFunctionCallArgumentsDone, ev.ResponseMcpCallArgumentsDone)
def _args_done(
    d: _Draft, rec: FrameRecord, e: ev.ResponseFunctionCallArgumentsDone, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    arguments = _required_str(d, rec, e.arguments, "arguments")
    if item_id is None or arguments is None:
        return
    kind = "mcp_call" if isinstance(e, ev.ResponseMcpCallArgumentsDone) else "function_call"
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"arguments for {item_id}")
        item = d._new_item(
            rec, item_id, type=kind, response_id=_str(e.response_id), origin="response"
        )
    changes: dict[str, Any] = {"arguments": attrs.evolve(item.arguments, final=arguments)}
    # GA names the function here; beta only in the item (PROTOCOL.md §8.7)
    for key in ("name", "call_id"):
        value = _str(raw.get(key))
        if value is not None:
            changes[key] = value
    d.items[item_id] = attrs.evolve(item, **changes)


@_handles(
    ev.ResponseMcpCallInProgress,
    ev.ResponseMcpCallCompleted,
    ev.ResponseMcpCallFailed,
    ev.McpListToolsInProgress,
    ev.McpListToolsCompleted,
    ev.McpListToolsFailed,
)
def _mcp_status(d: _Draft, rec: FrameRecord, e: ev.ResponseMcpCallCompleted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item = d._item(item_id)
    if item is None:
        d._anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"{e.type} for {item_id}")
        kind = "mcp_list_tools" if e.type.startswith("mcp_list_tools") else "mcp_call"
        item = d._new_item(rec, item_id, type=kind, origin="response")
    status = rules.final_status(item.status, e.type.rsplit(".", 1)[1])
    d.items[item_id] = attrs.evolve(item, status=status)


@_handles(ev.OutputAudioBufferStarted, ev.OutputAudioBufferStopped, ev.OutputAudioBufferCleared)
def _playback(d: _Draft, rec: FrameRecord, e: ev.OutputAudioBufferStarted, raw: Raw) -> None:
    what = rules.PLAYBACK_EVENTS.get(e.type)
    if what is None:
        return
    d.playback[what] = d.playback.get(what, 0) + 1
    response_id = _str(e.response_id)
    if response_id is not None:
        resp = d._response(rec, response_id)
        d.responses[response_id] = attrs.evolve(resp, playback=(*resp.playback, (what, rec.t_ns)))


def _resolve_dispatch() -> dict[type[Event], _Handler]:
    """One handler per known event class, found along the class's MRO (a beta class takes
    its GA base's handler). Classes without one (acknowledgements that change nothing the
    state holds, like a client's ``response.create``) are
    absent and only counted in ``events``."""
    table: dict[type[Event], _Handler] = {}
    for cls in event_types().values():
        for base in cls.__mro__:
            handler = _HANDLERS.get(base)
            if handler is not None:
                table[cls] = handler
                break
    return table


_DISPATCH: Final[Mapping[type[Event], _Handler]] = MappingProxyType(_resolve_dispatch())


# --------------------------------------------------------------------------- public API


def fold(state: ConversationState, records: Iterable[FrameRecord]) -> ConversationState:
    """The state after ``records`` (rows of one session's log, in ``seq`` order).

    Pure: ``state`` is not changed. ``fold(fold(s, a), b) == fold(s, a + b)`` for any split.
    """
    draft = _Draft(state)
    if isinstance(records, FrameColumns):
        draft.feed_columns(records, 0, len(records))
    else:
        draft.feed_all(records)
    return draft.freeze()


def apply(state: ConversationState, record: FrameRecord) -> ConversationState:
    """The state after one more row of the log (``fold(state, [record])``)."""
    return fold(state, (record,))
