"""The conformance conversation, spoken by the official ``openai`` Python SDK (GA or beta).

    python sdk_client.py BASE_URL AUDIO_DIR RUNS ga|beta     (tests/clients/clientrun.py)

As an app would: audio goes out from a task of its own (the "microphone", 20 ms frames)
while the main task reads server events; the function call is answered with the tool's
output. A text turn, a voice turn, a spoken question answered through ``get_weather``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from clientrun import FRAME, STEP_TIMEOUT, main
from openai import AsyncOpenAI

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city", "unit"],
    },
}
VAD = {"type": "server_vad", "silence_duration_ms": 500}


class Talk:
    """One connection: events read by the caller, audio sent from a task."""

    def __init__(self, conn: Any, audio: Path) -> None:
        self.conn, self.audio = conn, audio
        self.mic: asyncio.Task[None] | None = None

    async def until(self, kind: str) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                event = json.loads(await self.conn.recv_bytes())
                if event["type"] == "error":
                    raise RuntimeError(f"error event: {event['error']}")
                if event["type"] == kind:
                    return dict(event)

        try:
            return await asyncio.wait_for(wait(), STEP_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"timed out waiting for {kind}") from None

    def speak(self, name: str) -> None:
        data = (self.audio / f"{name}.pcm").read_bytes()

        async def mic() -> None:
            for i in range(0, len(data), FRAME):
                chunk = base64.b64encode(data[i : i + FRAME]).decode()
                await self.conn.input_audio_buffer.append(audio=chunk)
                await asyncio.sleep(0)

        self.mic = asyncio.create_task(mic())

    async def heard(self) -> None:
        if self.mic is not None:
            await self.mic


async def conversation(url: str, audio: Path, args: list[str]) -> None:
    (protocol,) = args
    client = AsyncOpenAI(api_key="sk-test-not-a-key", websocket_base_url=url)
    realtime = client.realtime if protocol == "ga" else client.beta.realtime
    session: dict[str, Any] = (
        {"type": "realtime", "tools": [WEATHER_TOOL], "audio": {"input": {"turn_detection": VAD}}}
        if protocol == "ga"
        else {"tools": [WEATHER_TOOL], "turn_detection": VAD}
    )
    async with realtime.connect(model="gpt-realtime") as conn:
        talk = Talk(conn, audio)
        await conn.session.update(session=session)
        await talk.until("session.updated")
        # a text turn
        text = {"type": "input_text", "text": "What time is it?"}
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [text]}
        )
        await conn.response.create()
        await talk.until("response.done")
        # a voice turn
        talk.speak("hello")
        await talk.until("response.done")
        await talk.heard()
        # a function call
        talk.speak("weather")
        done = await talk.until("response.done")
        await talk.heard()
        calls = [o for o in done["response"]["output"] if o["type"] == "function_call"]
        if [c["name"] for c in calls] != ["get_weather"]:
            raise RuntimeError(f"expected one get_weather call, got {calls}")
        args_ = json.loads(calls[0]["arguments"])
        # compact, as JSON.stringify writes it: the browser page answers with the same bytes
        result = {"city": args_["city"], "temperature": 14, "unit": args_["unit"]}
        output = json.dumps(result, separators=(",", ":"))
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": calls[0]["call_id"], "output": output}
        )
        await conn.response.create()
        await talk.until("response.done")


if __name__ == "__main__":
    main(conversation)
