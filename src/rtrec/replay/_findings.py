"""What a fold notices about the log rather than the conversation.

Anomalies (what the log shows that the protocol does not promise), frames the reducer could
not read, event types the schema does not know, recorder marks, binary frames and audio the
archive lacks. Every part of the draft reports here; none of it is ever fatal.
"""

from __future__ import annotations

from typing import Protocol, final

from rtrec.replay._rules import AnomalyKind
from rtrec.replay._state import Anomaly, ConversationState

__all__ = ["At", "Findings", "Where"]


class Where(Protocol):
    """The row a change comes from: a ``FrameRecord``, or an ``At`` where none was built."""

    @property
    def seq(self) -> int: ...

    @property
    def t_ns(self) -> int: ...


@final
class At:
    """A row's ``seq`` and time, for the rare change a fast path makes without a record
    (opening a part, a response's first delta)."""

    __slots__ = ("seq", "t_ns")

    def __init__(self, seq: int, t_ns: int) -> None:
        self.seq = seq
        self.t_ns = t_ns


@final
class Findings:
    """Owns the state's ``anomalies``, ``invalid_frames``, ``unknown_types``, ``marks``,
    ``binary_frames`` and ``unarchived_audio`` while a fold runs."""

    __slots__ = (
        "anomalies",
        "binary_frames",
        "invalid_frames",
        "marks",
        "unarchived_audio",
        "unknown_types",
    )

    def __init__(self, base: ConversationState) -> None:
        self.anomalies = list(base.anomalies)
        self.invalid_frames = list(base.invalid_frames)
        self.unknown_types = dict(base.unknown_types)
        self.marks = dict(base.marks)
        self.binary_frames = base.binary_frames
        #: audio frames whose audio the archive does not hold (the recorder could not cut it)
        self.unarchived_audio = base.unarchived_audio

    def anomaly(self, at: Where, kind: AnomalyKind, detail: str) -> None:
        """Flag something the protocol does not promise, at row ``at``."""
        self.anomalies.append(Anomaly(seq=at.seq, kind=kind, detail=detail))

    def mark(self, name: str | None) -> None:
        """Count a recorder mark (or a frame of an unknown kind)."""
        key = name or "?"
        self.marks[key] = self.marks.get(key, 0) + 1

    def unknown_type(self, name: str) -> None:
        """Count an event type the schema does not know."""
        self.unknown_types[name] = self.unknown_types.get(name, 0) + 1
