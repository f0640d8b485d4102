"""The user's fixtures: an SDK client pointed at rtrec's playback (or recording) server."""

from __future__ import annotations

import os

import pytest
from openai import AsyncOpenAI


@pytest.fixture
def client(rtrec_playback):
    """The SDK, as the agent uses it in production, with rtrec's URL and (when recording
    against the simulator) any key."""
    key = os.environ.get("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return AsyncOpenAI(api_key=key, websocket_base_url=rtrec_playback.url)
