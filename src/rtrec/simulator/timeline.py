"""The session's virtual timeline: the outbox of server events and the schedule of steps.

Steps are plain callables due at a virtual time (seconds). Equal times run in the order they
were scheduled, so a schedule gives one event order no matter how late the caller runs it.
A step may belong to an owner (a response); once the owner is closed its steps are skipped,
which is how a cancelled response stops streaming.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from rtrec.schemas import ServerEvent
from rtrec.simulator.ids import IdFactory
from rtrec.simulator.wire import make

__all__ = ["Owner", "Timeline"]

E = TypeVar("E", bound=ServerEvent)


class Owner(Protocol):
    """Something whose scheduled steps stop once it is closed."""

    closed: bool


class Timeline:
    """Outbox and schedule of one session."""

    def __init__(self, ids: IdFactory) -> None:
        self.ids = ids
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None], Owner | None]] = []
        self._seq = itertools.count()
        self._out: list[ServerEvent] = []

    def emit(self, cls: type[E], **fields: Any) -> E:
        """Queue a server event; its ``event_id`` is the next ``event_...`` id."""
        event = make(cls, event_id=self.ids.new("event"), **fields)
        self._out.append(event)
        return event

    def flush(self) -> list[ServerEvent]:
        """Take the queued events."""
        out, self._out = self._out, []
        return out

    def at(self, when: float, action: Callable[[], None], owner: Owner | None = None) -> None:
        """Run ``action`` once the timeline reaches ``when``."""
        heapq.heappush(self._heap, (when, next(self._seq), action, owner))

    def run_due(self, now: float) -> None:
        """Run every step due by ``now``, in time order; each sees ``self.now`` at its time."""
        while self._heap and self._heap[0][0] <= now:
            when, _, action, owner = heapq.heappop(self._heap)
            if owner is not None and owner.closed:
                continue
            self.now = max(self.now, when)
            action()
        self.now = max(self.now, now)

    def next_deadline(self) -> float | None:
        """When the next live step is due."""
        while self._heap and (owner := self._heap[0][3]) is not None and owner.closed:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
