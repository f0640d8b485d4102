"""Rebuild a session from its log rows, with time travel.

``rebuild(records)`` folds the rows once, keeping a frozen checkpoint every
``checkpoint_every`` rows. The state at any ``seq`` or time is then the nearest checkpoint at
or before it, folded forward over at most ``checkpoint_every`` rows held in memory: nothing is
read from disk again, and checkpoints share every item that did not change between them.

The rows may come as ``FrameRecord``s or, from a log reader, as ``FrameColumns``: the same
rows column by column, which the reducer folds without an object per row (the fast way to
rebuild a long voice session; the state is the same).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
from collections.abc import Iterable, Sequence
from typing import Final, final

from rtrec.replay._draft import Draft
from rtrec.replay._reducer import INITIAL, feed_columns, feed_records, fold
from rtrec.replay._state import ConversationState
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.storage import FrameRecord

__all__ = ["Replay", "read_point", "rebuild"]

_AT: Final = re.compile(r"^\s*(?:(?P<seq>\d+)|(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>s|ms))\s*$")


@final
class Replay:
    """A session's log folded into conversation states. Build one with ``rebuild``."""

    def __init__(
        self,
        records: tuple[FrameRecord, ...] | FrameColumns,
        checkpoints: list[tuple[int, ConversationState]],
        state: ConversationState,
    ) -> None:
        #: the rows folded (``FrameColumns`` when rebuilt from them: a sequence of records)
        self.records: Final[Sequence[FrameRecord]] = records
        #: the state after the last row
        self.state: Final = state
        self._checkpoints = checkpoints  # (rows folded, state), ascending

    @functools.cached_property
    def _seqs(self) -> Sequence[int]:
        records = self.records
        return records.seq if isinstance(records, FrameColumns) else [r.seq for r in records]

    @functools.cached_property
    def _times(self) -> list[int]:
        # the latest time seen up to each row: "the state at t" is the longest prefix whose
        # rows are all at or before t, even if a clock stepped back
        records = self.records
        times = records.t_ns if isinstance(records, FrameColumns) else (r.t_ns for r in records)
        return list(itertools.accumulate(times, max))

    def _state_after(self, rows: int) -> ConversationState:
        """The state after the first ``rows`` rows."""
        index = bisect.bisect_right(self._checkpoints, rows, key=lambda c: c[0]) - 1
        done, state = self._checkpoints[index]
        if rows <= done:
            return state
        records = self.records
        if isinstance(records, FrameColumns):
            draft = Draft(state)
            feed_columns(draft, records, done, rows)
            return draft.freeze()
        return fold(state, records[done:rows])

    def state_at(self, seq: int) -> ConversationState:
        """The state after every row with ``seq`` at or before ``seq`` (the initial state if
        there is none)."""
        return self._state_after(bisect.bisect_right(self._seqs, seq))

    def state_at_time(self, t_ns: int) -> ConversationState:
        """The state after every row logged at or before ``t_ns`` nanoseconds into the
        session."""
        return self._state_after(bisect.bisect_right(self._times, t_ns))

    def at(self, point: int | str) -> ConversationState:
        """The state at a point given as a ``seq`` (``120`` or ``"120"``) or a time into the
        session (``"12.5s"``, ``"800ms"``).

        Raises:
            ValueError: ``point`` is neither.
        """
        seq, t_ns = read_point(point)
        if seq is not None:
            return self.state_at(seq)
        assert t_ns is not None
        return self.state_at_time(t_ns)


def read_point(point: int | str) -> tuple[int | None, int | None]:
    """A point in a session, given as a ``seq`` (``120`` or ``"120"``) or a time into the
    session (``"12.5s"``, ``"800ms"``): ``(seq, None)`` or ``(None, nanoseconds)``.

    Raises:
        ValueError: ``point`` is neither.
    """
    if isinstance(point, int):
        return point, None
    match = _AT.match(point)
    if match is None:
        raise ValueError(
            f"cannot read {point!r} as a point in the session: give a seq (120) "
            "or a time into the session (12.5s, 800ms)"
        )
    if match["seq"] is not None:
        return int(match["seq"]), None
    scale = 1_000_000_000 if match["unit"] == "s" else 1_000_000
    return None, round(float(match["num"]) * scale)


def rebuild(
    records: Iterable[FrameRecord],
    *,
    initial: ConversationState = INITIAL,
    checkpoint_every: int = 1024,
) -> Replay:
    """Fold one session's log rows into a ``Replay``.

    Args:
        records: the rows, in ``seq`` order (as the log reader yields them), or
            ``FrameColumns`` (``read_frame_columns``), which rebuild the same state faster.
        initial: the state to start from.
        checkpoint_every: rows between checkpoints; time travel folds at most this many.

    Raises:
        ValueError: the rows are not in strictly increasing ``seq`` order, or belong to more
            than one session.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    if isinstance(records, FrameColumns):
        return _rebuild_columns(records, initial, checkpoint_every)
    return _rebuild_records(tuple(records), initial, checkpoint_every)


def _rebuild_records(
    rows: tuple[FrameRecord, ...], initial: ConversationState, checkpoint_every: int
) -> Replay:
    """``rebuild`` over FrameRecords."""
    for before, after in itertools.pairwise(rows):
        if after.seq <= before.seq:
            raise ValueError(
                f"log rows must come in increasing seq order: seq {after.seq} follows "
                f"seq {before.seq}"
            )
        if after.session_id != before.session_id:
            raise ValueError(
                f"log rows of two sessions: {before.session_id!r} and {after.session_id!r} "
                "(rebuild one session at a time)"
            )
    draft = Draft(initial)
    checkpoints: list[tuple[int, ConversationState]] = [(0, initial)]
    for start in range(0, len(rows), checkpoint_every):
        end = min(start + checkpoint_every, len(rows))
        feed_records(draft, rows[start:end])
        if end < len(rows):
            checkpoints.append((end, draft.freeze()))
    state = draft.freeze()
    checkpoints.append((len(rows), state))
    return Replay(rows, checkpoints, state)


def _rebuild_columns(cols: FrameColumns, initial: ConversationState, every: int) -> Replay:
    """``rebuild`` over columns: one session by construction, so only the order is checked."""
    seqs = cols.seq
    if any(map(operator.ge, seqs, itertools.islice(seqs, 1, None))):
        before, after = next(
            (a, b) for a, b in zip(seqs, itertools.islice(seqs, 1, None), strict=False) if a >= b
        )
        raise ValueError(
            f"log rows must come in increasing seq order: seq {after} follows seq {before}"
        )
    draft = Draft(initial)
    checkpoints: list[tuple[int, ConversationState]] = [(0, initial)]
    for start in range(0, len(cols), every):
        end = min(start + every, len(cols))
        feed_columns(draft, cols, start, end)
        if end < len(cols):
            checkpoints.append((end, draft.freeze()))
    state = draft.freeze()
    checkpoints.append((len(cols), state))
    return Replay(cols, checkpoints, state)
