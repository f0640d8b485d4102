"""The recording proxy is transparent: both peers get exactly what the other sent, every
close is mirrored, rejected handshakes pass through, and nothing passes unrecorded.

Rules (after trio-websocket's own test suite): real sockets on 127.0.0.1 port 0, every test
capped by trio.fail_after, and no test sleeps to wait for something to happen.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
)

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.schemas.storage import (
    AudioChunk,
    Direction,
    FrameKind,
    FrameRecord,
    LogMessage,
    SessionClose,
    SessionRecord,
    SessionStatus,
)
from rtrec.store.sink import LogSink, MemorySink, TappedSink

# rtrec's own client for refused handshakes: trio-websocket's leaks its socket there
from rtrec.transport.ws import HandshakeRejected, connect
from tests.faults.kit import BIG, upstream_server

from .wsclient import open_client


def client(url: str, **kwargs: Any) -> AbstractAsyncContextManager[WebSocketConnection]:
    """open_websocket_url, releasing the socket afterwards (tests/wsclient.py)."""
    return open_client(url, **kwargs)


@asynccontextmanager
async def recording_proxy(
    upstream: str, sink: LogSink, **options: object
) -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder(sink, ProxyOptions(upstream=upstream, **options))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        url = await nursery.start(recorder.serve, "127.0.0.1", 0)
        yield url, recorder
        await recorder.close_sessions()  # a clean stop, as rtrec record does on Ctrl-C
        nursery.cancel_scope.cancel()


def close_of(exc: ConnectionClosed) -> tuple[int, str | None]:
    """(code, reason) of a ConnectionClosed."""
    return (exc.reason.code, exc.reason.reason) if exc.reason else (-1, None)


def frames(sink: MemorySink) -> list[FrameRecord]:
    return [m for m in sink.messages if isinstance(m, FrameRecord) and m.kind is not FrameKind.MARK]


def closes(sink: MemorySink) -> list[SessionClose]:
    return [m for m in sink.messages if isinstance(m, SessionClose)]


SCRIPT_FROM_CLIENT: list[str | bytes] = [
    '{"type": "session.update", "session": {"type": "realtime", "instructions": "héllo ✓ 🎧"}}',
    "not json at all {",
    b"\x00\x01\x02binary\xff",
    '{"type":"input_audio_buffer.append","audio":"' + "A" * (2 * 2**20) + '"}',
    '{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"'
    + "x" * (BIG - 120)
    + '"}]}}',
    "",
    "[1,2,3]",
]
SCRIPT_FROM_SERVER: list[str | bytes] = [
    '{"type":"session.created","event_id":"event_1","session":{"type":"realtime"}}',
    '{"type":"response.output_text.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"日本語","obfuscation":"zz"}',
    b"\xff\xfe",
    "{}",
    '{"type":"x"}' + " " * (2 * 2**20),
]


async def test_transparent_relay_of_a_mixed_script() -> None:
    """Valid events, 2 MiB and 16 MiB frames, invalid JSON, binary, unicode and pings
    arrive unchanged and in order on both sides, and every message is logged."""
    server_got: list[str | bytes] = []
    server_headers: dict[str, str] = {}
    server_path: list[str] = []

    async def handler(request: WebSocketRequest) -> None:
        server_headers.update({k.decode(): v.decode() for k, v in request.headers})
        server_path.append(request.path)
        ws = await request.accept(subprotocol="realtime")

        async def send_all() -> None:
            for message in SCRIPT_FROM_SERVER:
                await ws.send_message(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)  # like a real peer, it reads while it writes
            for _ in SCRIPT_FROM_CLIENT:
                server_got.append(await ws.get_message())
        await ws.send_message("bye")
        with pytest.raises(ConnectionClosed):
            await ws.get_message()  # until the client's close arrives

    sink = MemorySink()
    client_got: list[str | bytes] = []
    with trio.fail_after(30):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
            client(
                f"{url}/realtime?model=gpt-realtime&call_id=abc",
                subprotocols=["realtime", "openai-beta.realtime-v1"],
                extra_headers=[
                    (b"Authorization", b"Bearer sk-test-123456789"),
                    (b"OpenAI-Beta", b"realtime=v1"),
                ],
                max_message_size=2 * BIG,
            ) as ws,
        ):
            assert ws.subprotocol == "realtime"

            async def send_all() -> None:
                for message in SCRIPT_FROM_CLIENT:
                    await ws.send_message(message)
                await ws.ping(b"hop")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_all)
                for _ in range(len(SCRIPT_FROM_SERVER) + 1):
                    client_got.append(await ws.get_message())

    assert server_got == SCRIPT_FROM_CLIENT
    assert client_got == [*SCRIPT_FROM_SERVER, "bye"]
    assert server_path == ["/v1/realtime?model=gpt-realtime&call_id=abc"]
    assert server_headers["authorization"] == "Bearer sk-test-123456789"
    assert server_headers["openai-beta"] == "realtime=v1"
    logged = frames(sink)
    assert [f.direction for f in logged].count(Direction.CLIENT) == len(SCRIPT_FROM_CLIENT)
    assert [f.direction for f in logged].count(Direction.SERVER) == len(SCRIPT_FROM_SERVER) + 1
    # one total order per session, and the sink receives it in that order, each audio
    # chunk right after its frame (the log writer checks both)
    seqs = [f.seq for f in sink.messages if isinstance(f, FrameRecord)]
    assert seqs == list(range(len(seqs)))
    for i, message in enumerate(sink.messages):
        if isinstance(message, AudioChunk):
            previous = sink.messages[i - 1]
            assert isinstance(previous, FrameRecord)
            assert previous.audio is not None
            assert len(message.pcm) == 2 * previous.audio.samples
    session = next(m for m in sink.messages if isinstance(m, SessionRecord))
    assert session.protocol == "beta"
    assert session.subprotocol == "realtime"
    assert session.model == "gpt-realtime"
    assert "sk-test-123456789" not in session.request_headers
    assert closes(sink)[0].status is SessionStatus.CLOSED
    assert closes(sink)[0].closed_by is Direction.CLIENT


@pytest.mark.parametrize(
    ("code", "reason"), [(4000, "custom reason"), (1000, "done"), (3000, "fatal")]
)
async def test_server_close_is_mirrored_to_the_client(code: int, reason: str) -> None:
    """The client sees the upstream's close code and reason; the log says the server closed."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message('{"type":"error","event_id":"e","error":{"type":"x","message":"m"}}')
        await ws.aclose(code, reason)

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
            client(f"{url}/realtime") as ws,
        ):
            assert (await ws.get_message()).startswith('{"type":"error"')
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
    assert info.value.reason is not None
    assert (info.value.reason.code, info.value.reason.reason) == (code, reason)
    close = closes(sink)[0]
    assert (close.close_code, close.close_reason, close.closed_by) == (
        code,
        reason,
        Direction.SERVER,
    )


async def test_client_close_is_mirrored_upstream() -> None:
    """The upstream sees the client's close code and reason."""
    seen: list[tuple[int, str | None]] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.get_message()
        except ConnectionClosed as exc:
            seen.append(close_of(exc))

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
            client(f"{url}/realtime") as ws,
        ):
            await ws.aclose(4321, "client leaves")
        assert seen == [(4321, "client leaves")]
    assert closes(sink)[0].closed_by is Direction.CLIENT


async def test_client_vanishing_closes_upstream_with_1011() -> None:
    """A client that drops its TCP connection without a close frame: upstream gets 1011."""
    seen: list[int] = []
    got_first, upstream_closed = trio.Event(), trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.get_message()
        got_first.set()
        try:
            await ws.get_message()
        except ConnectionClosed as exc:
            seen.append(close_of(exc)[0])
            upstream_closed.set()

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
        ):
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            from trio_websocket import wrap_client_stream

            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(nursery, stream, "127.0.0.1", "/v1/realtime")
                await ws.send_message('{"type":"response.create"}')
                await got_first.wait()
                await stream.aclose()  # no close frame: the client just vanishes
                nursery.cancel_scope.cancel()
            await upstream_closed.wait()
    assert seen == [1011]
    assert closes(sink)[0].close_code == 1006
    assert closes(sink)[0].closed_by is Direction.CLIENT


async def test_rejected_handshake_passes_status_and_body() -> None:
    """An upstream 401 reaches the client with the same status and body, and is logged."""

    async def handler(request: WebSocketRequest) -> None:
        await request.reject(401, body=b'{"error":{"message":"Incorrect API key provided"}}')

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
        ):
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"{url}/realtime?model=m", max_size=None)
    assert info.value.status == 401
    assert info.value.body == b'{"error":{"message":"Incorrect API key provided"}}'
    assert closes(sink)[0].status is SessionStatus.REJECTED
    mark = next(
        m for m in sink.messages if isinstance(m, FrameRecord) and m.type == "rtrec.rejected"
    )
    assert orjson.loads(mark.payload or "")["status"] == 401


async def test_unreachable_upstream_is_a_502_naming_it() -> None:
    """When the upstream cannot be reached the client gets 502 with a reason, and it is logged."""
    sink = MemorySink()
    with trio.fail_after(10):
        # a port nobody listens on: bind one, then close it
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()
        async with recording_proxy(f"ws://127.0.0.1:{port}/v1", sink) as (url, _):
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"{url}/realtime", max_size=None)
    assert info.value.status == 502
    assert b"unreachable" in info.value.body
    assert closes(sink)[0].status is SessionStatus.FAILED


async def test_oversized_message_closes_both_sides_with_1009() -> None:
    """A message above the limit closes the client with 1009 and the upstream too."""
    upstream_saw: list[int] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.get_message()
        except ConnectionClosed as exc:
            upstream_saw.append(close_of(exc)[0])

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink, max_message_size=1000) as (url, _),
            client(f"{url}/realtime") as ws,
        ):
            await ws.send_message("x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
    assert info.value.reason is not None
    assert info.value.reason.code == 1009
    assert upstream_saw == [1009]
    assert closes(sink)[0].close_code == 1009


async def test_failing_sink_closes_sessions_with_a_reason() -> None:
    """When the log fails, sessions are closed with 1011 and the reason; none go on
    unrecorded, and new sessions are refused."""
    server_saw: list[tuple[int, str | None]] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            server_saw.append(close_of(exc))

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
        ):
            async with client(f"{url}/realtime") as ws:
                await ws.send_message('{"type":"response.create"}')
                sink.fail("disk full")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
            with pytest.raises(HandshakeRejected) as rejected:
                await connect(f"{url}/realtime", max_size=None)
    assert info.value.reason is not None
    assert info.value.reason.code == 1011
    # the cause first: a close reason is cut at 123 bytes
    assert info.value.reason.reason == "disk full - rtrec stopped recording"
    assert server_saw[0][0] == 1011
    assert rejected.value.status == 503


async def test_close_sessions_closes_both_sides_cleanly() -> None:
    """Shutting the recorder down sends 1001 both ways and logs the close."""
    server_saw: list[int] = []
    relayed = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.get_message()
            relayed.set()
            await ws.get_message()
        except ConnectionClosed as exc:
            server_saw.append(close_of(exc)[0])

    sink = MemorySink()
    with trio.fail_after(10):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, recorder),
            client(f"{url}/realtime") as ws,
        ):
            await ws.send_message('{"type":"response.create"}')
            await relayed.wait()
            await recorder.close_sessions()
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
    assert info.value.reason is not None
    assert info.value.reason.code == 1001
    assert server_saw == [1001]
    assert closes(sink)[0].closed_by is Direction.RECORDER


async def test_concurrent_sessions_are_separate() -> None:
    """Many sessions at once: each has its own id, its own seq from 0, its own frames."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                return
            await ws.send_message(message)

    sink = MemorySink()

    async def talk(url: str, n: int) -> None:
        async with client(f"{url}/realtime") as ws:
            for i in range(5):
                await ws.send_message(orjson.dumps({"type": "x", "client": n, "i": i}).decode())
                assert orjson.loads(await ws.get_message()) == {"type": "x", "client": n, "i": i}

    with trio.fail_after(20):
        async with (
            upstream_server(handler) as upstream,
            recording_proxy(upstream, sink) as (url, _),
            trio.open_nursery() as nursery,
        ):
            for n in range(20):
                nursery.start_soon(talk, url, n)
    by_session: dict[str, list[FrameRecord]] = {}
    for f in frames(sink):
        by_session.setdefault(f.session_id, []).append(f)
    assert len(by_session) == 20
    for records in by_session.values():
        assert len(records) == 10
        clients = {orjson.loads(r.payload or "")["client"] for r in records}
        assert len(clients) == 1


class RefusingSink(MemorySink):
    """A MemorySink whose offer() refuses every other call, as a full log writer does."""

    def __init__(self) -> None:
        super().__init__()
        self.offers = 0
        self.refused = 0

    def offer(self, *messages: LogMessage) -> bool:
        self.offers += 1
        if self.offers % 2 == 0:
            self.refused += 1
            return False
        return super().offer(*messages)


class SendOnlySink:
    """A LogSink without offer() (a wrapper around the writer, say): the proxy's slow path."""

    def __init__(self) -> None:
        self.inner = MemorySink()

    @property
    def failed(self) -> trio.Event:
        return self.inner.failed

    @property
    def failure(self) -> str | None:
        return self.inner.failure

    async def send(self, message: LogMessage) -> None:
        await self.inner.send(message)


async def relay_audio_both_ways(sink: LogSink, n: int) -> None:
    """``n`` PCM16 audio frames each way through the proxy, both sides sending at once."""
    pcm = base64.b64encode(bytes(range(256)) * 4).decode()  # 512 samples of PCM16

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()

        async def send_all() -> None:
            for i in range(n):
                await ws.send_message(
                    f'{{"type":"response.output_audio.delta","event_id":"e{i}","response_id":"r",'
                    f'"item_id":"i","output_index":0,"content_index":0,"delta":"{pcm}"}}'
                )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            for _ in range(n):
                await ws.get_message()
        await ws.aclose()

    with trio.fail_after(30):
        async with (
            upstream_server(handler) as up,
            recording_proxy(up, sink) as (url, _),
            client(url + "/realtime?model=m") as ws,
        ):
            for i in range(n):
                await ws.send_message(
                    f'{{"type":"input_audio_buffer.append","event_id":"c{i}","audio":"{pcm}"}}'
                )
            for _ in range(n):
                await ws.get_message()
            with pytest.raises(ConnectionClosed):
                await ws.get_message()


def assert_one_order(messages: list[LogMessage], n: int) -> None:
    """Every frame once, seq increasing, each AudioChunk right after its frame."""
    logged = [m for m in messages if not isinstance(m, SessionRecord | SessionClose)]
    seqs = [m.seq for m in logged if isinstance(m, FrameRecord)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert sum(isinstance(m, FrameRecord) and m.kind is not FrameKind.MARK for m in logged) == 2 * n
    for before, message in itertools.pairwise(logged):
        if isinstance(message, AudioChunk):
            assert isinstance(before, FrameRecord)
            assert before.audio is not None
            assert len(message.pcm) == 2 * before.audio.samples
    assert sum(isinstance(m, AudioChunk) for m in logged) == 2 * n


async def test_a_full_sink_slows_the_relay_but_keeps_one_order() -> None:
    """Frames the sink refuses to take at once queue behind each other: none is lost, seq
    order holds across both directions, and each AudioChunk follows its frame."""
    sink = RefusingSink()
    await relay_audio_both_ways(sink, 40)
    assert sink.refused > 0
    assert_one_order(sink.messages, 40)


async def test_a_sink_without_offer_gets_everything_through_send() -> None:
    """A plain LogSink (no offer) still gets every frame, in one order per session."""
    sink = SendOnlySink()
    await relay_audio_both_ways(sink, 20)
    assert_one_order(sink.inner.messages, 20)


@pytest.mark.parametrize("inner", [RefusingSink, SendOnlySink])
async def test_a_tapped_sink_shows_every_message_the_inner_sink_took(inner) -> None:
    """TappedSink taps exactly what its inner sink received, in that order, whether the
    relay offered it (taken or refused) or sent it."""
    sink = inner()
    tapped: list[LogMessage] = []
    await relay_audio_both_ways(TappedSink(sink, tapped.append), 20)
    received = sink.messages if isinstance(sink, MemorySink) else sink.inner.messages
    assert tapped == received
    assert_one_order(tapped, 20)
    if isinstance(sink, RefusingSink):
        assert sink.offers > sink.refused > 0  # the fast path was used, and refused at times
