"""The commit journal: frames committed between DuckDB merges are never lost or hidden.

Real files, real DuckDB logs, killed writers as real processes ended with SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from rtrec.schemas.storage import FrameRecord
from rtrec.store.journal import (
    Journal,
    _encode,
    journal_path,
    pending_journal,
    read_journal,
    replay_journal,
)
from rtrec.store.log import open_log
from rtrec.store.reader import (
    LogAudio,
    read_frames,
    read_sessions,
    rebuild_frame,
)
from rtrec.store.rows import frames_to_arrow
from rtrec.store.writer import open_log_writer
from tests.logdata import voice_session

ROOT = str(Path(__file__).resolve().parent.parent)


def frames_of(messages) -> list[FrameRecord]:
    return [m for m in messages if isinstance(m, FrameRecord)]


def test_a_journal_gives_back_every_field_of_every_frame(tmp_path):
    """Audio spans, binary payloads, invalid JSON, unicode: read back equal, in order."""
    s = voice_session(chunks=4, with_g711=True)
    frames = frames_of(s.messages)
    assert any(f.payload_bin is not None for f in frames)
    assert any(f.parse_error is not None for f in frames)
    journal = Journal(tmp_path / "log.duckdb")
    journal.append(frames[:5])
    journal.append(frames[5:])
    back, end = read_journal(journal.path.read_bytes())
    assert back == frames
    assert end == journal.path.stat().st_size
    journal.close()
    assert journal.path.exists()  # frames not merged: the file stays for the next open


def test_merged_frames_leave_the_journal_and_a_clean_close_removes_it(tmp_path):
    journal = Journal(tmp_path / "log.duckdb")
    journal.append(frames_of(voice_session(chunks=2).messages))
    assert pending_journal(tmp_path / "log.duckdb")
    journal.merged()
    assert journal.frames == []
    assert not pending_journal(tmp_path / "log.duckdb")
    journal.close()
    assert not journal.path.exists()


def test_replay_keeps_a_torn_end_aside_and_skips_rows_already_merged(tmp_path):
    """A kill mid-append leaves half a record: the whole ones are replayed, the rest kept."""
    db = tmp_path / "log.duckdb"
    s = voice_session(chunks=4)
    frames = frames_of(s.messages)
    con, _ = open_log(db)
    try:
        con.execute(
            "INSERT INTO sessions (session_id, started_at, upstream_url, request_path, "
            "protocol, request_headers, status, tags, rtrec_version) "
            "VALUES (?, now(), 'u', 'p', 'ga', '{}', 'open', '{}', 'x')",
            [s.session_id],
        )
        journal = Journal(db)
        journal.append(frames[:3])
        journal.append(frames[3:10])
        journal.append(frames[10:])
        journal.close()
        # the first record was merged just before the kill, the last one cut short
        rtrec_batch = frames_to_arrow(frames[:3])  # noqa: F841 (DuckDB scans it by its name)
        con.execute("INSERT INTO events BY NAME SELECT * FROM rtrec_batch")
        size = journal.path.stat().st_size
        with journal.path.open("r+b") as f:
            f.truncate(size - 7)
        replay = replay_journal(con, db)
        assert replay is not None
        assert (replay.frames, replay.already_there) == (7, 3)
        assert replay.torn_bytes == len(_encode(frames[10:])) - 7
        assert replay.torn_path is not None
        assert replay.torn_path.stat().st_size == replay.torn_bytes
        (count,) = con.execute("SELECT count(*) FROM events").fetchone()
        assert count == 10
        assert not journal_path(db).exists()
    finally:
        con.close()


_JOURNAL_CHILD = """
import sys, trio
sys.path.insert(0, {root!r})
from pathlib import Path
from rtrec.store.writer import open_log_writer
from tests.logdata import voice_session

async def main():
    s = voice_session(chunks=int(sys.argv[2]))
    # commits every 10 ms, merges never: everything after the first batch is in the journal
    async with open_log_writer(Path(sys.argv[1]), commit_interval=0.01, merge_interval=3600,
                               serve_queries=False) as w:
        # one batch per message (all but the SessionClose): only those that start the
        # session or a stream go to DuckDB, the others to the journal
        for i, m in enumerate(s.messages[:-1]):
            await w.send(m)
            await w.wait_committed(i + 1)
        frames = sum(1 for m in s.messages[:-1] if type(m).__name__ == "FrameRecord")
        print(s.session_id, frames, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


def kill_after_journal_commits(db: Path, chunks: int) -> tuple[str, int]:
    with subprocess.Popen(
        [sys.executable, "-c", _JOURNAL_CHILD.format(root=ROOT), str(db), str(chunks)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert line, "the child died before committing"
    session_id, frames = line.split()
    return session_id, int(frames)


def test_frames_committed_to_the_journal_survive_a_kill_for_readers(tmp_path):
    """No writer reopens the log: readers see the journal's frames, byte exact, without
    writing anything (the next read-write open moves them in and marks the session)."""
    db = tmp_path / "log.duckdb"
    session_id, committed = kill_after_journal_commits(db, 30)
    assert pending_journal(db)  # the kill left them there, not in DuckDB
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    (info,) = read_sessions(db)
    assert info.session_id == session_id
    assert info.status == "open"  # nobody marked it: readers do not write
    assert info.events == committed
    assert journal_path(db).exists()

    s = voice_session(chunks=30)  # the same script the child ran
    frames = list(read_frames(db, session_id))
    assert len(frames) == committed
    with LogAudio.of_session(db, session_id) as audio:
        assert [rebuild_frame(f, audio) for f in frames] == list(s.wire.values())[:committed]
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # not one file created, removed or written


async def test_the_next_writer_replays_the_journal_of_a_killed_one(tmp_path):
    db = tmp_path / "log.duckdb"
    session_id, committed = await trio.to_thread.run_sync(kill_after_journal_commits, db, 10)
    with trio.fail_after(30):
        async with open_log_writer(db, serve_queries=False) as w:
            assert w.report.interrupted == (session_id,)
            assert w.report.journal is not None
            assert w.report.journal.frames > 0  # the rest went to DuckDB with their streams
    (info,) = read_sessions(db)
    assert info.events == committed


async def test_a_live_reader_sees_frames_the_journal_holds(tmp_path):
    """A query on the control socket makes the writer merge first: nothing committed hides."""
    db = tmp_path / "log.duckdb"
    s = voice_session(chunks=8)
    body = s.messages[:-1]
    with trio.fail_after(30):
        async with open_log_writer(db, commit_interval=0.01, merge_interval=3600) as w:
            for i, m in enumerate(body):  # one batch each, as above
                await w.send(m)
                await w.wait_committed(i + 1)
            assert w._sink.journal.frames  # committed, not merged yet
            frames = await trio.to_thread.run_sync(lambda: list(read_frames(db, s.session_id)))
            assert len(frames) == len(frames_of(body))
            assert not w._sink.journal.frames


async def test_the_journal_moves_into_duckdb_by_age_and_by_size(tmp_path, monkeypatch):
    """Frames leave the journal once the oldest waited merge_interval, or at _MERGE_ROWS."""
    from rtrec.store import writer as writer_module

    s = voice_session(chunks=40)
    body = s.messages[:-1]
    seen_in_journal = 0
    with trio.fail_after(60):
        async with open_log_writer(
            tmp_path / "age.duckdb", commit_interval=0.01, merge_interval=0.3, serve_queries=False
        ) as w:
            journal = w._sink.journal
            for i, m in enumerate(body):
                await w.send(m)
                await w.wait_committed(i + 1)
                seen_in_journal = max(seen_in_journal, len(journal.frames))
                if seen_in_journal and not journal.frames:
                    break  # merged by age, the session still going on
            else:
                raise AssertionError("the journal was never merged by age")
    assert seen_in_journal > 0

    monkeypatch.setattr(writer_module, "_MERGE_ROWS", 5)
    with trio.fail_after(60):
        async with open_log_writer(
            tmp_path / "size.duckdb", commit_interval=0.01, merge_interval=3600, serve_queries=False
        ) as w:
            journal = w._sink.journal
            sizes = []
            for i, m in enumerate(body):
                await w.send(m)
                await w.wait_committed(i + 1)
                sizes.append(len(journal.frames))
    assert max(sizes) == 4  # the fifth unmerged frame takes them all to DuckDB
    assert 0 in sizes[sizes.index(4) :]


async def test_a_merge_interval_must_be_a_positive_number(tmp_path):
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="merge_interval must be a positive number"):
            async with open_log_writer(tmp_path / "log.duckdb", merge_interval=bad):
                pass
