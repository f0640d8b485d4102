"""Run a trio ``serve_*`` function in a background thread, for code that lives on asyncio.

The official ``openai`` SDK is asyncio; rtrec's servers are trio. Tests (and the playback
pytest plugin) run a server in its own thread with its own trio loop, talk to it from the
main thread, and stop it on the way out:

    with run_in_thread(serve_simulator) as server:
        asyncio.run(client_code(server.url))

A thread is the only way to host two event loops at once; this is the one place rtrec uses
one, and the loop in it is an ordinary structured trio program.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import attrs
import trio

__all__ = ["ThreadedServer", "run_in_thread"]

T = TypeVar("T")


@attrs.frozen
class ThreadedServer:
    """A server running in a background thread."""

    #: What the server passed to ``task_status.started`` (its URL).
    url: str
    token: trio.lowlevel.TrioToken

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` in the server's trio thread and return its result (for
        example ``clock.jump`` of the server's ``MockClock``)."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)


def _unwrap(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (trio wraps errors of a
    nursery in an ExceptionGroup; callers of a context manager should see the error)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _name(serve: Callable[..., object]) -> str:
    inner = getattr(serve, "func", serve)  # functools.partial
    return str(getattr(inner, "__name__", "server"))


@contextlib.contextmanager
def run_in_thread(
    serve: Callable[..., Awaitable[object]],
    *args: Any,
    clock: trio.abc.Clock | None = None,
    timeout: float = 10.0,
) -> Iterator[ThreadedServer]:
    """Start ``serve(*args, task_status=...)`` in a thread; yield once it has started.

    On exit the server is cancelled and the thread joined; an exception the server raised
    is re-raised here.

    Args:
        serve: a trio function following the ``nursery.start`` protocol that reports a URL.
        args: its positional arguments (use ``functools.partial`` for keywords).
        clock: the trio clock of the server's loop (e.g. a ``MockClock``).
        timeout: seconds to wait for the server to start, and to stop.

    Raises:
        TimeoutError: the server did not start, or did not stop, within ``timeout``.
    """
    name = _name(serve)
    # The thread reports its loop (token, cancel scope) first, then the URL or a failure.
    loop: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()
    ready: queue.Queue[str | BaseException] = queue.Queue()
    failure: list[BaseException] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            loop.put((trio.lowlevel.current_trio_token(), nursery.cancel_scope))
            url = await nursery.start(serve, *args)
            if not isinstance(url, str):
                raise TypeError(f"{name} started with {url!r}, not a URL")
            ready.put(url)

    def thread_main() -> None:
        try:
            trio.run(main, clock=clock)
        except BaseException as exc:  # handed to the caller's thread, never swallowed
            failure.append(_unwrap(exc))
            ready.put(failure[0])

    thread = threading.Thread(target=thread_main, name=f"rtrec-{name}", daemon=True)
    thread.start()

    def stop(token: trio.lowlevel.TrioToken, scope: trio.CancelScope) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{name} did not stop within {timeout} s")

    try:
        started = ready.get(timeout=timeout)
    except queue.Empty:
        with contextlib.suppress(queue.Empty):
            stop(*loop.get_nowait())
        raise TimeoutError(f"{name} did not start within {timeout} s") from None
    if isinstance(started, BaseException):
        thread.join(timeout)
        raise started
    token, scope = loop.get_nowait()  # put before the server was started
    try:
        yield ThreadedServer(started, token)
    finally:
        stop(token, scope)
        if failure:
            raise failure[0]
