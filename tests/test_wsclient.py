"""The tests' trio-websocket client releases its socket whoever closes first (tests/wsclient.py).

With pytest's filterwarnings = error, a socket garbage-collected unclosed fails the test
that collects it: the ``gc.collect()`` here makes that this test."""

from __future__ import annotations

import gc

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from .wsclient import open_client


async def _server_closes_first(request: WebSocketRequest) -> None:
    ws = await request.accept()
    await ws.send_message("bye")
    await ws.aclose()


async def _client_closes(request: WebSocketRequest) -> None:
    ws = await request.accept()
    await ws.send_message("hello")
    with pytest.raises(ConnectionClosed):
        await ws.get_message()


@pytest.mark.parametrize("handler", [_server_closes_first, _client_closes])
async def test_the_client_socket_is_closed_whoever_closes_first(handler) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    handler, "127.0.0.1", 0, None, task_status=task_status
                )
            )
            async with open_client(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.get_message()
                if handler is _server_closes_first:
                    with pytest.raises(ConnectionClosed):
                        await ws.get_message()  # the server's close has arrived
            stream = ws._stream
            nursery.cancel_scope.cancel()
    assert stream.socket.fileno() == -1  # closed, not left to the garbage collector
    gc.collect()
