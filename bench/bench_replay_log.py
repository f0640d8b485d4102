"""What `rtrec replay` costs end to end: a one-hour voice session rebuilt from a real log.

bench_replay.py times the reducer over rows in memory. This one stores the same synthetic
one-hour session (bench_replay.make_session: ~132 k rows, ~40 events/s) in a real DuckDB
log with its FLAC archive (fixture speech, tiled, so FLAC decodes speech-like data), by
writing it as a bundle and importing it, then times what the command does:

- ``load_session``, end to end: open the log, read the session's rows as columns, fold
  them into a ``Replay`` with checkpoints (the "one hour in < 1 s" target of issue 5), and
  its parts: opening (and checking) the file, the DuckDB query into Arrow, Arrow into
  ``FrameColumns``, the fold;
- the row-by-row path it replaced, for comparison: ``read_frames`` (a ``FrameRecord`` per
  row) and ``rebuild`` over those records;
- the transcript; the canonical JSON with stable ids and audio checksums (every sample of
  every item read back from the FLACs and hashed), i.e. ``--golden``;
- ``rtrec replay ID --db LOG`` (transcript) and ``... --stable-ids --json`` as processes
  (interpreter start and imports included);
- the same for each fixture bundle in fixtures/sessions/ (read in place).

Each step shows the best and the median wall time of ``--repeat`` runs and the best CPU
time of this process (which the other jobs of a shared machine disturb less), and the
table's caption the load average before and after.

    python bench/bench_replay_log.py [--minutes 60] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import soundfile as sf
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import make_session

from rtrec.cli.replay import load_session
from rtrec.replay import canonical_json, rebuild, transcript
from rtrec.schemas.storage import SCHEMA_VERSION
from rtrec.store.audio import sha256_file, write_flac
from rtrec.store.bundle import BUNDLE_VERSION, import_bundle
from rtrec.store.reader import open_log_reader, read_frame_columns, read_frames
from rtrec.store.rows import COLUMNS_SELECT, frame_columns_from_arrow, frame_to_json

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "fixtures" / "sessions"
SPEECH = ROOT / "src" / "rtrec" / "fixtures" / "audio"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """(best wall, median wall, best CPU time of this process) of ``repeat`` runs, seconds."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), statistics.median(walls), min(cpus)


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    return timed(fn, repeat)[0]


def load() -> str:
    """The load averages (1, 5, 15 min) on this machine's cores."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def speech_like(samples: int) -> np.ndarray:
    """``samples`` of the fixture utterances, tiled."""
    clips = [sf.read(p, dtype="int16")[0] for p in sorted(SPEECH.glob("*.flac"))]
    one = np.concatenate(clips)
    return np.resize(one, samples).astype(np.int16)


def write_bundle(minutes: float, out: Path) -> int:
    """The synthetic session as a bundle in ``out``; returns its row count."""
    rows = make_session(minutes)
    out.mkdir(parents=True)
    with (out / "events.jsonl").open("wb") as f:
        for row in rows:
            f.write(orjson.dumps(frame_to_json(row)) + b"\n")
    extent: dict[tuple[str, int], int] = {}
    for row in rows:
        if row.audio is not None:
            key = (row.audio.stream.value, row.audio.sample_rate)
            extent[key] = max(extent.get(key, 0), row.audio.offset + row.audio.samples)
    streams = []
    for (stream, rate), frames in sorted(extent.items()):
        path = out / f"{stream}.flac"
        write_flac(path, speech_like(frames), rate)
        streams.append(
            {
                "stream": stream,
                "sample_rate": rate,
                "file": path.name,
                "frames": frames,
                "sha256": sha256_file(path),
            }
        )
    session = {
        "session_id": "01900000-0000-7000-8000-000000000001",
        "upstream_url": "ws://127.0.0.1:1/v1/realtime?model=gpt-realtime",
        "request_path": "/v1/realtime?model=gpt-realtime",
        "model": "gpt-realtime",
        "protocol": "ga",
        "request_headers": "{}",
        "subprotocol": None,
        "status": "closed",
        "close_code": 1000,
        "close_reason": "",
        "closed_by": "client",
        "tags": "{}",
        "rtrec_version": "bench",
        "started_ns": 1_767_225_600_000_000_000,
        "ended_ns": 1_767_225_600_000_000_000 + rows[-1].t_ns,
    }
    manifest = {
        "format": "rtrec-bundle",
        "version": BUNDLE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "exported_by": "bench_replay_log",
        "session": session,
        "audio_streams": streams,
    }
    (out / "session.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="session length")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rtrec-bench-") as tmp:
        bundle = Path(tmp) / "bundle"
        events = write_bundle(args.minutes, bundle)
        db = Path(tmp) / "log.duckdb"
        session_id = import_bundle(db, bundle)
        sql = f"SELECT {COLUMNS_SELECT} FROM events WHERE session_id = ? ORDER BY seq"

        before = load()
        table = Table(title=f"rtrec replay from a log: {args.minutes:g} min voice session")
        for column in ("step", "events", "best", "median", "CPU", "events/s"):
            table.add_column(column, justify="left" if column == "step" else "right")

        def add(name: str, fn: Callable[[], Any], repeat: int = args.repeat) -> None:
            wall, median, cpu = timed(fn, repeat)
            table.add_row(
                name,
                f"{events:,}",
                f"{wall:,.3f} s",
                f"{median:,.3f} s",
                f"{cpu:,.3f} s",
                f"{events / wall:,.0f}",
            )

        def opened() -> None:
            with open_log_reader(db) as log, log.held():
                log.rows("SELECT 1")

        def queried() -> None:
            with open_log_reader(db) as log, log.held():
                log.query(sql, [session_id])

        with open_log_reader(db) as log, log.held():
            arrow = log.query(sql, [session_id])
        columns = frame_columns_from_arrow(session_id, arrow)
        add("[b]load_session: open, read, fold[/b]", lambda: load_session(session_id, db))
        add("  open the log (and check it)", opened)
        add("  open + DuckDB query -> Arrow", queried)
        add("  Arrow -> FrameColumns", lambda: frame_columns_from_arrow(session_id, arrow))
        add(
            "  read_frame_columns (all three)",
            lambda: read_frame_columns(db, session_id),
        )
        add("  rebuild(columns): fold, checkpoints", lambda: rebuild(columns))
        records = list(read_frames(db, session_id))
        add("before: read_frames (FrameRecords)", lambda: list(read_frames(db, session_id)))
        add("before: rebuild(records)", lambda: rebuild(records))
        records.clear()
        loaded = load_session(session_id, db)
        state = loaded.replay.state
        add("transcript", lambda: transcript(state))
        with loaded.audio:
            add(
                "canonical JSON + audio checksums",
                lambda: canonical_json(state, stable_ids=True, audio=loaded.audio),
            )
        command = [sys.executable, "-m", "rtrec", "replay", session_id, "--db", str(db)]
        add(
            "[b]rtrec replay ID (process)[/b]",
            lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL),
            repeat=max(1, args.repeat // 2),
        )
        add(
            "rtrec replay ID --stable-ids --json",
            lambda: subprocess.run(
                [*command, "--stable-ids", "--json"], check=True, stdout=subprocess.DEVNULL
            ),
            repeat=1,
        )
        add(
            "python -c 'import rtrec.cli'",
            lambda: subprocess.run([sys.executable, "-c", "import rtrec.cli"], check=True),
            repeat=max(1, args.repeat // 2),
        )
        table.caption = f"before: {before}; after: {load()}; CPU: of this process only"
        Console(width=110).print(table)

    fixtures = Table(title="rtrec replay --stable-ids --golden over fixtures/sessions/ (process)")
    for column in ("bundle", "events", "time"):
        fixtures.add_column(column, justify="left" if column == "bundle" else "right")
    for path in sorted(p for p in SESSIONS.iterdir() if (p / "golden.json").is_file()):
        count = sum(1 for _ in (path / "events.jsonl").open("rb"))
        command = [sys.executable, "-m", "rtrec", "replay", str(path), "--stable-ids"]
        took = best(
            lambda c=command, p=path: subprocess.run(
                [*c, "--golden", str(p / "golden.json")], check=True, stdout=subprocess.DEVNULL
            ),
            args.repeat,
        )
        fixtures.add_row(path.name, f"{count:,}", f"{took:,.3f} s")
    Console(width=110).print(fixtures)


if __name__ == "__main__":
    main()
