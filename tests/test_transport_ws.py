"""rtrec.transport.ws between two of its own WebSockets over trio's in-memory streams.

Rules (after trio-websocket's own suite): no sockets and no clock: the streams are trio's
testing pairs (``lockstep_stream_pair`` when a writer must be seen blocked), every test has
a ``fail_after`` cap, and ``wait_all_tasks_blocked`` orders the steps.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from rtrec.transport.ws import Closed, WebSocket, open_inbox


def open_pair(
    pair: tuple[trio.abc.Stream, trio.abc.Stream], *, max_size: int | None = None
) -> tuple[WebSocket, WebSocket]:
    """A client and a server WebSocket, open (past the handshake), over ``pair``."""
    client_end, server_end = pair
    client = WebSocket(client_end, ClientProtocol(parse_uri("ws://127.0.0.1/"), state=OPEN))
    server = WebSocket(server_end, ServerProtocol(state=OPEN, max_size=max_size))
    return client, server


async def test_the_inbox_delivers_in_order_and_ends_with_the_connection() -> None:
    """Messages come out of the inbox in the order sent, a receive given up at a deadline
    loses none, and the channel ends when the peer closes (``closed`` says how)."""
    client, server = open_pair(trio.testing.memory_stream_pair())
    got: list[str | bytes] = []
    with trio.fail_after(5):
        async with open_inbox(server, 2) as inbox:
            with trio.move_on_after(0.01):
                await inbox.receive()  # nothing sent yet: given up
            for message in ("one", b"two", "three"):
                await client.send(message)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.close, 1000, "done")
                async for message in inbox:
                    got.append(message)
    assert got == ["one", b"two", "three"]
    assert server.closed is not None
    assert (server.closed.code, server.closed.reason, server.closed.by_peer) == (
        1000,
        "done",
        True,
    )


async def test_a_close_frame_left_by_a_stopped_reader_is_still_sent() -> None:
    """The reader fails the connection (a message over the limit: 1009) while another task
    is writing; stopping the reader before its close frame could be written does not lose
    it: the next close sends it after the pending write, and the peer sees 1009."""
    client, server = open_pair(trio.testing.lockstep_stream_pair(), max_size=10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send, "held")  # blocks: the client is not reading
            await trio.testing.wait_all_tasks_blocked()
            async with open_inbox(server, 4):
                await client.send("x" * 11)  # returns once the server's reader has it
                # the reader has failed the connection and waits for the write lock
                await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(server.close)
            assert await client.receive() == "held"
            with pytest.raises(Closed) as closed:
                await client.receive()
            await trio.aclose_forcefully(client.stream)  # the server waits for our end
    assert (closed.value.code, closed.value.by_peer) == (1009, True)
