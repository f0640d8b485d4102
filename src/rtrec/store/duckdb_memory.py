"""The writer's DuckDB memory limit, raised for very large frames close together.

Why: DuckDB stores a string larger than a block (256 KiB) in a block of its own, and
handles every column a vector of 2,048 rows at a time: a scan of those rows holds all their
strings at once (in an allocation rounded up to a power of two), and a checkpoint, which
rewrites the table's last, still open string segment, holds them again while it writes them
out. A handful of 16 MiB frames within 2,048 events therefore needs several hundred MiB:
under the writer's default 128MB limit a session of six such frames failed its closing
checkpoint (``failed to pin block of size 15.8 MiB``), which invalidates the database and
ends the recording, and indexing it failed with ``failed to allocate 64.0 MiB``.

So the writer keeps the sizes of the large payloads among the last 2,048 rows it appended
to ``events``, and before appending it raises
``memory_limit`` to the configured limit plus twice that sum rounded up to a power of two,
the most one vector then needs for a scan and a rewrite. It never lowers it again while it
runs: the limit caps DuckDB's buffer pool, it does not hold memory. Ordinary frames (under
a block) leave the configured limit as it is. Rows of earlier runs need nothing of this
when the writer appends: a reopened log appends to a new segment (a second recorder on a log
that ends in 16 MiB frames closes cleanly at 128MB, tests/faults/test_large_frames.py).
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
        self.peak = 0  # the largest window seen

    def _push(self, size: int) -> None:
        window = self._window
        if len(window) == VECTOR_ROWS:
            self._large -= window[0]
        large = size if size >= LARGE_PAYLOAD else 0
        window.append(large)
        self._large += large

    def before_append(self, frames: Iterable[FrameRecord]) -> None:
        """Account for ``frames``, about to be appended; raise the limit if they need it."""
        self._account(map(_payload_bytes, frames))

    def _account(self, sizes: Iterable[int]) -> None:
        for size in sizes:
            self._push(size)
            self.peak = max(self.peak, self._large)
        self._apply()

    def needed(self) -> int:
        """The limit the rows seen so far need: the configured one plus room for one
        vector of the largest window, scanned and rewritten."""
        return self.configured + 2 * _ceil_pow2(self.peak) if self.peak else self.configured

    def _apply(self) -> None:
        need = self.needed()
        if need > self.limit:
            self._con.execute(f"SET memory_limit = '{need}B'")
            self.limit = need
