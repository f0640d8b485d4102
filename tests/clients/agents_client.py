"""The conformance conversation, spoken by the OpenAI Agents SDK for Python.

Runs in its own environment (tests/clients/.venv-agents: openai-agents needs websockets<17,
rtrec's lock has 17), so it imports nothing of rtrec. Usage (tests/clients/clientrun.py):

    python agents_client.py BASE_URL AUDIO_DIR RUNS

``BASE_URL`` is what `rtrec record`, `rtrec sim` or `rtrec playback` printed
(``ws://127.0.0.1:PORT/v1``); ``AUDIO_DIR`` holds the fixture utterances as raw PCM16 24 kHz
(``hello.pcm``, ...).

What the app does is what a voice app built on ``RealtimeRunner`` does: audio is streamed from
its own task (the "microphone") while the main task reacts to session events, the tool runs
when the model calls it, and the SDK itself truncates the reply the user talks over. The user
listens to each reply to its end before speaking again, except the long one, which they
interrupt as soon as it starts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from clientrun import FRAME, STEP_TIMEOUT, main

BYTES_PER_SECOND = 24000 * 2  # the session's output audio: PCM16 at 24 kHz


@function_tool
def get_weather(city: str, unit: str) -> str:
    """Get the current weather for a city."""
    return json.dumps({"city": city, "temperature": 14, "unit": unit})


AGENT = RealtimeAgent(
    name="Assistant",
    instructions="You are a helpful voice assistant.",
    tools=[get_weather],
)


class Conversation:
    """One connection's events, read by the main task; audio goes out from another task."""

    def __init__(self, session: RealtimeSession, audio: Path) -> None:
        self.session, self.audio = session, audio
        self.seen: list[str] = []
        self.tools: list[str] = []
        self.mic: asyncio.Task[None] | None = None
        #: when the reply audio received so far has finished playing, on the loop's clock, as
        #: the SDK's default playback tracker reckons it (played in real time from its first
        #: delta), and so as a person would hear it
        self.played_until = 0.0
        self._items: dict[str, tuple[float, int]] = {}

    def mark(self) -> int:
        """Where the next turn starts in ``seen``."""
        return len(self.seen)

    async def until(self, kind: str, count: int = 1, since: int | None = None) -> None:
        """Read events until ``count`` of ``kind`` were seen since ``since`` (default: now)."""
        start = self.mark() if since is None else since

        async def wait() -> None:
            if self.seen[start:].count(kind) >= count:
                return
            async for event in self.session:
                # the SDK's own model events are seen as "raw:TYPE"
                raw = event.type == "raw_model_event"
                self.seen.append(f"raw:{event.data.type}" if raw else event.type)
                if event.type == "tool_end":
                    self.tools.append(str(event.output))
                if event.type == "audio":
                    self._heard(event.item_id, len(event.audio.data))
                if event.type == "error":
                    raise RuntimeError(f"error event: {event.error}")
                if self.seen[start:].count(kind) >= count:
                    return
            raise RuntimeError(f"the session ended while waiting for {kind}")

        try:
            return await asyncio.wait_for(wait(), STEP_TIMEOUT)
        except TimeoutError:
            tail = ", ".join(self.seen[-8:])
            raise RuntimeError(f"timed out waiting for {kind} (last events: {tail})") from None

    def _heard(self, item_id: str, size: int) -> None:
        start, total = self._items.get(item_id, (asyncio.get_running_loop().time(), 0))
        self._items[item_id] = (start, total + size)
        self.played_until = max(self.played_until, start + (total + size) / BYTES_PER_SECOND)

    async def listen(self) -> None:
        """Wait until the reply has been heard to its end, as a person does before speaking
        again (without talking over it, the SDK has nothing to truncate)."""
        await asyncio.sleep(max(0.0, self.played_until - asyncio.get_running_loop().time()))

    def speak(self, name: str) -> None:
        """Stream an utterance in 20 ms frames from a task of its own, unpaced."""
        data = (self.audio / f"{name}.pcm").read_bytes()

        async def mic() -> None:
            for i in range(0, len(data), FRAME):
                await self.session.send_audio(data[i : i + FRAME])
                await asyncio.sleep(0)

        self.mic = asyncio.create_task(mic())

    async def heard(self) -> None:
        if self.mic is not None:
            await self.mic


async def conversation(url: str, audio: Path, _: list[str]) -> None:
    runner = RealtimeRunner(AGENT)
    config: Any = {"url": f"{url}/realtime?model=gpt-realtime", "api_key": "sk-test-not-a-key"}
    session = await runner.run(model_config=config)
    async with session:
        talk = Conversation(session, audio)
        # a text turn
        await session.send_message("What time is it?")
        await talk.until("agent_end")
        await talk.listen()
        # a voice turn
        talk.speak("hello")
        await talk.until("agent_end")
        await talk.heard()
        await talk.listen()
        # a function call: the SDK runs the tool, sends its output and asks for the answer
        turn = talk.mark()
        talk.speak("weather")
        await talk.until("tool_end", since=turn)
        await talk.until("agent_end", 2, since=turn)  # the call's response, then the answer
        await talk.heard()
        await talk.listen()
        if len(talk.tools) != 1 or '"temperature": 14' not in talk.tools[0]:
            raise RuntimeError(f"get_weather ran {len(talk.tools)} time(s): {talk.tools}")
        # a barge-in: the user talks over the long reply as soon as it is heard
        talk.speak("joke")
        await talk.until("audio")
        await talk.heard()
        turn = talk.mark()
        talk.speak("stop")
        await talk.until("audio_interrupted", since=turn)
        await talk.until("agent_end", 2, since=turn)  # the cut reply, then the answer
        await talk.heard()
        # hang up once the last words are transcribed: the SDK asks for the transcribed item
        # (conversation.item.retrieve) before it reports the transcript, so nothing is cut off
        await talk.until("raw:input_audio_transcription_completed", 4, since=0)


if __name__ == "__main__":
    main(conversation)
