"""Structural comparison of two GPT-Live sessions: what ``rtrec replay --drive`` reports
after re-driving a Live recording (the Realtime counterpart is ``_diff.py``).

What makes a Live session what it is, in the spirit of ``diff_conversations``: what each
speaker said (segments in time order, their text), the context the client appended (kind,
content, whether the server placed it), the delegations (target, the backend's function
calls by name and arguments, status), decisions, mutes and fixtures counted, the errors'
codes and the close reason. Ids (delegation, call, event ids), timeline positions, usage
and audio sizes are left out: two runs of the same conversation are equal, a changed word
is not.

Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from rtrec.replay._diff import Change, ConversationDiff
from rtrec.replay.live import LiveState, segments

__all__ = ["diff_live"]

#: one comparable entry: (kind label, field -> printable value)
_Entry = tuple[str, dict[str, str]]


def _entries(state: LiveState) -> list[_Entry]:
    out: list[_Entry] = [
        (f"{speaker} speech", {"text": repr(text.strip())})
        for speaker, _start, _end, text in segments(state)
    ]
    out += [
        (
            f"{a.kind} append",
            {"content": repr(a.content), "placed": "yes" if a.start_ms is not None else "no"},
        )
        for a in state.appends
    ]
    for d in state.delegations.values():
        fields = {"status": d.status or "—"}
        for n, call in enumerate(d.calls, 1):
            fields[f"call {n}"] = f"{call.get('name')}({call.get('arguments', '')})"
        out.append((f"delegation to {d.target}", fields))
    out += [("error", {"code": str(e.get("code"))}) for e in state.errors]
    out.append(
        (
            "session",
            {
                "decisions": str(len(state.decisions)),
                "mutes": str(len(state.mutes)),
                "fixtures": str(state.fixtures),
                "closed": state.close_reason or "without session.closed",
            },
        )
    )
    return out


def _compare(a: Sequence[_Entry], b: Sequence[_Entry]) -> list[Change]:
    changes: list[Change] = []
    labels_a, labels_b = [e[0] for e in a], [e[0] for e in b]
    matcher = difflib.SequenceMatcher(a=labels_a, b=labels_b, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        paired = min(a1 - a0, b1 - b0) if op in ("equal", "replace") else 0
        for k in range(paired):
            (la, fa), (lb, fb) = a[a0 + k], b[b0 + k]
            where = f"entry {a0 + k + 1} ({la})" if la == lb else f"entry {a0 + k + 1}"
            if la != lb:
                changes.append(Change(where=where, what="kind", a=la, b=lb))
            for key in [*fa, *(k for k in fb if k not in fa)]:
                if fa.get(key) != fb.get(key):
                    changes.append(Change(where=where, what=key, a=fa.get(key), b=fb.get(key)))
        for i in range(a0 + paired, a1):
            label, fields = a[i]
            changes.append(
                Change(where=f"entry {i + 1}", what=label, a=_show(label, fields), b=None)
            )
        for i in range(b0 + paired, b1):
            label, fields = b[i]
            changes.append(
                Change(where=f"entry {i + 1}", what=label, a=None, b=_show(label, fields))
            )
    return changes


def _show(label: str, fields: dict[str, str]) -> str:
    return f"{label} " + ", ".join(f"{k} {v}" for k, v in fields.items())


def diff_live(a: LiveState, b: LiveState) -> ConversationDiff:
    """Compare two Live sessions' states (see the module docstring)."""
    return ConversationDiff(changes=tuple(_compare(_entries(a), _entries(b))))
