"""`rtrec record`'s console: a real recorder process on the simulator, a real SDK client and
a raw WebSocket client; each session opened and closed is one line on stderr with what the
log holds for it, a server error is a red line, and --quiet prints none of them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import numpy as np
import orjson
import pybase64
import pytest
import trio
from openai import AsyncOpenAI

from rtrec.store.reader import read_sessions
from rtrec.transport.ws import connect

from .faults.kit import recorder_process

ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def raw_session(url: str) -> None:
    """A client with its own user agent: a second of audio, then an event the server
    refuses, then a normal close."""
    ws = await connect(
        f"{url}/realtime?model=gpt-realtime",
        headers=[("Authorization", "Bearer sk-test"), ("User-Agent", "console-test/1.0")],
        max_size=None,
    )
    pcm = (np.sin(np.arange(24000) / 10) * 8000).astype("<i2").tobytes()
    for start in range(0, len(pcm), 4800):
        audio = pybase64.b64encode(pcm[start : start + 4800]).decode()
        await ws.send(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode())
    await ws.send('{"type": "nope.bad"}')
    while orjson.loads(await ws.receive()).get("type") != "error":
        pass
    await ws.close(1000, "done")


def sdk_session(url: str) -> str:
    """The official SDK opens a session and leaves; returns its user agent's product."""

    async def main() -> None:
        client = AsyncOpenAI(api_key="sk-test-not-a-real-key", websocket_base_url=url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.send({"type": "input_audio_buffer.clear"})

    asyncio.run(main())
    return "AsyncOpenAI/Python"


async def record(tmp_path: Path, *options: str) -> tuple[str, Path]:
    """Record the two sessions; returns the console (stderr) and the log."""
    db = tmp_path / "log.duckdb"
    err = tmp_path / "stderr.txt"
    os.environ["FORCE_COLOR"] = "1"  # the child inherits it: rich colours a non-terminal
    try:
        with trio.fail_after(60):
            async with recorder_process(db, "sim", err, *options) as (process, url):
                await raw_session(url)
                await trio.to_thread.run_sync(sdk_session, url)
                process.send_signal(signal.SIGINT)
                await process.wait()
    finally:
        del os.environ["FORCE_COLOR"]
    return err.read_text(), db


async def test_one_line_per_session_opened_and_closed(tmp_path: Path) -> None:
    """Time, short id, user agent, protocol; duration, events, audio seconds, close code
    and side, as the log has them; the server's error in red."""
    text, db = await record(tmp_path)
    raw, sdk = read_sessions(db)
    plain = ANSI.sub("", text)
    lines = {
        (m["id"], m["what"]): m["rest"]
        for m in re.finditer(
            r"^(?P<time>\d\d:\d\d:\d\d) (?P<id>\S+) (?P<what>\w+) +(?P<rest>.*)$", plain, re.M
        )
    }
    short_raw, short_sdk = raw.session_id[:13], sdk.session_id[:13]
    assert lines[(short_raw, "open")] == "ga    gpt-realtime  console-test/1.0"
    assert lines[(short_sdk, "open")].startswith("ga    gpt-realtime  AsyncOpenAI/Python ")
    for s, short in ((raw, short_raw), (sdk, short_sdk)):
        closed = lines[(short, "closed")]
        assert f"  {s.events} events  {s.audio_seconds:.1f} s audio  " in closed
        assert s.close_code is not None
        assert f"  {s.close_code} by {s.closed_by}" in closed
    assert lines[(short_raw, "closed")].endswith("1000 by client (done)")
    assert raw.audio_seconds == pytest.approx(1.0)
    assert lines[(short_raw, "error")].startswith("invalid_request_error")
    (error_line,) = [line for line in text.splitlines() if "nope.bad" in line]
    assert "\x1b[31m" in error_line  # red
    (closed_line,) = [line for line in text.splitlines() if short_raw in line and "closed" in line]
    assert "\x1b[31m" not in closed_line  # a normal close is not an error


async def test_quiet_prints_no_session_lines(tmp_path: Path) -> None:
    """--quiet: the sessions are recorded, the console says nothing about them."""
    text, db = await record(tmp_path, "--quiet")
    assert len(read_sessions(db)) == 2
    for s in read_sessions(db):
        assert s.session_id[:13] not in text
