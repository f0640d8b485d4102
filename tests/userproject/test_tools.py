"""A tool-calling agent recorded against the simulator with a scenario (--rtrec-sim-scenario
weather.toml): the scripted model calls get_weather, the agent answers, the model speaks
the result. The second test takes another simulator seed through its marker."""

from __future__ import annotations

import pytest
from agent import ask


async def test_weather(client):
    """The reply quotes the function output."""
    (answer,) = await ask(client, ["What is the weather like in Paris today?"], tools=True)
    assert answer == 'Here is what the weather service says: {"city": "Paris", "celsius": 21}'


@pytest.mark.rtrec_playback(sim={"seed": 3})
async def test_weather_seed_3(client):
    """The same conversation, under the simulator's seed 3."""
    (answer,) = await ask(client, ["What is the weather like in Paris today?"], tools=True)
    assert answer.startswith("Here is what the weather service says")
