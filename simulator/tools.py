"""The function tool the fixture scenarios call (fixtures/scenarios/demo.toml, weather.toml).

Clients that want the scripted function call (the demo, the fixture sessions, tests) put
it in their session's ``tools``; the simulator only calls functions the session declares.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["WEATHER_TOOL"]

WEATHER_TOOL: Final[dict[str, Any]] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}
