"""The typed path: one handler per event class, applying a parsed event to a ``Draft``.

Every row a fast path does not settle is parsed with the schema's lenient parser and lands
here. A handler reads the event's fields from the typed event and nested objects from the
decoded JSON; what it changes goes through the draft's parts (``d.items``, ``d.input``,
``d.responses``, ``d.findings``). The hot events (an append, an audio or text delta) are
applied by the draft's ``append``/``audio_delta``/``text_delta``, which the fast paths call
too, so their rules live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

import attrs

from rtrec.replay import _rules as rules
from rtrec.replay._draft import Draft, span_fields
from rtrec.replay._items import KEEP, merge_part, set_text, with_part
from rtrec.replay._lenient import as_int, as_obj, as_str, frozen
from rtrec.replay._rules import AnomalyKind, Ordering
from rtrec.replay._state import (
    AudioRef,
    ClientEventRef,
    ErrorRecord,
    Item,
    Part,
    ResponseState,
    Transcription,
)
from rtrec.schemas import events as ev
from rtrec.schemas.base import UNSET, Event
from rtrec.schemas.converter import event_types
from rtrec.schemas.objects import BetaSession, BetaTranscriptionSession
from rtrec.schemas.storage import FrameRecord

__all__ = ["DISPATCH"]


def _attach_created_audio(d: Draft, item: Item) -> Item:
    """Give a user item the audio of the ``conversation.item.create`` that made it (by the
    id the client chose, else the oldest such create without an id; PROTOCOL.md §8)."""
    if item.role != "user" or item.origin is not None:
        return item
    if not any(p.type == "input_audio" for p in item.parts):
        return item
    found = d.input.created_audio.pop(item.id, None)
    if found is None and d.input.created_audio_queue:
        found = d.input.created_audio_queue.pop(0)
    if found is None:
        return item
    index, refs = found
    part = item.part(index) or Part(index=index, type="input_audio")
    item = with_part(item, attrs.evolve(part, audio=refs))
    return attrs.evolve(item, origin="client")


def _merge_response(d: Draft, rec: FrameRecord, data: Any, *, done: bool) -> ResponseState | None:
    """Merge a response's JSON object, then the items of its output."""
    resp = d.responses.merge(rec, data, done=done)
    if resp is None:
        return None
    output = data.get("output")
    if isinstance(output, list):
        for snap_item in output:
            d.items.merge_snapshot(rec, snap_item, response_id=resp.id, origin="response")
    return resp


# --------------------------------------------------------------------------- handlers

_Handler = Callable[[Draft, FrameRecord, Any, dict[str, Any]], None]
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


def _required_str(d: Draft, rec: FrameRecord, value: Any, what: str) -> str | None:
    out = as_str(value)
    if out is None:
        d.findings.anomaly(
            rec, AnomalyKind.MALFORMED, f"{rec.type}: {what} missing or not a string"
        )
    return out


# ---- session

# Every handler takes (draft, row, typed event, decoded JSON object). The typed event is the
# schema's lenient view, for fields; nested objects that the state keeps (items, sessions,
# usage) are read from the JSON object, so nothing is unstructured back or lost.
Raw = dict[str, Any]


@_handles(ev.SessionCreated, ev.SessionUpdated, ev.TranscriptionSessionUpdated)
def _session(
    d: Draft,
    rec: FrameRecord,
    e: ev.SessionCreated | ev.SessionUpdated | ev.TranscriptionSessionUpdated,
    raw: Raw,
) -> None:
    session = as_obj(raw.get("session"))
    if session is None:
        d.findings.anomaly(rec, AnomalyKind.MALFORMED, f"{e.type} without a session object")
        return
    d.session, d.session_seq = frozen(session), rec.seq
    if isinstance(e, ev.SessionCreated):
        d.session_started = True
    if isinstance(e, ev.TranscriptionSessionUpdated) or isinstance(
        e.session, BetaSession | BetaTranscriptionSession
    ):
        d.protocol = "beta"
    elif as_str(session.get("type")) is not None:
        d.protocol = "ga"


@_handles(ev.ConversationCreated)
def _conversation_created(d: Draft, rec: FrameRecord, e: ev.ConversationCreated, raw: Raw) -> None:
    conversation = as_obj(raw.get("conversation"))
    if conversation is not None:
        d.conversation_id = as_str(conversation.get("id"))


@_handles(ev.ErrorEvent)
def _error(d: Draft, rec: FrameRecord, e: ev.ErrorEvent, raw: Raw) -> None:
    body = as_obj(raw.get("error")) or {}
    client_event_id = as_str(body.get("event_id"))
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
            event_id=as_str(e.event_id),
            type=as_str(body.get("type")),
            code=as_str(body.get("code")),
            message=as_str(body.get("message")),
            param=as_str(body.get("param")),
            client_event_id=client_event_id,
            caused_by=caused_by,
            raw=frozen(body),
        )
    )


@_handles(ev.RateLimitsUpdated)
def _rate_limits(d: Draft, rec: FrameRecord, e: ev.RateLimitsUpdated, raw: Raw) -> None:
    limits = raw.get("rate_limits")
    if isinstance(limits, list):
        d.rate_limits = tuple(frozen(x) for x in limits if isinstance(x, dict))
        d.rate_limits_seq = rec.seq


# ---- input audio buffer


@_handles(ev.InputAudioBufferAppend)
def _append(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferAppend, raw: Raw) -> None:
    d.input.append(*span_fields(rec.audio))


@_handles(ev.InputAudioBufferCommit)
def _commit(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferCommit, raw: Raw) -> None:
    end = d.input.appended_ms()
    d.input.commits.append((d.input.pending_from, end))
    d.input.pending_from = end


@_handles(ev.InputAudioBufferClear)
def _clear(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferClear, raw: Raw) -> None:
    d.input.pending_from = d.input.appended_ms()
    d.input.clears_pending += 1


@_handles(ev.InputAudioBufferCleared)
def _cleared(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferCleared, raw: Raw) -> None:
    if d.input.clears_pending:
        d.input.clears_pending -= 1  # the client's clear already moved the pointer
    else:
        d.input.pending_from = d.input.appended_ms()


@_handles(ev.InputAudioBufferSpeechStarted)
def _speech_started(
    d: Draft, rec: FrameRecord, e: ev.InputAudioBufferSpeechStarted, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.input.speech[item_id] = (
            as_int(e.audio_start_ms),
            d.input.speech.get(item_id, (None, None))[1],
        )


@_handles(ev.InputAudioBufferSpeechStopped)
def _speech_stopped(
    d: Draft, rec: FrameRecord, e: ev.InputAudioBufferSpeechStopped, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.input.speech[item_id] = (
            d.input.speech.get(item_id, (None, None))[0],
            as_int(e.audio_end_ms),
        )


@_handles(ev.InputAudioBufferTimeoutTriggered)
def _timeout(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferTimeoutTriggered, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is not None:
        d.input.speech[item_id] = (as_int(e.audio_start_ms), as_int(e.audio_end_ms))


@_handles(ev.InputAudioBufferCommitted)
def _committed(d: Draft, rec: FrameRecord, e: ev.InputAudioBufferCommitted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    marks = d.input.speech.pop(item_id, None)
    if marks is not None:
        # server VAD: the item is the slice between the speech marks (PROTOCOL.md §5, §8)
        start = d.input.pending_from if marks[0] is None else marks[0]
        end = d.input.appended_ms() if marks[1] is None else marks[1]
        refs = d.input.slice(rec, start, end)
        if not d.session_started:
            d.findings.anomaly(
                rec, AnomalyKind.INPUT_TIMELINE_UNKNOWN, f"{item_id}: {start}-{end} ms"
            )
        d.input.pending_from = max(d.input.pending_from, float(end))
    elif d.input.commits:
        # a manual commit: what was appended between the previous commit/clear and it
        start, end = d.input.commits.pop(0)
        refs = d.input.slice(rec, start, end)
    else:
        d.findings.anomaly(rec, AnomalyKind.COMMIT_WITHOUT_REQUEST, item_id)
        end = d.input.appended_ms()
        refs = d.input.slice(rec, d.input.pending_from, end)
        d.input.pending_from = end
    item = d.items.get_or_new(rec, item_id, type="message", role="user")
    part = attrs.evolve(item.part(0) or Part(index=0, type="input_audio"), audio=refs)
    parts = {p.index: p for p in item.parts} | {0: part}
    previous = e.previous_item_id
    d.items.put(
        attrs.evolve(
            item,
            parts=tuple(parts[i] for i in sorted(parts)),
            origin="input_audio_buffer",
            declared_previous=previous if previous is None or isinstance(previous, str) else UNSET,
        )
    )


# ---- conversation items


def _audio_part_index(item: dict[str, Any] | None) -> int | None:
    """The index of the first content part of an item's JSON that carries ``audio``."""
    content = item.get("content") if item is not None else None
    if not isinstance(content, list):
        return None
    return next((i for i, p in enumerate(content) if isinstance(p, dict) and "audio" in p), None)


@_handles(ev.ConversationItemCreate)
def _item_create(d: Draft, rec: FrameRecord, e: ev.ConversationItemCreate, raw: Raw) -> None:
    item = as_obj(raw.get("item"))
    index = _audio_part_index(item)
    if item is None or index is None:
        return
    span = rec.audio
    if span is None:
        d.findings.unarchived_audio += 1
        return
    ref = AudioRef(
        stream=span.stream, sample_rate=span.sample_rate, offset=span.offset, samples=span.samples
    )
    item_id = as_str(item.get("id"))
    if item_id is not None:
        d.input.created_audio[item_id] = (index, (ref,))
    else:
        d.input.created_audio_queue.append((index, (ref,)))


@_handles(ev.ConversationItemAdded, ev.ConversationItemCreated, ev.ConversationItemDone)
def _item_event(d: Draft, rec: FrameRecord, e: ev.ConversationItemAdded, raw: Raw) -> None:
    previous = raw.get("previous_item_id", UNSET)
    if previous is not None and not isinstance(previous, str):
        previous = UNSET  # absent, or a malformed declaration that says nothing: append
    places = rules.PREDECESSOR_RULES.get(e.type, Ordering.PLACES) is Ordering.PLACES
    item = d.items.merge_snapshot(rec, raw.get("item"), place=previous if places else KEEP)
    if item is not None:
        d.items.put(_attach_created_audio(d, item))


@_handles(ev.ConversationItemRetrieved)
def _item_retrieved(d: Draft, rec: FrameRecord, e: ev.ConversationItemRetrieved, raw: Raw) -> None:
    data = as_obj(raw.get("item"))
    item_id = as_str(data.get("id")) if data is not None else None
    if item_id is not None and item_id not in d.items.by_id:
        d.findings.anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"retrieved {item_id}")
    item = d.items.merge_snapshot(rec, data)
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
        d.items.put(with_part(item, attrs.evolve(part, retrieved_audio=(ref,))))


@_handles(ev.ConversationItemTruncated)
def _item_truncated(d: Draft, rec: FrameRecord, e: ev.ConversationItemTruncated, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index, end_ms = as_int(e.content_index), as_int(e.audio_end_ms)
    if item_id is None or index is None or end_ms is None:
        d.findings.anomaly(
            rec, AnomalyKind.MALFORMED, "truncation without content_index/audio_end_ms"
        )
        return
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"truncated {item_id}")
        item = d.items.new(rec, item_id, type="message", role="assistant")
    part = item.part(index) or Part(index=index, type="output_audio")
    d.items.put(with_part(item, attrs.evolve(part, truncated_at_ms=end_ms)))


@_handles(ev.ConversationItemDeleted)
def _item_deleted(d: Draft, rec: FrameRecord, e: ev.ConversationItemDeleted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.UNKNOWN_ITEM, f"deleted {item_id}")
        item = d.items.new(rec, item_id)
    if item.deleted_seq is not None:
        return
    d.items.delete(rec, item)


# ---- user transcription


def _user_part(d: Draft, rec: FrameRecord, item_id: str, index: int) -> tuple[Item, Part]:
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"transcription for {item_id}")
        item = d.items.new(rec, item_id, type="message", role="user")
    return item, item.part(index) or Part(index=index, type="input_audio")


@_handles(ev.InputAudioTranscriptionDelta)
def _transcription_delta(
    d: Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionDelta, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, as_int(e.content_index) or 0)
    delta = as_str(e.delta) or ""
    changes: dict[str, Any] = {}
    if part.transcript.final is None:
        value = part.transcript
        changes["transcript"] = attrs.evolve(value, deltas=(value.deltas or "") + delta)
    if part.transcription is None:
        changes["transcription"] = Transcription(status="in_progress")
    d.items.put(with_part(item, attrs.evolve(part, **changes)))


@_handles(ev.InputAudioTranscriptionCompleted)
def _transcription_completed(
    d: Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionCompleted, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    transcript = _required_str(d, rec, e.transcript, "transcript")
    if item_id is None or transcript is None:
        return
    item, part = _user_part(d, rec, item_id, as_int(e.content_index) or 0)
    old = part.transcription or Transcription(status="completed")
    logprobs, languages = raw.get("logprobs"), raw.get("languages")
    usage = as_obj(raw.get("usage"))
    transcription = attrs.evolve(
        old,
        status="completed",
        usage=None if usage is None else frozen(usage),
        logprobs=frozen(logprobs) if isinstance(logprobs, list) else old.logprobs,
        languages=frozen(languages) if isinstance(languages, list) else old.languages,
    )
    part = attrs.evolve(
        part,
        transcript=attrs.evolve(part.transcript, final=transcript),
        transcription=transcription,
    )
    d.items.put(with_part(item, part))


@_handles(ev.InputAudioTranscriptionFailed)
def _transcription_failed(
    d: Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionFailed, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, as_int(e.content_index) or 0)
    old = part.transcription or Transcription(status="failed")
    error = as_obj(raw.get("error"))
    transcription = attrs.evolve(
        old, status="failed", error=None if error is None else frozen(error)
    )
    d.items.put(with_part(item, attrs.evolve(part, transcription=transcription)))


@_handles(ev.InputAudioTranscriptionSegment)
def _transcription_segment(
    d: Draft, rec: FrameRecord, e: ev.InputAudioTranscriptionSegment, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item, part = _user_part(d, rec, item_id, as_int(e.content_index) or 0)
    segment = {k: v for k, v in raw.items() if k not in _SEGMENT_SKIP}
    old = part.transcription or Transcription(status="in_progress")
    transcription = attrs.evolve(old, segments=(*old.segments, frozen(segment)))
    d.items.put(with_part(item, attrs.evolve(part, transcription=transcription)))


_SEGMENT_SKIP: Final = frozenset({"type", "event_id", "item_id", "content_index"})


# ---- responses


@_handles(ev.ResponseCreated)
def _response_created(d: Draft, rec: FrameRecord, e: ev.ResponseCreated, raw: Raw) -> None:
    _merge_response(d, rec, raw.get("response"), done=False)


@_handles(ev.ResponseDone)
def _response_done(d: Draft, rec: FrameRecord, e: ev.ResponseDone, raw: Raw) -> None:
    resp = _merge_response(d, rec, raw.get("response"), done=True)
    if resp is None:
        return
    item_status = rules.ITEM_STATUS_AFTER_RESPONSE.get(resp.status or "")
    if item_status is None:
        return
    for item_id in resp.output:
        item = d.items.get(item_id)
        if item is not None and item.status in (None, "in_progress"):
            d.items.put(attrs.evolve(item, status=item_status))


@_handles(ev.ResponseOutputItemAdded, ev.ResponseOutputItemDone)
def _output_item(d: Draft, rec: FrameRecord, e: ev.ResponseOutputItemAdded, raw: Raw) -> None:
    response_id = as_str(e.response_id)
    item = d.items.merge_snapshot(rec, raw.get("item"), response_id=response_id, origin="response")
    index = as_int(e.output_index)
    if item is None or response_id is None or index is None:
        return
    resp = d.responses.get(rec, response_id)
    output = list(resp.output)
    if index < len(output):
        if output[index] == item.id:
            return
        output[index] = item.id
    else:
        output.append(item.id)
    d.responses.put(attrs.evolve(resp, output=tuple(output)))


@_handles(ev.ResponseContentPartAdded, ev.ResponseContentPartDone)
def _content_part(d: Draft, rec: FrameRecord, e: ev.ResponseContentPartAdded, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = as_int(e.content_index)
    part_json = as_obj(raw.get("part"))
    if item_id is None or index is None or part_json is None:
        return
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"content part for {item_id}")
        item = d.items.new(
            rec,
            item_id,
            type="message",
            role="assistant",
            response_id=as_str(e.response_id),
            origin="response",
        )
    part = merge_part(item.part(index) or Part(index=index), part_json)
    d.items.put(with_part(item, part))


@_handles(ev.ResponseOutputAudioDelta)
def _audio_delta(d: Draft, rec: FrameRecord, e: ev.ResponseOutputAudioDelta, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = as_int(e.content_index)
    if item_id is not None and index is not None:
        response_id = as_str(e.response_id)
        d.audio_delta(rec.seq, rec.t_ns, item_id, index, response_id, *span_fields(rec.audio))


@_handles(ev.ResponseOutputTextDelta, ev.ResponseOutputAudioTranscriptDelta)
def _text_delta(d: Draft, rec: FrameRecord, e: ev.ResponseOutputTextDelta, raw: Raw) -> None:
    field = rules.TEXT_DELTA_FIELDS.get(e.type)
    if field is None:  # a subclass under a name the rules do not list
        field = "text" if isinstance(e, ev.ResponseOutputTextDelta) else "transcript"
    item_id = _required_str(d, rec, e.item_id, "item_id")
    index = as_int(e.content_index)
    delta = as_str(e.delta)
    if item_id is not None and index is not None and delta is not None:
        d.text_delta(rec.seq, rec.t_ns, item_id, index, field, delta, as_str(e.response_id))


def _text_done(
    d: Draft, rec: FrameRecord, item_id: Any, index: Any, field: str, value: Any
) -> None:
    item_id, index, value = as_str(item_id), as_int(index), as_str(value)
    if item_id is None or index is None or value is None:
        d.findings.anomaly(
            rec, AnomalyKind.MALFORMED, f"{rec.type} without item_id/content_index/{field}"
        )
        return
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"{field} for {item_id}")
        item = d.items.new(rec, item_id, type="message", role="assistant", origin="response")
    part = item.part(index) or Part(index=index, type=rules.DELTA_PART_TYPES[field])
    part = set_text(part, field, attrs.evolve(getattr(part, field), final=value))
    d.items.put(with_part(item, part))


@_handles(ev.ResponseOutputTextDone)
def _output_text_done(d: Draft, rec: FrameRecord, e: ev.ResponseOutputTextDone, raw: Raw) -> None:
    _text_done(d, rec, e.item_id, e.content_index, "text", e.text)


@_handles(ev.ResponseOutputAudioTranscriptDone)
def _transcript_done(
    d: Draft, rec: FrameRecord, e: ev.ResponseOutputAudioTranscriptDone, raw: Raw
) -> None:
    _text_done(d, rec, e.item_id, e.content_index, "transcript", e.transcript)


@_handles(ev.ResponseFunctionCallArgumentsDelta, ev.ResponseMcpCallArgumentsDelta)
def _args_delta(
    d: Draft, rec: FrameRecord, e: ev.ResponseFunctionCallArgumentsDelta, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    delta = as_str(e.delta)
    if item_id is None or delta is None:
        return
    kind = "mcp_call" if isinstance(e, ev.ResponseMcpCallArgumentsDelta) else "function_call"
    response_id = as_str(e.response_id)
    if response_id is not None and response_id not in d.delta_seen:
        d.responses.first_delta(rec, response_id)
    acc = d.pending.get(item_id)
    chunks = acc.args if acc is not None else None
    if chunks is None:
        chunks = d.items.open_args(rec, item_id, response_id, kind)
        if chunks is None:  # the arguments are final: the delta is dropped
            return
    chunks.append(delta)


@_handles(ev.ResponseFunctionCallArgumentsDone, ev.ResponseMcpCallArgumentsDone)
def _args_done(
    d: Draft, rec: FrameRecord, e: ev.ResponseFunctionCallArgumentsDone, raw: Raw
) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    arguments = _required_str(d, rec, e.arguments, "arguments")
    if item_id is None or arguments is None:
        return
    kind = "mcp_call" if isinstance(e, ev.ResponseMcpCallArgumentsDone) else "function_call"
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"arguments for {item_id}")
        item = d.items.new(
            rec, item_id, type=kind, response_id=as_str(e.response_id), origin="response"
        )
    changes: dict[str, Any] = {"arguments": attrs.evolve(item.arguments, final=arguments)}
    # GA names the function here; beta only in the item (PROTOCOL.md §8.7)
    for key in ("name", "call_id"):
        value = as_str(raw.get(key))
        if value is not None:
            changes[key] = value
    d.items.put(attrs.evolve(item, **changes))


@_handles(
    ev.ResponseMcpCallInProgress,
    ev.ResponseMcpCallCompleted,
    ev.ResponseMcpCallFailed,
    ev.McpListToolsInProgress,
    ev.McpListToolsCompleted,
    ev.McpListToolsFailed,
)
def _mcp_status(d: Draft, rec: FrameRecord, e: ev.ResponseMcpCallCompleted, raw: Raw) -> None:
    item_id = _required_str(d, rec, e.item_id, "item_id")
    if item_id is None:
        return
    item = d.items.get(item_id)
    if item is None:
        d.findings.anomaly(rec, AnomalyKind.ITEM_NOT_SEEN, f"{e.type} for {item_id}")
        kind = "mcp_list_tools" if e.type.startswith("mcp_list_tools") else "mcp_call"
        item = d.items.new(rec, item_id, type=kind, origin="response")
    status = rules.final_status(item.status, e.type.rsplit(".", 1)[1])
    d.items.put(attrs.evolve(item, status=status))


@_handles(ev.OutputAudioBufferStarted, ev.OutputAudioBufferStopped, ev.OutputAudioBufferCleared)
def _playback(d: Draft, rec: FrameRecord, e: ev.OutputAudioBufferStarted, raw: Raw) -> None:
    what = rules.PLAYBACK_EVENTS.get(e.type)
    if what is None:
        return
    d.playback[what] = d.playback.get(what, 0) + 1
    response_id = as_str(e.response_id)
    if response_id is not None:
        resp = d.responses.get(rec, response_id)
        d.responses.put(attrs.evolve(resp, playback=(*resp.playback, (what, rec.t_ns))))


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


DISPATCH: Final[Mapping[type[Event], _Handler]] = MappingProxyType(_resolve_dispatch())
