"""``rtrec.replay.threaded.run_in_thread``: a trio server in a thread, for asyncio callers."""

from __future__ import annotations

import threading

import pytest
import trio

from rtrec.replay.threaded import run_in_thread


async def serve_echo_url(
    port: int, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """A minimal serve_* function: listens, reports its URL, serves until cancelled."""
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    async with listeners[0]:
        task_status.started(f"tcp://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
        await trio.sleep_forever()


def rtrec_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rtrec-")]


def test_yields_the_url_and_stops_the_thread_on_exit() -> None:
    """The context manager yields once the server listens and joins its thread on exit."""
    with run_in_thread(serve_echo_url, 0) as server:
        assert server.url.startswith("tcp://127.0.0.1:")
        assert [t.name for t in rtrec_threads()] == ["rtrec-serve_echo_url"]
        assert server.run_sync(lambda a, b: a + b, 2, 3) == 5
    assert rtrec_threads() == []


def test_a_failure_to_start_is_raised_in_the_caller() -> None:
    """An error before task_status.started (here: the port is taken) reaches the caller."""
    with run_in_thread(serve_echo_url, 0) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"), run_in_thread(serve_echo_url, port):
            pass
    assert rtrec_threads() == []


def test_a_crash_after_start_is_raised_on_exit() -> None:
    """An exception the server raises while serving is re-raised when the block ends."""

    async def crashing(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started("tcp://nowhere")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), run_in_thread(crashing) as server:
        assert server.url == "tcp://nowhere"
    assert rtrec_threads() == []


def test_a_server_that_never_starts_times_out_and_is_stopped() -> None:
    """If started() never comes, TimeoutError is raised and the thread is cancelled."""

    async def silent(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep_forever()

    with pytest.raises(TimeoutError, match="did not start"), run_in_thread(silent, timeout=0.2):
        pass
    assert rtrec_threads() == []


def test_started_with_something_else_than_a_url_is_a_type_error() -> None:
    """The started value must be a URL string."""

    async def wrong(*, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(42)
        await trio.sleep_forever()

    with pytest.raises(TypeError, match="not a URL"), run_in_thread(wrong):
        pass
