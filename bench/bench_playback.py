"""Playback server timing at recorded pace, and throughput at instant pace.

A client on 127.0.0.1 in the same process plays the recorded client side (each message once
the server frames recorded before it have arrived) and timestamps every server frame.

- recorded pace: for every server frame that follows a server frame, the live gap between
  their arrivals minus the recorded gap; the table gives p50/p95/max of its absolute value
  (the client sends its own messages at their recorded times). Two recordings: the
  committed fixture bundle (recorded against the simulator at its fast pace: gaps of
  microseconds to milliseconds), and a synthetic stream of audio deltas 20 ms apart with a
  client append before every fifth (``--seconds`` long).
- instant pace: the fixture bundle played ``--runs`` times back to back over fresh
  connections; events (server frames sent + client messages matched) per second.

    python bench/bench_playback.py [--seconds 10] [--runs 20] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path

import numpy as np
import trio
from rich.console import Console
from rich.table import Table

from rtrec.replay.playback import (
    AudioGate,
    Expect,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    Send,
    compile_recording,
    load_recording,
    serve_playback,
)
from rtrec.replay.testing import Frame, client, record_events, server, tone
from rtrec.transport.ws import connect

ROOT = Path(__file__).parent.parent
BUNDLE = ROOT / "fixtures" / "sessions" / "weather-ga"


def client_messages(recording: Recording) -> dict[int, str | bytes]:
    """The recorded client side as wire text, by seq (appends rebuilt from the audio)."""
    out: dict[int, str | bytes] = {}
    for step in recording.steps:
        if isinstance(step, Expect):
            out[step.seq] = step.message
        elif isinstance(step, AudioGate):
            audio = base64.b64encode(recording.audio[step.start : step.end]).decode()
            kind = recording.dialect.input_append
            out[step.seq] = f'{{"type":"{kind}","audio":"{audio}"}}'
    return out


async def play_once(url: str, recording: Recording, paced: bool) -> tuple[list[float], int]:
    """Play the client side; returns the timing errors (s) of server frames that follow a
    server frame, and the number of events.

    Paced, the client sends each message at its recorded time (from the first frame's
    arrival) once the server frames before it have arrived; else as soon as they have.
    """
    messages = client_messages(recording)
    # the recorded path (/v1/realtime?model=..., /v1/live/sessions): the handshake is checked
    path = recording.handshake.path if recording.handshake else "/v1/realtime?model=gpt-realtime"
    ws = await connect(
        f"{url.removesuffix('/v1')}{path}",
        headers=[("Authorization", "Bearer sk-bench")],  # as the recorded client
        max_size=None,
    )
    errors: list[float] = []
    base, t0 = 0.0, recording.steps[0].t_ns
    previous: tuple[float, int] | None = None  # the previous server frame: arrival, t_ns
    events = 0
    try:
        for step in recording.steps:
            if isinstance(step, Send):
                await ws.receive()
                now = trio.current_time()
                if events == 0:
                    base = now
                if previous is not None:
                    errors.append((now - previous[0]) - (step.t_ns - previous[1]) / 1e9)
                previous = (now, step.t_ns)
            else:
                if paced:
                    await trio.sleep_until(base + (step.t_ns - t0) / 1e9)
                await ws.send(messages[step.seq])
                previous = None  # a gap after a client message depends on the client
            events += 1
    finally:
        await ws.close()
    return errors, events


def synthetic(seconds: float) -> Recording:
    """Audio deltas every 20 ms, with a 20 ms client append before every fifth one."""
    frames: list[Frame] = [server({"type": "session.created", "session": {"id": "s"}}, t_ms=0)]
    chunk = base64.b64encode(tone(480)).decode()
    for i in range(int(seconds * 50)):
        t = 20.0 * (i + 1)
        if i % 5 == 0:
            frames.append(client({"type": "input_audio_buffer.append", "audio": chunk}, t_ms=t))
        delta = {"type": "response.output_audio.delta", "item_id": "i", "delta": chunk}
        frames.append(server(delta, t_ms=t + 1))
    rec = record_events(frames)
    return compile_recording(
        rec.records,
        rec.audio,
        session_id="synthetic",
        protocol="ga",
        subprotocol=None,
        server_close=None,
    )


async def run(recording: Recording, pace: str, runs: int) -> tuple[list[float], int, float]:
    reports = PlaybackReports()
    options = PlaybackOptions(Pace.parse(pace))
    errors: list[float] = []
    events = 0
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            lambda task_status: serve_playback(
                recording, options=options, reports=reports, task_status=task_status
            )
        )
        start = time.perf_counter()
        for _ in range(runs):
            e, n = await play_once(url, recording, paced=pace != "instant")
            errors += e
            events += n
        elapsed = time.perf_counter() - start
        await reports.wait_idle()
        nursery.cancel_scope.cancel()
    bad = [r for r in reports.sessions if not r.ok]
    if bad:
        raise SystemExit(bad[0].render())
    return errors, events, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--bundle", type=Path, default=BUNDLE, help="the recording to play (a GPT-Live one too)"
    )
    args = parser.parse_args()
    bundle = load_recording(args.bundle)
    shown = args.bundle.name
    console = Console()

    table = Table(title="rtrec playback at --pace recorded: |live gap - recorded gap| per frame")
    for col in ("recording", "frames", "recorded s", "p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="right" if col != "recording" else "left")
    for name, rec in (
        (f"bundle {shown}", bundle),
        ("synthetic 20 ms deltas", synthetic(args.seconds)),
    ):
        errors, _, _ = trio.run(run, rec, "recorded", 1)
        err = np.abs(np.array(errors)) * 1000
        span = (rec.steps[-1].t_ns - rec.steps[0].t_ns) / 1e9
        table.add_row(
            name,
            str(len(err)),
            f"{span:.2f}",
            f"{np.percentile(err, 50):.3f}",
            f"{np.percentile(err, 95):.3f}",
            f"{err.max():.3f}",
        )
    console.print(table)

    _, events, elapsed = trio.run(run, bundle, "instant", args.runs)
    table = Table(title=f"rtrec playback at --pace instant: bundle {shown} x {args.runs}")
    for col in ("events", "seconds", "events/s", "sessions/s"):
        table.add_column(col, justify="right")
    table.add_row(
        str(events), f"{elapsed:.2f}", f"{events / elapsed:,.0f}", f"{args.runs / elapsed:.1f}"
    )
    console.print(table)


if __name__ == "__main__":
    main()
