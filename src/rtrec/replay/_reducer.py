"""The reducer: a pure fold of the log's rows into a ``ConversationState``.

``apply(state, record)`` and ``fold(state, records)`` never change ``state``; they return a new
one. The protocol knowledge they use is in ``_rules.py``; the mechanism is split by concern:

- ``_draft.py``: the mutable working copy a fold changes, made of ``_items.py`` (items,
  their order, their pending deltas), ``_input_audio.py`` (the input audio buffer),
  ``_responses.py`` and ``_findings.py`` (anomalies and what else the log shows);
- ``_handlers.py``: the typed path, one handler per event class;
- this module: reading rows, the fast paths, and the public functions.

How it stays fast. A voice session is mostly audio deltas and appends (about 40 events per
second of conversation), and building a typed event costs a few microseconds. So the rows of
the hot event types take a fast path that never builds one. A fast path only *recognises*
the common case and reads the fields the event needs (an append its ``AudioSpan`` and
``event_id`` columns; an audio delta its ``item_id``, ``response_id`` and ``AudioSpan``
columns plus the content index, read from the payload text; a text delta its small payload,
decoded with orjson), then takes the typed path's own step: ``Draft.append``,
``Draft.audio_delta`` or ``Draft.text_delta``, which the typed handlers call too. A row a
fast path does not recognise is parsed and handled like any other. So a protocol change is
made in the draft or a handler, once, whichever way the rows come.

Rows come as ``FrameRecord``s (``feed_records``) or as ``FrameColumns`` (``feed_columns``:
one list per column, what a log reader gives), where the fast paths read the lists and a
``FrameRecord`` is built only for a row that leaves them: building a record per row costs
more than folding it.

A fold works on the draft and freezes once at the end (the model is Immer's ``produce`` and
Clojure's transients; STYLE.md principle 1 asks for ``attrs.evolve`` per event, which would
rebuild item, part and state for every 20 ms of audio). ``apply(s, e) == fold(s, [e])``, and
folding in any split, records or columns, gives the same state as folding at once: the
Hypothesis tests check exactly that.

Every other event goes through the schema's lenient parser (what
``rtrec.schemas.from_json(payload, lenient=True)`` does) and one handler per event class
(beta classes subclass their GA class, so one handler serves both). An event the schema does
not know is counted, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

import orjson

from rtrec.replay import _rules as rules
from rtrec.replay._draft import APPEND, Draft, span_fields
from rtrec.replay._handlers import DISPATCH
from rtrec.replay._items import order_items
from rtrec.replay._lenient import as_str
from rtrec.replay._rules import AnomalyKind
from rtrec.replay._state import ConversationState
from rtrec.schemas.base import ClientEvent, Event, ServerEvent, UnknownEvent
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.converter import from_dict
from rtrec.schemas.storage import Direction, FrameKind, FrameRecord, Stream

__all__ = ["INITIAL", "apply", "feed_columns", "feed_records", "fold", "order_items"]

#: The state before the first event.
INITIAL: Final = ConversationState()

_AUDIO_DELTA_TYPES: Final = rules.AUDIO_DELTA_TYPES
_TEXT_DELTA_FIELDS: Final[dict[str, str]] = dict(rules.TEXT_DELTA_FIELDS)  # dict: faster `in`
_CONTENT_INDEX: Final = '"content_index":'
_CONTENT_INDEX_VALUE: Final = re.compile(r'"content_index":\s*(\d+)\s*[,}]')
_DIGITS: Final = "0123456789"


# --------------------------------------------------------------------------- recognising


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


def _addressed_delta(payload: str) -> dict[str, Any] | None:
    """A delta's decoded payload if it names its item and content part as the fast paths
    need them (a string and an integer); None: not recognised, take the typed path."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if (
        obj.__class__ is dict
        and obj.get("item_id").__class__ is str
        and obj.get("content_index").__class__ is int
    ):
        return cast(dict[str, Any], obj)
    return None


def _decoded_audio_delta(
    draft: Draft,
    seq: int,
    t_ns: int,
    payload: str,
    stream: Stream | None,
    rate: int,
    offset: int,
    samples: int,
) -> bool:
    """An audio delta whose columns or text did not give its item and index: read them from
    the decoded payload. False: not recognised, take the typed path."""
    obj = _addressed_delta(payload)
    if obj is None:
        return False
    item_id, index, response_id = obj["item_id"], obj["content_index"], obj.get("response_id")
    draft.audio_delta(seq, t_ns, item_id, index, as_str(response_id), stream, rate, offset, samples)
    return True


def _text_delta(draft: Draft, seq: int, t_ns: int, payload: str, field: str) -> bool:
    """A text or transcript delta, from its decoded payload. False: not recognised, take
    the typed path."""
    obj = _addressed_delta(payload)
    delta = None if obj is None else obj.get("delta")
    if obj is None or delta.__class__ is not str:
        return False
    item_id, index, response_id = obj["item_id"], obj["content_index"], obj.get("response_id")
    draft.text_delta(seq, t_ns, item_id, index, field, delta, as_str(response_id))
    return True


# --------------------------------------------------------------------------- feeding


def feed_records(draft: Draft, records: Iterable[FrameRecord]) -> None:
    """Apply rows of the log to ``draft``, in order.

    This loop is where a voice session spends its time, so the fast paths are tried before
    anything is parsed. Comparisons use ``==``, not ``is``: a reader may hand over the
    enums' plain string values.
    """
    text, server, client = FrameKind.TEXT, Direction.SERVER, Direction.CLIENT
    audio_types, text_fields = _AUDIO_DELTA_TYPES, _TEXT_DELTA_FIELDS
    audio_delta, append = draft.audio_delta, draft.append
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
                    stream, rate, offset, samples = span_fields(rec.audio)
                    item_id = rec.item_id
                    index = None if item_id is None else _content_index(payload)
                    if item_id is not None and index is not None:
                        audio_delta(
                            rec.seq,
                            rec.t_ns,
                            item_id,
                            index,
                            rec.response_id,
                            stream,
                            rate,
                            offset,
                            samples,
                        )
                        continue
                    if _decoded_audio_delta(
                        draft, rec.seq, rec.t_ns, payload, stream, rate, offset, samples
                    ):
                        continue
                elif name in text_fields and _text_delta(
                    draft, rec.seq, rec.t_ns, payload, text_fields[name]
                ):
                    continue
            elif name == APPEND and direction == client:
                append(rec.seq, rec.t_ns, rec.event_id, *span_fields(rec.audio))
                continue
        _feed_other(draft, rec)
    if last is not None:
        draft.events += count
        draft.seq, draft.t_ns = last.seq, last.t_ns


def feed_columns(draft: Draft, cols: FrameColumns, start: int, stop: int) -> None:
    """Apply rows ``start:stop`` of a session's columns to ``draft``, in order.

    Exactly what ``feed_records(draft, cols[start:stop])`` does, with the same fast paths
    read from the lists; a ``FrameRecord`` is built only for a row that leaves them.
    """
    if stop <= start:
        return
    text, server, client = FrameKind.TEXT, Direction.SERVER, Direction.CLIENT
    audio_types, text_fields = _AUDIO_DELTA_TYPES, _TEXT_DELTA_FIELDS
    audio_delta, append, content_index = draft.audio_delta, draft.append, _content_index
    kinds, payloads, names, directions = cols.kind, cols.payload, cols.type, cols.direction
    seqs, times, event_ids = cols.seq, cols.t_ns, cols.event_id
    item_ids, response_ids, streams = cols.item_id, cols.response_id, cols.audio_stream
    # set on every row whose audio_stream is (a FrameColumns invariant); never read otherwise
    offsets = cast(Sequence[int], cols.audio_offset)
    counts = cast(Sequence[int], cols.audio_samples)
    rates = cast(Sequence[int], cols.audio_rate)
    for i in range(start, stop):
        payload = payloads[i]
        if kinds[i] == text and payload is not None:
            name = names[i]
            direction = directions[i]
            if direction == server:
                if name in audio_types:
                    item_id = item_ids[i]
                    index = None if item_id is None else content_index(payload)
                    if item_id is not None and index is not None:
                        audio_delta(
                            seqs[i],
                            times[i],
                            item_id,
                            index,
                            response_ids[i],
                            streams[i],
                            rates[i],
                            offsets[i],
                            counts[i],
                        )
                        continue
                    if _decoded_audio_delta(
                        draft,
                        seqs[i],
                        times[i],
                        payload,
                        streams[i],
                        rates[i],
                        offsets[i],
                        counts[i],
                    ):
                        continue
                elif name in text_fields and _text_delta(
                    draft, seqs[i], times[i], payload, text_fields[name]
                ):
                    continue
            elif name == APPEND and direction == client:
                append(seqs[i], times[i], event_ids[i], streams[i], rates[i], offsets[i], counts[i])
                continue
        _feed_other(draft, cols.record(i))
    draft.events += stop - start
    draft.seq, draft.t_ns = seqs[stop - 1], times[stop - 1]


def _feed_other(draft: Draft, rec: FrameRecord) -> None:
    """Everything but the fast paths: marks, binary and invalid frames, typed events."""
    findings = draft.findings
    if rec.kind != FrameKind.TEXT:
        if rec.kind == FrameKind.BINARY:
            findings.binary_frames += 1
        else:
            findings.mark(rec.type)
        return
    if rec.direction == Direction.RECORDER:
        findings.mark(rec.type)
        return
    # ``parse_error`` is not a verdict: the recorder also sets it on a valid event whose
    # audio it could not archive. Whether the payload is JSON decides.
    payload = rec.payload
    if payload is None:
        findings.invalid_frames.append(rec.seq)
        return
    # what rtrec.schemas.from_json(payload, lenient=True) does, keeping the decoded
    # object: handlers read nested objects from it rather than unstructure typed ones
    # back (the raw frame is the truth, STYLE.md principle 4)
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        findings.invalid_frames.append(rec.seq)
        return
    if raw.__class__ is not dict:
        findings.invalid_frames.append(rec.seq)
        return
    _typed(draft, rec, from_dict(raw, lenient=True), raw)


def _typed(draft: Draft, rec: FrameRecord, event: Event, raw: dict[str, Any]) -> None:
    if isinstance(event, UnknownEvent):
        draft.findings.unknown_type(event.type)
        return
    if draft.protocol is None:
        if event.type in rules.GA_ONLY_EVENT_TYPES:
            draft.protocol = "ga"
        elif event.type in rules.BETA_EVENT_NAMES:
            draft.protocol = "beta"
    if isinstance(event, ClientEvent):
        if rec.direction != Direction.CLIENT:
            draft.findings.anomaly(rec, AnomalyKind.WRONG_DIRECTION, f"client event {event.type}")
            return
        event_id = as_str(event.event_id)
        if event_id is not None:
            draft.new_client_events[event_id] = (rec.seq, rec.t_ns, event.type)
    elif isinstance(event, ServerEvent) and rec.direction != Direction.SERVER:
        draft.findings.anomaly(rec, AnomalyKind.WRONG_DIRECTION, f"server event {event.type}")
        return
    handler = DISPATCH.get(type(event))
    if handler is not None:
        handler(draft, rec, event, raw)


# --------------------------------------------------------------------------- public API


def fold(state: ConversationState, records: Iterable[FrameRecord]) -> ConversationState:
    """The state after ``records`` (rows of one session's log, in ``seq`` order).

    Pure: ``state`` is not changed. ``fold(fold(s, a), b) == fold(s, a + b)`` for any split.
    """
    draft = Draft(state)
    if isinstance(records, FrameColumns):
        feed_columns(draft, records, 0, len(records))
    else:
        feed_records(draft, records)
    return draft.freeze()


def apply(state: ConversationState, record: FrameRecord) -> ConversationState:
    """The state after one more row of the log (``fold(state, [record])``)."""
    return fold(state, (record,))
