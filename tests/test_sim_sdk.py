"""The official ``openai`` SDK, GA and beta, against the simulator.

The SDK is asyncio and pytest runs async tests under trio, so these are plain functions
that call ``asyncio.run`` while the simulator serves from its own trio loop in a thread
(``rtrec.replay.threaded.run_in_thread``). Every event the client receives is checked against
the SDK's own typed server-event model (no fallback) and rtrec's strict schema.

Barge-in needs a response that is still streaming when the user speaks, so those tests
serve at realtime pace on a ``MockClock`` that only moves when the test jumps it: what the
server has sent when the client speaks is fixed by the script, not by thread scheduling.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI
from trio.testing import MockClock

from rtrec.replay.threaded import ThreadedServer, run_in_thread
from rtrec.simulator import DEFAULT_SCENARIO, WEATHER_TOOL, load_scenario, serve_simulator

from .simkit import SCENARIOS, check_server_event, chunks, speech

PROTOCOLS = ["ga", "beta"]


class Client:
    """An SDK connection that checks and keeps every server event."""

    def __init__(self, conn: Any, protocol: str) -> None:
        self.conn, self.protocol = conn, protocol
        self.events: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        event = orjson.loads(await self.conn.recv_bytes())
        check_server_event(self.protocol, event)
        self.events.append(event)
        return event

    async def until(self, kind: str, count: int = 1) -> dict[str, Any]:
        seen = 0
        while True:
            event = await self.next()
            if event["type"] == kind:
                seen += 1
                if seen == count:
                    return event

    async def update(self, **session: Any) -> dict[str, Any]:
        """session.update with GA or beta spelling of the same settings."""
        if self.protocol == "ga":
            ga: dict[str, Any] = {"type": "realtime"}
            if "modalities" in session:
                ga["output_modalities"] = session["modalities"]
            audio_in = {k: session[k] for k in ("transcription", "turn_detection") if k in session}
            if audio_in:
                ga["audio"] = {"input": audio_in}
            if "tools" in session:
                ga["tools"] = session["tools"]
            await self.conn.session.update(session=ga)
        else:
            beta = {
                {"modalities": "modalities", "transcription": "input_audio_transcription"}.get(
                    k, k
                ): v
                for k, v in session.items()
            }
            if beta.get("modalities") == ["audio"]:
                beta["modalities"] = ["audio", "text"]
            await self.conn.session.update(session=beta)
        return await self.until("session.updated")

    async def say(self, name: str) -> None:
        """Stream fixture speech in 100 ms appends, as a microphone client does."""
        for piece in chunks(speech(name)):
            await self.conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())

    async def type(self, text: str) -> None:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self.conn.conversation.item.create(item=item)


def run(
    url: str,
    protocol: str,
    script: Callable[[Client], Awaitable[None]],
    *,
    intent: str | None = None,
) -> Client:
    """Connect the SDK (GA or beta client) and run ``script``; returns the client. With
    ``intent`` the connection asks for it (``?intent=transcription``) instead of a model."""

    async def main() -> Client:
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
        realtime = client.realtime if protocol == "ga" else client.beta.realtime
        # the GA client may leave the model out; the beta client always sends one
        target: dict[str, Any] = {"model": "gpt-realtime"}
        if intent is not None:
            target = {"extra_query": {"intent": intent}} | (target if protocol == "beta" else {})
        async with realtime.connect(**target) as conn:
            sdk = Client(conn, protocol)
            await sdk.until("conversation.created")
            await asyncio.wait_for(script(sdk), timeout=20)
            return sdk

    return asyncio.run(main())


@contextmanager
def simulator(clock: MockClock | None = None, **options: Any) -> Iterator[ThreadedServer]:
    """The simulator in a thread (on ``clock``, if given), with the demo scenario."""
    options.setdefault("scenario", load_scenario(SCENARIOS / "demo.toml"))
    with run_in_thread(partial(serve_simulator, **options), clock=clock) as server:
        yield server


def reply(events: list[dict[str, Any]], count: int = 1) -> str:
    """The transcript (or text) of the ``count``-th completed assistant message."""
    done = [
        e
        for e in events
        if e["type"]
        in (
            "response.output_audio_transcript.done",
            "response.audio_transcript.done",
            "response.output_text.done",
            "response.text.done",
        )
    ]
    event = done[count - 1]
    return str(event.get("transcript", event.get("text")))


VAD = {"type": "server_vad", "silence_duration_ms": 500}


# --------------------------------------------------------------------------- the turns


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_text_turn(protocol: str) -> None:
    """A typed question gets the scenario's text reply, streamed as text deltas."""

    async def script(sdk: Client) -> None:
        await sdk.update(modalities=["text"])
        await sdk.type("What time is it?")
        await sdk.conn.response.create()
        await sdk.until("response.done")

    with simulator(pace="fast") as server:
        sdk = run(server.url, protocol, script)
    deltas = [
        e["delta"]
        for e in sdk.events
        if e["type"] in ("response.output_text.delta", "response.text.delta")
    ]
    assert (
        "".join(deltas)
        == reply(sdk.events)
        == "I am a simulator, so it is always the same time for me."
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_voice_turn(protocol: str) -> None:
    """Fixture speech in 100 ms appends: server VAD commits it, the transcription comes from
    the scenario, and the reply is audio with its transcript."""

    async def script(sdk: Client) -> None:
        await sdk.update(transcription={"model": "gpt-4o-transcribe"}, turn_detection=VAD)
        await sdk.say("hello")
        await sdk.until("response.done")
        if not any(e["type"].endswith("transcription.completed") for e in sdk.events):
            await sdk.until("conversation.item.input_audio_transcription.completed")

    with simulator(pace="fast") as server:
        sdk = run(server.url, protocol, script)
    kinds = [e["type"] for e in sdk.events]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index(
        "input_audio_buffer.committed"
    )
    transcription = next(e for e in sdk.events if e["type"].endswith("transcription.completed"))
    assert transcription["transcript"] == "Hello! Can you hear me?"
    assert reply(sdk.events) == "Yes, I can hear you clearly. How can I help you today?"
    audio_type = "response.output_audio.delta" if protocol == "ga" else "response.audio.delta"
    audio = b"".join(base64.b64decode(e["delta"]) for e in sdk.events if e["type"] == audio_type)
    assert len(audio) > 48000  # more than a second of 24 kHz PCM16


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_function_call_round_trip(protocol: str) -> None:
    """The model speaks a preamble and calls get_weather in one response; after the
    function output and response.create it speaks the scripted answer."""

    async def script(sdk: Client) -> None:
        await sdk.update(tools=[WEATHER_TOOL], turn_detection=VAD)
        await sdk.type("Hello")  # the demo's first turn
        await sdk.conn.response.create()
        await sdk.until("response.done")
        await sdk.say("weather")
        done = await sdk.until("response.done")
        call = done["response"]["output"][-1]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"c":14}'}
        await sdk.conn.conversation.item.create(item=output)
        await sdk.conn.response.create()
        await sdk.until("response.done")

    with simulator(pace="fast") as server:
        sdk = run(server.url, protocol, script)
    done = [e["response"] for e in sdk.events if e["type"] == "response.done"]
    assert [o["type"] for o in done[1]["output"]] == ["message", "function_call"]
    call = done[1]["output"][1]
    assert (call["name"], call["arguments"]) == ("get_weather", '{"city":"Paris","unit":"celsius"}')
    assert reply(sdk.events, 2) == "Let me check that for you."
    assert reply(sdk.events, 3).startswith("It is fourteen degrees")


def jump(server: ThreadedServer, clock: MockClock, seconds: float) -> None:
    """Move the server's virtual clock (in its own thread)."""
    server.run_sync(clock.jump, seconds)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_barge_in_cancels_and_truncates(protocol: str) -> None:
    """While a long reply streams, the user speaks: the response is cancelled
    (turn_detected, item incomplete), the client truncates what it played, and the server's
    copy of the item is cut to that and loses its transcript."""
    clock = MockClock()
    with simulator(clock=clock) as server:

        async def script(sdk: Client) -> None:
            await sdk.update(turn_detection=VAD)
            await sdk.type("one")
            await sdk.type("two")
            await sdk.type("Tell me a joke")  # the demo's long third turn
            await sdk.conn.response.create()
            await sdk.until("response.created")
            await asyncio.to_thread(jump, server, clock, 0.6)  # 0.3 s of audio at 2x
            delta = await sdk.until(
                "response.output_audio.delta" if protocol == "ga" else "response.audio.delta", 4
            )
            await sdk.say("stop")
            await sdk.until("response.done")
            await sdk.conn.conversation.item.truncate(
                item_id=delta["item_id"], content_index=0, audio_end_ms=250
            )
            await sdk.until("conversation.item.truncated")
            await sdk.conn.conversation.item.retrieve(item_id=delta["item_id"])
            await sdk.until("conversation.item.retrieved")

        sdk = run(server.url, protocol, script)
    done = next(e["response"] for e in sdk.events if e["type"] == "response.done")
    assert done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "turn_detected"
    assert done["output"][0]["status"] == "incomplete"
    kinds = [e["type"] for e in sdk.events]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
    item = next(e["item"] for e in sdk.events if e["type"] == "conversation.item.retrieved")
    assert len(base64.b64decode(item["content"][0]["audio"])) == 250 * 48
    assert item["content"][0]["transcript"] == ""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_cancel(protocol: str) -> None:
    """response.cancel stops a streaming response (client_cancelled); a second cancel,
    with nothing active, is the service's harmless error."""
    clock = MockClock()
    with simulator(clock=clock) as server:

        async def script(sdk: Client) -> None:
            await sdk.type("Hello")
            await sdk.conn.response.create()
            await sdk.until("response.created")
            await asyncio.to_thread(jump, server, clock, 0.45)
            await sdk.until(
                "response.output_audio.delta" if protocol == "ga" else "response.audio.delta"
            )
            await sdk.conn.response.cancel()
            await sdk.until("response.done")
            await sdk.conn.response.cancel()
            await sdk.until("error")

        sdk = run(server.url, protocol, script)
    done = next(e["response"] for e in sdk.events if e["type"] == "response.done")
    assert done["status_details"]["reason"] == "client_cancelled"
    error = next(e["error"] for e in sdk.events if e["type"] == "error")
    assert error["code"] == "response_cancel_not_active"


# --------------------------------------------------------------------------- MCP, transcription


DOCS_SERVER = {
    "type": "mcp",
    "server_label": "docs",
    "server_url": "https://docs.example.com/mcp",
    "require_approval": "always",
}


def test_mcp_call_with_approval_through_the_sdk() -> None:
    """GA: the session's MCP server is listed with the scenario's tools; the model asks
    to approve its call, the client approves, and the next response runs the call (argument
    deltas, completed, output) and speaks what the tool returned."""

    async def script(sdk: Client) -> None:
        await sdk.conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "tools": [DOCS_SERVER]}
        )
        listed = await sdk.until("mcp_list_tools.completed")
        tools = await sdk.until("conversation.item.done")
        assert tools["item"]["id"] == listed["item_id"]
        await sdk.type("What is the weather like in Paris today?")
        await sdk.conn.response.create()
        done = await sdk.until("response.done")
        request = done["response"]["output"][-1]
        assert request["type"] == "mcp_approval_request"
        approval = {
            "type": "mcp_approval_response",
            "approval_request_id": request["id"],
            "approve": True,
        }
        await sdk.conn.conversation.item.create(item=approval)
        await sdk.until("conversation.item.done")
        await sdk.conn.response.create()
        await sdk.until("response.done")

    with simulator(pace="fast", scenario=load_scenario(SCENARIOS / "mcp.toml")) as server:
        sdk = run(server.url, "ga", script)
    listing = next(e["item"] for e in sdk.events if e["type"] == "conversation.item.done")
    assert [t["name"] for t in listing["tools"]] == ["search_docs", "read_changelog"]
    done = [e["response"] for e in sdk.events if e["type"] == "response.done"]
    request = done[0]["output"][-1]
    assert (request["name"], request["arguments"]) == (
        "search_docs",
        '{"query":"weather in Paris"}',
    )
    call, answer = done[1]["output"]
    assert call["type"] == "mcp_call"
    assert call["approval_request_id"] == request["id"]
    assert call["output"].startswith("The docs have no weather")
    deltas = [e["delta"] for e in sdk.events if e["type"] == "response.mcp_call_arguments.delta"]
    assert "".join(deltas) == call["arguments"] == request["arguments"]
    assert "response.mcp_call.completed" in [e["type"] for e in sdk.events]
    assert answer["content"][0]["text"] == f"The docs say: {call['output']}"


def test_mcp_approval_of_an_unknown_request_is_an_error() -> None:
    """An mcp_approval_response naming no pending request gets invalid_value, and the
    session goes on."""

    async def script(sdk: Client) -> None:
        approval = {"type": "mcp_approval_response", "approval_request_id": "x", "approve": True}
        await sdk.conn.conversation.item.create(item=approval)
        await sdk.until("error")

    with simulator(pace="fast") as server:
        sdk = run(server.url, "ga", script)
    error = next(e["error"] for e in sdk.events if e["type"] == "error")
    assert (error["code"], error["param"]) == ("invalid_value", "item.approval_request_id")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_transcription_only_session_through_the_sdk(protocol: str) -> None:
    """``?intent=transcription``: the session is a transcription session (GA updated with
    ``session.type: "transcription"``, beta with ``transcription_session.update``); speech
    is committed and transcribed with usage, and nothing answers it."""

    async def script(sdk: Client) -> None:
        if protocol == "ga":
            input_config = {"transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": VAD}
            await sdk.conn.session.update(
                session={"type": "transcription", "audio": {"input": input_config}}
            )
            await sdk.until("session.updated")
        else:
            session = {"input_audio_transcription": {"model": "whisper-1"}, "turn_detection": VAD}
            await sdk.conn.send({"type": "transcription_session.update", "session": session})
            await sdk.until("transcription_session.updated")
        await sdk.say("hello")
        await sdk.until("conversation.item.input_audio_transcription.completed")
        await sdk.conn.response.create()
        await sdk.until("error")

    with simulator(pace="fast") as server:
        sdk = run(server.url, protocol, script, intent="transcription")
    created = sdk.events[0]
    assert created["type"] == "session.created"
    assert created["session"]["object"] == "realtime.transcription_session"
    completed = next(e for e in sdk.events if e["type"].endswith("transcription.completed"))
    assert completed["transcript"] == "Hello! Can you hear me?"
    usage = completed["usage"]
    assert usage["type"] == ("tokens" if protocol == "ga" else "duration")
    kinds = {e["type"] for e in sdk.events}
    assert not any(k.startswith(("response.", "rate_limits")) for k in kinds)
    error = next(e["error"] for e in sdk.events if e["type"] == "error")
    assert error["message"] == "response.create is not supported in transcription sessions."


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_choice_required_forces_a_call_without_a_scenario(protocol: str) -> None:
    """With ``tool_choice: "required"`` and a function tool, the simulator's default
    scenario (which scripts no call) answers with a function_call whose arguments come from
    the tool's JSON schema."""

    async def script(sdk: Client) -> None:
        await sdk.update(modalities=["text"], tools=[WEATHER_TOOL])
        await sdk.type("Anything at all")
        await sdk.conn.response.create(response={"tool_choice": "required"})
        await sdk.until("response.done")

    with simulator(pace="fast", scenario=DEFAULT_SCENARIO) as server:
        sdk = run(server.url, protocol, script)
    done = next(e["response"] for e in sdk.events if e["type"] == "response.done")
    (call,) = done["output"]
    assert (call["type"], call["name"]) == ("function_call", "get_weather")
    assert orjson.loads(call["arguments"]) == {"city": "city"}
    args_done = next(e for e in sdk.events if e["type"] == "response.function_call_arguments.done")
    assert args_done["name"] == "get_weather"  # beta too, as real beta frames do


# --------------------------------------------------------------------------- bad input


def test_bad_input_through_the_sdk() -> None:
    """Invalid JSON, an unknown type, a wrong field type, bad base64 and an append over
    15 MiB each get an error event; the session then still answers."""
    frames = [
        "{oops",
        '{"type": "session.explode"}',
        '{"type": "conversation.item.truncate", "item_id": 1, "content_index": 0,'
        ' "audio_end_ms": 0}',
        '{"type": "input_audio_buffer.append", "audio": "not base64!"}',
        orjson.dumps(
            {"type": "input_audio_buffer.append", "audio": "A" * (21 * 1024 * 1024)}
        ).decode(),
    ]

    async def script(sdk: Client) -> None:
        for frame in frames:
            await sdk.conn.send_raw(frame)
            await sdk.until("error")
        await sdk.type("What time is it?")
        await sdk.conn.response.create()
        await sdk.until("response.done")

    with simulator(pace="fast") as server:
        sdk = run(server.url, "ga", script)
    codes = [e["error"]["code"] for e in sdk.events if e["type"] == "error"]
    assert codes == [
        "invalid_json",
        "invalid_value",
        "invalid_type",
        "invalid_value",
        "invalid_value",
    ]
    assert reply(sdk.events) == "I am a simulator, so it is always the same time for me."


def test_bad_input_through_the_beta_sdk() -> None:
    """The beta client gets the same kind of errors for a wrong type and bad base64."""

    async def script(sdk: Client) -> None:
        await sdk.conn.send({"type": "session.update", "session": {"input_audio_format": "pcm24"}})
        await sdk.until("error")
        await sdk.conn.input_audio_buffer.append(audio="@@@@")
        await sdk.until("error")
        await sdk.type("What time is it?")
        await sdk.conn.response.create()
        await sdk.until("response.done")

    with simulator(pace="fast") as server:
        sdk = run(server.url, "beta", script)
    errors = [e["error"] for e in sdk.events if e["type"] == "error"]
    assert [(e["code"], e["param"]) for e in errors] == [
        ("invalid_value", "session.input_audio_format"),
        ("invalid_value", "audio"),
    ]


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_runs_give_identical_event_sequences(protocol: str) -> None:
    """The same scripted client (voice, text and a tool call) against two fresh simulators
    gets the same server events, byte for byte."""

    async def script(sdk: Client) -> None:
        await sdk.update(
            tools=[WEATHER_TOOL], transcription={"model": "whisper-1"}, turn_detection=VAD
        )
        await sdk.say("hello")
        await sdk.until("response.done")
        await sdk.say("weather")
        done = await sdk.until("response.done")
        call = done["response"]["output"][-1]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "{}"}
        await sdk.conn.conversation.item.create(item=output)
        await sdk.conn.response.create()
        await sdk.until("response.done")

    runs = []
    for _ in range(2):
        with simulator(pace="fast", seed=11) as server:
            runs.append(run(server.url, protocol, script).events)
    assert runs[0] == runs[1]
    assert len(runs[0]) > 100
