"""Throughput of the event log: DuckDB insert paths, and the writer under voice traffic.

1. Rows/s appending ``events`` rows: ``executemany`` against Arrow tables of several batch
   sizes (the path the writer uses), each in its own transaction, on a fresh file.
2. The writer flat out: messages/s through ``open_log_writer`` (FLAC + DuckDB + commits)
   for a realistic voice mix: per session, 100 ms PCM16 chunks both ways plus transcript
   deltas (about 40 frames/s of session time), each audio frame followed by its AudioChunk.
3. The writer paced like N concurrent voice sessions (real time): how long ``send()``
   takes (p50/p99/max: what forwarding would wait), and the slowest batch on disk.

    python bench/bench_log_writer.py [--sessions 75] [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import trio
from rich.console import Console
from rich.table import Table

from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import (
    DDL,
    AudioChunk,
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    LogMessage,
    SessionRecord,
    Stream,
)
from rtrec.store.rows import frames_to_arrow
from rtrec.store.writer import open_log_writer

CHUNK = 2400  # 100 ms at 24 kHz
AUDIO = (np.sin(np.arange(CHUNK) / 7.0) * 8000).astype("<i2")
PCM = AUDIO.tobytes()
DELTA_PAYLOAD = (
    '{"type":"response.output_audio.delta","event_id":"event_CJJfX0dbyLc5DyQ4mLXGc",'
    '"response_id":"resp_CJJfWyUlvfxmqdjXsHrdA","item_id":"item_CJJfWw6Ez1DbDCyBkrEGM",'
    '"output_index":0,"content_index":0,"delta":""}'
)
APPEND_PAYLOAD = '{"type":"input_audio_buffer.append","event_id":"evt_client_0042","audio":""}'
TRANSCRIPT = (
    '{"type":"response.output_audio_transcript.delta","event_id":"event_CJJfX2a0f3kQy1mPZ2V8s",'
    '"response_id":"resp_CJJfWyUlvfxmqdjXsHrdA","item_id":"item_CJJfWw6Ez1DbDCyBkrEGM",'
    '"output_index":0,"content_index":0,"delta":" weather","obfuscation":"k2Jd8"}'
)
WIRE_AUDIO = len(base64.b64encode(PCM))


class Session:
    """One synthetic voice session: one second of traffic at a time (40 frames)."""

    def __init__(self, number: int) -> None:
        self.id = f"0192bench-{number:05d}"
        self.seq = 0
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

    def _frame(self, direction: Direction, payload: str, span: AudioSpan | None) -> FrameRecord:
        self.seq += 1
        return FrameRecord(
            session_id=self.id,
            seq=self.seq,
            direction=direction,
            t_ns=self.seq * 25_000_000,
            wall_ns=time.time_ns(),
            kind=FrameKind.TEXT,
            wire_size=len(payload) + (WIRE_AUDIO if span else 0),
            payload=payload,
            type="x",
            audio=span,
        )

    def _audio(self, direction: Direction, payload: str) -> list[LogMessage]:
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
        return [self._frame(direction, payload, span), chunk]

    def second(self) -> list[LogMessage]:
        """40 frames: 10 appends, 10 audio deltas, 20 transcript deltas."""
        out: list[LogMessage] = []
        for _ in range(10):
            out += self._audio(Direction.CLIENT, APPEND_PAYLOAD)
            out += self._audio(Direction.SERVER, DELTA_PAYLOAD)
            out.append(self._frame(Direction.SERVER, TRANSCRIPT, None))
            out.append(self._frame(Direction.SERVER, TRANSCRIPT, None))
        return out


def insert_rates(workdir: Path) -> list[tuple[str, float]]:
    """Rows/s of executemany and of Arrow batches into ``events``."""
    s = Session(0)
    frames = [m for _ in range(500) for m in s.second() if isinstance(m, FrameRecord)]
    results = []
    db = workdir / "insert.duckdb"
    con = duckdb.connect(str(db))
    con.execute(DDL)
    rows = frames_to_arrow(frames[:2000]).to_pylist()
    columns = list(rows[0])
    sql = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    t0 = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(sql, [[r[c] for c in columns] for r in rows])
    con.execute("COMMIT")
    results.append(
        ("executemany, 2,000 rows in one transaction", 2000 / (time.perf_counter() - t0))
    )
    for batch in (100, 500, 2000):
        con.execute("DELETE FROM events")
        t0 = time.perf_counter()
        for start in range(0, len(frames), batch):
            table = frames_to_arrow(frames[start : start + batch])
            con.execute("BEGIN")
            con.register("b", table)
            con.execute("INSERT INTO events BY NAME SELECT * FROM b")
            con.unregister("b")
            con.execute("COMMIT")
        rate = len(frames) / (time.perf_counter() - t0)
        results.append((f"Arrow, {batch:,} rows per transaction (incl. building the table)", rate))
    con.close()
    return results


async def flat_out(workdir: Path, sessions: int, seconds: int) -> dict[str, float]:
    """Push ``sessions`` x ``seconds`` of traffic as fast as the writer takes it."""
    all_sessions = [Session(i) for i in range(sessions)]
    traffic = [[s.start() for s in all_sessions]]
    traffic += [[m for s in all_sessions for m in s.second()] for _ in range(seconds)]
    messages = sum(len(t) for t in traffic)
    frames = sum(isinstance(m, FrameRecord) for t in traffic for m in t)
    t0 = time.perf_counter()
    async with open_log_writer(workdir / "flat.duckdb", serve_queries=False) as w:
        for block in traffic:
            for m in block:
                await w.send(m)
        await w.flush()
        stats = w.statistics()
    elapsed = time.perf_counter() - t0
    return {
        "messages/s": messages / elapsed,
        "frames/s": frames / elapsed,
        "commits": stats.commits,
        "slowest batch ms": stats.slowest_batch * 1000,
    }


async def paced(workdir: Path, sessions: int, seconds: int) -> dict[str, float]:
    """``sessions`` voice sessions in real time; how long each send() waits."""
    all_sessions = [Session(i) for i in range(sessions)]
    waits: list[float] = []
    async with open_log_writer(workdir / "paced.duckdb") as w:
        for s in all_sessions:
            await w.send(s.start())
        start = trio.current_time()
        for second in range(seconds):
            # each session's second of traffic, in 40 evenly spaced frames
            blocks = [s.second() for s in all_sessions]
            for tick in range(40):
                await trio.sleep_until(start + second + tick / 40)
                for block in blocks:
                    frame_and_chunk = _take_frame(block)
                    for m in frame_and_chunk:
                        t0 = trio.current_time()
                        await w.send(m)
                        waits.append(trio.current_time() - t0)
        await w.flush()
        stats = w.statistics()
    waits.sort()
    return {
        "send p50 µs": statistics.median(waits) * 1e6,
        "send p99 µs": waits[int(len(waits) * 0.99)] * 1e6,
        "send max ms": waits[-1] * 1000,
        "commits": stats.commits,
        "slowest batch ms": stats.slowest_batch * 1000,
    }


def _take_frame(block: list[LogMessage]) -> list[LogMessage]:
    """Pop the next frame (and its AudioChunk) from the front of a session's block."""
    out = [block.pop(0)]
    if block and isinstance(block[0], AudioChunk):
        out.append(block.pop(0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=75, help="concurrent voice sessions")
    parser.add_argument("--seconds", type=int, default=5, help="seconds of traffic to write")
    args = parser.parse_args()
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="rtrec-bench-"))
    try:
        table = Table(title="DuckDB: appending events rows (rows/s)")
        table.add_column("path")
        table.add_column("rows/s", justify="right")
        for name, rate in insert_rates(workdir):
            table.add_row(name, f"{rate:,.0f}")
        console.print(table)

        flat = trio.run(flat_out, workdir, args.sessions, args.seconds)
        pace = trio.run(paced, workdir, args.sessions, args.seconds)
        table = Table(
            title=f"log writer, {args.sessions} voice sessions x {args.seconds} s "
            "(40 frames/s each, 100 ms PCM16 chunks both ways)"
        )
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("flat out: messages/s (frames + audio chunks)", f"{flat['messages/s']:,.0f}")
        table.add_row("flat out: frames/s", f"{flat['frames/s']:,.0f}")
        needed = args.sessions * 40
        table.add_row(
            f"flat out: x real time for {args.sessions} sessions ({needed:,} frames/s)",
            f"{flat['frames/s'] / needed:.1f}x",
        )
        table.add_row("flat out: slowest batch on disk", f"{flat['slowest batch ms']:.0f} ms")
        table.add_row("paced: send() wait p50", f"{pace['send p50 µs']:.0f} µs")
        table.add_row("paced: send() wait p99", f"{pace['send p99 µs']:.0f} µs")
        table.add_row("paced: send() wait max", f"{pace['send max ms']:.2f} ms")
        table.add_row("paced: commits", f"{pace['commits']:.0f}")
        table.add_row("paced: slowest batch on disk", f"{pace['slowest batch ms']:.0f} ms")
        console.print(table)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
