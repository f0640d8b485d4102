"""Structural comparison of two rebuilt conversations: what ``rtrec diff A B`` reports.

Only what makes the conversation what it is: the items in order, with their kind, role and
status, their texts and (heard) transcripts, truncation, function calls with arguments and
outputs (calls matched by position, never by generated ``call_id``), and the responses'
statuses and the errors. Ids, times, audio offsets and token counts are left out: two
recordings of the same conversation are equal, a changed word is not.
"""

from __future__ import annotations

import difflib
from typing import Final

import attrs

from rtrec.replay._state import ConversationState, Item

__all__ = ["Change", "ConversationDiff", "diff_conversations"]


@attrs.frozen(kw_only=True)
class Change:
    """One difference: at ``where``, ``what`` is ``a`` in A and ``b`` in B (None: absent)."""

    where: str
    what: str
    a: str | None
    b: str | None


@attrs.frozen(kw_only=True)
class ConversationDiff:
    """All differences between two conversations; empty when they are equal."""

    changes: tuple[Change, ...] = ()

    @property
    def equal(self) -> bool:
        """No differences."""
        return not self.changes

    def report(self, a_name: str = "A", b_name: str = "B") -> str:
        """The differences as readable text (one block per change)."""
        if self.equal:
            return f"{a_name} and {b_name}: the conversations are equal\n"
        n = len(self.changes)
        lines = [f"{a_name} and {b_name} differ in {n} place{'s' if n != 1 else ''}:"]
        for c in self.changes:
            if c.a is None or c.b is None:
                side, value = (b_name, c.b) if c.a is None else (a_name, c.a)
                lines.append(f"  {c.where}: only in {side}: {value}")
            else:
                lines.append(f"  {c.where}: {c.what}")
                lines.append(f"    {a_name}: {c.a}")
                lines.append(f"    {b_name}: {c.b}")
        return "\n".join(lines) + "\n"


_NONE: Final = "—"


def _q(text: str | None) -> str:
    return _NONE if text is None else repr(text)


def _label(item: Item) -> str:
    if item.type == "message" or item.role is not None:
        return f"{item.role or '?'} message"
    if item.name:
        return f"{item.type} {item.name}"
    return item.type or "item"


def _fields(item: Item, calls: dict[str, int]) -> dict[str, str]:
    """The comparable content of an item, as field -> printable value."""
    out: dict[str, str] = {"status": item.status or _NONE}
    for part in item.parts:
        key = f"content[{part.index}]"
        out[f"{key}.type"] = part.type or _NONE
        if part.text.value is not None:
            out[f"{key}.text"] = _q(part.text.value)
        if part.transcript.value is not None or part.type in ("input_audio", "output_audio"):
            out[f"{key}.transcript"] = _q(part.heard_transcript)
        if part.truncated_at_ms is not None:
            out[f"{key}.truncated"] = f"at {part.truncated_at_ms} ms"
    if item.type in ("function_call", "mcp_call", "mcp_approval_request"):
        out["name"] = item.name or _NONE
        out["arguments"] = _q(item.arguments.value)
    if item.type in ("function_call", "function_call_output") and item.call_id is not None:
        out["call"] = f"call {calls.setdefault(item.call_id, len(calls) + 1)}"
    if item.output is not None:
        out["output"] = _q(item.output)
    return out


def _summary(item: Item) -> str:
    texts = [p.text.value or p.heard_transcript or "" for p in item.parts]
    said = " ".join(t for t in texts if t)
    if item.type == "function_call":
        said = f"{item.name}({item.arguments.value or ''})"
    elif item.output is not None:
        said = item.output
    return f"{_label(item)} {_q(said)}" if said else _label(item)


def diff_conversations(a: ConversationState, b: ConversationState) -> ConversationDiff:
    """Compare the conversations two states hold (see the module docstring)."""
    changes: list[Change] = []
    items_a, items_b = a.conversation, b.conversation
    calls_a: dict[str, int] = {}
    calls_b: dict[str, int] = {}
    fields_a = [_fields(i, calls_a) for i in items_a]
    fields_b = [_fields(i, calls_b) for i in items_b]
    keys_a = [_label(i) for i in items_a]
    keys_b = [_label(i) for i in items_b]

    def where(ia: int, ib: int) -> str:
        return f"item {ia + 1}" if ia == ib else f"item {ia + 1} (B: item {ib + 1})"

    def compare(ia: int, ib: int) -> None:
        fa, fb = fields_a[ia], fields_b[ib]
        label = keys_a[ia] if keys_a[ia] == keys_b[ib] else f"{keys_a[ia]} / {keys_b[ib]}"
        if keys_a[ia] != keys_b[ib]:
            changes.append(Change(where=where(ia, ib), what="kind", a=keys_a[ia], b=keys_b[ib]))
        for key in [*fa, *(k for k in fb if k not in fa)]:
            va, vb = fa.get(key, _NONE), fb.get(key, _NONE)
            if va != vb:
                changes.append(Change(where=f"{where(ia, ib)} ({label})", what=key, a=va, b=vb))

    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        # pair items up where the kinds line up (or were replaced one for one); the rest
        # exist on one side only
        paired = min(a1 - a0, b1 - b0) if op in ("equal", "replace") else 0
        for k in range(paired):
            compare(a0 + k, b0 + k)
        for ia in range(a0 + paired, a1):
            changes.append(
                Change(where=f"item {ia + 1}", what="item", a=_summary(items_a[ia]), b=None)
            )
        for ib in range(b0 + paired, b1):
            changes.append(
                Change(where=f"item {ib + 1} of B", what="item", a=None, b=_summary(items_b[ib]))
            )

    resp_a = [
        (r.status or _NONE, (r.status_details or {}).get("reason")) for r in a.responses_in_order()
    ]
    resp_b = [
        (r.status or _NONE, (r.status_details or {}).get("reason")) for r in b.responses_in_order()
    ]
    for n in range(max(len(resp_a), len(resp_b))):
        ra = resp_a[n] if n < len(resp_a) else None
        rb = resp_b[n] if n < len(resp_b) else None
        if ra != rb:

            def show(r: tuple[str, object] | None) -> str | None:
                return None if r is None else r[0] + (f" ({r[1]})" if r[1] else "")

            changes.append(Change(where=f"response {n + 1}", what="status", a=show(ra), b=show(rb)))

    errors_a = [" ".join(x for x in (e.type, e.code) if x) for e in a.errors]
    errors_b = [" ".join(x for x in (e.type, e.code) if x) for e in b.errors]
    for n in range(max(len(errors_a), len(errors_b))):
        ea = errors_a[n] if n < len(errors_a) else None
        eb = errors_b[n] if n < len(errors_b) else None
        if ea != eb:
            changes.append(Change(where=f"error {n + 1}", what="error", a=ea, b=eb))
    return ConversationDiff(changes=tuple(changes))
