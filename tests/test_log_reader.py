"""Reading a log while a writer holds it (another process, through the control socket) and not.

The reader is always a real second process when a writer is live: DuckDB's file lock is
per process, so only another process shows whether the socket path really works.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import trio

from rtrec.schemas.storage import Stream
from rtrec.store import control
from rtrec.store.reader import (
    AudioMissing,
    LogAudio,
    LogReader,
    open_log_reader,
    read_audio,
    read_frames,
    read_sessions,
    rebuild_frame,
    resolve_session,
)
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript, voice_session

ROOT = Path(__file__).resolve().parent.parent

READER = """
import json, sys
sys.path.insert(0, {root!r})
from rtrec.store.reader import LogAudio, open_log_reader, read_frames, read_sessions
from rtrec.store.reader import rebuild_frame
with open_log_reader(sys.argv[1]) as log:
    out = {{"sessions": [], "rebuilt": {{}}}}
    for info in read_sessions(log):
        out["sessions"].append([info.session_id, info.status, info.events, info.audio_seconds])
        with LogAudio.of_session(log, info.session_id) as audio:
            out["rebuilt"][info.session_id] = [
                f if isinstance(f, str) else f.hex()
                for f in (rebuild_frame(r, audio) for r in read_frames(log, info.session_id))
            ]
    out["live"] = log.live
print(json.dumps(out))
"""


async def read_in_another_process(db: Path) -> dict:
    """Run READER in a fresh interpreter against ``db``."""
    done = await trio.run_process(
        [sys.executable, "-c", READER.format(root=str(ROOT)), str(db)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def wire_text(s: SessionScript, seq: int) -> str:
    """A frame as READER prints it (binary frames as hex)."""
    frame = s.wire[seq]
    return frame if isinstance(frame, str) else frame.hex()


async def test_another_process_reads_a_live_log(tmp_path):
    """While a writer holds the file, another process lists sessions and rebuilds live frames."""
    db = tmp_path / "log.duckdb"
    closed, live = voice_session(with_g711=True), voice_session()
    closed.close()
    with trio.fail_after(60):
        async with open_log_writer(db, commit_interval=60) as w:
            for m in closed.messages + live.messages:
                await w.send(m)
            await w.flush()
            out = await read_in_another_process(db)
    assert out["live"] is True
    statuses = {sid: (status, events) for sid, status, events, _ in out["sessions"]}
    assert statuses == {
        closed.session_id: ("closed", len(closed.frames())),
        live.session_id: ("open", len(live.frames())),
    }
    for s in (closed, live):
        assert out["rebuilt"][s.session_id] == [wire_text(s, seq) for seq in sorted(s.wire)]


async def test_another_process_reads_the_file_when_no_writer_runs(tmp_path):
    """Without a writer the reader opens the file itself (read-only) and gets the same data."""
    db = tmp_path / "log.duckdb"
    s = voice_session()
    s.close()
    with trio.fail_after(60):
        async with open_log_writer(db) as w:
            for m in s.messages:
                await w.send(m)
        out = await read_in_another_process(db)
    assert out["live"] is False
    assert out["rebuilt"][s.session_id] == [wire_text(s, seq) for seq in sorted(s.wire)]


async def test_the_control_socket_is_private_and_removed_after(tmp_path):
    """The socket is mode 0600 while the writer runs and gone once it stops."""
    db = tmp_path / "log.duckdb"
    sock = control.control_socket_path(db)
    assert sock == tmp_path / "log.duckdb.sock"
    with trio.fail_after(30):
        async with open_log_writer(db):
            mode = os.stat(sock).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
    assert not sock.exists()


async def test_the_socket_refuses_writes(tmp_path):
    """Over the socket only SELECT/EXPLAIN run; other statements are refused with a reason."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with open_log_writer(db):

            def attempt(sql: str) -> None:
                with open_log_reader(db) as log:
                    log.query(sql)

            for sql in ("DELETE FROM events", "DROP TABLE sessions", "SELECT 1; SELECT 2"):
                with pytest.raises(control.QueryRefused, match=r"SELECT|one statement"):
                    await trio.to_thread.run_sync(attempt, sql)
            with pytest.raises(control.QueryRefused, match="nope"):
                await trio.to_thread.run_sync(attempt, "SELECT * FROM nope")
            table = await trio.to_thread.run_sync(
                lambda: LogReader(db).query("SELECT 42 AS x WHERE false")
            )
            assert table.num_rows == 0
            assert table.column_names == ["x"]


async def test_garbage_on_the_socket_does_not_disturb_recording(tmp_path):
    """Malformed requests get an error reply or a hang-up; the writer records on."""
    db = tmp_path / "log.duckdb"
    s = voice_session()
    with trio.fail_after(30):
        async with open_log_writer(db) as w:
            path = str(control.control_socket_path(db))
            for garbage in (b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff", b"\x00\x00", b""):
                stream = await trio.open_unix_socket(path)
                await stream.send_all(garbage)
                if len(garbage) < 4:
                    await stream.send_eof()
                reply = b""
                while chunk := await stream.receive_some():
                    reply += chunk
                await stream.aclose()
                assert reply == b"" or b'"ok":false' in reply
            for m in s.messages:
                await w.send(m)
            await w.flush()
            assert w.failure is None
            infos = await trio.to_thread.run_sync(read_sessions, db)
            assert [i.events for i in infos] == [len(s.frames())]


async def test_a_blocking_read_from_the_writers_own_loop_fails_instead_of_hanging(tmp_path):
    """Reading the live log from the recorder's own trio thread raises a clear error, not a hang."""
    db = tmp_path / "log.duckdb"
    s = voice_session()
    with trio.fail_after(30):
        async with open_log_writer(db) as w:
            for m in s.messages:
                await w.send(m)
            await w.flush()
            with pytest.raises(control.ReadWouldDeadlock, match=r"trio\.to_thread\.run_sync"):
                read_sessions(db)
            infos = await trio.to_thread.run_sync(read_sessions, db)
    assert [i.events for i in infos] == [len(s.frames())]


def test_a_stale_socket_is_ignored(tmp_path):
    """A socket file left by a killed writer does not stop readers from using the file."""
    import socket as socket_module

    db = tmp_path / "log.duckdb"
    s = SessionScript()
    trio.run(_write, db, s.messages)
    stale = socket_module.socket(socket_module.AF_UNIX)
    stale.bind(str(control.control_socket_path(db)))
    stale.close()  # bound, never listening: connecting is refused
    with open_log_reader(db) as log:
        assert [i.session_id for i in read_sessions(log)] == [s.session_id]
        assert log.live is False


async def _write(db: Path, messages) -> None:
    async with open_log_writer(db, serve_queries=False) as w:
        for m in messages:
            await w.send(m)


def test_long_log_paths_get_a_short_socket_path(tmp_path):
    """A log too deep for a Unix socket path gets one under the temp dir, the same each time."""
    deep = tmp_path.joinpath(*["d" * 40] * 4) / "log.duckdb"
    path = control.control_socket_path(deep)
    assert len(os.fsencode(path)) <= 100
    assert path == control.control_socket_path(deep)
    assert path != control.control_socket_path(deep.with_name("other.duckdb"))


def test_sessions_are_found_by_prefix(tmp_path):
    """A unique prefix names a session; an ambiguous or unknown one is a clear error."""
    db = tmp_path / "log.duckdb"
    a, b = SessionScript(session_id="0192aaaa-1"), SessionScript(session_id="0192aabb-2")
    trio.run(_write, db, a.messages + b.messages)
    assert resolve_session(db, "0192aaa") == a.session_id
    assert resolve_session(db, "0192aabb-2") == b.session_id
    with pytest.raises(LookupError, match="matches several sessions"):
        resolve_session(db, "0192aa")
    with pytest.raises(LookupError, match="no session 'zz'"):
        resolve_session(db, "zz")


def test_read_audio_returns_whole_streams(tmp_path):
    """read_audio gives every sample of a stream; with two rates it asks which one."""
    db = tmp_path / "log.duckdb"
    s = voice_session(with_g711=True)
    s.close()
    trio.run(_write, db, s.messages)
    samples, rate = read_audio(db, s.session_id, Stream.OUTPUT, 24000)
    assert rate == 24000
    assert samples.tolist() == s.samples(Stream.OUTPUT).tolist()
    with pytest.raises(ValueError, match="pass sample_rate"):
        read_audio(db, s.session_id, Stream.INPUT)


def test_missing_audio_is_reported_not_invented(tmp_path):
    """A frame whose samples are gone from the archive raises AudioMissing naming the file."""
    db = tmp_path / "log.duckdb"
    s = voice_session()
    s.close()
    trio.run(_write, db, s.messages)
    frames = list(read_frames(db, s.session_id))
    (tmp_path / "log.audio" / s.session_id / "output.flac").unlink()
    audio = LogAudio.of_session(db, s.session_id)
    output = next(f for f in frames if f.audio is not None and f.audio.stream is Stream.OUTPUT)
    with pytest.raises(AudioMissing, match=r"output\.flac is missing") as caught:
        rebuild_frame(output, audio)
    assert isinstance(caught.value, LookupError)  # what replay's AudioSource contract names
    audio.close()


async def test_a_deep_log_is_served_from_a_private_temp_folder(tmp_path):
    """With the socket in the shared temp dir, its folder is the user's alone (0700)."""
    db = tmp_path.joinpath(*["d" * 40] * 3) / "log.duckdb"
    db.parent.mkdir(parents=True)
    s = SessionScript()
    with trio.fail_after(30):
        async with open_log_writer(db) as w:
            for m in s.messages:
                await w.send(m)
            await w.flush()
            sock = control.control_socket_path(db)
            assert sock.parent != db.parent
            assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
            infos = await trio.to_thread.run_sync(read_sessions, db)
            assert [i.session_id for i in infos] == [s.session_id]
