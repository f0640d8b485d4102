"""The writer's DuckDB memory limit, raised ahead of very large frames.

Why: DuckDB stores a string larger than a block (256 KiB) in a block of its own, and
handles every column a vector of 2,048 rows at a time: a scan of those rows holds all their
strings at once (in an allocation rounded up to a power of two), and a checkpoint, which
rewrites the table's last, still open string segment, holds them again while it writes them
out. A handful of 16 MiB frames within 2,048 events therefore needs several hundred MiB:
under the writer's default 128MB limit a session of six such frames failed its closing
checkpoint (``failed to pin block of size 15.8 MiB``), which invalidates the database and
ends the recording, and indexing it failed with ``failed to allocate 64.0 MiB``.

Indexing a session as it closes (``rtrec record``'s hook) reads all its frames in one
query, and the turns and summary queries over them hold its large payloads at once too:
twelve 16 MiB frames 2,100 events apart, never two in one vector, failed there with
``failed to allocate 64.0 MiB``.

So the writer keeps the sizes of the large payloads among the last 2,048 rows it appended
to ``events``, and of each open session, and before appending it raises ``memory_limit``
to the configured limit plus twice the largest window sum it has seen, or four times the
largest session sum, each rounded up to a power of two: what one vector then needs to be
read and written again, and one session's index to be built.
It never lowers it again while it runs: the limit caps DuckDB's buffer pool, it does not
hold memory. Ordinary frames (under a block) leave the configured limit as it is. Rows of
earlier runs need nothing of this when the writer appends: a reopened log appends to a new
segment (a second recorder on a log that ends in 16 MiB frames closes cleanly at 128MB,
tests/faults/test_large_frames.py).
docs/recorder.md, "Memory", gives the figures.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from typing import Final

import duckdb

from rtrec.schemas.storage import FrameRecord

__all__ = ["LARGE_PAYLOAD", "VECTOR_ROWS", "MemoryLimit", "parse_size"]

#: DuckDB's vector: the rows a scan or a checkpoint handles at once (STANDARD_VECTOR_SIZE).
VECTOR_ROWS: Final = 2048
#: DuckDB's block size: a string at least this large gets a block of its own.
LARGE_PAYLOAD: Final = 256 << 10

_SIZE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(B|[KMGT]i?B)", re.IGNORECASE)
_UNITS: Final = {"b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """Bytes in a DuckDB size such as ``128MB`` (powers of 1000) or ``1GiB`` (of 1024).

    Raises:
        ValueError: not a size.
    """
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"memory_limit must be a size such as '64MB' or '1GiB', not {text!r}")
    unit = m.group(2).lower()
    scale = 1024 ** "bkmgt".index(unit[0]) if unit.endswith("ib") else _UNITS[unit[0]]
    return int(float(m.group(1)) * scale)


def _payload_bytes(frame: FrameRecord) -> int:
    """An upper bound of the frame's stored payload bytes (UTF-8 of a non-ASCII text is at
    most four bytes a character; ``isascii`` is a flag lookup, no scan)."""
    text = frame.payload or ""
    size = len(text) if text.isascii() else 4 * len(text)
    return size + len(frame.payload_bin or b"")


def _ceil_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else n


class MemoryLimit:
    """Raises a connection's ``memory_limit`` ahead of the rows that need more.

    Only the writer's thread calls it, with the rows in the order it appends them.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, configured: int) -> None:
        """``configured``: the limit set on ``con``, bytes."""
        self._con = con
        self.configured = configured
        self.limit = configured
        self._window: collections.deque[int] = collections.deque(maxlen=VECTOR_ROWS)
        self._large = 0  # bytes of the large payloads in the window
        # bytes of the large payloads of each open session that has any
        self._sessions: dict[str, int] = {}
        self.peak = 0  # the largest window seen
        self.session_peak = 0  # the most large payload bytes one session had

    def _push(self, size: int) -> None:
        window = self._window
        if len(window) == VECTOR_ROWS:
            self._large -= window[0]
        large = size if size >= LARGE_PAYLOAD else 0
        window.append(large)
        self._large += large

    def before_append(self, frames: Iterable[FrameRecord]) -> None:
        """Account for ``frames``, about to be appended; raise the limit if they need it."""
        sessions = self._sessions
        for frame in frames:
            size = _payload_bytes(frame)
            self._push(size)
            if size >= LARGE_PAYLOAD:
                total = sessions[frame.session_id] = sessions.get(frame.session_id, 0) + size
                self.session_peak = max(self.session_peak, total)
            self.peak = max(self.peak, self._large)
        self._apply()

    def session_closed(self, session_id: str) -> None:
        """The session's rows are all appended (what they need stays in ``session_peak``)."""
        self._sessions.pop(session_id, None)

    def needed(self) -> int:
        """The limit the rows seen so far need: the configured one plus room for one
        vector of the largest window, read and written again, and for indexing the
        session with the most large payloads (its turns and summary queries held 3.2 times
        its 192 MiB: tests/faults/test_large_frames.py)."""
        extra = max(2 * _ceil_pow2(self.peak), 4 * _ceil_pow2(self.session_peak))
        return self.configured + extra

    def _apply(self) -> None:
        need = self.needed()
        if need > self.limit:
            self._con.execute(f"SET memory_limit = '{need}B'")
            self.limit = need
