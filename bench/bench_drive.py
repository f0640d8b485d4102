"""The driver's timing at recorded pace, and what a re-drive costs end to end.

- recorded pace: a synthetic recording (``--seconds`` of a microphone streaming 20 ms
  appends, a ``response.create`` after each second of audio, each answered by the server
  100 ms later, and the next second's appends going out after that ``response.done``) is
  driven at a sink server on 127.0.0.1 in the same process that answers as recorded and
  timestamps every client message. The table gives p50/p95/max of |live gap - recorded
  gap| between consecutive client messages, driving the sink directly and through the
  in-process recorder (``drive_session``: proxy, DuckDB log, FLAC archive).
- instant pace: the same recording at once (client events per second), and the committed
  fixture ``function_call`` re-driven against the simulator (fast pace) ``--runs`` times:
  wall seconds per re-drive, log opened and closed each time (what ``rtrec replay
  --drive sim --pace instant`` spends beyond start-up).

    python bench/bench_drive.py [--seconds 10] [--runs 10]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import trio
from rich.console import Console
from rich.table import Table

from rtrec.replay.drive_plan import DrivePlan, compile_plan
from rtrec.replay.driver import DriveOptions, drive, drive_session, load_plan
from rtrec.replay.playback import Pace
from rtrec.replay.testing import Frame, client, mark, pcm16_b64, record_events, server
from rtrec.simulator import load_scenario, serve_simulator
from rtrec.store.reader import AudioSource
from rtrec.transport.ws import Closed, accept_handshake

ROOT = Path(__file__).parent.parent
FIXTURE = ROOT / "fixtures" / "sessions" / "function_call"
WEATHER = ROOT / "src" / "rtrec" / "fixtures" / "scenarios" / "weather.toml"


def synthetic(seconds: float) -> tuple[DrivePlan, AudioSource]:
    """A microphone streaming 20 ms appends; a response.create after every second of audio,
    answered 100 ms later; the next second's appends after that response.done."""
    frames: list[Frame] = [
        mark("rtrec.handshake", {"path": "/v1/realtime?model=m", "subprotocols": []}, t_ms=0),
        server({"type": "session.created", "session": {"id": "sess"}}, t_ms=1),
    ]
    t = 10.0
    for n in range(round(seconds)):
        for _ in range(50):
            frames.append(
                client({"type": "input_audio_buffer.append", "audio": pcm16_b64(480)}, t_ms=t)
            )
            t += 20
        frames.append(client({"type": "response.create"}, t_ms=t))
        frames.append(server({"type": "response.done", "response": {"id": f"r{n}"}}, t_ms=t + 100))
        t += 120
    rec = record_events(frames)
    plan = compile_plan(
        rec.records,
        session_id="bench",
        protocol="ga",
        request_path="/v1/realtime?model=m",
        request_headers="{}",
        closed_by="client",
        close_code=1000,
        close_reason="",
    )
    return plan, rec.audio


async def sink(arrivals: list[float], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A server that sends session.created, answers response.create with response.done
    100 ms later, and timestamps every client message."""

    async def handle(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=2**24)
        ws = await handshake.accept(None)

        async def answer(n: int) -> None:
            await trio.sleep(0.1)
            await ws.send(
                orjson.dumps({"type": "response.done", "response": {"id": f"x{n}"}}).decode()
            )

        await ws.send('{"type":"session.created","session":{"id":"s"}}')
        async with trio.open_nursery() as nursery:
            try:
                n = 0
                while True:
                    message = await ws.receive()
                    arrivals.append(trio.current_time())
                    if isinstance(message, str) and '"response.create"' in message:
                        nursery.start_soon(answer, n)
                        n += 1
            except Closed:
                nursery.cancel_scope.cancel()
        await ws.close(linger=0.5)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1")


async def paced(plan: DrivePlan, audio: AudioSource, through_recorder: bool) -> list[float]:
    """|live gap - recorded gap| in ms between consecutive client messages."""
    arrivals: list[float] = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(sink, arrivals)
        options = DriveOptions(pace=Pace(1.0))
        if through_recorder:
            with tempfile.TemporaryDirectory() as tmp:
                result = await drive_session(
                    plan,
                    audio,
                    upstream=url,
                    db=Path(tmp) / "log.duckdb",
                    api_key="sk",
                    options=options,
                )
                assert result.report.failure is None, result.report.failure
        else:
            report = await drive(plan, url, audio, api_key="sk", options=options)
            assert report.failure is None, report.failure
        nursery.cancel_scope.cancel()
    recorded = [s.t_ns / 1e9 for s in plan.steps]
    assert len(arrivals) == len(recorded), (len(arrivals), len(recorded))
    live_gaps = np.diff(arrivals)
    recorded_gaps = np.diff(recorded)
    # a step after a response.done is released by it: its gap is the server's, not ours
    released = [
        i
        for i, s in enumerate(plan.steps[1:])
        if any(w.name == "response.done" for w in s.waits) and s.waits != plan.steps[i].waits
    ]
    keep = np.ones(len(live_gaps), dtype=bool)
    keep[released] = False
    return list(np.abs(live_gaps[keep] - recorded_gaps[keep]) * 1000)


async def instant(plan: DrivePlan, audio: AudioSource) -> float:
    """Client events per second at instant pace, directly against the sink."""
    arrivals: list[float] = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(sink, arrivals)
        start = time.perf_counter()
        report = await drive(
            plan, url, audio, api_key="sk", options=DriveOptions(pace=Pace.parse("instant"))
        )
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    assert report.failure is None, report.failure
    # the sink's 100 ms answers are waited for: count them out
    answers = sum(1 for s in plan.steps if s.type == "response.create") * 0.1
    return report.sent / max(elapsed - answers, 1e-9)


async def redrive_fixture(runs: int) -> list[float]:
    """Seconds per end-to-end re-drive of the fixture against the simulator (fast)."""
    out = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            functools.partial(serve_simulator, scenario=load_scenario(WEATHER), pace="fast")
        )
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(runs):
                plan, audio = load_plan(FIXTURE)
                start = time.perf_counter()
                with audio:
                    result = await drive_session(
                        plan, audio, upstream=url, db=Path(tmp) / "log.duckdb", api_key="sk",
                        options=DriveOptions(pace=Pace.parse("instant")),
                    )  # fmt: skip
                out.append(time.perf_counter() - start)
                assert result.report.failure is None, result.report.failure
        nursery.cancel_scope.cancel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    plan, audio = synthetic(args.seconds)
    console = Console()

    table = Table(
        title=f"driver at recorded pace: {len(plan.steps)} client events over {args.seconds:g} s"
    )
    for column in ("path", "gaps", "p50 error", "p95 error", "max error"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, through in (("direct", False), ("through the recorder", True)):
        errors = trio.run(paced, plan, audio, through)
        table.add_row(
            name,
            str(len(errors)),
            f"{np.percentile(errors, 50):.2f} ms",
            f"{np.percentile(errors, 95):.2f} ms",
            f"{max(errors):.2f} ms",
        )
    console.print(table)

    rate = trio.run(instant, plan, audio)
    times = trio.run(redrive_fixture, args.runs)
    table = Table(title="instant pace")
    table.add_column("what")
    table.add_column("result", justify="right")
    table.add_row(f"synthetic recording, {len(plan.steps)} client events", f"{rate:,.0f} events/s")
    table.add_row(
        f"fixture function_call re-driven end to end ({args.runs} runs)",
        f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms",
    )
    console.print(table)


if __name__ == "__main__":
    main()
