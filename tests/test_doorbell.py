"""The doorbell's contract (src/rtrec/store/doorbell.py), with real threads.

Timeouts here are the behaviour under test (a wait that nobody rings ends), or bounds that a
passing run never reaches; no test sleeps to let another thread get somewhere.
"""

from __future__ import annotations

import collections
import threading
import time

from rtrec.store.doorbell import Doorbell

#: Long enough that a run which gets there has hung.
HANG = 30.0


def test_a_ring_before_the_wait_is_remembered() -> None:
    """A ring while nobody waits makes the next wait return at once, rung."""
    bell = Doorbell()
    bell.ring()
    assert bell.wait(HANG) is True


def test_rings_are_not_counted() -> None:
    """Many rings before a wait are one: the first wait takes it, the second times out."""
    bell = Doorbell()
    for _ in range(1000):
        bell.ring()  # never blocks, never raises
    assert bell.wait(HANG) is True
    assert bell.wait(0.01) is False


def test_an_unrung_wait_times_out() -> None:
    """Without a ring, ``wait(timeout)`` returns False after about ``timeout`` seconds."""
    bell = Doorbell()
    started = time.monotonic()
    assert bell.wait(0.05) is False
    assert time.monotonic() - started >= 0.05


def test_a_ring_from_another_thread_wakes_a_waiter_without_timeout() -> None:
    """A thread blocked in ``wait()`` (no timeout) wakes when another thread rings."""
    bell = Doorbell()
    waiting = threading.Event()
    result: list[bool] = []

    def sleeper() -> None:
        waiting.set()
        result.append(bell.wait())

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert waiting.wait(HANG)
    bell.ring()  # whether the sleeper is in wait() yet or not: a ring is never lost
    thread.join(HANG)
    assert not thread.is_alive()
    assert result == [True]


def test_no_wake_up_is_lost_with_the_idle_protocol() -> None:
    """The writer's use: a producer queues, then rings if the consumer said it is idle; the
    consumer says idle, looks at the queue once more, then waits. 20,000 items, handed over
    one by one and in bursts, all arrive in order and the consumer never hangs."""
    bell = Doorbell()
    queue: collections.deque[int] = collections.deque()
    idle = False
    received: list[int] = []
    total = 20_000

    def consumer() -> None:
        nonlocal idle
        while len(received) < total:
            while queue:
                received.append(queue.popleft())
            if len(received) == total:
                return
            idle = True
            if not queue:
                assert bell.wait(HANG), "a wake-up was lost"
            idle = False

    thread = threading.Thread(target=consumer)
    thread.start()
    for n in range(total):
        queue.append(n)
        if idle or n % 97 == 0:
            bell.ring()
    thread.join(HANG)
    assert not thread.is_alive()
    assert received == list(range(total))
