"""A test that leaves its connection open: the user forgot ``async with``."""

from __future__ import annotations

import pytest

LEAKED = []  # keeps the connection referenced (and open) after the test


@pytest.mark.rtrec_playback("rtrec_bundles/test_turns/test_question[time]")
async def test_leaves_the_connection_open(client):
    """Opens a session and returns without closing it."""
    LEAKED.append(await client.realtime.connect(model="gpt-realtime").enter())
