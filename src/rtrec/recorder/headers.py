"""Which handshake headers belong to one hop and are never passed on."""

from __future__ import annotations

from typing import Final

__all__ = ["HOP_BY_HOP"]

# Hop-by-hop headers and the ones each WebSocket handshake owns: never forwarded.
HOP_BY_HOP: Final = frozenset(
    {
        "host",
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
