"""How many events per second the simulator emits at ``--pace fast`` over a long conversation.

A scripted client holds a voice conversation of N turns (default 50): each turn streams one
of the fixture utterances in 100 ms appends, followed by a second of silence, with server
VAD (500 ms window) and input transcription on, and waits for the reply (audio and
transcript, about 75 events a turn in all). Two setups:

- core: ``SimSession`` alone, events serialised to JSON as the server sends them;
- loopback: ``serve_simulator(pace="fast")`` and a client on 127.0.0.1 in the same process
  (the client parses every event; both sides share one core), once with rtrec's own client
  (``rtrec.transport.ws.connect``) and once with trio-websocket's.

    python bench/bench_simulator.py [--turns 50] [--repeat 3]

Prints the best of ``--repeat`` runs per setup: wall time, and the process's CPU time
(``time.process_time``), which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import orjson
import soundfile as sf
import trio
from rich.console import Console
from rich.table import Table
from trio_websocket import open_websocket_url

from rtrec.schemas import to_json
from rtrec.simulator import SimSession, load_scenario, serve_simulator
from rtrec.simulator.server import MAX_MESSAGE_SIZE
from rtrec.transport.ws import connect

ROOT = Path(__file__).parent.parent
NAMES = ("hello", "weather", "joke", "stop")
SETUP = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            }
        },
    },
}


def turn_frames() -> list[list[str]]:
    """Per fixture utterance: its appends (100 ms each) plus one second of silence."""
    out = []
    for name in NAMES:
        samples, _ = sf.read(
            ROOT / "src" / "rtrec" / "fixtures" / "audio" / f"{name}.flac", dtype="int16"
        )
        pcm = samples.astype("<i2").tobytes() + bytes(48000)
        out.append(
            [
                orjson.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(pcm[i : i + 4800]).decode(),
                    }
                ).decode()
                for i in range(0, len(pcm), 4800)
            ]
        )
    return out


class Tally:
    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.audio_bytes = 0
        self.responses = 0
        self.transcriptions = 0

    def add(self, frame: str | bytes) -> dict[str, object]:
        self.events += 1
        self.bytes += len(frame)
        event: dict[str, object] = orjson.loads(frame)
        if event["type"] == "response.output_audio.delta":
            self.audio_bytes += len(base64.b64decode(str(event["delta"])))
        elif event["type"] == "response.done":
            self.responses += 1
        elif event["type"] == "conversation.item.input_audio_transcription.completed":
            self.transcriptions += 1
        return event


#: wall seconds, CPU seconds, what the client saw
Result = tuple[float, float, Tally]


def run_core(turns: int, frames: list[list[str]]) -> Result:
    tally = Tally()
    session = SimSession(
        seed=1,
        scenario=load_scenario(ROOT / "src" / "rtrec" / "fixtures" / "scenarios" / "demo.toml"),
    )
    start, cpu = time.perf_counter(), time.process_time()

    def send(frame: str) -> None:
        for event in session.receive(frame, session.now):
            tally.add(to_json(event))
        for event in session.drain():
            tally.add(to_json(event))

    for event in session.open():
        tally.add(to_json(event))
    send(orjson.dumps(SETUP).decode())
    for n in range(turns):
        for frame in frames[n % len(frames)]:
            send(frame)
    return time.perf_counter() - start, time.process_time() - cpu, tally


async def converse(
    turns: int,
    frames: list[list[str]],
    tally: Tally,
    receive: Callable[[], Awaitable[str | bytes]],
    send: Callable[[str], Awaitable[None]],
) -> None:
    """The scripted conversation, over any client's receive and send."""

    async def until(kind: str) -> None:
        while tally.add(await receive())["type"] != kind:
            pass

    await until("conversation.created")
    await send(orjson.dumps(SETUP).decode())
    await until("session.updated")
    for n in range(turns):
        for frame in frames[n % len(frames)]:
            await send(frame)
        await until("response.done")
    # the last turns' transcriptions may still be on their way: one per turn
    while tally.transcriptions < turns:
        tally.add(await receive())


async def loopback(turns: int, frames: list[list[str]], client: str) -> Result:
    tally = Tally()
    scenario = load_scenario(ROOT / "src" / "rtrec" / "fixtures" / "scenarios" / "demo.toml")
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_simulator, pace="fast", seed=1, scenario=scenario))
        start, cpu = time.perf_counter(), time.process_time()
        if client == "rtrec":
            ws = await connect(
                f"{url}/realtime?model=gpt-realtime",
                headers=[("Authorization", "Bearer sk-bench")],
                max_size=MAX_MESSAGE_SIZE,
            )
            try:
                await converse(turns, frames, tally, ws.receive, ws.send)
            finally:
                await ws.close()
        else:
            async with open_websocket_url(
                f"{url}/realtime?model=gpt-realtime",
                extra_headers=[(b"authorization", b"Bearer sk-bench")],
                message_queue_size=256,
                max_message_size=MAX_MESSAGE_SIZE,
            ) as tws:
                await converse(turns, frames, tally, tws.get_message, tws.send_message)
        elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        nursery.cancel_scope.cancel()
    return elapsed, used, tally


def best(repeat: int, run: Callable[[], Result]) -> Result:
    return min((run() for _ in range(repeat)), key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = turn_frames()
    results = {
        "core (SimSession, JSON out)": best(args.repeat, lambda: run_core(args.turns, frames)),
        "loopback WebSocket (rtrec client)": best(
            args.repeat, lambda: trio.run(loopback, args.turns, frames, "rtrec")
        ),
        "loopback WebSocket (trio-websocket client)": best(
            args.repeat, lambda: trio.run(loopback, args.turns, frames, "trio-websocket")
        ),
    }
    table = Table(title=f"rtrec sim --pace fast: {args.turns} voice turns (best of {args.repeat})")
    for column in (
        "setup",
        "events",
        "responses",
        "wall s",
        "CPU s",
        "events/s",
        "MB/s out",
        "audio out s",
        "x realtime",
    ):
        table.add_column(column, justify="left" if column == "setup" else "right")
    for name, (elapsed, used, tally) in results.items():
        audio_s = tally.audio_bytes / 48000
        table.add_row(
            name,
            str(tally.events),
            str(tally.responses),
            f"{elapsed:.2f}",
            f"{used:.2f}",
            f"{tally.events / elapsed:,.0f}",
            f"{tally.bytes / elapsed / 1e6:.1f}",
            f"{audio_s:.0f}",
            f"{audio_s / elapsed:,.0f}",
        )
    Console(width=132).print(table)


if __name__ == "__main__":
    main()
