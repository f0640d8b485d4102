"""The log writer: what it stores, when it commits, how it slows senders and how it fails.

Rules: real DuckDB files and FLACs in tmp_path; timing is checked on trio's MockClock
(autojump), never against the wall clock; killed writers are real processes ended with
SIGKILL. Every wait has a ``trio.fail_after`` cap or a thread-side timeout, except in the
autojump tests: while the disk thread works every task is blocked, so the mock clock would
jump straight to any cap's deadline.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import attrs
import duckdb
import numpy as np
import pytest
import trio
import trio.testing

from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameRecord,
    Stream,
)
from rtrec.store import writer as writer_module
from rtrec.store.audio import read_flac, sha256_file
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    read_streams,
    rebuild_frame,
)
from rtrec.store.writer import LogProtocolError, RecordingFailed, open_log_writer
from tests.logdata import SessionScript, killed_recording, voice_session


async def write_all(db: Path, messages, **options) -> None:
    """Write messages through a fresh writer and close it."""
    with trio.fail_after(30):
        async with open_log_writer(db, serve_queries=False, **options) as w:
            for m in messages:
                await w.send(m)


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            table: con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM {table} ORDER BY ALL").fetchall()
            for table in ("meta", "sessions", "events", "audio_streams")
        }
    finally:
        con.close()


async def send_all_then_flush(w, messages) -> None:
    """Send messages, then flush."""
    for m in messages:
        await w.send(m)
    await w.flush()


async def test_a_session_is_stored_and_rebuilds_byte_exact(tmp_path):
    """Every frame of a closed voice session (PCM16, G.711, binary, invalid) rebuilds exactly."""
    s = voice_session(with_g711=True)
    s.close()
    db = tmp_path / "log.duckdb"
    await write_all(db, s.messages)

    (info,) = read_sessions(db)
    assert (info.session_id, info.status, info.close_code, info.close_reason) == (
        s.session_id,
        "closed",
        1000,
        "bye",
    )
    assert info.closed_by == "client"
    assert info.events == len(s.frames())
    frames = list(read_frames(db, s.session_id))
    assert frames == s.frames()
    with LogAudio.of_session(db, s.session_id) as audio:
        for f in frames:
            assert rebuild_frame(f, audio) == s.wire[f.seq], f.seq
    streams = {(x.stream, x.sample_rate): x for x in read_streams(db, s.session_id)}
    assert sorted(p.path.name for p in streams.values()) == [
        "input-8000.flac",
        "input.flac",
        "output-8000.flac",
        "output.flac",
    ]
    for (stream, rate), x in streams.items():
        samples, file_rate, complete = read_flac(x.path)
        assert complete
        assert file_rate == rate
        assert x.frames == len(samples)
        np.testing.assert_array_equal(samples, s.samples(stream, rate))
        assert x.sha256 == sha256_file(x.path)
    assert not list((tmp_path / "log.audio").rglob("*.tail"))


async def test_cancelling_around_the_writer_still_commits_what_was_sent(tmp_path):
    """A recorder stopped by cancellation (Ctrl-C, a test runner stopping a server) within
    one commit interval still finds every message it sent in the log."""
    s = voice_session()
    s.close()
    db = tmp_path / "log.duckdb"
    with trio.CancelScope() as scope:
        async with open_log_writer(db, commit_interval=60) as writer:
            for message in s.messages:
                await writer.send(message)
            scope.cancel()
            await trio.sleep_forever()
    (info,) = read_sessions(db)
    assert info.status == "closed"
    assert list(read_frames(db, s.session_id)) == s.frames()


async def test_batch_size_1_and_500_give_identical_logs(tmp_path):
    """Batching changes when rows are committed, never what is stored."""
    a, b = voice_session(), voice_session(with_g711=True)
    b.close()
    # interleave the two sessions' messages, keeping each session's own order
    mixed = []
    for i in range(max(len(a.messages), len(b.messages))):
        mixed += [m[i] for m in (a.messages, b.messages) if i < len(m)]
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    await write_all(tmp_path / "one" / "log.duckdb", mixed, max_batch=1)
    await write_all(tmp_path / "many" / "log.duckdb", mixed, max_batch=500)
    one, many = dump(tmp_path / "one" / "log.duckdb"), dump(tmp_path / "many" / "log.duckdb")
    assert one == many
    assert len(one["events"]) == len(a.frames()) + len(b.frames())


async def test_messages_wait_at_most_the_commit_interval(tmp_path):
    """A lone message goes to disk one commit_interval after it was sent, without a flush.

    The writer's thread keeps real time: the bounds are the interval (never earlier) and
    an upper one far above it that only a writer waiting for something else would pass.
    """
    s = SessionScript()
    s.event(Direction.SERVER, {"type": "session.created", "event_id": "e1"})
    with trio.fail_after(30):
        async with open_log_writer(
            tmp_path / "log.duckdb", commit_interval=0.25, serve_queries=False
        ) as w:
            sent_at = time.monotonic()
            for m in s.messages:
                await w.send(m)
            await w.wait_committed(len(s.messages))
            stats = w.statistics()
            assert stats.last_batch_at is not None
            assert 0.25 <= stats.last_batch_at - sent_at < 3.0
            assert stats.commits == 1


async def test_a_full_batch_commits_at_once(tmp_path):
    """A batch that reaches max_batch messages goes to disk without waiting for the interval."""
    s = voice_session()
    async with open_log_writer(
        tmp_path / "log.duckdb", commit_interval=60, max_batch=5, serve_queries=False
    ) as w:
        for m in s.messages[:5]:
            await w.send(m)
        with trio.fail_after(30):  # far below the 60 s interval
            await w.wait_committed(5)
        assert w.statistics().commits == 1


async def test_flush_commits_everything_sent_before(tmp_path):
    """After flush(), another process sees every message sent before it."""
    s = voice_session()
    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with open_log_writer(db, commit_interval=60) as w:
            for m in s.messages:
                await w.send(m)
            await w.flush()
            assert w.statistics().committed == len(s.messages)
            code = (
                "from rtrec.store.reader import read_sessions; "
                f"print(read_sessions({str(db)!r})[0].events)"
            )
            done = await trio.run_process(
                [sys.executable, "-c", code], capture_stdout=True, capture_stderr=True
            )
            assert int(done.stdout) == len(s.frames())


async def test_a_slow_disk_slows_the_sender_and_loses_nothing(tmp_path, monkeypatch):
    """While the disk thread is stuck, send() blocks once the queue is full; all rows arrive."""
    gate = threading.Event()
    stuck = threading.Event()
    original = writer_module._Sink.write_batch

    def slow_write(self, messages, **kwargs):
        stuck.set()
        assert gate.wait(timeout=30), "the test never opened the gate"
        original(self, messages, **kwargs)

    monkeypatch.setattr(writer_module._Sink, "write_batch", slow_write)
    s = voice_session(chunks=10)
    sent = 0

    async def sender(w):
        nonlocal sent
        for m in s.messages:
            await w.send(m)
            sent += 1

    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with open_log_writer(db, queue_size=3, max_batch=2, serve_queries=False) as w:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender, w)
                await trio.to_thread.run_sync(stuck.wait)
                await trio.testing.wait_all_tasks_blocked()
                # a batch on disk and a full queue: the sender waits
                assert sent == 2 + 3 < len(s.messages)
                assert w.statistics().queued == 3
                gate.set()
            await w.flush()
    assert dump(db)["events"].__len__() == len(s.frames())


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
        ("frame_before_session", "before its SessionRecord"),
        ("seq_goes_back", "seq must increase"),
        ("offset_gap", "audio offset 10 but the input stream at 24000 Hz holds 0"),
        ("chunk_missing", "has audio but no AudioChunk followed"),
        ("chunk_wrong_size", "does not match the audio of frame"),
        ("after_close", "after its close"),
        ("started_twice", "already started"),
    ],
)
async def test_out_of_order_messages_are_refused(tmp_path, mistake, match):
    """A sender bug is reported at send(), naming the session and what is wrong."""
    s = SessionScript()
    sid = s.session_id
    first = s.messages[0]
    frame = s.event(Direction.CLIENT, {"type": "x"})
    span = AudioSpan(
        stream=Stream.INPUT,
        offset=0,
        samples=4,
        encoding=AudioEncoding.PCM16,
        sample_rate=24000,
        cut_at=None,
    )
    with_audio = FrameRecord(
        session_id=sid,
        seq=5,
        direction=Direction.CLIENT,
        t_ns=1,
        wall_ns=1000,
        kind=frame.kind,
        wire_size=1,
        payload="{}",
        audio=span,
    )
    chunk = AudioChunk(session_id=sid, stream=Stream.INPUT, sample_rate=24000, pcm=b"\0" * 8)
    plans = {
        "frame_before_session": [frame],
        "seq_goes_back": [first, frame, frame],
        "offset_gap": [first, attrs.evolve(with_audio, audio=attrs.evolve(span, offset=10))],
        "chunk_missing": [first, with_audio, attrs.evolve(frame, seq=9)],
        "chunk_wrong_size": [first, with_audio, attrs.evolve(chunk, pcm=b"\0" * 6)],
        "after_close": [first, s.close(), frame],
        "started_twice": [first, first],
    }
    with trio.fail_after(30):
        async with open_log_writer(tmp_path / "log.duckdb", serve_queries=False) as w:
            *good, bad = plans[mistake]
            for m in good:
                await w.send(m)
            with pytest.raises(LogProtocolError, match=match):
                await w.send(bad)
            assert w.failure is None  # the writer itself is fine


async def test_a_failing_audio_write_is_reported_and_stops_recording(tmp_path):
    """When the audio folder cannot be created, failed is set, send raises, sessions say why."""
    s = voice_session()
    db = tmp_path / "log.duckdb"
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (audio_dir / s.session_id).write_text("a file where the session folder should be")
    with trio.fail_after(30):
        async with open_log_writer(db, audio_dir, serve_queries=False) as w:
            await w.send(s.messages[0])
            await w.flush()  # the session row is committed
            with pytest.raises(RecordingFailed, match=r"^\w*Error: "):
                await send_all_then_flush(w, s.messages[1:])
            assert w.failed.is_set()
            assert w.failure is not None
            assert s.session_id in w.failure
            with pytest.raises(RecordingFailed):
                await w.send(s.messages[1])
    (info,) = read_sessions(db)
    assert info.status == "failed"
    assert info.close_reason == w.failure


async def test_a_session_that_failed_in_its_first_batch_is_still_logged(tmp_path):
    """A session whose very first batch failed still gets a row saying why (status failed)."""
    s = voice_session()
    db = tmp_path / "log.duckdb"
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (audio_dir / s.session_id).write_text("a file where the session folder should be")
    with trio.fail_after(30):
        async with open_log_writer(db, audio_dir, serve_queries=False) as w:
            with pytest.raises(RecordingFailed, match=s.session_id):
                await send_all_then_flush(w, s.messages)
    (info,) = read_sessions(db)
    assert info.session_id == s.session_id
    assert info.status == "failed"
    assert info.close_reason == w.failure
    assert info.events == 0  # its frames were in the batch that failed
    assert info.ended_ns is not None


async def test_a_failing_database_write_is_reported(tmp_path):
    """A batch DuckDB rejects (a session id already in the log) fails the writer loudly."""
    s = SessionScript()
    db = tmp_path / "log.duckdb"
    await write_all(db, s.messages)
    with trio.fail_after(30):
        async with open_log_writer(db, serve_queries=False) as w:
            await w.send(s.messages[0])
            with pytest.raises(RecordingFailed, match=r"(?i)constraint|duplicate"):
                await w.flush()
            assert w.failed.is_set()


async def test_waiting_senders_learn_of_a_failure(tmp_path, monkeypatch):
    """A sender blocked on a full queue gets RecordingFailed when the writer fails."""
    gate = threading.Event()

    def broken_write(self, messages, **kwargs):
        assert gate.wait(timeout=30)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module._Sink, "write_batch", broken_write)
    s = voice_session(chunks=10)
    errors = []

    async def sender(w):
        try:
            for m in s.messages:
                await w.send(m)
        except RecordingFailed as exc:
            errors.append(str(exc))

    with trio.fail_after(30):
        async with (
            open_log_writer(
                tmp_path / "log.duckdb", queue_size=1, max_batch=1, serve_queries=False
            ) as w,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(sender, w)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    assert errors == ["disk full: [Errno 28] No space left on device"]


async def test_leaving_the_writer_finalises_audio_and_next_open_interrupts(tmp_path):
    """Unclosed sessions stay open with complete FLACs; the next open marks them interrupted."""
    s = voice_session()
    db = tmp_path / "log.duckdb"
    await write_all(db, s.messages)
    (info,) = read_sessions(db)
    assert info.status == "open"
    for x in read_streams(db, s.session_id):
        assert x.sha256 == sha256_file(x.path)
    with trio.fail_after(30):
        async with open_log_writer(db, serve_queries=False) as w:
            assert w.report.interrupted == (s.session_id,)
            assert all(not r.rewritten and r.lost == 0 for r in w.report.repairs)
    (info,) = read_sessions(db)
    assert info.status == "interrupted"
    assert info.close_reason is not None
    assert "crash or kill" in info.close_reason
    assert info.ended_ns == s.start_ns + s.t_ns


async def test_sigkill_mid_session_loses_nothing_committed(tmp_path):
    """A recorder killed mid-session: the log reopens, committed frames rebuild exactly."""
    db = tmp_path / "log.duckdb"
    session_id, flushed = await trio.to_thread.run_sync(killed_recording, db, 40)
    assert (db.parent / (db.name + ".sock")).exists()  # stale: nobody removed it

    s = voice_session(chunks=40)  # the same script the child ran
    with trio.fail_after(30):
        async with open_log_writer(db) as w:
            assert w.report.interrupted == (session_id,)
            repairs = {r.stream: r for r in w.report.repairs}
            assert {r.lost for r in repairs.values()} == {0}
    (info,) = read_sessions(db)
    assert info.status == "interrupted"
    assert info.events >= int(flushed)
    frames = list(read_frames(db, session_id))
    wire = list(s.wire.values())
    with LogAudio.of_session(db, session_id) as audio:
        rebuilt = [rebuild_frame(f, audio) for f in frames]
    assert rebuilt == wire[: len(frames)]
    for x in read_streams(db, session_id):
        samples, _, complete = read_flac(x.path)
        assert complete
        assert x.frames == len(samples)
        assert x.sha256 == sha256_file(x.path)
    assert not any(p.suffix in (".tail", ".broken") for p in (tmp_path / "log.audio").rglob("*"))


ROOT = str(Path(__file__).resolve().parent.parent)
FULL_DISK_CHILD = """
import resource, signal, sys, trio
sys.path.insert(0, {root!r})
from pathlib import Path
from rtrec.store.writer import RecordingFailed, open_log_writer
from tests.logdata import voice_session

async def main():
    s = voice_session(chunks=800)
    async with open_log_writer(Path(sys.argv[1]), serve_queries=False) as w:
        # from here on no file of this process may grow past 1 MB: a disk that fills up
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
        try:
            for m in s.messages:
                await w.send(m)
            await w.flush()
        except RecordingFailed as exc:
            print("failed:", exc, flush=True)
            assert w.failed.is_set()
            return
    print("recorded everything")

trio.run(main)
"""


async def test_a_full_disk_fails_the_recording_loudly(tmp_path):
    """A real write error (file size limit hit, like a full disk) reaches send() with its cause."""
    db = tmp_path / "log.duckdb"
    code = FULL_DISK_CHILD.format(root=ROOT)
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-c", code, str(db)], capture_stdout=True, capture_stderr=True
        )
    out = done.stdout.decode()
    assert out.startswith("failed: OSError: [Errno 27] writing "), out + done.stderr.decode()
    assert "File too large" in out


async def test_the_writers_duckdb_memory_is_capped(tmp_path):
    """The writer caps DuckDB's buffer pool, so the cached log cannot grow the process."""
    db = tmp_path / "log.duckdb"

    def setting() -> tuple[bool, str]:
        with open_log_reader(db) as log:
            (row,) = log.rows("SELECT current_setting('memory_limit') AS m")
            return log.live, row["m"]

    with trio.fail_after(30):
        async with open_log_writer(db, memory_limit="48MiB") as w:
            await w.flush()
            assert await trio.to_thread.run_sync(setting) == (True, "48.0 MiB")
        with pytest.raises(ValueError, match="memory_limit must be a size"):
            async with open_log_writer(db, memory_limit="1GB; DROP TABLE events"):
                pass


def taken(w) -> None:
    """Wait (in a thread) until the writer's thread has taken everything queued."""
    deadline = time.monotonic() + 30
    while w.statistics().queued:
        assert time.monotonic() < deadline, "the writer's thread never took the queue"
        time.sleep(0.001)


async def test_offer_queues_a_frame_and_its_chunk_together_or_not_at_all(tmp_path):
    """offer() never waits: with room it queues all it is given, when full nothing at all."""
    s = voice_session()
    # SessionRecord, session.created, then audio frames each followed by its AudioChunk
    start, created, *pairs = s.messages
    assert isinstance(pairs[0], FrameRecord)
    assert isinstance(pairs[1], AudioChunk)
    db = tmp_path / "log.duckdb"
    with trio.fail_after(30):
        async with open_log_writer(db, commit_interval=60, queue_size=3, serve_queries=False) as w:
            assert w.offer(start)
            await trio.to_thread.run_sync(taken, w)  # the writer's thread took it: batch open
            assert w.offer(created, pairs[0])
            assert w.statistics().queued == 2
            assert not w.offer(pairs[1], pairs[2], pairs[3])  # 2 + 3 > 3: none goes in
            assert w.statistics().queued == 2
            assert w.offer(pairs[1])  # 3 of 3
            for m in pairs[2:]:
                await w.send(m)  # the order continues where offer left it
            await w.flush()
    assert len(dump(db)["events"]) == len(s.frames())
