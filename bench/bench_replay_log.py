"""What `rtrec replay` costs end to end: a one-hour voice session rebuilt from a real log.

bench_replay.py times the reducer over rows in memory. This one stores the same synthetic
one-hour session (bench_replay.make_session: ~132 k rows, ~40 events/s) in a real DuckDB
log with its FLAC archive (fixture speech, tiled, so FLAC decodes speech-like data), by
writing it as a bundle and importing it, then times what the command does:

- reading the session's rows from the log (DuckDB -> Arrow -> FrameRecords);
- ``load_session``: those rows folded into a ``Replay`` (with checkpoints);
- the transcript; the canonical JSON with stable ids and audio checksums (every sample of
  every item read back from the FLACs and hashed), i.e. ``--golden``;
- ``rtrec replay ID --db LOG --stable-ids --json`` as a process (interpreter start included);
- the same for each fixture bundle in fixtures/sessions/ (read in place).

    python bench/bench_replay_log.py [--minutes 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
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

from rtrec.recorder.audio import sha256_file, write_flac
from rtrec.recorder.bundle import BUNDLE_VERSION, import_bundle
from rtrec.recorder.reader import read_frames
from rtrec.recorder.rows import frame_to_json
from rtrec.replay import canonical_json, transcript
from rtrec.replay_cli import load_session
from rtrec.schemas.storage import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "fixtures" / "sessions"
SPEECH = ROOT / "fixtures" / "audio"


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best shown)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rtrec-bench-") as tmp:
        bundle = Path(tmp) / "bundle"
        events = write_bundle(args.minutes, bundle)
        db = Path(tmp) / "log.duckdb"
        session_id = import_bundle(db, bundle)

        table = Table(title=f"rtrec replay from a log: {args.minutes:g} min voice session")
        for column in ("step", "events", "time", "events/s"):
            table.add_column(column, justify="left" if column == "step" else "right")

        def add(name: str, fn: Callable[[], Any], repeat: int = args.repeat) -> None:
            took = best(fn, repeat)
            table.add_row(name, f"{events:,}", f"{took:,.3f} s", f"{events / took:,.0f}")

        add("read the rows from DuckDB", lambda: sum(1 for _ in read_frames(db, session_id)))
        add("[b]load_session: read + rebuild[/b]", lambda: load_session(session_id, db))
        loaded = load_session(session_id, db)
        state = loaded.replay.state
        add("transcript", lambda: transcript(state))
        with loaded.audio:
            add(
                "canonical JSON, stable ids, audio checksums",
                lambda: canonical_json(state, stable_ids=True, audio=loaded.audio),
            )
        command = [sys.executable, "-m", "rtrec", "replay", session_id, "--db", str(db)]
        add(
            "[b]rtrec replay --stable-ids --json (process)[/b]",
            lambda: subprocess.run(
                [*command, "--stable-ids", "--json"], check=True, stdout=subprocess.DEVNULL
            ),
            repeat=1,
        )
        Console().print(table)

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
    Console().print(fixtures)


if __name__ == "__main__":
    main()
