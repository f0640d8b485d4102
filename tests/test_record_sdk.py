"""The official SDK through `rtrec record --upstream sim`: the conversation runs unchanged,
and the log plus the FLAC archive give back every frame both sides sent, byte for byte.

The recorder (log writer + simulator + proxy) runs in its own trio loop in a thread; the
SDK runs on asyncio in the test. The SDK's own websocket is tapped so the test compares the
log with the exact bytes that crossed the wire on the client's side.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import soundfile as sf
import trio
from openai import AsyncOpenAI

from rtrec import open_recorder
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.storage import Direction, FrameKind, SessionStatus
from rtrec.simulator import WEATHER_TOOL, load_scenario
from rtrec.store.bundle import export_session, import_bundle
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    read_streams,
    rebuild_frame,
)

from .simkit import SCENARIOS, chunks, speech

VAD = {"type": "server_vad", "silence_duration_ms": 500}


async def serve_recording(
    db: Path, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """What `rtrec record --upstream sim` runs: writer, simulator, proxy."""
    scenario = load_scenario(SCENARIOS / "demo.toml")
    async with open_recorder("sim", db=db, simulator={"scenario": scenario, "pace": "fast"}) as rec:
        task_status.started(rec.url)
        await trio.sleep_forever()


class Tap:
    """The SDK connection, with every frame it sent and received kept as it was on the wire."""

    def __init__(self, conn: Any, protocol: str) -> None:
        self.conn, self.protocol = conn, protocol
        self.sent: list[str | bytes] = []
        self.received: list[str | bytes] = []
        ws = conn._connection  # the SDK's websockets connection
        original_send = ws.send

        async def send(message: str | bytes, *args: Any, **kwargs: Any) -> None:
            self.sent.append(message)
            await original_send(message, *args, **kwargs)

        ws.send = send

    async def next(self) -> dict[str, Any]:
        raw = await self.conn.recv_bytes()
        self.received.append(raw.decode())
        return dict(orjson.loads(raw))

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            event = await self.next()
            if event["type"] == kind:
                return event

    async def say(self, name: str) -> int:
        """Stream fixture speech in 100 ms appends; returns the bytes of PCM sent."""
        data = speech(name)
        for piece in chunks(data):
            await self.conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        return len(data)


def run_sdk(url: str, protocol: str, script: Callable[[Tap], Awaitable[None]]) -> Tap:
    async def main() -> Tap:
        client = AsyncOpenAI(api_key="sk-test-not-a-real-key", websocket_base_url=url)
        realtime = client.realtime if protocol == "ga" else client.beta.realtime
        async with realtime.connect(model="gpt-realtime") as conn:
            tap = Tap(conn, protocol)
            await asyncio.wait_for(script(tap), timeout=30)
            return tap

    return asyncio.run(main())


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_sdk_conversation_is_recorded_byte_exact(protocol: str, tmp_path: Path) -> None:
    """A text turn, two voice turns and a function call through the recorder: the SDK sees a
    normal conversation; the log holds every frame of both sides, in order, rebuilt byte
    for byte from log + FLAC; FLAC durations equal the audio sent; and the same holds after
    export -> import into another log."""
    sent_pcm: list[int] = []

    async def script(sdk: Tap) -> None:
        ga = protocol == "ga"
        session: dict[str, Any] = (
            {
                "type": "realtime",
                "tools": [WEATHER_TOOL],
                "audio": {"input": {"turn_detection": VAD}},
            }
            if ga
            else {"tools": [WEATHER_TOOL], "turn_detection": VAD}
        )
        await sdk.conn.session.update(session=session)
        await sdk.until("session.updated")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What time is it?"}],
        }
        await sdk.conn.conversation.item.create(item=item)
        await sdk.conn.response.create()
        await sdk.until("response.done")
        sent_pcm.append(await sdk.say("hello"))
        await sdk.until("response.done")
        sent_pcm.append(await sdk.say("weather"))
        done = await sdk.until("response.done")
        call = done["response"]["output"][-1]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"c":14}'}
        await sdk.conn.conversation.item.create(item=output)
        await sdk.conn.response.create()
        await sdk.until("response.done")

    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        sdk = run_sdk(server.url, protocol, script)

    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        assert session.status == SessionStatus.CLOSED
        assert session.protocol == protocol
        frames = list(read_frames(log, session.session_id))
        audio = LogAudio.of_session(log, session.session_id)
        wire = [rebuild_frame(f, audio) for f in frames]
        client = [w for f, w in zip(frames, wire, strict=True) if f.direction is Direction.CLIENT]
        server = [w for f, w in zip(frames, wire, strict=True) if f.direction is Direction.SERVER]
        streams = {s.stream: s for s in read_streams(log, session.session_id)}
    # everything the SDK sent, in order, byte for byte; every frame it received (the log has
    # more server frames: those that arrived after the SDK stopped reading)
    assert client == sdk.sent
    assert server[: len(sdk.received)] == sdk.received
    assert all(f.kind is not FrameKind.BINARY for f in frames)
    assert sum(1 for f in frames if f.audio is not None and f.audio.cut_at is not None) > 50
    # FLAC durations equal the audio sent (input) and the audio the server streamed (output)
    assert streams["input"].frames == sum(sent_pcm) // 2
    delta_types = ("response.output_audio.delta", "response.audio.delta")
    streamed = sum(
        len(base64.b64decode(orjson.loads(m)["delta"]))
        for m in server
        if isinstance(m, str) and orjson.loads(m)["type"] in delta_types
    )
    assert streams["output"].frames == streamed // 2
    info = sf.info(str(streams["input"].path))
    assert (info.samplerate, info.frames) == (24000, streams["input"].frames)

    # export -> import into a fresh log: the same frames, byte for byte
    bundle = tmp_path / "bundle"
    export_session(db, session.session_id, bundle)
    other = tmp_path / "other.duckdb"
    imported = import_bundle(other, bundle)
    with open_log_reader(other) as log:
        audio = LogAudio.of_session(log, imported)
        again = [rebuild_frame(f, audio) for f in read_frames(log, imported)]
    assert again == wire
