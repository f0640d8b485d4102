"""``rtrec demo``: the whole recorder at work on the built-in simulator, no API key needed.

It starts the log writer, the simulator and the recording proxy in one trio program,
drives a scripted conversation through them with rtrec's own WebSocket client (a text
turn, a voice turn with fixture speech, and a spoken question answered through a function
call), then prints what was recorded and where.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson
import pybase64
import soundfile as sf
import trio
from rich import box
from rich.console import Console
from rich.table import Table

from rtrec.cli.common import console, trouble
from rtrec.cli.options import db_option
from rtrec.recorder.open_recorder import open_recorder
from rtrec.recorder.proxy import ProxyOptions
from rtrec.replay.index import index_session
from rtrec.schemas.errors import RtrecError
from rtrec.simulator import WEATHER_TOOL, Pace, load_scenario
from rtrec.store.reader import open_log_reader, read_sessions, read_streams
from rtrec.transport.ws import WebSocket, connect

__all__ = ["demo_command", "run_demo"]


@contextmanager
def fixture(*parts: str) -> Iterator[Path]:
    """A file shipped in rtrec/fixtures (the repository's fixtures/ folder)."""
    with importlib.resources.as_file(
        importlib.resources.files("rtrec").joinpath("fixtures", *parts)
    ) as path:
        yield path


def speech(name: str) -> bytes:
    """Fixture speech (24 kHz PCM16 mono) followed by a second of silence, as PCM bytes."""
    with fixture("audio", f"{name}.flac") as path:
        samples, rate = sf.read(str(path), dtype="int16")
    assert rate == 24000, f"fixture speech must be 24 kHz, {name}.flac is {rate} Hz"
    return bytes(np.concatenate([samples, np.zeros(24000, dtype=np.int16)]).astype("<i2").tobytes())


class _Conversation:
    """A minimal Realtime client that waits for the events the script needs."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.received = 0

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.ws.receive()
            self.received += 1
            event = orjson.loads(message)
            if event.get("type") == "error":
                raise RtrecError(f"the server answered with an error: {event['error']}")
            if event.get("type") == kind:
                return dict(event)

    async def say(self, name: str) -> float:
        """Stream fixture speech in 100 ms appends, like a microphone; returns seconds sent."""
        pcm = speech(name)
        step = 4800  # 100 ms of 24 kHz PCM16
        for start in range(0, len(pcm), step):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": pybase64.b64encode(pcm[start : start + step]).decode(),
                }
            )
        return len(pcm) / 48000


async def converse(url: str) -> None:
    """The demo conversation, spoken to the recorder at ``url`` (a ``ws://.../v1`` base)."""
    ws = await connect(
        f"{url}/realtime?model=gpt-realtime",
        headers=[("Authorization", "Bearer sk-demo-not-a-real-key")],
        max_size=None,
    )
    talk = _Conversation(ws)
    try:
        await talk.until("session.created")
        await talk.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "tools": [WEATHER_TOOL],
                    "audio": {
                        "input": {
                            "transcription": {"model": "gpt-4o-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        }
                    },
                },
            }
        )
        await talk.until("session.updated")
        text = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What time is it?"}],
        }
        await talk.send({"type": "conversation.item.create", "item": text})
        await talk.send({"type": "response.create"})
        await talk.until("response.done")
        await talk.say("hello")
        await talk.until("response.done")
        await talk.say("weather")
        done = await talk.until("response.done")
        calls = [o for o in done["response"]["output"] if o.get("type") == "function_call"]
        for call in calls:
            output = {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": '{"temperature_c": 14, "conditions": "light rain"}',
            }
            await talk.send({"type": "conversation.item.create", "item": output})
        await talk.send({"type": "response.create"})
        await talk.until("response.done")
    finally:
        await ws.close(1000, "demo finished")


async def run_demo(db: Path, pace: str) -> str:
    """Record the demo conversation into ``db``; returns the session id."""
    with fixture("scenarios", "demo.toml") as path:
        scenario = load_scenario(path)
    async with open_recorder(
        "sim",
        db=db,
        options=ProxyOptions(tags=(("source", "rtrec demo"),)),
        simulator={"scenario": scenario, "pace": Pace(pace)},
        on_session_closed=index_session,
    ) as recorder:
        await converse(recorder.url)
    with open_log_reader(db) as log:
        return read_sessions(log)[-1].session_id


def report(db: Path, session_id: str, console: Console) -> None:
    """Print what the log holds for the demo session."""
    with open_log_reader(db) as log:
        session = next(s for s in read_sessions(log) if s.session_id == session_id)
        by_type = log.rows(
            "SELECT direction, coalesce(type, '(' || kind || ')') AS type, count(*) AS n "
            "FROM events WHERE session_id = ? GROUP BY ALL ORDER BY direction, n DESC, type",
            [session_id],
        )
        streams = read_streams(log, session_id)
    console.print(
        f"[b]Recorded session[/b] {session.session_id} ({session.protocol}, model {session.model}, "
        f"{session.status}): {session.events} events, {session.audio_seconds:.1f} s of audio"
    )
    table = Table(title="events by type", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("direction", "type", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for row in by_type:
        table.add_row(row["direction"], row["type"], str(row["n"]))
    console.print(table)
    # paths and commands go on lines of their own, never cut or wrapped by rich: the
    # terminal wraps them if it must, and a copy of the line is the whole path
    console.print("[b]audio archive (FLAC)[/b]")
    for s in streams:
        console.print(
            f"  {s.stream:<6} {s.sample_rate} Hz {s.frames / s.sample_rate:6.2f} s  "
            f"{_shown_path(s.path)}",
            soft_wrap=True,
            highlight=False,
        )
    short = session.session_id[:13]
    console.print(f"[b]log[/b] {_shown_path(db)}", soft_wrap=True, highlight=False)
    console.print("[b]next[/b]")
    for command in (
        f"rtrec sessions --db {db}",
        f"rtrec show {short} --db {db}",
        f"rtrec report {short} -o demo.html --db {db}",
        f"rtrec export {short} --out bundle --db {db}",
    ):
        console.print(f"  {command}", soft_wrap=True, highlight=False)


def _shown_path(path: Path) -> str:
    """A path as short as it can be: relative to the working directory when it is in it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


@click.command("demo")
@db_option("The log to append to (created when missing).")
@click.option(
    "--pace",
    type=click.Choice(["fast", "realtime"]),
    default="fast",
    show_default=True,
    help="How fast the simulator answers.",
)
def demo_command(db: Path, pace: str) -> None:
    """Record a scripted conversation with the built-in simulator and show what was kept.

    Starts the simulator and the recorder, speaks a text turn, a voice turn (fixture speech)
    and a question answered through a function call, then prints the sessions, events by
    type and audio seconds recorded, and where they are.
    """
    with trouble():
        session_id = trio.run(run_demo, db, pace)
    report(db, session_id, console())
