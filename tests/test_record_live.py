"""GPT-Live through the recorder: the official SDK's `client.live` (primary, fork and
sideband connections) against a scripted Live server (tests/livepeer.py), with `rtrec
record`'s proxy between them. The session is logged as protocol `live`; its audio is cut
into FLAC per stream in the format `session.start` chose (PCM 16/24 kHz, G.711), the
fixture at its own 24 kHz; and the log plus the FLACs rebuild every frame byte for byte."""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import trio
from openai import AsyncOpenAI

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.dialects import LIVE, LIVE_FORK, LIVE_SIDEBAND, REALTIME_BETA, dialect_of
from rtrec.schemas.storage import Direction, SessionStatus
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_audio,
    read_frames,
    read_sessions,
    read_streams,
    rebuild_frame,
)
from rtrec.store.writer import open_log_writer

from .livepeer import Wire, serve_live_peer, tone

KEY = "sk-test-not-a-real-key"


async def serve_recording(
    db: Path, wire: list[Wire], *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
        peer = await nursery.start(serve_live_peer, wire)
        recorder = Recorder(writer, ProxyOptions(upstream=peer))
        url = await nursery.start(recorder.serve, "127.0.0.1", 0)
        try:
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await recorder.close_sessions()


async def _until(conn: Any, kind: str) -> dict[str, Any]:
    while True:
        event = dict(orjson.loads(await conn.recv_bytes()))
        if event["type"] == kind:
            return event


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def run_sdk(url: str, script: Callable[[AsyncOpenAI], Awaitable[None]]) -> None:
    async def main() -> None:
        client = AsyncOpenAI(api_key=KEY, websocket_base_url=url)
        await asyncio.wait_for(script(client), timeout=30)

    asyncio.run(main())


def recorded(db: Path) -> tuple[Any, list[Any], list[str | bytes], dict[tuple[str, int], Any]]:
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        frames = list(read_frames(log, session.session_id))
        audio = LogAudio.of_session(log, session.session_id)
        wire = [rebuild_frame(f, audio) for f in frames]
        streams = {(s.stream, s.sample_rate): s for s in read_streams(log, session.session_id)}
    return session, frames, wire, streams


def assert_byte_exact(frames: list[Any], rebuilt: list[str | bytes], wire: list[Wire]) -> None:
    """The log holds, byte for byte and in order, each direction's messages as the peer saw
    them (the two directions interleave as the proxy saw them, which the peer cannot see)."""
    for direction in (Direction.CLIENT, Direction.SERVER):
        logged = [w for f, w in zip(frames, rebuilt, strict=True) if f.direction is direction]
        assert logged == [text for side, text in wire if side == direction.value]


FORMATS = {
    "pcm16k": ({"type": "audio/pcm", "rate": 16000}, 16000, 2),
    "pcm24k": ({"type": "audio/pcm", "rate": 24000}, 24000, 2),
    "pcmu": ({"type": "audio/pcmu", "rate": 8000}, 8000, 1),
}


@pytest.mark.parametrize("name", FORMATS)
def test_live_session_is_recorded_with_its_audio_in_flac(name: str, tmp_path: Path) -> None:
    fmt, rate, width = FORMATS[name]
    mic = tone(rate, period=30)  # one second of input
    wire_mic = mic.tobytes() if width == 2 else _g711(mic)
    fixture = tone(4800, period=50)  # 200 ms at the fixture's fixed 24 kHz

    async def script(client: AsyncOpenAI) -> None:
        async with client.live.connect() as conn:
            await conn.session.start(session={"model": "gpt-live-1", "audio": {"format": fmt}})
            await _until(conn, "session.started")
            step = len(wire_mic) // 10
            for i in range(10):
                await conn.session.input_audio.append(
                    audio=b64(wire_mic[i * step : (i + 1) * step])
                )
            await conn.session.output_audio.fixture.play(audio=b64(fixture.tobytes()))
            await _until(conn, "session.output_audio.fixture.played")
            await conn.session.close()
            await _until(conn, "session.closed")

    db, wire = tmp_path / "log.duckdb", []
    with run_in_thread(functools.partial(serve_recording, db, wire), timeout=30) as server:
        run_sdk(server.url, script)

    session, frames, rebuilt, streams = recorded(db)
    assert session.protocol == "live"
    assert session.status == SessionStatus.CLOSED
    assert session.request_path == "/v1/live/sessions"
    assert KEY not in session.request_headers
    assert_byte_exact(frames, rebuilt, wire)
    # the audio left the payloads: each cut frame's base64 is in the FLACs, not the log
    audio_frames = [f for f in frames if f.audio is not None]
    assert len(audio_frames) == 10 + 5 + 1  # appends, 200 ms replies, the fixture
    assert all(f.audio.cut_at is not None for f in audio_frames)
    assert all(len(f.payload) < 200 for f in audio_frames)

    with open_log_reader(db) as log:
        heard, heard_rate = read_audio(log, session.session_id, "input", sample_rate=rate)
        said, said_rate = read_audio(log, session.session_id, "output")
        played, _ = read_audio(log, session.session_id, "input", sample_rate=24000)
    assert heard_rate == said_rate == rate
    expected_in = mic if width == 2 else _g711_roundtrip(mic)
    if rate == 24000:  # the fixture is what the client sent too, at the same rate: in order
        expected_in = np.concatenate([mic, fixture])
    assert np.array_equal(heard, expected_in)
    expected_out = tone(rate, period=40)  # the peer's reply tone, 5 x 200 ms
    assert np.array_equal(said, expected_out if width == 2 else _g711_roundtrip(expected_out))
    if rate != 24000:  # the fixture has a file of its own at 24 kHz
        assert np.array_equal(played, fixture)
        assert streams[("input", 24000)].frames == len(fixture)
    assert streams[("input", rate)].path.suffix == ".flac"


def test_sideband_audio_is_pcm24_and_reflected_input_is_the_input_stream(tmp_path: Path) -> None:
    async def script(client: AsyncOpenAI) -> None:
        async with client.live.sideband.connect(session_id="live_u1_abc") as conn:
            await _until(conn, "session.started")
            for _ in range(4):  # the reflected input and three timed output deltas
                await conn.recv_bytes()
            await conn.session.close()
            await _until(conn, "session.closed")

    db, wire = tmp_path / "log.duckdb", []
    with run_in_thread(functools.partial(serve_recording, db, wire), timeout=30) as server:
        run_sdk(server.url, script)

    session, frames, rebuilt, _ = recorded(db)
    assert session.protocol == "live"
    assert session.request_path == "/v1/live/sessions/live_u1_abc/attach"
    assert_byte_exact(frames, rebuilt, wire)
    with open_log_reader(db) as log:
        mic, mic_rate = read_audio(log, session.session_id, "input")
        out, out_rate = read_audio(log, session.session_id, "output")
    assert (mic_rate, out_rate) == (24000, 24000)
    assert np.array_equal(mic, tone(4800, period=24))
    assert np.array_equal(out, tone(7200))
    # the timing fields stay in the envelope
    delta = next(f for f in frames if f.type == "session.output_audio.delta")
    assert '"start_ms":0' in delta.payload


def test_fork_is_recorded_like_a_primary(tmp_path: Path) -> None:
    async def script(client: AsyncOpenAI) -> None:
        async with client.live.forks.connect(session_id="live_u1_abc") as conn:
            await conn.session.start(session={})
            await _until(conn, "session.started")
            await conn.session.input_audio.append(audio=b64(tone(4800).tobytes()))
            await _until(conn, "session.output_audio.delta")
            await conn.session.close()
            await _until(conn, "session.closed")

    db, wire = tmp_path / "log.duckdb", []
    with run_in_thread(functools.partial(serve_recording, db, wire), timeout=30) as server:
        run_sdk(server.url, script)
    session, frames, rebuilt, streams = recorded(db)
    assert (session.protocol, session.request_path) == (
        "live",
        "/v1/live/sessions/live_u1_abc/fork",
    )
    assert_byte_exact(frames, rebuilt, wire)
    assert streams[("input", 24000)].frames == 4800
    assert streams[("output", 24000)].frames == 4800


@pytest.mark.parametrize(
    ("path", "headers", "protocols", "dialect"),
    [
        ("/v1/live/sessions", [], [], LIVE),
        ("/openai/v1/live/sessions?api-version=v1", [], [], LIVE),
        ("/v1/live/sessions/sess_abc%2Fx/attach?graceful_close=true", [], [], LIVE_SIDEBAND),
        ("/v1/live/sessions/live_u1_x/fork", [], [], LIVE_FORK),
        ("/v1/realtime?model=m", [("OpenAI-Beta", "realtime=v1")], [], REALTIME_BETA),
        ("/v1/realtime?model=m", [], ["realtime", "openai-beta.realtime-v1"], REALTIME_BETA),
    ],
)
def test_the_handshake_chooses_the_dialect(
    path: str, headers: list[tuple[str, str]], protocols: list[str], dialect: Any
) -> None:
    assert dialect_of(path, headers, protocols) is dialect
    assert dialect_of("/v1/realtime?model=m", [], ["realtime"]).name == "ga"


def _g711(samples: np.ndarray) -> bytes:
    from rtrec.schemas import g711

    return g711.ulaw_encode(samples)


def _g711_roundtrip(samples: np.ndarray) -> np.ndarray:
    from rtrec.schemas import g711

    return np.asarray(g711.ulaw_decode(g711.ulaw_encode(samples)))
