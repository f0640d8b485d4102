"""No byte rtrec writes holds a secret (issue 15, defect 1): API keys in headers, the query,
events and server secrets, and the browser's subprotocol key whatever its shape.

The recorder runs as `python -m rtrec record` in a child process; the upstream and the
client are real WebSocket peers on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import orjson
import pybase64
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from rtrec.transport.ws import connect
from tests.faults.kit import recorder_process, rtrec, upstream_server

SECRET = "RTRECSECRET0123456789"
API_KEY = f"sk-proj-{SECRET}"
# A subprotocol credential that looks like no OpenAI key: still a credential.
PLAIN = "plainSUBPROTO2"


async def _session(url: str) -> None:
    """One session carrying both secrets everywhere a client can put them."""
    ws = await connect(
        f"{url}/realtime?model=gpt-realtime&api_key={API_KEY}",
        subprotocols=["realtime", f"openai-insecure-api-key.{API_KEY}"],
        headers=[
            ("Authorization", f"Bearer {API_KEY}"),
            ("X-Note", f"key {API_KEY}"),
            # a second offer header, as browsers may split the list
            ("Sec-WebSocket-Protocol", f"openai-insecure-api-key.{PLAIN}"),
        ],
        max_size=None,
    )
    await ws.receive()
    audio = pybase64.b64encode(bytes(9600)).decode()
    await ws.send(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode())
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": f"my key is {API_KEY}"}],
    }
    await ws.send(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    echoed = await ws.receive()
    assert API_KEY in str(echoed)  # the proxy forwards frames unchanged
    await ws.close()


async def _upstream(request: WebSocketRequest) -> None:
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


def _assert_clean(root: Path) -> list[Path]:
    written = [p for p in root.rglob("*") if p.is_file()]
    for path in written:
        data = path.read_bytes()
        for secret in (SECRET, PLAIN):
            assert secret.encode() not in data, f"{path} holds {secret}"
    return written


@pytest.mark.parametrize("stop", ["sigint", "sigkill"])
async def test_no_secret_reaches_disk(tmp_path: Path, stop: str) -> None:
    """Neither a key-shaped secret nor a plain `openai-insecure-api-key.*` value reaches the
    log, its .wal (kept by a SIGKILL), the audio, `rtrec sql` output, a bundle or a Parquet
    export."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(90):
        async with (
            upstream_server(_upstream) as upstream,
            recorder_process(db, upstream, tmp_path / "recorder.log") as (process, url),
        ):
            await _session(url)
            live = await trio.to_thread.run_sync(
                lambda: rtrec(
                    "sql",
                    "SELECT request_headers FROM sessions",
                    "--db",
                    str(db),
                    "--format",
                    "csv",
                )
            )
            assert live.returncode == 0, live.stderr
            assert "openai-insecure-api-key.[REDACTED]" in live.stdout
            if stop == "sigkill":
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()
                assert _assert_clean(tmp_path)  # the .wal and journal as the kill left them
            else:
                process.send_signal(signal.SIGINT)
                await process.wait()
                assert process.returncode == 0
    outputs = [live.stdout, live.stderr]
    sessions = rtrec("sql", "SELECT session_id FROM sessions", "--db", str(db), "--format", "csv")
    session_id = sessions.stdout.split()[1]
    for args in (
        ("repair", "--db", str(db)),
        ("sql", "SELECT * FROM sessions", "--db", str(db), "--format", "json"),
        ("export", session_id, "--db", str(db), "--out", str(tmp_path / "bundle")),
        ("export-parquet", str(tmp_path / "parquet"), "--db", str(db)),
    ):
        result = rtrec(*args)
        assert result.returncode == 0, (args, result.stderr)
        outputs += [result.stdout, result.stderr]
    for text in outputs:
        assert SECRET not in text
        assert PLAIN not in text
    written = _assert_clean(tmp_path)
    names = {p.name for p in written}
    assert {"recorder.log", "log.duckdb", "input.flac", "events.jsonl", "session.json"} <= names
    assert any(p.suffix == ".parquet" for p in written)
