"""The user's agent: plain asyncio code on the official SDK, which knows nothing of rtrec."""

from __future__ import annotations

import json
from typing import Any

from openai import AsyncOpenAI

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}


async def ask(client: AsyncOpenAI, questions: list[str], *, tools: bool = False) -> list[str]:
    """Ask each question in one Realtime session; answer tool calls; return the replies."""
    replies = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        if tools:
            await conn.session.update(session={"type": "realtime", "tools": [WEATHER_TOOL]})
        for question in questions:
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": question}],
                }
            )
            await conn.response.create()
            replies.append(await reply(conn))
    return replies


async def reply(conn: Any) -> str:
    """The text of the next response; when the model calls get_weather, answer the call and
    return the text of the response that follows."""
    async for event in conn:
        if event.type != "response.done":
            continue
        output = event.response.output or []
        calls = [item for item in output if item.type == "function_call"]
        for call in calls:
            weather = {"city": json.loads(call.arguments)["city"], "celsius": 21}
            await conn.conversation.item.create(
                item={
                    "type": "function_call_output",
                    "call_id": call.call_id,
                    "output": json.dumps(weather),
                }
            )
        if calls:
            await conn.response.create()
            continue
        return " ".join(
            str(getattr(part, "text", None) or getattr(part, "transcript", None) or "")
            for item in output
            if item.type == "message"
            for part in item.content or []
        )
    raise RuntimeError("the session ended before a response was done")
