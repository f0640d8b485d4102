"""Where the proxy sends what it captures: the ``LogSink`` protocol, and a memory sink.

The DuckDB log writer is the real sink. ``MemorySink`` keeps everything in a list; tests
and embedders that want the records in-process use it, and it honours the same contract:
``send`` waits when full (back-pressure), and a failed sink makes ``send`` raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import trio

from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import LogMessage

__all__ = ["LogSink", "MemorySink", "OfferingSink", "RecordingFailed", "TappedSink"]


class RecordingFailed(RtrecError):
    """The log writer failed (disk full, I/O error, ...); nothing more can be recorded.

    The message says what failed. Sessions being recorded must close with this reason:
    traffic must never pass unrecorded without saying so.
    """


class LogSink(Protocol):
    """The recorder's view of its log writer."""

    @property
    def failed(self) -> trio.Event:
        """Set once the sink can no longer store messages."""
        ...

    @property
    def failure(self) -> str | None:
        """Why the sink failed, once it has."""
        ...

    async def send(self, message: LogMessage) -> None:
        """Queue one message, waiting while the sink is full.

        Raises:
            RecordingFailed: the sink has failed.
        """
        ...


@runtime_checkable
class OfferingSink(LogSink, Protocol):
    """A sink that can also take messages without waiting: the relay's fast path.

    The proxy uses ``offer`` when the sink has it (the log writer, ``MemorySink``) and
    ``send`` through a per-session queue otherwise, so a plain ``LogSink`` (a wrapper, a
    test double) keeps working, only with a task switch per frame.
    """

    def offer(self, *messages: LogMessage) -> bool:
        """Queue all of ``messages`` at once if the sink has room now, else none of them.

        Never waits: False means "full, use ``send``" (the relay then waits, in order).

        Raises:
            RecordingFailed: the sink has failed.
        """
        ...


class TappedSink:
    """Passes every message on to ``inner``, then shows it to ``tap``.

    For code that runs a ``Recorder`` and wants to follow its sessions (which ids it opened,
    when one ended) without a sink of its own. ``tap`` sees each message once ``inner`` has
    it, and must not block. The relay's fast path (``offer``) stays when ``inner`` has it.
    """

    def __init__(self, inner: LogSink, tap: Callable[[LogMessage], None]) -> None:
        self.inner = inner
        self.tap = tap

    @property
    def failed(self) -> trio.Event:
        """``inner``'s."""
        return self.inner.failed

    @property
    def failure(self) -> str | None:
        """``inner``'s."""
        return self.inner.failure

    async def send(self, message: LogMessage) -> None:
        """Send ``message`` to ``inner``, then tap it."""
        await self.inner.send(message)
        self.tap(message)

    def offer(self, *messages: LogMessage) -> bool:
        """Offer ``messages`` to ``inner`` (False if it cannot take offers); tap them if taken."""
        if not isinstance(self.inner, OfferingSink) or not self.inner.offer(*messages):
            return False
        for message in messages:
            self.tap(message)
        return True


class MemorySink:
    """A sink that appends every message to ``messages``."""

    def __init__(self) -> None:
        self.messages: list[LogMessage] = []
        self._failed = trio.Event()
        self._failure: str | None = None

    @property
    def failed(self) -> trio.Event:
        """Set once ``fail`` was called."""
        return self._failed

    @property
    def failure(self) -> str | None:
        """The reason given to ``fail``."""
        return self._failure

    def fail(self, reason: str) -> None:
        """Make the sink fail, as a broken disk would."""
        self._failure = reason
        self._failed.set()

    async def send(self, message: LogMessage) -> None:
        """Append ``message``; raise once failed."""
        if self._failure is not None:
            raise RecordingFailed(self._failure)
        self.messages.append(message)
        await trio.lowlevel.checkpoint()

    def offer(self, *messages: LogMessage) -> bool:
        """Append ``messages`` (a list has room); raise once failed."""
        if self._failure is not None:
            raise RecordingFailed(self._failure)
        self.messages.extend(messages)
        return True
