"""`rtrec demo` records a real conversation through the recorder on the simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from rtrec.cli.demo import run_demo
from rtrec.schemas import from_json
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    read_streams,
    rebuild_frame,
)


async def test_demo_records_text_voice_and_function_call(tmp_path: Path) -> None:
    """The demo session holds a text turn, two committed voice turns, a function call with
    its output and four responses; its audio is archived and every frame rebuilds."""
    db = tmp_path / "demo.duckdb"
    session_id = await run_demo(db, "fast")
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        assert session.session_id == session_id
        assert session.status == "closed"
        assert orjson.loads(session.tags) == {"source": "rtrec demo"}
        frames = list(read_frames(log, session_id))
        audio = LogAudio.of_session(log, session_id)
        for frame in frames:
            rebuild_frame(frame, audio)  # raises if any audio is missing
        streams = {s.stream: s for s in read_streams(log, session_id)}
    types = [f.type for f in frames]
    assert types.count("input_audio_buffer.committed") == 2
    assert types.count("response.done") == 4
    assert "response.function_call_arguments.done" in types
    outputs = [
        from_json(f.payload or "")
        for f in frames
        if f.type == "conversation.item.create" and "function_call_output" in (f.payload or "")
    ]
    assert len(outputs) == 1
    # the fixture speech (hello + weather, each with a second of silence) went to the archive
    assert 6.0 < streams["input"].frames / 24000 < 9.0
    assert streams["output"].frames > 24000


def test_demo_command_prints_what_was_recorded(tmp_path: Path) -> None:
    """`python -m rtrec demo` exits 0 and reports the session, its events and its audio."""
    db = tmp_path / "log.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "rtrec", "demo", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "Recorded session" in done.stdout
    assert "input_audio_buffer.append" in done.stdout
    assert "audio archive (FLAC)" in done.stdout
    assert str(db.resolve()) in done.stdout.replace("\n", "")
