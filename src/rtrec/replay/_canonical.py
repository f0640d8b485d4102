"""The canonical JSON of a rebuilt state: what ``--json`` prints and golden files hold.

Layout rules, so that two equal conversations give byte-equal text:

- keys sorted, two-space indent, UTF-8, one trailing newline; lists in conversation order
  (items), first-mention order (responses) or log order (errors, anomalies);
- a field appears whenever its item kind has it (``null`` when unknown), so that a diff shows
  a value changing rather than a key appearing;
- audio is never inlined: ``{"duration_s", "samples", "sample_rate", "sha256"}``, the checksum
  over the PCM16 samples the references point at, read through an ``AudioSource`` (without
  one, the checksum is left out);
- ``stable_ids=True`` replaces the ids the service generates with ordinals (``item#1``,
  ``resp#1``, ``call#1``, ``event#1`` for client event ids, ``session#1``, ``conv#1``) and,
  unless ``volatile`` says otherwise, leaves out what changes from one recording of the same
  conversation to the next: times, seqs, archive offsets, server event ids, the session's
  ``expires_at`` and ``client_secret``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from rtrec.replay._audio import AudioSource, audio_digest
from rtrec.replay._state import (
    AudioRef,
    ConversationState,
    ErrorRecord,
    Item,
    Part,
    ResponseState,
    audio_duration,
    audio_samples,
)

__all__ = ["FORMAT", "canonical_json", "canonical_state", "stable_id_text"]

#: Written into every canonical document; bump when the layout changes.
FORMAT: Final = "rtrec.replay/1"

_VOLATILE_SESSION_KEYS: Final = frozenset({"expires_at", "client_secret"})
_LONG_VALUE: Final = 256  # string values longer than this (data URIs) appear as a checksum


class _Aliases:
    """Generated ids -> ordinals, per kind, in the order they are first asked for."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._maps: dict[str, dict[str, str]] = {}

    def __call__(self, kind: str, value: str | None) -> str | None:
        if value is None or not self.enabled:
            return value
        table = self._maps.setdefault(kind, {})
        alias = table.get(value)
        if alias is None:
            alias = table[value] = f"{kind}#{len(table) + 1}"
        return alias

    def register(self, state: ConversationState) -> None:
        """Alias every generated id of ``state`` in reading order (see ``_Writer.document``)."""
        # Ordinals follow the reading order: responses as the log first mentions them, then
        # items in conversation order, detached, deleted; calls as their items come.
        for resp in state.responses_in_order():
            self("resp", resp.id)
        for item in (*state.conversation, *state.detached, *state.deleted):
            self("item", item.id)
            if item.call_id is not None:
                self("call", item.call_id)
        session_id = (state.session or {}).get("id")
        if isinstance(session_id, str):
            self("session", session_id)
        self("conv", state.conversation_id)
        for resp in state.responses_in_order():
            self("conv", resp.conversation_id)
        for err in state.errors:
            self("event", err.client_event_id)

    def substitute(self, text: str) -> str:
        """``text`` with every id aliased so far replaced by its alias."""
        known = {v: a for table in self._maps.values() for v, a in table.items()}
        if not self.enabled or not known:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True))
        return re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", lambda m: known[m[0]], text)


def _seconds(t_ns: int | None) -> float | None:
    return None if t_ns is None else round(t_ns / 1e9, 6)


def _plain(value: Any) -> Any:
    """Read-only JSON (mapping proxies, tuples) as plain JSON, long strings summarised."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) > _LONG_VALUE:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return f"<{len(value)} chars, sha256:{digest}>"
    return value


class _Writer:
    def __init__(
        self,
        state: ConversationState,
        stable_ids: bool,
        volatile: bool,
        audio: AudioSource | None,
    ) -> None:
        self.state = state
        self.ids = _Aliases(stable_ids)
        self.volatile = volatile
        self.audio = audio

    def audio_summary(self, refs: tuple[AudioRef, ...]) -> dict[str, Any] | None:
        if not refs:
            return None
        rates = {r.sample_rate for r in refs}
        out: dict[str, Any] = {
            "duration_s": round(audio_duration(refs), 6),
            "samples": audio_samples(refs),
            "sample_rate": rates.pop() if len(rates) == 1 else None,
        }
        if self.audio is not None:
            out["sha256"] = audio_digest(refs, self.audio).removeprefix("sha256:")
        if self.volatile:
            out["refs"] = [[str(r.stream), r.sample_rate, r.offset, r.samples] for r in refs]
        return out

    def part(self, part: Part) -> dict[str, Any]:
        out: dict[str, Any] = {"type": part.type}
        if part.text.value is not None or part.type in ("input_text", "output_text"):
            out["text"] = part.text.value
        if part.type in ("input_audio", "output_audio") or part.transcript.value is not None:
            out["transcript"] = part.heard_transcript
            out["audio"] = self.audio_summary(part.heard_audio)
        if part.truncated_at_ms is not None:
            out["truncated"] = {
                "audio_end_ms": part.truncated_at_ms,
                "generated_transcript": part.transcript.value,
                "generated_audio": self.audio_summary(part.audio),
            }
        if part.transcription is not None:
            t = part.transcription
            out["transcription"] = {
                "status": t.status,
                "usage": _plain(t.usage),
                "error": _plain(t.error),
                "segments": _plain(t.segments),
            }
            # only when the service sent them (``include`` logprobs; detected languages)
            if t.logprobs is not None:
                out["transcription"]["logprobs"] = _plain(t.logprobs)
            if t.languages is not None:
                out["transcription"]["languages"] = _plain(t.languages)
        if part.retrieved_audio:
            out["retrieved_audio"] = self.audio_summary(part.retrieved_audio)
        if part.fields:
            out["fields"] = _plain(part.fields)
        return out

    def item(self, item: Item) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.ids("item", item.id),
            "type": item.type,
            "status": item.status,
            "origin": item.origin,
            "response": self.ids("resp", item.response_id),
        }
        if item.type == "message" or item.role is not None:
            out["role"] = item.role
            out["content"] = [self.part(p) for p in item.parts]
        elif item.parts:
            out["content"] = [self.part(p) for p in item.parts]
        if item.type in ("function_call", "mcp_call", "mcp_approval_request"):
            out["name"] = item.name
            out["arguments"] = item.arguments.value
        if item.type in ("function_call", "function_call_output"):
            out["call_id"] = self.ids("call", item.call_id)
        if item.type in ("function_call_output", "mcp_call"):
            out["output"] = item.output
        if item.fields:
            out["fields"] = _plain(item.fields)
        if item.id in self.state.orphans:
            out["orphan"] = True
        if self.volatile:
            out["seq"] = item.first_seq
            out["t"] = _seconds(item.first_t_ns)
            if not self.ids.enabled:
                out["previous_item_id"] = (
                    item.placement.previous_item_id if item.placement else None
                )
        return out

    def response(self, resp: ResponseState) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.ids("resp", resp.id),
            "status": resp.status,
            "status_details": _plain(resp.status_details),
            "output": [self.ids("item", i) for i in resp.output],
            "usage": _plain(resp.usage),
            "metadata": _plain(resp.metadata),
            "conversation": self.ids("conv", resp.conversation_id),
        }
        if resp.playback:  # WebRTC/SIP only
            out["playback"] = [
                {"event": what} | ({"t": _seconds(t_ns)} if self.volatile else {})
                for what, t_ns in resp.playback
            ]
        if self.volatile:
            out["times"] = {
                "created": _seconds(resp.created_t_ns),
                "first_delta": _seconds(resp.first_delta_t_ns),
                "done": _seconds(resp.done_t_ns),
            }
        return out

    def error(self, err: ErrorRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": err.type,
            "code": err.code,
            "message": self.ids.substitute(err.message) if err.message else err.message,
            "param": err.param,
            "client_event_id": self.ids("event", err.client_event_id),
            "caused_by": None
            if err.caused_by is None
            else {"type": err.caused_by.type}
            | ({"seq": err.caused_by.seq} if self.volatile else {}),
        }
        if self.volatile:
            out["seq"] = err.seq
            out["t"] = _seconds(err.t_ns)
            out["event_id"] = err.event_id
        return out

    def session(self) -> Any:
        session = self.state.session
        if session is None:
            return None
        out = _plain(session)
        if self.ids.enabled:
            for key in _VOLATILE_SESSION_KEYS:
                out.pop(key, None)
            if isinstance(out.get("id"), str):
                out["id"] = self.ids("session", out["id"])
        return out

    def document(self) -> dict[str, Any]:
        s = self.state
        self.ids.register(s)
        conversation, detached, deleted = s.conversation, s.detached, s.deleted
        doc: dict[str, Any] = {
            "format": FORMAT,
            "protocol": s.protocol,
            "session_started": s.session_started,
            "session": self.session(),
            "conversation_id": self.ids("conv", s.conversation_id),
            "items": [self.item(i) for i in conversation],
            "detached_items": [self.item(i) for i in detached],
            "deleted_items": [self.item(i) for i in deleted],
            "responses": [self.response(r) for r in s.responses_in_order()],
            "errors": [self.error(e) for e in s.errors],
            "rate_limits": _plain(s.rate_limits),
            **({"playback": dict(s.playback)} if s.playback else {}),
            "input_audio": {
                "appended_ms": round(s.input.appended_ms, 3),
                "pending_ms": round(s.input.pending_ms, 3),
            },
            "unknown_event_types": dict(s.unknown_types),
            "anomalies": [
                {"kind": a.kind.value, "detail": self.ids.substitute(a.detail)}
                | ({"seq": a.seq} if self.volatile else {})
                for a in s.anomalies
            ],
            "frames": {
                "binary": s.binary_frames,
                "marks": dict(s.marks),
                "invalid": len(s.invalid_frames),
                "unarchived_audio": s.unarchived_audio,
            },
        }
        if self.volatile:
            doc["frames"]["events"] = s.events
            doc["frames"]["last_seq"] = s.seq
            doc["frames"]["invalid_seqs"] = list(s.invalid_frames)
        return doc


def stable_id_text(state: ConversationState, text: str) -> str:
    """``text`` (a transcript of ``state``, say) with the ids the service generated replaced
    by the ordinals ``canonical_json(state, stable_ids=True)`` gives them."""
    aliases = _Aliases(True)
    aliases.register(state)
    return aliases.substitute(text)


def canonical_state(
    state: ConversationState,
    *,
    stable_ids: bool = False,
    volatile: bool | None = None,
    audio: AudioSource | None = None,
) -> dict[str, Any]:
    """The state as plain JSON values in the canonical layout (see the module docstring).

    Args:
        state: a rebuilt state.
        stable_ids: replace generated ids with ordinals (``item#1``, ``resp#1``, ...).
        volatile: include times, seqs, archive offsets and server event ids; by default,
            included unless ``stable_ids``.
        audio: where to read samples for the audio checksums; without it, no checksums.

    Raises:
        LookupError: ``audio`` does not hold samples the state refers to.
    """
    keep = (not stable_ids) if volatile is None else volatile
    return _Writer(state, stable_ids, keep, audio).document()


def canonical_json(
    state: ConversationState,
    *,
    stable_ids: bool = False,
    volatile: bool | None = None,
    audio: AudioSource | None = None,
) -> str:
    """``canonical_state`` as text: sorted keys, two-space indent, a final newline."""
    doc = canonical_state(state, stable_ids=stable_ids, volatile=volatile, audio=audio)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
