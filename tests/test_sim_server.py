"""``serve_simulator`` over real WebSockets on 127.0.0.1, with a trio-websocket client.

Rules (after trio-websocket's own suite): servers bind 127.0.0.1 port 0; every test has a
``trio.fail_after`` cap; tests about timing use ``autojump_clock``, so realtime pace runs
on virtual time: the clock jumps to the server's next deadline whenever both sides wait,
and the assertions are exact. The client always starts the close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from rtrec.simulator import load_scenario, serve_simulator
from rtrec.simulator.server import MAX_MESSAGE_SIZE

from .simkit import SCENARIOS, append, check_server_event, chunks, speech, types, user_text
from .wsclient import open_client

KEY = [(b"authorization", b"Bearer sk-test")]


@asynccontextmanager
async def connect(
    url: str,
    *,
    query: str = "?model=gpt-realtime",
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[WebSocketConnection]:
    async with open_client(
        f"{url}/realtime{query}",
        extra_headers=KEY if headers is None else headers,
        subprotocols=subprotocols,
        message_queue_size=64,
        max_message_size=MAX_MESSAGE_SIZE,
    ) as ws:
        yield ws


class Reader:
    """Receives server events, checks each, remembers them with their arrival time."""

    def __init__(self, ws: WebSocketConnection, protocol: str = "ga") -> None:
        self.ws, self.protocol = ws, protocol
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []

    async def next(self) -> dict[str, Any]:
        frame = await self.ws.get_message()
        assert isinstance(frame, str), "every event is a text frame"
        event = orjson.loads(frame)
        check_server_event(self.protocol, event)
        self.events.append(event)
        self.times.append(trio.current_time())
        return event

    async def until(self, kind: str) -> dict[str, Any]:
        while (event := await self.next())["type"] != kind:
            pass
        return event

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_message(orjson.dumps(event).decode())


async def start(nursery: trio.Nursery, **options: Any) -> str:
    url: str = await nursery.start(partial(serve_simulator, **options))
    return url


# --------------------------------------------------------------------------- handshake


async def test_serve_reports_a_ws_base_url(nursery: trio.Nursery) -> None:
    """task_status.started gives ws://127.0.0.1:PORT/v1 with the bound port."""
    url = await start(nursery)
    assert url.startswith("ws://127.0.0.1:")
    assert url.endswith("/v1")
    assert int(url.rsplit(":", 1)[1].removesuffix("/v1")) > 0


async def raw_upgrade(
    url: str, target: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """Send a WebSocket upgrade request by hand; return the HTTP status and body.

    (trio-websocket's client leaks its socket when a handshake is rejected, so rejections
    are tested one level down, which also shows the real HTTP response.)
    """
    host, port = url.removeprefix("ws://").removesuffix("/v1").rsplit(":", 1)
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{k.decode()}: {v.decode()}" for k, v in headers),
    ]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some()
        head, _, body = data.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        length = int(fields.get(b"Content-length", fields.get(b"content-length", b"0")))
        while len(body) < length:
            body += await stream.receive_some()
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    ("target", "headers", "status", "message"),
    [
        ("/v1/realtime?model=gpt-realtime", [], 401, "Missing bearer or basic authentication"),
        (
            "/v1/realtime?model=gpt-realtime",
            [(b"authorization", b"Basic c2s=")],
            401,
            "Missing bearer",
        ),
        ("/v1/realtime", KEY, 400, "Missing required parameter: 'model'."),
        ("/v1/chat?model=gpt-realtime", KEY, 404, "Not found: /v1/chat."),
        ("/v1/realtime?intent=chat", KEY, 400, "Invalid value: 'chat'."),
    ],
)
async def test_handshake_rejections(
    nursery: trio.Nursery,
    target: str,
    headers: list[tuple[bytes, bytes]],
    status: int,
    message: str,
) -> None:
    """No key -> 401, no model -> 400, another path -> 404, an unknown intent -> 400, each
    with an OpenAI-style JSON error body."""
    url = await start(nursery)
    with trio.fail_after(5):
        got, body = await raw_upgrade(url, target, headers)
    assert got == status
    error = orjson.loads(body)["error"]
    assert error["message"].startswith(message)
    assert error["type"] == "invalid_request_error"


async def test_browser_subprotocols_select_realtime_and_beta(nursery: trio.Nursery) -> None:
    """A browser passes the key and the beta flag as subprotocols; the server answers with
    the realtime subprotocol and speaks beta."""
    url = await start(nursery)
    offered = ["realtime", "openai-insecure-api-key.sk-browser", "openai-beta.realtime-v1"]
    with trio.fail_after(5):
        async with connect(url, headers=[], subprotocols=offered) as ws:
            assert ws.subprotocol == "realtime"
            created = await Reader(ws, "beta").next()
    assert "type" not in created["session"]
    assert "modalities" in created["session"]


async def test_openai_beta_header_selects_beta(nursery: trio.Nursery) -> None:
    """OpenAI-Beta: realtime=v1 gives a beta session; its absence GA."""
    url = await start(nursery)
    with trio.fail_after(5):
        async with connect(url, headers=[*KEY, (b"openai-beta", b"realtime=v1")]) as ws:
            beta = await Reader(ws, "beta").next()
        async with connect(url) as ws:
            ga = await Reader(ws).next()
    assert ga["session"]["type"] == "realtime"
    assert "type" not in beta["session"]
    assert ga["session"]["model"] == beta["session"]["model"] == "gpt-realtime"


async def test_intent_transcription_needs_no_model(nursery: trio.Nursery) -> None:
    """``?intent=transcription`` without a model opens a transcription session, GA or beta."""
    url = await start(nursery)
    with trio.fail_after(5):
        async with connect(url, query="?intent=transcription") as ws:
            ga = await Reader(ws).next()
        beta_headers = [*KEY, (b"openai-beta", b"realtime=v1")]
        async with connect(url, query="?intent=transcription", headers=beta_headers) as ws:
            beta = await Reader(ws, "beta").next()
    assert ga["session"]["type"] == "transcription"
    assert beta["session"]["object"] == "realtime.transcription_session"
    assert "model" not in ga["session"]


# --------------------------------------------------------------------------- fast pace


async def test_fast_text_turn_over_the_socket(nursery: trio.Nursery) -> None:
    """A text turn at fast pace: item events, then the whole response, all text frames."""
    url = await start(nursery, pace="fast")
    with trio.fail_after(10):
        async with connect(url) as ws:
            reader = Reader(ws)
            await reader.until("conversation.created")
            await reader.send(user_text("Hello"))
            await reader.send({"type": "response.create"})
            done = await reader.until("response.done")
    assert done["response"]["status"] == "completed"
    assert types(reader.events)[2:4] == ["conversation.item.added", "conversation.item.done"]


async def test_oversized_append_is_an_error_and_the_session_goes_on(nursery: trio.Nursery) -> None:
    """A 15 MiB+ append (20 MiB of base64) crosses the socket, gets the error, and the
    session still answers."""
    url = await start(nursery, pace="fast")
    big = {
        "type": "input_audio_buffer.append",
        "event_id": "big",
        "audio": "A" * (21 * 1024 * 1024),
    }
    with trio.fail_after(20):
        async with connect(url) as ws:
            reader = Reader(ws)
            await reader.until("conversation.created")
            await reader.send(big)
            error = await reader.until("error")
            await reader.send(user_text("Hello"))
            await reader.send({"type": "response.create"})
            await reader.until("response.done")
    assert error["error"]["event_id"] == "big"
    assert "15 MiB" in error["error"]["message"]


async def test_a_message_over_the_size_limit_closes_with_1009(nursery: trio.Nursery) -> None:
    """A frame beyond MAX_MESSAGE_SIZE is refused by the WebSocket layer: close code 1009.

    (Driven with wsproto by hand: trio-websocket's client does not close its socket after
    a close it did not start, which the ResourceWarning check would flag.)
    """
    url = await start(nursery, pace="fast")
    host, port = url.removeprefix("ws://").removesuffix("/v1").rsplit(":", 1)
    client = WSConnection(ConnectionType.CLIENT)
    stream = await trio.open_tcp_stream(host, int(port))
    code = None
    with trio.fail_after(20):
        async with stream:
            request = Request(host=host, target="/v1/realtime?model=m", extra_headers=KEY)
            await stream.send_all(client.send(request))
            while code is None:
                client.receive_data(await stream.receive_some() or None)
                for event in client.events():
                    if isinstance(event, AcceptConnection):
                        await stream.send_all(
                            client.send(TextMessage("x" * (MAX_MESSAGE_SIZE + 1)))
                        )
                    elif isinstance(event, CloseConnection):
                        code = event.code
                        await stream.send_all(client.send(event.response()))
    assert code == 1009


async def test_sessions_are_independent_and_start_from_the_seed(nursery: trio.Nursery) -> None:
    """Two connections at once get their own sessions, each starting from the seed."""
    url = await start(nursery, pace="fast", seed=5)
    with trio.fail_after(10):
        async with connect(url) as one, connect(url) as two:
            first_one = await Reader(one).next()
            first_two = await Reader(two).next()
            reader = Reader(one)
            await reader.send(user_text("only on one"))
            await reader.until("conversation.item.done")
    assert first_one == first_two


async def test_client_leaving_mid_response_does_not_hurt_the_server(nursery: trio.Nursery) -> None:
    """A client that disconnects while a response streams leaves the server serving."""
    url = await start(nursery)
    with trio.fail_after(10):
        async with connect(url) as ws:
            reader = Reader(ws)
            await reader.send(user_text("Hello"))
            await reader.send({"type": "response.create"})
            await reader.until("response.created")
        async with connect(url) as ws:
            assert (await Reader(ws).next())["type"] == "session.created"


# --------------------------------------------------------------------------- realtime pace


async def test_realtime_pace_streams_on_the_timeline(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """At realtime pace the item comes 0.1 s after response.created, audio 0.2 s later, and
    audio is streamed twice as fast as it plays (virtual time, exact)."""
    url = await start(nursery)
    with trio.fail_after(60):
        async with connect(url) as ws:
            reader = Reader(ws)
            await reader.until("conversation.created")
            await reader.send(user_text("Hello"))
            await reader.send({"type": "response.create"})
            await reader.until("response.done")
    at = {
        e["type"]: t for e, t in zip(reversed(reader.events), reversed(reader.times), strict=True)
    }
    t0 = at["response.created"]
    assert at["response.output_item.added"] - t0 == pytest.approx(0.1)
    assert at["response.output_audio.delta"] - t0 == pytest.approx(0.3)
    deltas = [
        t
        for e, t in zip(reader.events, reader.times, strict=True)
        if e["type"] == "response.output_audio.delta"
    ]
    assert deltas[1] - deltas[0] == pytest.approx(0.05)  # 100 ms chunks at 2x
    assert reader.times[-1] - deltas[0] == pytest.approx(len(deltas) * 0.05, abs=0.06)


async def barge_in_run(url: str) -> list[dict[str, Any]]:
    """Speak, let the reply stream for a while, then speak over it."""
    async with connect(url) as ws:
        reader = Reader(ws)
        await reader.until("conversation.created")
        await reader.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}
                        }
                    },
                },
            }
        )
        await reader.until("session.updated")
        for piece in chunks(speech("joke")):
            await reader.send(append(piece))
        await reader.until("response.created")
        for _ in range(8):
            await reader.until("response.output_audio.delta")
        for piece in chunks(speech("stop")):
            await reader.send(append(piece))
        await reader.until("response.done")
        await reader.until("response.done")
    return reader.events


async def test_barge_in_over_the_socket_is_deterministic(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """Speech during a streaming reply cancels it (turn_detected); on virtual time the same
    script gives the same events twice."""
    url = await start(nursery, scenario=load_scenario(SCENARIOS / "demo.toml"))
    with trio.fail_after(120):
        one = await barge_in_run(url)
        two = await barge_in_run(url)
    done = [e["response"] for e in one if e["type"] == "response.done"]
    assert done[0]["status"] == "cancelled"
    assert done[0]["status_details"]["reason"] == "turn_detected"
    assert done[1]["status"] == "completed"
    assert one == two
