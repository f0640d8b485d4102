"""What indexing sessions as they close costs the recorder's loop.

``rtrec record`` indexes each session (items by the reducer, turns) once its close is
committed, in a worker thread beside the log writer's committer. Frames never wait for it,
but the thread shares the interpreter (the GIL) with the trio loop that forwards frames.
This measures that loop while it happens: ``--sessions`` voice sessions stream in real time
(40 frames/s each, 100 ms PCM16 both ways) for ``--seconds``, and every second one more
session of ``--closing`` seconds of the same traffic (written before the clock started)
is closed, so its indexing overlaps the live traffic. Without the hook, then with ``index_session``:

- tick lag: how late the loop woke for each scheduled 25 ms tick (what a relay of frames
  would be delayed by);
- send(): how long handing a frame to the writer took;
- how long each closing session took to be indexed (the hook's own time).

    python bench/bench_index_on_close.py [--sessions 30] [--seconds 10] [--closing 60]
        [--switch-interval MS]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import trio
from rich.console import Console
from rich.table import Table

from rtrec.replay.index import index_session
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    LogMessage,
    SessionClose,
    SessionRecord,
    SessionStatus,
    Stream,
)
from rtrec.store.writer import RELAY_SWITCH_INTERVAL, SessionClosedHook, open_log_writer

CHUNK = 2400  # 100 ms at 24 kHz
PCM = (np.sin(np.arange(CHUNK) / 7.0) * 8000).astype("<i2").tobytes()


class Session:
    """A synthetic voice session, one second (40 frames) at a time: per 100 ms an input
    append, an output audio delta and two transcript deltas of one response per second."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.seq = 0
        self.second_no = 0
        self.ends = {Stream.INPUT: 0, Stream.OUTPUT: 0}

    def start(self) -> SessionRecord:
        return SessionRecord(
            session_id=self.id,
            started_wall_ns=time.time_ns(),
            upstream_url="sim",
            request_path="/v1/realtime?model=gpt-realtime",
            model="gpt-realtime",
            protocol="ga",
            request_headers="{}",
            subprotocol=None,
            tags="{}",
            rtrec_version="bench",
        )

    def close(self) -> SessionClose:
        return SessionClose(
            session_id=self.id,
            ended_wall_ns=time.time_ns(),
            status=SessionStatus.CLOSED,
            close_code=1000,
            close_reason="",
            closed_by=Direction.CLIENT,
        )

    def _frame(
        self, direction: Direction, kind: str, payload: str, span: AudioSpan | None = None
    ) -> FrameRecord:
        self.seq += 1
        return FrameRecord(
            session_id=self.id,
            seq=self.seq,
            direction=direction,
            t_ns=self.seq * 25_000_000,
            wall_ns=time.time_ns(),
            kind=FrameKind.TEXT,
            wire_size=len(payload),
            payload=payload,
            type=kind,
            response_id=f"resp_{self.second_no}" if kind.startswith("response.") else None,
            audio=span,
        )

    def _audio(self, direction: Direction, kind: str, payload: str) -> list[LogMessage]:
        stream = Stream.INPUT if direction is Direction.CLIENT else Stream.OUTPUT
        span = AudioSpan(
            stream=stream,
            offset=self.ends[stream],
            samples=CHUNK,
            encoding=AudioEncoding.PCM16,
            sample_rate=24000,
            cut_at=len(payload) - 2,
        )
        self.ends[stream] += CHUNK
        chunk = AudioChunk(session_id=self.id, stream=stream, sample_rate=24000, pcm=PCM)
        return [self._frame(direction, kind, payload, span), chunk]

    def second(self) -> list[list[LogMessage]]:
        """One second of traffic as 40 sends (a frame, with its AudioChunk if it has one)."""
        self.second_no += 1
        rid, item = f"resp_{self.second_no}", f"item_{self.second_no}"
        created = (
            f'{{"type":"response.created","event_id":"ev_c{self.second_no}",'
            f'"response":{{"id":"{rid}","object":"realtime.response","status":"in_progress"}}}}'
        )
        out: list[list[LogMessage]] = [[self._frame(Direction.SERVER, "response.created", created)]]
        for n in range(10):
            out.append(
                self._audio(
                    Direction.CLIENT,
                    "input_audio_buffer.append",
                    '{"type":"input_audio_buffer.append","audio":""}',
                )
            )
            delta = (
                f'{{"type":"response.output_audio.delta","event_id":"ev_a{self.seq}",'
                f'"response_id":"{rid}","item_id":"{item}","output_index":0,'
                f'"content_index":0,"delta":""}}'
            )
            out.append(self._audio(Direction.SERVER, "response.output_audio.delta", delta))
            for _ in range(2 if n else 1):
                words = (
                    f'{{"type":"response.output_audio_transcript.delta","event_id":'
                    f'"ev_t{self.seq}","response_id":"{rid}","item_id":"{item}",'
                    f'"output_index":0,"content_index":0,"delta":" word"}}'
                )
                out.append(
                    [self._frame(Direction.SERVER, "response.output_audio_transcript.delta", words)]
                )
        return out


async def run(workdir: Path, args: argparse.Namespace, hook: SessionClosedHook | None) -> dict:
    """Stream the live sessions, close one long session a second; measure the loop."""
    lags: list[float] = []
    waits: list[float] = []
    hook_times: list[float] = []

    def timed(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        assert hook is not None
        started = time.perf_counter()
        hook(con, session_id)
        hook_times.append(time.perf_counter() - started)

    db = workdir / f"log-{'hook' if hook else 'none'}.duckdb"
    live = [Session(f"live-{i:04d}") for i in range(args.sessions)]
    async with open_log_writer(db, on_session_closed=timed if hook else None) as w:
        for s in live:
            await w.send(s.start())
        # the closing sessions are written before the clock starts; only their closes
        # (and so their indexing) fall in the measured traffic, one a second
        closing = [Session(f"closing-{n:04d}") for n in range(args.seconds)]
        for c in closing:
            await w.send(c.start())
            for _ in range(args.closing):
                for send in c.second():
                    for m in send:
                        await w.send(m)
        await w.flush()
        start = trio.current_time()
        for second in range(args.seconds):
            await w.send(closing[second].close())
            blocks = [s.second() for s in live]
            for tick in range(40):
                target = start + second + tick / 40
                await trio.sleep_until(target)
                lags.append(trio.current_time() - target)
                for block in blocks:
                    for m in block[tick]:
                        t0 = trio.current_time()
                        await w.send(m)
                        waits.append(trio.current_time() - t0)
        await w.flush()
    lags.sort()
    waits.sort()
    return {
        "lag p50 ms": statistics.median(lags) * 1000,
        "lag p99 ms": lags[int(len(lags) * 0.99)] * 1000,
        "lag max ms": lags[-1] * 1000,
        "send p99 µs": waits[int(len(waits) * 0.99)] * 1e6,
        "send max ms": waits[-1] * 1000,
        "indexed": len(hook_times),
        "index median s": statistics.median(hook_times) if hook_times else float("nan"),
    }


def main() -> None:
    """Run without and with the hook; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="live voice sessions")
    parser.add_argument("--seconds", type=int, default=10, help="seconds of live traffic")
    parser.add_argument("--closing", type=int, default=60, help="seconds in each closing session")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=RELAY_SWITCH_INTERVAL * 1000,
        help="sys.setswitchinterval in ms (default: what rtrec record sets)",
    )
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval / 1000)
    workdir = Path(tempfile.mkdtemp(prefix="rtrec-bench-"))
    try:
        without = trio.run(run, workdir, args, None)
        with_hook = trio.run(run, workdir, args, index_session)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(
        title=f"{args.sessions} live voice sessions x {args.seconds} s, one "
        f"{args.closing} s session ({args.closing * 40:,} frames) closing each second; "
        f"GIL switch interval {args.switch_interval:g} ms"
    )
    table.add_column("measure")
    table.add_column("no hook", justify="right")
    table.add_column("index_session", justify="right")
    for key in without:
        table.add_row(key, f"{without[key]:,.2f}", f"{with_hook[key]:,.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
