"""Every reason rtrec gives is non-empty and says what happened (issue 15, defect 10)."""

from __future__ import annotations

import errno
import functools
import ssl

import orjson
import pytest
import trio

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.schemas.errors import describe_error
from rtrec.schemas.storage import FrameRecord, SessionClose, SessionStatus
from rtrec.store.sink import MemorySink
from rtrec.transport.ws import HandshakeRejected, connect


async def test_a_handshake_timing_out_upstream_says_after_how_long() -> None:
    """An upstream that accepts TCP but never answers the handshake: the client gets a 502
    whose body says the upstream timed out after the configured seconds, and the log's
    close reason says the same (no `TooSlowError: ` with nothing after it)."""
    sink = MemorySink()

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()  # reads nothing, answers nothing

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(
                functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1")
            )
            upstream = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/v1"
            recorder = Recorder(sink, ProxyOptions(upstream=upstream, connect_timeout=0.5))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            with pytest.raises(HandshakeRejected) as rejected:
                await connect(f"{url}/realtime?model=m", max_size=None)
            nursery.cancel_scope.cancel()
    assert rejected.value.status == 502
    body = rejected.value.body.decode()
    assert body.rstrip().endswith("unreachable: timed out after 0.5 s"), body
    (close,) = [m for m in sink.messages if isinstance(m, SessionClose)]
    assert close.status is SessionStatus.FAILED
    assert "timed out after 0.5 s" in (close.close_reason or "")
    (mark,) = [m for m in sink.messages if isinstance(m, FrameRecord)]
    assert orjson.loads(mark.payload or "")["error"].endswith("timed out after 0.5 s")


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    """``exc`` as ``raise exc from cause`` leaves it."""
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (trio.TooSlowError(), "timed out"),
        (OSError(), "OSError"),
        (OSError(errno.ENOSPC, "No space left on device"), "OSError: [Errno 28] No space"),
        (ValueError("two\nlines"), "ValueError: two lines"),
        (
            _raised_from(OSError("all attempts failed"), ConnectionRefusedError(111, "refused")),
            "OSError: all attempts failed: ConnectionRefusedError: [Errno 111] refused",
        ),
        (
            _raised_from(trio.BrokenResourceError(), ssl.SSLError(1, "wrong version number")),
            "BrokenResourceError: SSLError: wrong version number",
        ),
    ],
)
def test_describe_error_is_one_non_empty_line(exc: BaseException, expected: str) -> None:
    """An exception without a message is described by its name (a timeout as one), never
    as `Name: ` with nothing after it, and always on one line; one raised from another is
    followed by its cause, which names the reason a wrapper does not."""
    text = describe_error(exc)
    assert text.startswith(expected)
    assert "\n" not in text
    assert not text.endswith(": ")
