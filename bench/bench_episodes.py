"""What record mode new_episodes costs where the client leaves the recording.

A client on 127.0.0.1 (same process) plays the recorded client side of the fixture bundle
``weather-ga`` (a text turn, two voice turns, a function call) through the record-mode
server (recorder in front, log in a temporary directory, the simulator at its fast pace as
the upstream), and changes its last ``conversation.item.create`` (the function output).
Measured, per connection: the time from sending that event (and the ``response.create``
the recording sent right after it) to the first frame after them, in three setups:

- ``playback``: new_episodes, unchanged event: the recording answers (the baseline);
- ``switch``: new_episodes, changed event: connect to the simulator, seed it (the session
  update, every recorded item with its audio, the barrier), then relay;
- ``live``: record mode all: the recorder relays to the simulator, which has had the whole
  conversation live (what the answer costs without playback).

    python bench/bench_episodes.py [--runs 20]
"""

from __future__ import annotations

import argparse
import base64
import functools
import statistics
import tempfile
import time
from pathlib import Path

import trio
from rich.console import Console
from rich.table import Table

from rtrec.replay.playback import AudioGate, Expect, Pace, PlaybackOptions, Recording
from rtrec.replay.record_modes import Action, RecordMode, load_episodes, serve_record_mode
from rtrec.simulator import load_scenario
from rtrec.transport.ws import WebSocket, connect

ROOT = Path(__file__).parent.parent
BUNDLE = ROOT / "fixtures" / "sessions" / "weather-ga"
SIM = {
    "scenario": load_scenario(ROOT / "src" / "rtrec" / "fixtures" / "scenarios" / "demo.toml"),
    "pace": "fast",
}


def client_side(recording: Recording) -> list[tuple[int, str | bytes]]:
    """The recorded client messages (appends rebuilt from the audio), with how many server
    frames the recording had sent before each."""
    out: list[tuple[int, str | bytes]] = []
    sent = 0
    for step in recording.steps:
        if isinstance(step, Expect):
            out.append((sent, step.message))
        elif isinstance(step, AudioGate):
            audio = base64.b64encode(recording.audio[step.start : step.end]).decode()
            out.append((sent, f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}'))
        else:
            sent += 1
    return out


async def one(url: str, script: list[tuple[int, str | bytes]], change: bool) -> float:
    """One session; seconds from sending the function output (and the response.create the
    recording sent right after it) to the first frame after them."""
    ws: WebSocket = await connect(
        f"{url}/realtime?model=gpt-realtime",
        headers=[("Authorization", "Bearer sk-bench-not-a-key")],  # the upstream wants one
        max_size=None,
    )
    received = 0
    try:
        *before_output, (at, output), (_, create) = script
        for before, message in before_output:
            while received < before:
                await ws.receive()
                received += 1
            await ws.send(message)
        while received < at:
            await ws.receive()
            received += 1
        text = str(output)
        if change:
            text = text.replace('\\"c\\":14', '\\"c\\":15')
        start = time.perf_counter()
        await ws.send(text)
        await ws.send(create)
        await ws.receive()
        return time.perf_counter() - start
    finally:
        await ws.close()


async def measure(action: Action, mode: RecordMode, change: bool, runs: int) -> list[float]:
    episodes = load_episodes(BUNDLE)
    script = client_side(episodes.recording)
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                functools.partial(
                    serve_record_mode,
                    action,
                    mode=mode,
                    upstream="sim",
                    db=Path(tmp) / "log.duckdb",
                    episodes=episodes if action is Action.EPISODES else None,
                    options=PlaybackOptions(Pace.parse("instant")),
                    sim=SIM,
                )
            )
            times = [await one(url, script, change) for _ in range(runs)]
            nursery.cancel_scope.cancel()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    setups = [
        ("playback (recording answers)", Action.EPISODES, RecordMode.NEW_EPISODES, False),
        ("switch (seed + relay)", Action.EPISODES, RecordMode.NEW_EPISODES, True),
        ("live (all: recorder -> sim)", Action.RECORD, RecordMode.ALL, True),
    ]
    table = Table(title=f"first answer to the changed event, {args.runs} sessions each (ms)")
    for column in ("setup", "p50", "p95", "max"):
        table.add_column(column, justify="left" if column == "setup" else "right")
    for name, action, mode, change in setups:
        times = sorted(t * 1000 for t in trio.run(measure, action, mode, change, args.runs))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        table.add_row(name, f"{statistics.median(times):.2f}", f"{p95:.2f}", f"{times[-1]:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
