"""The state of a GPT-Live session, folded from its log rows (LIVE.md §9.5, rule 4).

GPT-Live has no conversation items, responses or turns: a session is a configuration over
time, two transcript streams positioned on the session timeline by ``start_ms``/``end_ms``
(full duplex: they interleave), context appends and their acknowledgements, delegations
(with the nested Responses events that serve them), decisions, mute intervals, the latest
usage and the close reason. ``fold_live`` builds that state (``live_at``: as of a seq or a
time, for time travel); ``live_transcript`` shows it in time order, ``live_canonical`` gives
the JSON of golden files and ``diff_live`` compares two sessions as ``rtrec diff`` does.

Like the Realtime reducer, this is pure: no trio, duckdb or soundfile.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import orjson

from rtrec.replay._diff import Change, ConversationDiff
from rtrec.replay._replay import read_point
from rtrec.schemas.storage import Direction, FrameKind, FrameRecord

__all__ = [
    "Append",
    "Delegation",
    "Fragment",
    "LiveState",
    "diff_live",
    "fold_live",
    "live_at",
    "live_canonical",
    "live_transcript",
    "segments",
]

_SPEAKER = {
    "session.input_transcript.delta": "user",
    "session.output_transcript.delta": "assistant",
}
_APPENDS = {
    "session.instructions.append": "instructions",
    "session.thinking.append": "thinking",
    "session.commentary.append": "commentary",
}
_ACKS = {f"{kind}ed": name for kind, name in _APPENDS.items()}
_CONFIGS = ("session.started", "session.updated", "session.closed")
#: fragments of one speaker closer than this are one segment (the SDK grouper's default)
SEGMENT_GAP_MS = 500


@attrs.frozen
class Fragment:
    """One transcript delta: who, what, and where on the session timeline."""

    speaker: str
    text: str
    start_ms: int
    end_ms: int
    event_id: str | None
    seq: int


@attrs.define
class Append:
    """Context the client appended, and where the server placed it (its ack)."""

    kind: str  # instructions | thinking | commentary
    content: str
    delegation_id: str | None
    event_id: str | None
    seq: int
    start_ms: int | None = None
    end_ms: int | None = None
    error: str | None = None


@attrs.define
class Delegation:
    """Work the model handed off, and what came back for it."""

    id: str
    target: str
    offset_ms: int | None
    response_id: str | None
    seq: int
    #: nested Responses event types, in order
    events: list[str] = attrs.Factory(list)
    #: function calls the backend made: name, call_id, arguments
    calls: list[dict[str, Any]] = attrs.Factory(list)
    usage: dict[str, Any] | None = None
    status: str | None = None


@attrs.define
class LiveState:
    """Everything a GPT-Live session's rows say (see the module docstring)."""

    #: the configuration the client asked for (``session.start``)
    requested: dict[str, Any] | None = None
    #: the configuration in force: the last resolved ``session`` the server sent
    config: dict[str, Any] | None = None
    #: (seq, resolved session) after each change
    config_history: list[tuple[int, dict[str, Any]]] = attrs.Factory(list)
    fragments: list[Fragment] = attrs.Factory(list)
    appends: list[Append] = attrs.Factory(list)
    delegations: dict[str, Delegation] = attrs.Factory(dict)
    decisions: list[dict[str, Any]] = attrs.Factory(list)
    #: (seq muted, seq unmuted or None) per mute
    mutes: list[tuple[int, int | None]] = attrs.Factory(list)
    fixtures: int = 0
    usage: dict[str, Any] | None = None
    context_ratio: float | None = None
    errors: list[dict[str, Any]] = attrs.Factory(list)
    close_reason: str | None = None
    #: samples of audio per direction and rate, from the archive references
    audio_samples: dict[str, int] = attrs.Factory(dict)
    unparsed: int = 0


def fold_live(records: Iterable[FrameRecord]) -> LiveState:
    """Fold one GPT-Live session's log rows (in ``seq`` order) into its state."""
    state = LiveState()
    seen: set[str] = set()  # transcript event ids: a sideband replay can repeat them
    for record in records:
        if record.direction is Direction.RECORDER or record.kind is not FrameKind.TEXT:
            continue
        if record.audio is not None:
            key = f"{record.audio.stream.value}@{record.audio.sample_rate}"
            state.audio_samples[key] = state.audio_samples.get(key, 0) + record.audio.samples
        try:
            event = orjson.loads(record.payload or "")
        except orjson.JSONDecodeError:
            state.unparsed += 1
            continue
        if not isinstance(event, dict):
            state.unparsed += 1
            continue
        _apply(state, record, event, seen)
    return state


def live_at(records: Sequence[FrameRecord], point: int | str) -> LiveState:
    """The state as of a point in the session (rows in ``seq`` order): after every row with
    ``seq`` at or before a seq (``120``), or logged at or before a time into the session
    (``"12.5s"``, ``"800ms"``; the longest prefix whose rows are all at or before it, as
    ``Replay.at`` takes it).

    Raises:
        ValueError: ``point`` is neither a seq nor a time.
    """
    seq, t_ns = read_point(point)
    if seq is not None:
        return fold_live(itertools.takewhile(lambda r: r.seq <= seq, records))
    assert t_ns is not None
    latest = itertools.accumulate((r.t_ns for r in records), max)
    prefix = itertools.takewhile(lambda pair: pair[1] <= t_ns, zip(records, latest, strict=True))
    return fold_live(record for record, _ in prefix)


def _apply(state: LiveState, record: FrameRecord, event: dict[str, Any], seen: set[str]) -> None:
    kind = event.get("type")
    client = record.direction is Direction.CLIENT
    if client:
        if kind == "session.start" and isinstance(event.get("session"), dict):
            state.requested = event["session"]
        elif kind in _APPENDS:
            state.appends.append(
                Append(
                    kind=_APPENDS[kind],
                    content=_text(event.get("content")),
                    delegation_id=_opt_str(event.get("delegation_id")),
                    event_id=_opt_str(event.get("event_id")),
                    seq=record.seq,
                )
            )
        return
    if kind in _CONFIGS and isinstance(event.get("session"), dict):
        if event["session"] != state.config:
            state.config = event["session"]
            state.config_history.append((record.seq, event["session"]))
        if kind == "session.closed":
            state.close_reason = _opt_str(event.get("reason"))
            if isinstance(event.get("usage"), dict):
                state.usage = event["usage"]
    elif kind in _SPEAKER:
        event_id = _opt_str(event.get("event_id"))
        if event_id is not None and event_id in seen:
            return
        if event_id is not None:
            seen.add(event_id)
        start, end = _int(event.get("start_ms")), _int(event.get("end_ms"))
        state.fragments.append(
            Fragment(_SPEAKER[kind], _text(event.get("delta")), start, end, event_id, record.seq)
        )
    elif kind in _ACKS:
        _ack(state, _ACKS[kind], event)
    elif kind == "session.delegation.created":
        d = event.get("delegation") if isinstance(event.get("delegation"), dict) else {}
        assert isinstance(d, dict)
        did = _opt_str(d.get("id")) or f"delegation@{record.seq}"
        state.delegations[did] = Delegation(
            id=did,
            target=_text(d.get("target")),
            offset_ms=_int(event.get("offset_ms")) if "offset_ms" in event else None,
            response_id=_opt_str(d.get("response_id")),
            seq=record.seq,
        )
    elif kind == "response.event":
        _response_event(state, record, event)
    elif kind == "decision.event":
        state.decisions.append(event)
    elif kind == "session.input_audio.muted":
        state.mutes.append((record.seq, None))
    elif kind == "session.input_audio.unmuted" and state.mutes and state.mutes[-1][1] is None:
        state.mutes[-1] = (state.mutes[-1][0], record.seq)
    elif kind == "session.output_audio.fixture.playing":
        state.fixtures += 1
    elif kind == "session.usage.updated":
        if isinstance(event.get("usage"), dict):
            state.usage = event["usage"]  # cumulative: replace, never add
        window = event.get("context_window")
        if isinstance(window, dict) and isinstance(window.get("usage_ratio"), int | float):
            state.context_ratio = float(window["usage_ratio"])
    elif kind == "error":
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        assert isinstance(error, dict)
        state.errors.append({"seq": record.seq, **error})


def _ack(state: LiveState, kind: str, event: dict[str, Any]) -> None:
    """Place an append: by ``client_event_id`` when present, else the oldest unplaced one of
    its kind (LIVE.md §3.1, FIFO)."""
    cid = _opt_str(event.get("client_event_id"))
    pending = [a for a in state.appends if a.kind == kind and a.start_ms is None]
    match = next((a for a in pending if cid is not None and a.event_id == cid), None)
    if match is None and pending:
        match = pending[0]
    if match is not None:
        match.start_ms, match.end_ms = _int(event.get("start_ms")), _int(event.get("end_ms"))


def _response_event(state: LiveState, record: FrameRecord, event: dict[str, Any]) -> None:
    nested = event.get("event") if isinstance(event.get("event"), dict) else {}
    assert isinstance(nested, dict)
    did = _opt_str(event.get("delegation_id"))
    delegation = state.delegations.get(did) if did else None
    if delegation is None:
        response = nested.get("response") if isinstance(nested.get("response"), dict) else {}
        assert isinstance(response, dict)
        rid = _opt_str(nested.get("response_id")) or _opt_str(response.get("id"))
        delegation = next(
            (d for d in state.delegations.values() if rid and d.response_id == rid), None
        )
    if delegation is None:
        did = did or f"response@{record.seq}"
        delegation = state.delegations[did] = Delegation(did, "responses", None, None, record.seq)
    nested_type = _text(nested.get("type"))
    delegation.events.append(nested_type)
    item = nested.get("item") if isinstance(nested.get("item"), dict) else None
    if nested_type == "response.output_item.done" and item and item.get("type") == "function_call":
        delegation.calls.append(
            {k: item.get(k) for k in ("name", "call_id", "arguments") if k in item}
        )
    if nested_type in ("response.completed", "response.failed", "response.incomplete"):
        response = nested.get("response") if isinstance(nested.get("response"), dict) else {}
        assert isinstance(response, dict)
        delegation.status = _opt_str(response.get("status")) or nested_type.split(".")[1]
        if isinstance(response.get("usage"), dict):
            delegation.usage = response["usage"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


# ---------------------------------------------------------------------- views


def segments(state: LiveState) -> list[tuple[str, int, int, str]]:
    """Transcript fragments grouped per speaker: (speaker, start_ms, end_ms, text), in time
    order. Fragments carry their own spaces; they are joined as they came."""
    out: list[tuple[str, int, int, str]] = []
    open_: dict[str, int] = {}  # speaker -> index of its open segment in `out`
    for f in sorted(state.fragments, key=lambda f: (f.start_ms, f.seq)):
        at = open_.get(f.speaker)
        if at is not None and f.start_ms - out[at][2] <= SEGMENT_GAP_MS:
            speaker, start, end, text = out[at]
            out[at] = (speaker, start, max(end, f.end_ms), text + f.text)
        else:
            open_[f.speaker] = len(out)
            out.append((f.speaker, f.start_ms, f.end_ms, f.text))
    return sorted(out, key=lambda s: s[1])


def _clock(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms % 60000 / 1000:06.3f}"


def live_transcript(state: LiveState, *, ended: bool = True) -> str:
    """The session as text: both speakers interleaved on the timeline, with delegations,
    context appends and how it ended (``ended=False``: a state part-way through, as of a
    point, which has not ended yet)."""
    config = state.config or state.requested or {}
    fmt = (config.get("audio") or {}).get("format") or {}
    lines = [
        f"GPT-Live session, model {config.get('model', '?')}, audio "
        f"{fmt.get('type', 'audio/pcm (default)')} {fmt.get('rate', '')}".rstrip()
    ]
    rows: list[tuple[int, str]] = [
        (start, f"[{_clock(start)}] {speaker}: {text.strip()}")
        for speaker, start, _end, text in segments(state)
    ]
    for d in state.delegations.values():
        calls = "; ".join(f"{c.get('name')}({c.get('arguments', '')})" for c in d.calls)
        detail = f" calls {calls}" if calls else ""
        status = f" [{d.status}]" if d.status else ""
        at = d.offset_ms or 0
        rows.append((at, f"[{_clock(at)}] delegation {d.id} to {d.target}{detail}{status}"))
    for a in state.appends:
        at = a.start_ms if a.start_ms is not None else 0
        where = f"[{_clock(at)}]" if a.start_ms is not None else "[  not placed ]"
        rows.append((at, f"{where} {a.kind}: {a.content}"))
    lines += [text for _, text in sorted(rows, key=lambda r: r[0])]
    if state.mutes:
        lines.append(f"muted {len(state.mutes)} time(s)")
    for e in state.errors:
        lines.append(f"error {e.get('code', '?')}: {e.get('message', '')}")
    usage = state.usage or {}
    if "seconds" in usage:
        lines.append(f"usage: {usage['seconds']} s")
    if state.close_reason is not None or ended:
        lines.append(f"closed: {state.close_reason or 'without session.closed (not confirmed)'}")
    else:
        lines.append("not closed yet")
    return "\n".join(lines) + "\n"


def live_canonical(state: LiveState) -> dict[str, Any]:
    """The state as plain JSON values, for golden files and diffs (no seqs or event ids, so
    that a re-recording of the same conversation compares equal)."""
    return {
        "protocol": "live",
        "config": state.config,
        "requested": state.requested,
        "transcript": [
            {"speaker": s, "start_ms": a, "end_ms": b, "text": t} for s, a, b, t in segments(state)
        ],
        "appends": [
            {"kind": a.kind, "content": a.content, "placed": a.start_ms is not None}
            for a in state.appends
        ],
        "delegations": [
            {"target": d.target, "calls": d.calls, "status": d.status, "usage": d.usage}
            for d in state.delegations.values()
        ],
        "decisions": len(state.decisions),
        "mutes": len(state.mutes),
        "fixtures": state.fixtures,
        "usage": state.usage,
        "errors": [{k: v for k, v in e.items() if k != "seq"} for e in state.errors],
        "audio_samples": dict(sorted(state.audio_samples.items())),
        "close_reason": state.close_reason,
    }


def _compared(state: LiveState) -> dict[str, list[str]]:
    """What ``diff_live`` compares, per part, as printable lines in order."""
    config = state.config or state.requested or {}
    fmt = (config.get("audio") or {}).get("format") or {}
    delegation = config.get("delegation") or {}
    return {
        "setting": [
            f"model {config.get('model')!r}",
            f"audio {fmt.get('type')} {fmt.get('rate')}",
            f"delegation {delegation.get('type', 'client')}",
        ],
        "speech": [f"{speaker} {text.strip()!r}" for speaker, _, _, text in segments(state)],
        "append": [
            f"{a.kind} {a.content!r}" + ("" if a.start_ms is not None else " (not placed)")
            for a in state.appends
        ],
        "delegation": [
            f"to {d.target}"
            + "".join(f" call {c.get('name')}({c.get('arguments', '')})" for c in d.calls)
            + (f" [{d.status}]" if d.status else "")
            for d in state.delegations.values()
        ],
        "error": [str(e.get("code") or e.get("type") or "?") for e in state.errors],
        "ending": [
            f"mutes {len(state.mutes)}, fixtures {state.fixtures}, decisions "
            f"{len(state.decisions)}",
            f"closed {state.close_reason or 'not confirmed'}",
        ],
    }


def diff_live(a: LiveState, b: LiveState) -> ConversationDiff:
    """Compare two GPT-Live sessions as ``rtrec diff`` does Realtime conversations: the
    settings (model, audio format, delegation type), what each speaker said (segments in
    time order, by text), the context appends, the delegations with their function calls
    and status, the errors, mutes and how the session ended. Ids, times and usage are left
    out: two recordings of the same conversation are equal, a changed word is not."""
    changes: list[Change] = []
    parts_a, parts_b = _compared(a), _compared(b)
    for part, lines_a in parts_a.items():
        lines_b = parts_b[part]
        matcher = difflib.SequenceMatcher(a=lines_a, b=lines_b, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                continue
            paired = min(a1 - a0, b1 - b0) if op == "replace" else 0
            for k in range(paired):
                where = f"{part} {a0 + k + 1}"
                if a0 != b0:
                    where += f" (B: {part} {b0 + k + 1})"
                changes.append(
                    Change(where=where, what="differs", a=lines_a[a0 + k], b=lines_b[b0 + k])
                )
            for i in range(a0 + paired, a1):
                changes.append(Change(where=f"{part} {i + 1}", what=part, a=lines_a[i], b=None))
            for i in range(b0 + paired, b1):
                changes.append(
                    Change(where=f"{part} {i + 1} of B", what=part, a=None, b=lines_b[i])
                )
    return ConversationDiff(changes=tuple(changes))
