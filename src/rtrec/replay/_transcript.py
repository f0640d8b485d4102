"""The readable transcript of a rebuilt state: what ``rtrec replay SESSION`` prints.

One line per item in conversation order (time into the session, speaker, audio duration,
text or transcript), function calls with their arguments and outputs, truncations and
interruptions marked, each response's status and tokens after its last item, errors where
they happened in time, and at the end whatever the log held that the conversation does not
show (detached and deleted items, unknown event types, anomalies). Plain text, no colour:
it is also what tests and diffs compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rtrec.replay._canonical import stable_id_text
from rtrec.replay._state import (
    ConversationState,
    ErrorRecord,
    Item,
    Part,
    ResponseState,
    audio_duration,
)

__all__ = ["transcript"]

_SPEAKER_WIDTH: Final = 9


def _t(t_ns: int | None, times: bool = True) -> str:
    if not times:
        return ""
    return "       " if t_ns is None else f"{t_ns / 1e9:6.2f}s"


def _lead(t_ns: int | None, times: bool) -> str:
    """The time column and its gap, or nothing when times are left out."""
    return f"{_t(t_ns)}  " if times else ""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _part_text(part: Part) -> str:
    bits: list[str] = []
    if part.type in ("input_audio", "output_audio") or part.audio:
        heard = audio_duration(part.heard_audio)
        if part.truncated_at_ms is not None:
            bits.append(f"[audio {heard:.2f}s of {audio_duration(part.audio):.2f}s]")
        else:
            bits.append(f"[audio {heard:.2f}s]")
    if part.type == "input_image":
        bits.append("[image]")
    text = part.text.value
    if text is not None:
        bits.append(_quote(text))
    heard_transcript = part.heard_transcript
    if heard_transcript is not None and (heard_transcript or part.truncated_at_ms is None):
        bits.append(_quote(heard_transcript))
    elif part.type in ("input_audio", "output_audio") and part.truncated_at_ms is None:
        bits.append("(no transcript)")
    if part.transcription is not None and part.transcription.status == "failed":
        message = (part.transcription.error or {}).get("message")
        bits.append(f"(transcription failed: {message})" if message else "(transcription failed)")
    if part.truncated_at_ms is not None:
        bits.append(f"✂ truncated at {part.truncated_at_ms} ms")
        generated = part.transcript.value
        if generated:
            bits.append(f"(generated: {_quote(generated)})")
    return " ".join(bits)


def _speaker(item: Item) -> str:
    if item.type == "function_call_output":
        return "tool"
    if item.type == "mcp_approval_response":
        return "user"
    if item.role is not None:
        return item.role
    if item.type in ("function_call", "mcp_call", "mcp_list_tools", "mcp_approval_request"):
        return "assistant"
    return item.type or "?"


def _item_line(
    item: Item, state: ConversationState, times: bool = True, item_ids: bool = False
) -> str:
    body: list[str] = []
    if item.type == "function_call":
        body.append(f"call {item.name or '?'}({item.arguments.value or ''}) [{item.call_id}]")
    elif item.type == "function_call_output":
        body.append(f"[{item.call_id}] → {item.output if item.output is not None else '?'}")
    elif item.type in ("mcp_call", "mcp_approval_request"):
        label = item.fields.get("server_label")
        tool = f"{label}.{item.name or '?'}" if isinstance(label, str) else item.name or "?"
        verb = "mcp" if item.type == "mcp_call" else "[mcp_approval_request] approve?"
        body.append(f"{verb} {tool}({item.arguments.value or ''})")
        error = item.fields.get("error")
        if item.output is not None:
            body.append(f"→ {item.output}")
        elif isinstance(error, Mapping):
            body.append(f"✗ failed: {error.get('message') or error.get('type') or '?'}")
        request = item.fields.get("approval_request_id")
        if isinstance(request, str):
            body.append(f"(approved in {request})")
    elif item.type == "mcp_approval_response":
        approve = item.fields.get("approve")
        decision = "approved" if approve is True else "denied" if approve is False else "?"
        body.append(f"[mcp_approval_response] {decision} {item.fields.get('approval_request_id')}")
        reason = item.fields.get("reason")
        if isinstance(reason, str):
            body.append(f"({reason})")
    elif item.type == "mcp_list_tools":
        tools = item.fields.get("tools")
        names = [t.get("name") for t in tools if isinstance(t, Mapping)] if tools else []
        label = item.fields.get("server_label", "?")
        body.append(f"[mcp_list_tools] {label}: {', '.join(map(str, names)) or 'no tools'}")
    elif item.type is not None and item.type != "message":
        body.append(f"[{item.type}]")
    body.extend(t for t in (_part_text(p) for p in item.parts) if t)
    if item.status == "incomplete":
        body.append("(incomplete)")
    resp = state.responses.get(item.response_id or "")
    if resp is not None and resp.interrupted:
        reason = (resp.status_details or {}).get("reason")
        body.append(f"⚡ interrupted ({reason})")
    if item.id in state.orphans:
        body.append("(predecessor not in log)")
    if item_ids:
        body.append(f"· {item.id}")
    speaker = _speaker(item).ljust(_SPEAKER_WIDTH)
    return f"{_lead(item.first_t_ns, times)}{speaker} {' '.join(body)}".rstrip()


def _tokens(usage: Mapping[str, Any] | None) -> str:
    if not usage:
        return "no usage"

    def details(key: str, names: tuple[str, ...]) -> str:
        found = usage.get(key)
        if not isinstance(found, Mapping):
            return ""
        parts = [f"{n.removesuffix('_tokens')} {found[n]}" for n in names if n in found]
        return f" ({', '.join(parts)})" if parts else ""

    inp = usage.get("input_tokens", "?")
    out = usage.get("output_tokens", "?")
    return (
        f"tokens in {inp}"
        + details("input_token_details", ("text_tokens", "audio_tokens", "cached_tokens"))
        + f", out {out}"
        + details("output_token_details", ("text_tokens", "audio_tokens"))
    )


def _response_line(resp: ResponseState, times: bool = True) -> str:
    bits = [f"response {resp.id} {resp.status or 'unfinished'}"]
    reason = (resp.status_details or {}).get("reason")
    if reason:
        bits.append(f"({reason})")
    bits.append("· " + _tokens(resp.usage))
    if resp.playback:
        bits.append("· playback " + " → ".join(what for what, _ in resp.playback))
    if resp.created_t_ns is not None and times:
        if resp.first_delta_t_ns is not None:
            bits.append(f"· first delta +{(resp.first_delta_t_ns - resp.created_t_ns) / 1e9:.3f}s")
        if resp.done_t_ns is not None:
            bits.append(f"· done +{(resp.done_t_ns - resp.created_t_ns) / 1e9:.3f}s")
    return f"{_lead(None, times)}{'':{_SPEAKER_WIDTH}} " + " ".join(bits)


def _error_line(err: ErrorRecord, times: bool = True) -> str:
    what = " ".join(x for x in (err.type, err.code) if x)
    line = f"{_lead(err.t_ns, times)}{'error':{_SPEAKER_WIDTH}} {what}: {_quote(err.message or '')}"
    if err.caused_by is not None:
        line += f" ← {err.caused_by.type} (seq {err.caused_by.seq})"
    elif err.client_event_id is not None:
        line += f" ← client event {err.client_event_id} (not in log)"
    return line


def transcript(
    state: ConversationState,
    *,
    stable_ids: bool = False,
    times: bool = True,
    item_ids: bool = False,
) -> str:
    """The conversation as readable text (see the module docstring).

    Args:
        state: a rebuilt state.
        stable_ids: show the ids the service generated as the ordinals of
            ``canonical_json(state, stable_ids=True)`` (``item#1``, ``resp#1``, ``call#1``).
        times: show each line's time into the session and each response's latencies.
        item_ids: end each item's line with its id (what ``rtrec audio --item`` takes).
    """
    text = _transcript(state, times, item_ids)
    return stable_id_text(state, text) if stable_ids else text


def _transcript(state: ConversationState, times: bool = True, item_ids: bool = False) -> str:
    items = state.conversation
    entries: list[tuple[float, int, str]] = []
    for index, item in enumerate(items):
        entries.append((index, item.first_seq, _item_line(item, state, times, item_ids)))

    def after_time(t_ns: int | None) -> float:
        if t_ns is None:
            return len(items) - 0.5
        earlier = [i for i, item in enumerate(items) if item.first_t_ns <= t_ns]
        return (max(earlier) if earlier else -1) + 0.5

    position = {item.id: i for i, item in enumerate(items)}
    for resp in state.responses_in_order():
        placed = [position[i] for i in resp.output if i in position]
        where = max(placed) + 0.5 if placed else after_time(resp.created_t_ns or resp.done_t_ns)
        entries.append((where, resp.done_seq or resp.first_seq, _response_line(resp, times)))
    for err in state.errors:
        entries.append((after_time(err.t_ns), err.seq, _error_line(err, times)))
    entries.sort(key=lambda e: (e[0], e[1]))

    head = [
        f"session {(state.session or {}).get('id', '?')}",
        (state.protocol or "protocol unknown").upper(),
    ]
    model = (state.session or {}).get("model")
    if model:
        head.append(str(model))
    if (state.session or {}).get("object") == "realtime.transcription_session":
        head.append("transcription only")
    if not state.session_started:
        head.append("log starts mid-session")
    lines = [" · ".join(head), *(e[2] for e in entries)]

    if state.detached:
        lines.append("not in the conversation:")
        lines.extend("  " + _item_line(i, state, times, item_ids) for i in state.detached)
    if state.deleted:
        lines.append("deleted:")
        lines.extend("  " + _item_line(i, state, times, item_ids) for i in state.deleted)
    if state.unknown_types:
        counts = ", ".join(f"{k} ×{v}" for k, v in sorted(state.unknown_types.items()))
        lines.append(f"unknown event types: {counts}")
    ignored = []
    if state.binary_frames:
        ignored.append(f"{state.binary_frames} binary")
    if state.invalid_frames:
        ignored.append(f"{len(state.invalid_frames)} not JSON")
    if state.unarchived_audio:
        ignored.append(f"{state.unarchived_audio} with unarchived audio")
    if ignored:
        lines.append("frames: " + ", ".join(ignored))
    if state.anomalies:
        lines.append("anomalies:")
        lines.extend(f"  seq {a.seq}: {a.kind.value}: {a.detail}" for a in state.anomalies)
    return "\n".join(lines) + "\n"
