"""`rtrec record` as a real process: a SIGKILL mid-session loses nothing committed.

The recorder runs as `python -m rtrec record` in a child process; the upstream and the
client are real WebSocket peers in the test; everything is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import numpy as np
import orjson
import pybase64
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from rtrec.store.audio import read_flac
from rtrec.store.log import open_log
from rtrec.store.reader import open_log_reader, read_frames, read_sessions, read_streams
from rtrec.transport.ws import connect
from tests.faults.kit import recorder_process, upstream_server

SECRET = "RTRECSECRET0123456789"
API_KEY = f"sk-proj-{SECRET}"


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


async def test_sigkill_loses_at_most_the_last_commit_interval(tmp_path: Path) -> None:
    """Frames stream both ways at 200 a second; kill -9 the recorder: after `rtrec repair`,
    every frame forwarded more than half a second before the kill is in the log (the
    writer commits every 0.2 s), and the log holds nothing that was not sent."""
    db = tmp_path / "log.duckdb"
    arrived: dict[int, float] = {}

    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await ws.get_message()
                arrived[orjson.loads(message)["n"]] = trio.current_time()
                await ws.send_message(message)

    with trio.fail_after(60):
        async with (
            upstream_server(echo) as upstream,
            recorder_process(db, upstream, tmp_path / "recorder.log", "--no-index") as (
                process,
                url,
            ),
        ):
            ws = await connect(f"{url}/realtime?model=m", max_size=None)
            for n in range(300):
                await ws.send(orjson.dumps({"type": "x", "n": n}).decode())
                await trio.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
            killed_at = trio.current_time()
            await process.wait()
            await ws.close(linger=0.5)
    repaired = await trio.run_process(
        [sys.executable, "-m", "rtrec", "repair", "--db", str(db)], capture_stdout=True
    )
    assert repaired.returncode == 0
    with open_log_reader(db) as log:
        rows = log.rows("SELECT payload FROM events WHERE direction = 'client' AND type = 'x'")
    logged = {orjson.loads(r["payload"])["n"] for r in rows}
    lost = set(arrived) - logged
    print(f"\nSIGKILL: forwarded {len(arrived)} logged {len(logged)} lost {len(lost)}")
    assert logged <= set(range(300))
    assert all(killed_at - arrived[n] < 0.5 for n in lost), sorted(lost)
