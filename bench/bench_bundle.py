"""Bundle size against the same session with its audio inline as base64.

Builds a voice session from the fixture speech (src/rtrec/fixtures/audio/*.flac, 24 kHz PCM16): the
client streams its speech in 100 ms ``input_audio_buffer.append`` chunks, the server
answers with 100 ms ``response.output_audio.delta`` chunks and transcript deltas, turn
after turn. It is recorded through the log writer, exported with ``export_session``, and
compared with a JSON-lines file of the rebuilt frames (what a recorder that keeps base64
inline would store).

    python bench/bench_bundle.py [--turns 10]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import orjson
import trio
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.logdata

from rtrec.schemas.storage import Direction
from rtrec.store.bundle import export_session
from rtrec.store.reader import LogAudio, read_frames, rebuild_frame
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript, speech

NAMES = ("hello", "weather", "joke", "stop")


def conversation(turns: int) -> SessionScript:
    """``turns`` exchanges of fixture speech, 100 ms chunks both ways."""
    s = SessionScript()
    s.event(Direction.SERVER, {"type": "session.created", "event_id": "event_0", "session": {}})
    for turn in range(turns):
        said, reply = speech(NAMES[turn % 4]), speech(NAMES[(turn + 1) % 4])
        for i in range(0, len(said), 2400):
            s.audio_event(
                Direction.CLIENT,
                {"type": "input_audio_buffer.append", "event_id": f"evt_{turn}_{i}"},
                "audio",
                said[i : i + 2400],
            )
        s.event(Direction.CLIENT, {"type": "response.create", "event_id": f"evt_rc{turn}"})
        for i in range(0, len(reply), 2400):
            common = {"response_id": f"resp_{turn}", "item_id": f"item_{turn}"}
            s.audio_event(
                Direction.SERVER,
                {"type": "response.output_audio.delta", "event_id": f"event_{turn}_{i}"}
                | common
                | {"output_index": 0, "content_index": 0},
                "delta",
                reply[i : i + 2400],
            )
            s.event(
                Direction.SERVER,
                {"type": "response.output_audio_transcript.delta", "event_id": f"event_t{i}"}
                | common
                | {"delta": " word"},
            )
        s.event(Direction.SERVER, {"type": "response.done", "event_id": f"event_done{turn}"})
    s.close()
    return s


async def record(db: Path, s: SessionScript) -> None:
    async with open_log_writer(db, serve_queries=False) as w:
        for m in s.messages:
            await w.send(m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="conversation turns")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rtrec-bundle-"))
    try:
        s = conversation(args.turns)
        db = workdir / "log.duckdb"
        trio.run(record, db, s)
        result = export_session(db, s.session_id, workdir / "bundle")
        inline = workdir / "inline.jsonl"
        with LogAudio.of_session(db, s.session_id) as audio, inline.open("wb") as f:
            for frame in read_frames(db, s.session_id):
                text = rebuild_frame(frame, audio)
                assert isinstance(text, str)
                assert text == s.wire[frame.seq]
                f.write(orjson.dumps(orjson.loads(text)) + b"\n")
        seconds = sum(len(a) for parts in s.audio.values() for a in parts) / 24000
        table = Table(title=f"one voice session: {len(s.wire)} frames, {seconds:.0f} s of audio")
        table.add_column("form")
        table.add_column("bytes", justify="right")
        for path in result.files:
            table.add_row(f"bundle: {path.name}", f"{path.stat().st_size:,}")
        table.add_row("[b]bundle total[/b]", f"[b]{result.size:,}[/b]")
        table.add_row("JSONL with base64 audio inline", f"{inline.stat().st_size:,}")
        table.add_row("[b]bundle / inline[/b]", f"[b]{result.size / inline.stat().st_size:.3f}[/b]")
        Console().print(table)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
