"""``rtrec sim``: as a real subprocess (the URL on the first stdout line, clean stops on
SIGINT and SIGTERM), and in-process for its option errors."""

from __future__ import annotations

import asyncio
import re
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from openai import AsyncOpenAI

from rtrec.cli import cli

from .simkit import SCENARIOS, check_server_event

RTREC = Path(sys.executable).parent / "rtrec"


def first_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """The first stdout line, or fail after ``timeout`` seconds (never hang the suite)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"rtrec sim printed nothing in {timeout} s")
    return proc.stdout.readline().strip()


@contextmanager
def rtrec_sim(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(RTREC), "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


async def text_turn(url: str) -> list[dict[str, object]]:
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
    events = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Goodbye"}],
        }
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        while True:
            event = orjson.loads(await conn.recv_bytes())
            check_server_event("ga", event)
            events.append(event)
            if event["type"] == "response.done":
                return events


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_rtrec_sim_serves_and_stops_cleanly(stop: signal.Signals) -> None:
    """The first stdout line is the base URL; the official SDK holds a session with it; a
    SIGINT (Ctrl-C) or SIGTERM stops it with exit status 0 and no traceback."""
    scenario = SCENARIOS / "demo.toml"
    with rtrec_sim(
        "--listen", "127.0.0.1:0", "--pace", "fast", "--seed", "3", "--scenario", str(scenario)
    ) as proc:
        url = first_line(proc)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v1", url)
        events = asyncio.run(asyncio.wait_for(text_turn(url), 20))
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err
    assert out == ""
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "Goodbye! Talk to you soon."


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--listen", "localhost"], 2, "expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], 2, "expected HOST:PORT"),
        (["--pace", "slow"], 2, "'slow' is not one of"),
        (["--scenario", "missing.toml"], 2, "does not exist"),
    ],
)
def test_rtrec_sim_rejects_bad_options(args: list[str], status: int, message: str) -> None:
    """Bad options exit with click's usage status and say what is wrong."""
    result = CliRunner().invoke(cli, ["sim", *args])
    assert result.exit_code == status
    assert message in result.output


def test_rtrec_sim_reports_a_bad_scenario(tmp_path: Path) -> None:
    """An invalid scenario file is reported with its path and the offending key."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[[turn]]\nrepyl = 'x'\n")
    result = CliRunner().invoke(cli, ["sim", "--scenario", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: turn[0]: unknown key 'repyl'" in result.output


def test_rtrec_sim_reports_a_busy_port() -> None:
    """Listening on a port in use fails with a message, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["sim", "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
