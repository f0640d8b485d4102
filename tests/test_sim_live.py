"""`rtrec sim` speaks GPT-Live (rtrec/simulator/live.py): the official SDK's `client.live.connect()`
holds a conversation with it, directly and through `rtrec record`, with speech in and out
and a delegated function call; every server event validates against the SDK's models."""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import trio
from openai import AsyncOpenAI
from openai.types.live import ConnectServerEvent, ServerEvent
from pydantic import TypeAdapter

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.replay.live import fold_live, live_transcript
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.storage import Direction
from rtrec.simulator import load_scenario, serve_simulator
from rtrec.simulator.live import PRIMARY, LiveSession
from rtrec.simulator.server import _LiveHub
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_audio,
    read_frames,
    read_sessions,
    rebuild_frame,
)
from rtrec.store.writer import open_log_writer

from .simkit import SCENARIOS, chunks, silence, speech

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(ServerEvent)
WEATHER = load_scenario(SCENARIOS / "weather.toml")


def validate(event: dict[str, Any]) -> None:
    """The SDK's own model of the event accepts it, with no field left over."""
    parsed = SERVER_EVENT.validate_python(event)
    assert parsed.type == event["type"]


async def serve(
    *, record_to: Path | None, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(functools.partial(serve_simulator, scenario=WEATHER, pace="fast"))
        if record_to is None:
            task_status.started(sim)
            return
        async with open_log_writer(record_to) as writer:
            recorder = Recorder(writer, ProxyOptions(upstream=sim))
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            try:
                task_status.started(url)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await recorder.close_sessions()


class Conversation:
    """The SDK side: what it sent as audio, and every event it received (parsed, and the
    frames as they came)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self.sent_pcm = bytearray()

    async def pump(self, pcm: bytes) -> None:
        """Send audio in 100 ms chunks, reading what comes back after each (full duplex)."""
        for piece in chunks(pcm):
            self.sent_pcm += piece
            await self.conn.session.input_audio.append(audio=base64.b64encode(piece).decode())
        await self.drain()

    async def drain(self) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(self.conn.recv_bytes(), timeout=0.5)
            except TimeoutError:
                return
            self._keep(raw)

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            event = self._keep(await asyncio.wait_for(self.conn.recv_bytes(), timeout=10))
            if event["type"] == kind:
                return event

    def _keep(self, raw: bytes) -> dict[str, Any]:
        event = dict(orjson.loads(raw))
        self.frames.append(raw)
        self.events.append(event)
        return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def weather_call(
    url: str,
    delegation: dict[str, Any] | None = None,
    *,
    model: str = "gpt-live-1",
    before_close: Callable[[Any, Conversation], Awaitable[None]] | None = None,
) -> Conversation:
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
    async with client.live.connect() as conn:
        talk = Conversation(conn)
        session: dict[str, Any] = {"model": model}
        if delegation is not None:
            session["delegation"] = delegation
        await conn.session.start(session=session)
        await talk.until("session.started")
        await talk.pump(speech("weather") + silence(800))
        (created,) = talk.of("session.delegation.created")
        d = created["delegation"]
        if d["target"] == "client":
            await conn.session.commentary.append(
                content="14 degrees and sunny", delegation_id=d["id"]
            )
        else:
            call = next(
                e["event"]["item"]
                for e in talk.of("response.event")
                if e["event"]["type"] == "response.output_item.done"
            )
            output = {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": '{"c":14}',
            }
            await conn.response.item.create(item=output)
            await conn.response.create()
        await talk.pump(silence(6000))  # the answer plays while the client streams silence
        if before_close is not None:
            await before_close(conn, talk)
        await conn.session.close()
        await talk.until("session.closed")
        return talk


def run(coro: Any) -> Conversation:
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def said(talk: Conversation, kind: str) -> str:
    return "".join(e["delta"] for e in talk.of(kind))


def test_sdk_holds_a_conversation_with_a_client_delegated_call() -> None:
    with run_in_thread(functools.partial(serve, record_to=None), timeout=30) as sim:
        talk = run(weather_call(sim.url))
    for event in talk.events:
        validate(event)
    assert (
        said(talk, "session.input_transcript.delta") == "What is the weather like in Paris today?"
    )
    spoken = said(talk, "session.output_transcript.delta")
    assert spoken.startswith("Let me check that for you.")
    assert spoken.endswith("Here is what the weather service says: 14 degrees and sunny")
    (ack,) = talk.of("session.commentary.appended")
    assert ack["start_ms"] <= ack["end_ms"]
    closed = talk.of("session.closed")[0]
    assert closed["reason"] == "close_requested"
    # output audio is continuous: as many samples out as in, speech where words were said
    out = b"".join(base64.b64decode(e["delta"]) for e in talk.of("session.output_audio.delta"))
    assert len(out) == len(talk.sent_pcm)
    assert np.abs(np.frombuffer(out, dtype="<i2")).max() > 1000
    # transcripts sit on the timeline: the user's words inside the speech, the reply after
    user = talk.of("session.input_transcript.delta")
    reply = talk.of("session.output_transcript.delta")
    assert user[-1]["end_ms"] <= reply[0]["start_ms"]
    assert closed["usage"]["seconds"] == len(talk.sent_pcm) // 48000


def test_responses_delegation_streams_the_backend_call_and_speaks_the_answer() -> None:
    delegation = {"type": "responses", "responses": {"model": "gpt-5.2"}}
    with run_in_thread(functools.partial(serve, record_to=None), timeout=30) as sim:
        talk = run(weather_call(sim.url, delegation))
    for event in talk.events:
        validate(event)
    (created,) = talk.of("session.delegation.created")
    assert created["delegation"]["target"] == "responses"
    nested = [e["event"]["type"] for e in talk.of("response.event")]
    assert nested[:6] == [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert nested[-1] == "response.completed"
    assert all(e["delegation_id"] == created["delegation"]["id"] for e in talk.of("response.event"))
    assert said(talk, "session.output_transcript.delta").endswith('says: {"c":14}')


def test_through_the_recorder_the_log_rebuilds_it_and_replay_shows_it(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve, record_to=db), timeout=30) as rec:
        talk = run(weather_call(rec.url))
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        frames = list(read_frames(log, session.session_id))
        audio = LogAudio.of_session(log, session.session_id)
        wire = [rebuild_frame(f, audio) for f in frames]
        heard, _ = read_audio(log, session.session_id, "input")
        played, _ = read_audio(log, session.session_id, "output")
    assert session.protocol == "live"
    server = [
        orjson.loads(w)
        for f, w in zip(frames, wire, strict=True)
        if f.direction is Direction.SERVER
    ]
    assert server == talk.events  # every event the SDK got, in order
    assert heard.tobytes() == bytes(talk.sent_pcm)  # the FLACs hold exactly the audio exchanged
    out = b"".join(base64.b64decode(e["delta"]) for e in talk.of("session.output_audio.delta"))
    assert played.tobytes() == out
    text = live_transcript(fold_live(frames))
    assert "user: What is the weather like in Paris today?" in text
    assert "delegation " in text
    assert "commentary: 14 degrees and sunny" in text
    assert "assistant: Let me check that for you." in text
    assert "closed: close_requested" in text


def core() -> LiveSession:
    return LiveSession(scenario=WEATHER, seed=7)


def send(session: LiveSession, event: dict[str, Any]) -> list[dict[str, Any]]:
    outbox = session.receive(orjson.dumps(event))
    assert set(outbox) <= {PRIMARY}  # nobody else is attached
    out = outbox.get(PRIMARY, [])
    for e in out:
        validate(e)
    return out


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"model": "gpt-live-1", "voice": "marin"}, "unknown_parameter", "session.voice"),
        (
            {"model": "gpt-live-1", "turn_detection": {}},
            "unknown_parameter",
            "session.turn_detection",
        ),
        ({}, "missing_required_parameter", "session.model"),
        (
            {
                "model": "gpt-live-1",
                "triggers": [
                    {
                        "type": "decisions",
                        "event_type": "session.input_transcript.delta",
                        "decisions": {"questions": [{"type": "predicate", "instructions": "?"}]},
                    }
                ],
            },
            "invalid_value",
            "session.triggers",
        ),
        (
            {"model": "gpt-live-1", "delegation": {"type": "decisions"}},
            "invalid_value",
            "session.delegation.type",
        ),
        (
            {"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcm", "rate": 8000}}},
            "invalid_value",
            "session.audio.format.rate",
        ),
        (
            {
                "model": "gpt-live-1",
                "audio": {"format": {"type": "audio/pcm", "rate": 24000, "x": 1}},
            },
            "unknown_parameter",
            "session.audio.format.x",
        ),
    ],
)
def test_the_config_is_strict(session: dict[str, Any], code: str, param: str) -> None:
    sim = core()
    (error,) = send(sim, {"type": "session.start", "event_id": "c1", "session": session})
    assert error["type"] == "error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["client_event_id"] == "c1"
    assert not sim.started


def test_commands_before_the_start_and_after_the_close_are_refused() -> None:
    sim = core()
    (early,) = send(sim, {"type": "session.input_audio.mute"})
    assert early["error"]["code"] == "session_not_started"
    send(sim, {"type": "session.start", "session": {"model": "gpt-live-1"}})
    thinking = {
        "type": "session.thinking.append",
        "content": "hmm",
        "delegation_id": None,
        "event_id": "t1",
    }
    assert send(sim, thinking) == []  # placed only when the timeline reaches it
    closing = send(sim, {"type": "session.close"})
    assert [e["type"] for e in closing] == ["error", "session.closed"]
    assert closing[0]["error"]["code"] == "context_injection_incomplete"
    assert closing[0]["error"]["client_event_id"] == "t1"
    (late,) = send(sim, {"type": "session.input_audio.unmute"})
    assert late["error"]["code"] == "session_closed"


def test_16khz_audio_mute_and_the_fixture() -> None:
    sim = core()
    fmt = {"type": "audio/pcm", "rate": 16000}
    (started,) = send(
        sim, {"type": "session.start", "session": {"model": "gpt-live-1", "audio": {"format": fmt}}}
    )
    assert started["session"]["audio"]["format"] == fmt
    chunk = base64.b64encode(bytes(3200)).decode()  # 100 ms at 16 kHz
    (delta,) = send(sim, {"type": "session.input_audio.append", "audio": chunk})
    assert len(base64.b64decode(delta["delta"])) == 3200  # 100 ms out, in the session's format
    assert sim.now_ms == 100
    (muted,) = send(sim, {"type": "session.input_audio.mute", "event_id": "m"})
    assert (muted["type"], muted["client_event_id"]) == ("session.input_audio.muted", "m")
    fixture = base64.b64encode(np.full(4800, 3000, dtype="<i2").tobytes()).decode()  # 200 ms
    (playing,) = send(
        sim, {"type": "session.output_audio.fixture.play", "audio": fixture, "event_id": "f"}
    )
    assert playing["type"] == "session.output_audio.fixture.playing"
    first = send(sim, {"type": "session.input_audio.append", "audio": chunk})
    assert np.frombuffer(base64.b64decode(first[0]["delta"]), dtype="<i2").min() > 2000
    second = send(sim, {"type": "session.input_audio.append", "audio": chunk})
    assert [e["type"] for e in second] == [
        "session.output_audio.delta",
        "session.output_audio.fixture.played",
    ]
    odd = send(
        sim, {"type": "session.input_audio.append", "audio": base64.b64encode(b"abc").decode()}
    )
    assert odd[0]["error"]["code"] == "invalid_audio"


def test_the_same_input_gives_the_same_bytes() -> None:
    def play() -> list[bytes]:
        sim = core()
        out = [
            orjson.dumps(e)
            for e in send(sim, {"type": "session.start", "session": {"model": "gpt-live-1"}})
        ]
        for piece in chunks(speech("weather") + silence(3000)):
            out += [
                orjson.dumps(e)
                for e in send(
                    sim,
                    {
                        "type": "session.input_audio.append",
                        "audio": base64.b64encode(piece).decode(),
                    },
                )
            ]
        return out

    assert play() == play()


CONNECT_SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(ConnectServerEvent)


async def observed_call(url: str) -> tuple[Conversation, Conversation]:
    """A client-delegated call on the primary, answered by a sideband that watches the
    whole session and closes it."""
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
    answered, finished = asyncio.Event(), asyncio.Event()
    async with client.live.connect() as conn:
        talk = Conversation(conn)
        await conn.session.start(session={"model": "gpt-live-1"})
        started = await talk.until("session.started")
        sid = started["session"]["id"]
        async with client.live.sideband.connect(session_id=sid, graceful_close=True) as side:
            watch = Conversation(side)

            async def observe() -> None:
                created = await watch.until("session.delegation.created")
                await side.session.commentary.append(
                    content="14 degrees and sunny", delegation_id=created["delegation"]["id"]
                )
                answered.set()
                while not finished.is_set():  # an observer keeps reading
                    await watch.drain()
                await side.session.close(event_id="side_close")
                await watch.until("session.closed")

            observer = asyncio.create_task(observe())
            await talk.pump(speech("weather") + silence(800))
            await answered.wait()
            # the answer plays while the client streams silence; when it starts depends on
            # when the sideband's commentary reached the server, between two of our appends
            for _ in range(15):
                await talk.pump(silence(1000))
                if said(talk, "session.output_transcript.delta").endswith("sunny"):
                    break
            finished.set()
            await talk.until("session.closed")
            await observer
    return talk, watch


def audio_of(talk: Conversation, kind: str, field: str) -> bytes:
    return b"".join(base64.b64decode(e[field]) for e in talk.of(kind))


def test_a_sideband_sees_the_session_answers_its_delegation_and_closes_it() -> None:
    """`client.live.sideband.connect()` attached to a running session of the simulator gets
    `session.started` at once, then every event of the session as the primary gets it, the
    primary's input reflected and the output with its timeline positions; the delegation
    it answers is spoken on the primary, and its `session.close` ends both connections."""
    with run_in_thread(functools.partial(serve, record_to=None), timeout=30) as sim:
        talk, watch = run(observed_call(sim.url))
    for event in watch.events:
        CONNECT_SERVER_EVENT.validate_python(event)
    for event in talk.events:
        validate(event)
    first = watch.events[0]
    assert first["type"] == "session.started"
    assert first["session"]["id"] == talk.of("session.started")[0]["session"]["id"]
    # every event with an id the primary got after the start, the sideband got too, in order
    shared = [e for e in talk.events[1:] if "event_id" in e]
    assert [e for e in watch.events[1:] if "event_id" in e] == shared
    assert said(watch, "session.input_transcript.delta") == (
        "What is the weather like in Paris today?"
    )
    assert said(talk, "session.output_transcript.delta").endswith(
        "Here is what the weather service says: 14 degrees and sunny"
    )
    (ack,) = talk.of("session.commentary.appended")  # the sideband's append, placed
    assert ack in watch.events
    assert talk.of("session.closed")[0]["client_event_id"] == "side_close"
    # the reflected input is what the primary sent; the output is the primary's, with times
    assert audio_of(watch, "session.input_audio.append", "audio") == bytes(talk.sent_pcm)
    played = audio_of(talk, "session.output_audio.delta", "delta")
    assert audio_of(watch, "session.output_audio.delta", "delta") == played
    spans = [(e["start_ms"], e["end_ms"]) for e in watch.of("session.output_audio.delta")]
    assert spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][1] == len(played) // 48  # 24 kHz PCM16: 48 bytes per ms
    assert "start_ms" not in talk.of("session.output_audio.delta")[0]  # none on the primary


def test_a_lagging_sideband_loses_audio_and_never_holds_the_session_up() -> None:
    """A sideband whose queue nobody reads: the primary's 20 s of audio are all answered
    without waiting for it, and the sideband keeps what it was sent before it fell behind
    (its `session.started`, then audio from the timeline's start): the rest of its audio
    is dropped, as the service drops a slow observer's frames."""

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hub = _LiveHub(core(), {})
        primary = hub.join(PRIMARY)
        await hub.deliver(hub.session.receive(orjson.dumps(START)))
        side = hub.join("side")
        heard: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                async for text in primary:
                    heard.append(orjson.loads(text))

            nursery.start_soon(read)
            for piece in chunks(silence(20_000)):
                with trio.fail_after(10):  # a guard: delivering must not wait on the sideband
                    await hub.deliver(hub.session.receive(orjson.dumps(append_audio(piece))))
            hub.outboxes[PRIMARY].close()
        kept = []
        while True:
            try:
                kept.append(orjson.loads(side.receive_nowait()))
            except trio.WouldBlock:
                return heard, kept

    heard, kept = trio.run(main)
    assert [e["type"] for e in heard].count("session.output_audio.delta") == 200
    assert kept[0]["type"] == "session.started"
    spans = [(e["start_ms"], e["end_ms"]) for e in kept if "start_ms" in e]
    assert spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert len(kept) == 64  # the queue's size: everything later was dropped


START = {"type": "session.start", "session": {"model": "gpt-live-1"}}


def append_audio(pcm: bytes) -> dict[str, Any]:
    return {"type": "session.input_audio.append", "audio": base64.b64encode(pcm).decode()}


def attached(fmt: dict[str, Any] | None = None) -> LiveSession:
    sim = core()
    session: dict[str, Any] = {"model": "gpt-live-1"}
    if fmt is not None:
        session["audio"] = {"format": fmt}
    send(sim, {"type": "session.start", "session": session})
    (started,) = sim.attach("side")["side"]
    assert started["type"] == "session.started"
    return sim


def test_a_sideband_gets_pcm24_whatever_the_format_and_may_not_start_or_stream() -> None:
    """A 16 kHz session reflects its input and output to the sideband at 24 kHz; the
    sideband's session.start, input audio and a primary's DTMF are refused, each error
    only to the connection that sent the command."""
    sim = attached({"type": "audio/pcm", "rate": 16000})
    chunk = base64.b64encode(np.full(1600, 500, dtype="<i2").tobytes()).decode()  # 100 ms
    outbox = sim.receive(orjson.dumps({"type": "session.input_audio.append", "audio": chunk}))
    (primary,) = outbox[PRIMARY]
    reflected, output = outbox["side"]
    assert len(base64.b64decode(primary["delta"])) == 3200
    assert reflected["type"] == "session.input_audio.append"
    assert len(base64.b64decode(reflected["audio"])) == 4800  # 100 ms at 24 kHz
    assert (output["start_ms"], output["end_ms"]) == (0, 100)
    assert len(base64.b64decode(output["delta"])) == 4800
    for event in outbox["side"]:
        CONNECT_SERVER_EVENT.validate_python(event)
    for refused in (
        {"type": "session.start", "session": {"model": "gpt-live-1"}},
        {"type": "session.input_audio.append", "audio": chunk},
    ):
        outbox = sim.receive(orjson.dumps({**refused, "event_id": "x"}), via="side")
        assert list(outbox) == ["side"]
        (error,) = outbox["side"]
        assert error["error"]["client_event_id"] == "x"
    dtmf = {"type": "transport.dtmf.send", "event": "1"}
    assert list(sim.receive(orjson.dumps(dtmf))) == [PRIMARY]
    assert "SIP" in sim.receive(orjson.dumps(dtmf), via="side")["side"][0]["error"]["message"]


def test_a_lost_primary_ends_the_session_for_the_sideband() -> None:
    """The primary's socket drops without session.close: the sideband gets its pending
    append's context_injection_incomplete, then session.closed with connection_lost."""
    sim = attached()
    thinking = {"type": "session.thinking.append", "content": "hm", "delegation_id": None}
    assert sim.receive(orjson.dumps({**thinking, "event_id": "t"}), via="side") == {}
    outbox = sim.lose_primary()
    error, closed = outbox["side"]
    assert (error["error"]["code"], error["client_event_id"]) == (
        "context_injection_incomplete",
        "t",
    )
    assert closed["reason"] == "connection_lost"
    assert sim.closed
    with pytest.raises(ValueError, match="still open"):
        sim.attach("late")


def test_attach_needs_an_open_session_of_this_server() -> None:
    """Attaching to an id this simulator never started is a 404 naming it; a bad
    graceful_close is a 400."""

    async def attach(url: str, session_id: str, **extra: Any) -> str:
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
        try:
            async with client.live.sideband.connect(session_id=session_id, **extra):
                return "connected"
        except Exception as exc:
            return str(exc)

    with run_in_thread(functools.partial(serve, record_to=None), timeout=30) as sim:
        unknown = asyncio.run(attach(sim.url, "live_u1_x"))
        bad = asyncio.run(attach(sim.url, "live_u1_x", extra_query={"graceful_close": "maybe"}))
    assert "404" in unknown
    assert "400" in bad
