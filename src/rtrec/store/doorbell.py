"""A doorbell: how trio wakes the log writer's thread, without ever waiting itself.

The log writer's thread (src/rtrec/store/writer.py) sleeps between batches; the relay, on trio's
thread, wakes it when a batch is due early (a flush, a full batch, a sender waiting for
room). Trio must never block there, and a wake-up must never be lost. The other direction,
the thread handing results back, is ``TrioToken.run_sync_soon``: it never blocks either.

Contract:

- ``ring()`` never blocks and may be called from any thread, any number of times.
- ``wait(timeout)`` sleeps until the bell is rung or ``timeout`` seconds pass; it returns
  whether it was rung, and takes the ring: the next ``wait`` sleeps again.
- Rings are not counted: any number of rings while nobody waits make one ring, which the
  next ``wait`` takes at once. A ring is never lost.
- One thread waits; any may ring.

So the sleeper must look at its work *after* saying it is about to sleep, and the waker
must queue the work *before* ringing: the sleeper sets a flag ("idle"), looks at the queue
once more, and only then waits; a waker that queued after that look sees the flag (or the
sleeper sees the work), and a ring that comes before the ``wait`` is remembered. The flags
are plain attributes: in CPython a single read or write of one is atomic, and the GIL
orders them.

It is a bare ``threading.Lock`` held while nobody rang: ``release`` rings (a second
release of an unlocked lock is the "already rung" case), ``acquire`` waits. A
``threading.Condition`` would do the same with more bookkeeping: at one wake-up per batch,
``Condition.wait`` cost the writer's thread 20-40 us more CPU per wake-up than a lock's
(6 x 150 timed waits of each, alternating).
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["Doorbell"]


class Doorbell:
    """Wakes one sleeping thread from any thread; see the module docstring's contract."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held: not rung

    def ring(self) -> None:
        """Wake the waiter, or the next ``wait`` if nobody waits now. Never blocks."""
        with contextlib.suppress(RuntimeError):  # rung already, not taken yet: one is enough
            self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until rung (then take the ring and return True) or for ``timeout`` seconds
        (then return False); None waits for as long as it takes."""
        return self._lock.acquire(timeout=-1 if timeout is None else timeout)
