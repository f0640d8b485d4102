"""`rtrec record` as a real process: a SIGKILL mid-session loses nothing committed, and no
byte it writes anywhere (log, audio, bundles, its own output) holds a secret.

The recorder runs as `python -m rtrec record` in a child process; the upstream and the
client are real WebSocket peers in the test; everything is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import orjson
import pybase64
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from rtrec.recorder.audio import read_flac
from rtrec.recorder.bundle import export_session
from rtrec.recorder.log import open_log
from rtrec.recorder.reader import open_log_reader, read_frames, read_sessions, read_streams
from rtrec.recorder.ws import connect

SECRET = "RTRECSECRET0123456789"
API_KEY = f"sk-proj-{SECRET}"


@asynccontextmanager
async def recorder_process(
    db: Path, upstream: str, log_file: Path, *options: str
) -> AsyncIterator[tuple[trio.Process, str]]:
    """`python -m rtrec record` on port 0; yields the process and its base URL (stdout line 1)."""
    with log_file.open("wb") as err:
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "rtrec",
                "record",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
                "--db",
                str(db),
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            assert process.stdout is not None
            data = b""
            with trio.fail_after(30):
                while b"\n" not in data:
                    chunk = await process.stdout.receive_some(4096)
                    assert chunk, f"rtrec record exited: {log_file.read_text()}"
                    data += chunk
            url = data.split(b"\n", 1)[0].decode()
            assert url.startswith("ws://127.0.0.1:"), url
            yield process, url
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def test_sigkill_mid_session_keeps_everything_committed(tmp_path: Path) -> None:
    """Kill -9 the recorder while a voice session streams: the log reopens, the session is
    marked interrupted, every frame that was committed is there and its audio is readable."""
    db = tmp_path / "log.duckdb"
    pcm = (np.sin(np.arange(24000 * 3) / 10) * 8000).astype("<i2").tobytes()
    with trio.fail_after(60):
        async with recorder_process(db, "sim", tmp_path / "recorder.log") as (process, url):
            ws = await connect(
                f"{url}/realtime?model=gpt-realtime",
                headers=[("Authorization", "Bearer sk-test")],
                max_size=None,
            )
            for start in range(0, len(pcm), 4800):
                audio = pybase64.b64encode(pcm[start : start + 4800]).decode()
                await ws.send(
                    orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()
                )
            # wait until the recorder has committed the appends (readers query it live)
            committed = 0
            while committed < 30:
                await trio.sleep(0.1)
                with open_log_reader(db) as log:
                    committed = log.rows(
                        "SELECT count(*) AS n FROM events WHERE type = 'input_audio_buffer.append'"
                    )[0]["n"]
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            await ws.close(linger=0.5)
    assert process.returncode == -signal.SIGKILL
    with open_log_reader(db) as log:  # opening read-only does not repair...
        (session,) = read_sessions(log)
    con, _ = open_log(db)  # ...opening for writing does
    con.close()
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        assert session.status == "interrupted"
        frames = [
            f for f in read_frames(log, session.session_id) if f.type == "input_audio_buffer.append"
        ]
        (stream,) = [s for s in read_streams(log, session.session_id) if s.stream == "input"]
    assert len(frames) >= committed
    samples, rate, complete = read_flac(stream.path)
    assert rate == 24000
    assert complete
    last = frames[-1].audio
    assert last is not None
    assert len(samples) >= last.offset + last.samples  # every committed frame's audio is there
    np.testing.assert_array_equal(samples.tobytes()[: len(pcm)], pcm[: samples.nbytes])


async def test_no_secret_reaches_disk(tmp_path: Path) -> None:
    """A session carrying a recognisable API key in the Authorization header, a browser key
    subprotocol, the query string, a client event and a server client_secret: no file rtrec
    writes (log, audio, bundle, its own output) contains any byte of the key."""

    async def upstream_handler(request: WebSocketRequest) -> None:
        ws = await request.accept(subprotocol="realtime")
        created = {
            "type": "session.created",
            "event_id": "event_1",
            "session": {
                "object": "realtime.session",
                "client_secret": {"value": f"ek_{SECRET}", "expires_at": 1},
            },
        }
        await ws.send_message(orjson.dumps(created).decode())
        await ws.get_message()  # the audio
        message = await ws.get_message()
        await ws.send_message(message)  # echo the client's event back
        with contextlib.suppress(ConnectionClosed):
            await ws.get_message()

    db = tmp_path / "log.duckdb"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, upstream_handler, "127.0.0.1", 0, None)
            upstream = f"ws://127.0.0.1:{server.port}/v1"
            async with recorder_process(db, upstream, tmp_path / "recorder.log") as (process, url):
                ws = await connect(
                    f"{url}/realtime?model=gpt-realtime&api_key={API_KEY}",
                    subprotocols=["realtime", f"openai-insecure-api-key.{API_KEY}"],
                    headers=[("Authorization", f"Bearer {API_KEY}"), ("X-Note", f"key {API_KEY}")],
                    max_size=None,
                )
                await ws.receive()
                audio = pybase64.b64encode(bytes(9600)).decode()
                await ws.send(
                    orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()
                )
                item = {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": f"my key is {API_KEY}"}],
                }
                await ws.send(
                    orjson.dumps({"type": "conversation.item.create", "item": item}).decode()
                )
                echoed = await ws.receive()
                assert API_KEY in str(echoed)  # the proxy forwards frames unchanged
                await ws.close()
                process.send_signal(signal.SIGINT)
                await process.wait()
            nursery.cancel_scope.cancel()
    assert process.returncode == 0
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
    export_session(db, session.session_id, tmp_path / "bundle")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"recorder.log", "log.duckdb", "input.flac", "events.jsonl"}
    for path in written:
        data = path.read_bytes()
        assert SECRET.encode() not in data, f"{path} holds the secret"
