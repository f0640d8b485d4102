"""trio-websocket's client for the tests, with its socket always released.

trio-websocket 0.12 leaves the client's socket open when the server's close frame arrived
first: ``aclose`` then returns early, and the reader task ends without closing the stream.
The socket is garbage-collected later, and its ResourceWarning lands on whichever test runs
then (seen in 2 of 5 full runs under load, when a server closed at the moment the client
left). Closing the stream after the block, whoever closed first, makes that impossible;
closing a closed stream does nothing. (A rejected handshake leaks inside trio-websocket,
where no caller can reach it: tests check rejections with raw HTTP or rtrec's own client.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

__all__ = ["open_client"]


@asynccontextmanager
async def open_client(url: str, **options: Any) -> AsyncIterator[WebSocketConnection]:
    """``open_websocket_url(url, **options)``, closing its socket on the way out."""
    connection: WebSocketConnection | None = None
    try:
        async with open_websocket_url(url, **options) as connection:
            yield connection
    finally:
        if connection is not None:
            await trio.aclose_forcefully(connection._stream)
