"""CPU per frame of the log writer's blocking side (``_Sink.write_batch``), in-process.

The records are what the recorder captures from the relay benchmark's traffic
(bench/relay_loadgen.py: real speech in 100 ms PCM16 chunks both ways plus two transcript
deltas per 100 ms, 40 frames/s per session), run through the capture core, interleaved
across sessions as they would arrive, and cut into batches of one commit interval each.
Each batch is then written the way the writer's worker thread writes it (FLAC, tail files,
one DuckDB transaction), and the process's CPU time (all threads) is divided by the frames.

This is the fast loop for changing the writer: no sockets, no load generator, a few
seconds per figure. The whole-relay figures come from bench/bench_recorder.py.

    python bench/bench_sink.py                     # 1 and 50 sessions, 200 ms batches
    python bench/bench_sink.py --sessions 75 --seconds 20 --profile /tmp/sink.prof
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import shutil
import tempfile
import time
from pathlib import Path

from relay_loadgen import Messages, load_chunks  # bench/ is on sys.path: run as a script
from rich.console import Console
from rich.table import Table

from rtrec.recorder.capture import SessionCapture
from rtrec.schemas.storage import AudioChunk, Direction, FrameRecord, LogMessage, SessionRecord
from rtrec.store.log import open_log
from rtrec.store.rows import frames_to_arrow
from rtrec.store.writer import _Sink

TICKS_PER_SECOND = 10  # a client append and three server events per session per tick


def _session_record(session_id: str) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        started_wall_ns=time.time_ns(),
        upstream_url="ws://127.0.0.1:9/v1",
        request_path="/v1/realtime?model=gpt-realtime",
        model="gpt-realtime",
        protocol="ga",
        request_headers="{}",
        subprotocol=None,
        tags="{}",
        rtrec_version="bench",
    )


def traffic(sessions: int, seconds: int, interval: float) -> list[list[LogMessage]]:
    """``sessions`` voice sessions x ``seconds``, captured, in batches of ``interval`` s."""
    messages = Messages(load_chunks())
    captures = [SessionCapture(f"0192bench-{i:05d}") for i in range(sessions)]
    sent = [[0, 0] for _ in range(sessions)]  # next client k, next server k per session
    timeline: list[tuple[float, list[LogMessage]]] = []

    def emit(i: int, direction: Direction, t: float) -> None:
        side = 0 if direction is Direction.CLIENT else 1
        k = sent[i][side]
        sent[i][side] += 1
        text = (messages.client if side == 0 else messages.server)(i, k, int(t * 1e9))
        record, chunk = captures[i].frame(direction, text, int(t * 1e9), time.time_ns())
        timeline.append((t, [record] if chunk is None else [record, chunk]))

    for i in range(sessions):
        emit(i, Direction.CLIENT, 0.0)  # session.update
        emit(i, Direction.SERVER, 0.0)  # session.created
        emit(i, Direction.SERVER, 0.0)  # response.created
    for tick in range(seconds * TICKS_PER_SECOND):
        for i in range(sessions):
            # sessions are spread over the tick, as their start times spread them
            t = (tick + i / sessions) / TICKS_PER_SECOND
            emit(i, Direction.CLIENT, t)
            emit(i, Direction.SERVER, t)  # audio delta
            emit(i, Direction.SERVER, t)  # transcript delta
            emit(i, Direction.SERVER, t + 0.05)  # the second one, 50 ms later
    timeline.sort(key=lambda entry: entry[0])
    batches: list[list[LogMessage]] = [[_session_record(c.session_id) for c in captures]]
    edge = interval
    batch: list[LogMessage] = []
    for t, records in timeline:
        if t >= edge:
            batches.append(batch)
            batch, edge = [], edge + interval
        batch.extend(records)
    batches.append(batch)
    return batches


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    sessions: int, seconds: int, interval: float, profile: Path | None, settings: list[str]
) -> dict[str, float]:
    """Write the traffic through a fresh ``_Sink``; CPU and wall time per frame."""
    batches = traffic(sessions, seconds, interval)
    frames = sum(isinstance(m, FrameRecord) for b in batches for m in b)
    chunks = sum(isinstance(m, AudioChunk) for b in batches for m in b)
    workdir = Path(tempfile.mkdtemp(prefix="rtrec-bench-sink-"))
    try:
        con, report = open_log(workdir / "log.duckdb", None, version="bench")
        for setting in settings:
            con.execute(f"SET {setting}")
        sink = _Sink(con, workdir / "log.duckdb", report.audio_dir)
        sink.write_batch(batches[0])  # the session rows
        profiler = cProfile.Profile() if profile else None
        cpu0, wall0 = _cpu(), time.perf_counter()
        if profiler:
            profiler.enable()
        for batch in batches[1:]:
            sink.write_batch(batch)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
        sink.finalise_open()
        con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "frames": frames,
        "chunks": chunks,
        "batches": len(batches) - 1,
        "cpu_us_per_frame": 1e6 * cpu / frames,
        "wall_us_per_frame": 1e6 * wall / frames,
        "cpu_ms_per_batch": 1e3 * cpu / (len(batches) - 1),
        "share_of_a_core": cpu / seconds,
    }


def main() -> None:
    """Print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,50", help="comma-separated session counts")
    parser.add_argument("--seconds", type=int, default=10, help="seconds of traffic")
    parser.add_argument("--interval", type=float, default=0.2, help="commit interval, s")
    parser.add_argument("--repeat", type=int, default=3, help="runs per count; the best is shown")
    parser.add_argument("--profile", type=Path, help="cProfile the last run into FILE")
    parser.add_argument(
        "--set", action="append", default=[], help="a DuckDB setting to try, e.g. threads=1"
    )
    parser.add_argument(
        "--no-insert",
        action="store_true",
        help="build each batch's Arrow table but skip DuckDB's INSERT (what the rest costs)",
    )
    args = parser.parse_args()
    if args.no_insert:

        def arrow_only(self: _Sink, frames: list[FrameRecord]) -> None:
            frames_to_arrow(frames)

        _Sink._insert_frames = arrow_only  # type: ignore[method-assign]
    table = Table(
        title=f"_Sink.write_batch: {args.seconds} s of voice traffic, "
        f"{args.interval * 1000:.0f} ms batches (best of {args.repeat})"
    )
    for column in ("sessions", "frames", "batches", "CPU µs/frame", "wall µs/frame",
                   "CPU ms/batch", "share of a core"):  # fmt: skip
        table.add_column(column, justify="right")
    counts = [int(n) for n in args.sessions.split(",")]
    for n in counts:
        runs = [
            measure(
                n,
                args.seconds,
                args.interval,
                args.profile if (n == counts[-1] and k == args.repeat - 1) else None,
                args.set,
            )
            for k in range(args.repeat)
        ]
        best = min(runs, key=lambda r: r["cpu_us_per_frame"])
        table.add_row(
            str(n),
            f"{best['frames']:,.0f}",
            f"{best['batches']:,.0f}",
            f"{best['cpu_us_per_frame']:.1f}",
            f"{best['wall_us_per_frame']:.1f}",
            f"{best['cpu_ms_per_batch']:.2f}",
            f"{100 * best['share_of_a_core']:.1f}%",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
