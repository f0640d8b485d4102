"""The log writer: one thread owns the DuckDB connection and the FLAC files of a log.

The recorder queues ``LogMessage`` s (``SessionRecord``, ``FrameRecord``, ``AudioChunk``,
``SessionClose``) with ``offer`` / ``send`` in a bounded queue. The writer's thread sleeps
until a batch is due (``commit_interval`` after its first message, or when it is large, or
someone asked to ``flush``), takes everything queued at once and writes it: FLAC samples
first, then the rows. A batch of plain frames is committed by one append to the journal
(src/rtrec/store/journal.py), which reaches DuckDB as one Arrow table every ``merge_interval``
seconds; a batch that starts or closes a session, a flush and the stop take the journal
along in one DuckDB transaction.

Why a thread of its own rather than a trio task handing each batch to ``trio.to_thread``:
DuckDB and libsndfile block, so a thread is needed either way, and this one calls into
trio only when a task waits on it. At one voice session the collector task, the hand-off
and the wake-ups cost the event loop about 2 ms of CPU per second, as much as the whole
writer's budget (docs/bench_recorder.md). The thread is started and joined by
``open_log_writer``; it never outlives the block.

What this buys:

- forwarding never waits on disk: ``send`` only waits when the queue is full, which
  slows the sender (back-pressure) and never drops a message;
- a DuckDB checkpoint that stalls a commit for 100-250 ms only delays the writer's thread;
- a failed write is never silent: ``failed`` is set, ``failure`` says why, every later (or
  waiting) ``send`` and ``flush`` raises ``RecordingFailed``, and the writer marks its open
  sessions ``failed`` with that reason if the disk still lets it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Final

import attrs
import duckdb
import trio

from rtrec._version import __version__
from rtrec.schemas.errors import RtrecError, describe_error
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameRecord,
    LogMessage,
    SessionClose,
    SessionRecord,
    SessionStatus,
    Stream,
)
from rtrec.store.audio import StreamWriter, sha256_file, stream_filename
from rtrec.store.control import serve_control
from rtrec.store.doorbell import Doorbell
from rtrec.store.duckdb_memory import MemoryLimit, parse_size
from rtrec.store.journal import Journal, JournalError
from rtrec.store.log import (
    LogDiskFull,
    OpenReport,
    disk_full_reason,
    is_disk_full,
    open_log,
    reserve_path,
    stored_path,
)
from rtrec.store.rows import frames_to_arrow, timestamp
from rtrec.store.sink import RecordingFailed

__all__ = [
    "DEFAULT_DISK_RESERVE",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_MERGE_INTERVAL",
    "RELAY_SWITCH_INTERVAL",
    "LogProtocolError",
    "LogWriter",
    "RecordingFailed",
    "SessionClosedHook",
    "WriterStatistics",
    "open_log_writer",
    "reserve_path",
]

_log = logging.getLogger(__name__)

#: Called once per session whose close was committed, in a worker thread, with a cursor of
#: the writer's connection (used by nothing else meanwhile) and the session id; what it
#: returns is ignored.
SessionClosedHook = Callable[[duckdb.DuckDBPyConnection, str], object]

#: DuckDB's buffer pool for a recording log. Without a limit it keeps every block of the
#: growing ``events`` table cached (DuckDB's default: 80% of the RAM), so the recorder's
#: memory grows with every session it records; with one, memory stays flat. The pool also
#: serves the control socket's queries: at 64MB a small `rtrec sql` on a live recorder
#: failed with DuckDB's "Out of Memory" in 6 of 60 tries here, at 96MB and 128MB in none of
#: 100 and 200 (/tmp repro of tests/test_sql_cli.py's live query).
#: The writer raises it while very large frames come close together (duckdb_memory.py).
DEFAULT_MEMORY_LIMIT: Final = "128MB"

#: ``sys.setswitchinterval`` for a process that relays and runs this writer (``rtrec
#: record`` sets it; a library leaves the process's setting alone). The writer's thread
#: releases and retakes the GIL around every encoder, file and DuckDB call; with Python's
#: 5 ms a relay task that wants the GIL back may wait that long. 1 ms measured p99 added
#: latency at 80 voice sessions of 8-10 ms against 9-20 ms (docs/bench_recorder.md).
RELAY_SWITCH_INTERVAL: Final = 0.001

#: The longest a committed frame stays in the journal before it moves into DuckDB, seconds.
#: A merge costs the writer's thread 4-7 ms of CPU at one session (a cold DuckDB INSERT
#: plus commit), a journal append 30-60 us (src/rtrec/store/journal.py). rtrec's readers never
#: wait for it: a query on the control socket flushes first, and a session's start and
#: close merge anyway; so it only bounds what a foreign program sees after a kill.
DEFAULT_MERGE_INTERVAL: Final = 60.0

# Frames at which the journal and the batch go into DuckDB together, however young. A
# merge costs a fixed 4-7 ms (cold) plus ~12 us a frame, so larger merges are cheaper per
# frame, but the relay waits for the GIL while the writer's thread converts them: with
# every batch through the journal, 2,000-frame merges gave p99 added latency of 15-29 ms
# at 50-75 voice sessions, 1,000-frame ones 4.5 ms at 50 (5-9 ms before the journal).
_MERGE_ROWS: Final = 1_000

# A batch this large goes to DuckDB at once: the journal saves a DuckDB statement's fixed
# cost (2-5 ms cold) but costs ~3 us a frame to encode, which is no gain from about
# 300 frames a batch (~40 voice sessions) on.
_DIRECT_ROWS: Final = 200

# A batch also ends when its payloads and audio reach this many bytes, so that a burst of
# 16 MiB frames does not pile up in memory before it reaches the disk.
_MAX_BATCH_BYTES: Final = 32 << 20


#: Disk space the writer holds in reserve (``<log>.rtrec-reserve``), bytes. It bounds what
#: the writer accepts and has not written yet (estimated at twice the frames' text), and
#: a full disk releases it, so that everything accepted (and so forwarded) still reaches
#: the journal: docs/recorder.md, "When the disk fills".
DEFAULT_DISK_RESERVE: Final = 64 << 20


def _estimate(message: LogMessage | _Flush | _Stop) -> int:
    """Bytes ``message`` may take in the journal: twice its text (UTF-8 and JSON escapes
    of ordinary text stay below that), plus the fields around it. Audio goes to FLAC."""
    if isinstance(message, FrameRecord):
        return 2 * (len(message.payload or "") + len(message.payload_bin or b"")) + 512
    if isinstance(message, SessionRecord):
        return 2 * (len(message.request_headers) + len(message.request_path)) + 2048
    if isinstance(message, SessionClose):
        return 2 * len(message.close_reason or "") + 512
    return 0


class _Reserve:
    """Disk space set aside: a file of ``size`` allocated bytes, deleted to free them."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        if not size:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise LogDiskFull(
                f"disk full: cannot set {size / 2**20:g} MiB aside beside {path.parent} "
                f"for the frames in flight ({exc.strerror or exc}); free space, or record "
                "with a smaller --disk-reserve"
            ) from None
        os.close(fd)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


class LogProtocolError(RtrecError, ValueError):
    """Messages sent to the writer out of order (a bug in the sender, not in the data).

    Per session the order is: ``SessionRecord``, then ``FrameRecord`` s with increasing
    ``seq``, each one with ``audio`` followed by its ``AudioChunk`` (also when it has no
    samples; sizes matching, offsets contiguous per stream and sample rate), then
    ``SessionClose``.
    """


@attrs.define
class _SessionOrder:
    last_seq: int = -1
    pending: AudioSpan | None = None
    pending_seq: int = -1
    ends: dict[tuple[Stream, int], int] = attrs.Factory(dict)
    closed: bool = False


@attrs.define
class _Tracker:
    """Checks the per-session order of messages before they are queued (sans-IO)."""

    sessions: dict[str, _SessionOrder] = attrs.Factory(dict)

    def check(self, message: LogMessage) -> None:
        """Raise ``LogProtocolError`` if ``message`` cannot come next; change nothing."""
        sid = message.session_id
        state = self.sessions.get(sid)
        if isinstance(message, SessionRecord):
            if state is not None:
                raise LogProtocolError(f"session {sid} was already started")
            return
        if state is None:
            raise LogProtocolError(
                f"{type(message).__name__} for session {sid} before its SessionRecord"
            )
        if state.closed:
            raise LogProtocolError(f"{type(message).__name__} for session {sid} after its close")
        if isinstance(message, AudioChunk):
            span = state.pending
            if span is None:
                raise LogProtocolError(
                    f"AudioChunk for session {sid} without a FrameRecord with audio before it"
                )
            if (message.stream, message.sample_rate) != (span.stream, span.sample_rate) or len(
                message.pcm
            ) != 2 * span.samples:
                raise LogProtocolError(
                    f"AudioChunk ({message.stream}, {message.sample_rate} Hz, "
                    f"{len(message.pcm)} bytes) does not match the audio of frame "
                    f"{sid}/{state.pending_seq} ({span.stream}, {span.sample_rate} Hz, "
                    f"{span.samples} samples = {2 * span.samples} bytes)"
                )
            return
        if state.pending is not None:
            raise LogProtocolError(
                f"frame {sid}/{state.pending_seq} has audio but no AudioChunk followed it"
            )
        if isinstance(message, FrameRecord):
            if message.seq <= state.last_seq:
                raise LogProtocolError(
                    f"frame {sid}/{message.seq} after seq {state.last_seq}: seq must increase"
                )
            span = message.audio
            if span is not None:
                end = state.ends.get((span.stream, span.sample_rate), 0)
                if span.offset != end:
                    raise LogProtocolError(
                        f"frame {sid}/{message.seq}: audio offset {span.offset} but the "
                        f"{span.stream} stream at {span.sample_rate} Hz holds {end} samples"
                    )

    def apply(self, message: LogMessage) -> None:
        """Advance the state past a message that ``check`` accepted and that was queued."""
        sid = message.session_id
        if isinstance(message, SessionRecord):
            self.sessions[sid] = _SessionOrder()
            return
        state = self.sessions[sid]
        if isinstance(message, FrameRecord):
            state.last_seq = message.seq
            span = message.audio
            if span is not None:
                state.ends[(span.stream, span.sample_rate)] = span.offset + span.samples
                state.pending, state.pending_seq = span, message.seq
        elif isinstance(message, AudioChunk):
            state.pending = None
        else:
            state.closed = True


@attrs.frozen
class WriterStatistics:
    """A snapshot of the writer's progress."""

    #: messages queued for the writer's thread
    queued: int
    #: messages committed (their rows in DuckDB, their audio in the FLAC encoder)
    committed: int
    #: transactions committed
    commits: int
    #: ``time.monotonic()`` when the writer's thread began the latest batch (None: none yet)
    last_batch_at: float | None
    #: the longest a batch took on disk (FLAC + transaction), seconds
    slowest_batch: float


@attrs.define(eq=False)
class _Flush:
    done: trio.Event = attrs.Factory(trio.Event)


class _Stop:
    pass


@attrs.define(eq=False)
class _Batch:
    messages: list[LogMessage] = attrs.Factory(list)
    flushes: list[_Flush] = attrs.Factory(list)
    size: int = 0
    #: what its messages may take in the journal (``_estimate``)
    estimate: int = 0
    stop: bool = False

    def add(self, item: LogMessage | _Flush | _Stop) -> None:
        self.estimate += _estimate(item)
        if isinstance(item, _Flush):
            self.flushes.append(item)
        elif isinstance(item, _Stop):
            self.stop = True
        else:
            self.messages.append(item)
            if isinstance(item, AudioChunk):
                self.size += len(item.pcm)
            elif isinstance(item, FrameRecord):
                self.size += len(item.payload or "") + len(item.payload_bin or b"")

    @property
    def urgent(self) -> bool:
        return bool(self.flushes) or self.stop or self.size >= _MAX_BATCH_BYTES


@attrs.define
class _StreamRow:
    session_id: str
    stream: Stream
    sample_rate: int
    path: str
    frames: int = 0
    sha256: str | None = None


class _AudioRuns:
    """A batch's audio, gathered per stream so that each stream's encoder gets one call.

    A chunk that does not follow the previous one of its stream ends that stream's run
    (its ``write`` then says what is wrong with the offsets).
    """

    def __init__(self) -> None:
        # writer -> (offset of the run's first sample, the run's chunks, the next offset)
        self.runs: dict[StreamWriter, tuple[int, list[bytes], int]] = {}

    def add(self, writer: StreamWriter, pcm: bytes, offset: int) -> None:
        run = self.runs.get(writer)
        if run is not None and run[2] != offset:
            self.write([writer])
            run = None
        if run is None:
            self.runs[writer] = (offset, [pcm], offset + len(pcm) // 2)
        else:
            run[1].append(pcm)
            self.runs[writer] = (run[0], run[1], offset + len(pcm) // 2)

    def write(self, writers: Iterable[StreamWriter]) -> None:
        """Hand the runs of ``writers`` to their encoders."""
        for writer in writers:
            run = self.runs.pop(writer, None)
            if run is not None:
                offset, chunks, _ = run
                writer.write(chunks[0] if len(chunks) == 1 else b"".join(chunks), offset)

    def write_all(self) -> list[StreamWriter]:
        """Hand every run to its encoder; the writers that got samples in this batch."""
        writers = list(self.runs)
        self.write(writers)
        return writers


class _Sink:
    """The blocking side: the DuckDB connection and the open FLAC files.

    Only the writer's thread calls it, one call at a time.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        db_path: Path,
        audio_dir: Path,
        *,
        merge_interval: float = DEFAULT_MERGE_INTERVAL,
        disk_reserve: int = 0,
        memory: MemoryLimit | None = None,
    ) -> None:
        self.con = con
        self.memory = memory
        self.db_path = db_path
        self.audio_dir = audio_dir
        self.reserve = _Reserve(reserve_path(db_path), disk_reserve)
        # where small batches of plain frames are committed (see journal.py)
        self.journal = Journal(db_path)
        self.merge_interval = merge_interval
        self.open_sessions: set[str] = set()
        self.streams: dict[str, dict[tuple[Stream, int], StreamWriter]] = {}
        self.pending: dict[str, AudioSpan] = {}
        # Frames whose AudioChunk is still in the channel when a batch ends wait for it, so
        # that no committed frame ever lacks its audio (a kill would make that permanent).
        self.held: dict[str, FrameRecord] = {}
        self.unsaved: list[SessionRecord] = []

    def _writer_for(self, sid: str, span: AudioSpan, created: list[_StreamRow]) -> StreamWriter:
        streams = self.streams.setdefault(sid, {})
        key = (span.stream, span.sample_rate)
        writer = streams.get(key)
        if writer is None:
            first = not any(stream == span.stream for stream, _ in streams)
            path = self.audio_dir / sid / stream_filename(span.stream, span.sample_rate, first)
            writer = streams[key] = StreamWriter(path, span.sample_rate)
            created.append(
                _StreamRow(sid, span.stream, span.sample_rate, stored_path(self.db_path, path))
            )
        return writer

    def _finish(self, sid: str) -> list[_StreamRow]:
        finished = []
        for (stream, rate), writer in sorted(self.streams.pop(sid, {}).items()):
            writer.close()
            finished.append(
                _StreamRow(
                    sid,
                    stream,
                    rate,
                    stored_path(self.db_path, writer.path),
                    writer.frames,
                    sha256_file(writer.path),
                )
            )
        return finished

    def write_batch(self, messages: Sequence[LogMessage], *, merge: bool = False) -> None:
        """Write one batch: audio to the FLAC files, then commit its rows.

        Plain frames are committed to the journal, and the journal reaches DuckDB when it
        is due, when ``merge`` asks (a flush), or with a batch that starts or closes a
        session (one transaction).
        """
        started: list[SessionRecord] = []
        self.unsaved = started  # rows of this batch that a failure would roll back
        frames: list[FrameRecord] = []
        created: list[_StreamRow] = []
        closes: list[SessionClose] = []
        finished: list[_StreamRow] = []
        audio = _AudioRuns()
        for m in messages:
            if isinstance(m, FrameRecord):
                if m.audio is not None:
                    self.pending[m.session_id] = m.audio
                    self.held[m.session_id] = m
                else:
                    frames.append(m)
            elif isinstance(m, AudioChunk):
                span = self.pending.pop(m.session_id)
                frames.append(self.held.pop(m.session_id))
                if not m.pcm:
                    continue  # no file for a stream until it has samples
                audio.add(self._writer_for(m.session_id, span, created), m.pcm, span.offset)
            elif isinstance(m, SessionRecord):
                started.append(m)
                self.open_sessions.add(m.session_id)
            else:
                closes.append(m)
                audio.write(self.streams.get(m.session_id, {}).values())
                finished.extend(self._finish(m.session_id))
                self.open_sessions.discard(m.session_id)
                if self.memory is not None:
                    self.memory.session_closed(m.session_id)
        for writer in audio.write_all():
            writer.sync_tail()  # before the commit: committed audio must survive a kill
        self._commit(started, frames, created, closes, finished, merge=merge)

    def _commit(
        self,
        started: list[SessionRecord],
        frames: list[FrameRecord],
        created: list[_StreamRow],
        closes: list[SessionClose],
        finished: list[_StreamRow],
        *,
        merge: bool,
    ) -> None:
        con = self.con
        journal = self.journal
        if not (started or created or closes or finished):
            if not (
                merge
                or len(frames) >= _DIRECT_ROWS
                or len(journal.frames) + len(frames) >= _MERGE_ROWS
                or journal.due(self.merge_interval)
            ):
                journal.append(frames)  # the usual batch at light load (see journal.py)
                return
            # one statement for the journal and this batch, committed on its own
            if journal.frames or frames:
                self._insert_frames(journal.frames + frames)
            journal.merged()
            return
        rows = journal.frames + frames
        con.execute("BEGIN")
        try:
            if started:
                self._insert_sessions(started)
            if rows:
                self._insert_frames(rows)
            if created:
                con.executemany(
                    "INSERT INTO audio_streams VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        [r.session_id, r.stream.value, r.sample_rate, r.path, 0, None]
                        for r in created
                    ],
                )
            if closes:
                con.executemany(
                    "UPDATE sessions SET ended_at = ?, status = ?, close_code = ?, "
                    "close_reason = ?, closed_by = ? WHERE session_id = ?",
                    [
                        [
                            timestamp(c.ended_wall_ns),
                            c.status.value,
                            c.close_code,
                            c.close_reason,
                            None if c.closed_by is None else c.closed_by.value,
                            c.session_id,
                        ]
                        for c in closes
                    ],
                )
            self._update_streams(finished)
            con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        journal.merged()

    def _insert_sessions(
        self,
        sessions: list[SessionRecord],
        status: SessionStatus = SessionStatus.OPEN,
        reason: str | None = None,
    ) -> None:
        if not sessions:
            return
        ended = timestamp(time.time_ns()) if status is SessionStatus.FAILED else None
        self.con.executemany(
            "INSERT INTO sessions (session_id, started_at, ended_at, upstream_url, request_path, "
            "model, protocol, request_headers, subprotocol, status, close_reason, tags, "
            "rtrec_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # after a failure, rows that did get committed stay as they are
            + (" ON CONFLICT DO NOTHING" if status is SessionStatus.FAILED else ""),
            [
                [
                    s.session_id,
                    timestamp(s.started_wall_ns),
                    ended,
                    s.upstream_url,
                    s.request_path,
                    s.model,
                    s.protocol,
                    s.request_headers,
                    s.subprotocol,
                    status.value,
                    reason,
                    s.tags,
                    s.rtrec_version,
                ]
                for s in sessions
            ],
        )

    def _insert_frames(self, frames: list[FrameRecord]) -> None:
        if self.memory is not None:
            self.memory.before_append(frames)
        rtrec_batch = frames_to_arrow(frames)  # noqa: F841 (DuckDB scans it by its name)
        self.con.execute("INSERT INTO events BY NAME SELECT * FROM rtrec_batch")

    def _update_streams(self, rows: list[_StreamRow]) -> None:
        if rows:
            self.con.executemany(
                "UPDATE audio_streams SET frames = ?, sha256 = ? "
                "WHERE session_id = ? AND stream = ? AND sample_rate = ?",
                [[r.frames, r.sha256, r.session_id, r.stream.value, r.sample_rate] for r in rows],
            )

    def _rollback(self) -> None:
        # no transaction open (BEGIN itself failed) means nothing to undo
        with contextlib.suppress(duckdb.Error):
            self.con.execute("ROLLBACK")

    def finalise_open(self) -> None:
        """Close every FLAC still open and record it; sessions stay ``open``.

        A frame still waiting for its AudioChunk (the sender stopped between the two) is
        stored without it: a row that cannot be rebuilt beats a frame silently dropped.
        """
        finished = [row for sid in list(self.streams) for row in self._finish(sid)]
        orphans = list(self.held.values())
        self.held.clear()
        rows = self.journal.frames + orphans
        self.con.execute("BEGIN")
        try:
            if rows:
                self._insert_frames(rows)
            self._update_streams(finished)
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.journal.merged()

    def salvage(self, messages: Sequence[LogMessage], reason: str) -> int:
        """After a full disk: put everything accepted and not committed into the journal.

        The reserve is released first, so the journal has room for it: the frames (audio
        spans kept; their samples may be lost with the FLAC files), the session rows DuckDB
        did not take, and a close (``failed``, with ``reason``) for every open session.
        ``rtrec repair`` moves it all into DuckDB once space is freed.

        Returns:
            the number of frames that could not be saved even so (0 normally).
        """
        self.reserve.release()
        for writers in self.streams.values():
            for writer in writers.values():
                with contextlib.suppress(Exception):
                    writer.close()
        self.streams.clear()
        frames = {(f.session_id, f.seq): f for f in self.held.values()}
        self.held.clear()
        self.pending.clear()
        sessions = {r.session_id: r for r in self.unsaved}
        closes: dict[str, SessionClose] = {}
        for m in messages:
            if isinstance(m, FrameRecord):
                frames[(m.session_id, m.seq)] = m
            elif isinstance(m, SessionRecord):
                sessions[m.session_id] = m
                self.open_sessions.add(m.session_id)
            elif isinstance(m, SessionClose):
                closes[m.session_id] = m
                self.open_sessions.discard(m.session_id)
        now = time.time_ns()
        for sid in sorted(self.open_sessions):
            closes[sid] = SessionClose(
                session_id=sid,
                ended_wall_ns=now,
                status=SessionStatus.FAILED,
                close_code=1011,
                close_reason=reason,
                closed_by=Direction.RECORDER,
            )
        self.open_sessions.clear()
        ordered = [frames[key] for key in sorted(frames)]
        try:
            self.journal.append(ordered)
            self.journal.append_lifecycle(list(sessions.values()), list(closes.values()))
        except JournalError:
            _log.exception("even the released reserve did not make room for the journal")
            return len(ordered)
        return 0

    def mark_failed(self, reason: str) -> None:
        """Best effort after a failure: close the FLACs, mark this writer's sessions failed.

        Sessions whose row was in the failed batch get one now, so the log still says that
        they were attempted and why their recording failed.
        """
        self._rollback()
        for writers in self.streams.values():
            for writer in writers.values():
                writer.close()
        self.streams.clear()
        self.con.execute("BEGIN")
        try:
            self._insert_sessions(self.unsaved, SessionStatus.FAILED, reason)
            # what the journal committed goes into DuckDB too; if that fails, the next
            # open replays the journal
            if self.journal.frames:
                self._insert_frames(self.journal.frames)
            if self.open_sessions:  # executemany refuses an empty list
                self.con.executemany(
                    "UPDATE sessions SET status = ?, close_reason = ?, ended_at = now() "
                    "WHERE session_id = ? AND status = ?",
                    [
                        [SessionStatus.FAILED.value, reason, sid, SessionStatus.OPEN.value]
                        for sid in sorted(self.open_sessions)
                    ],
                )
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.journal.merged()


class LogWriter:
    """Appends messages to a log; get one from ``open_log_writer``.

    The writing happens in one thread of the writer's own (DuckDB and libsndfile block):
    it sleeps until a batch is due, takes everything queued at once, writes it, and only
    calls into trio when someone waits on it (a sender for room, a flush, a failure, the
    session-closed hook). Measured at one voice session, that costs the relay's event loop
    nothing per batch, where a collector task plus ``trio.to_thread`` per batch cost about
    2 ms of CPU per second (docs/bench_recorder.md).

    Attributes:
        failed: set once a write failed; ``failure`` then says what failed.
        failure: None while all is well; then the cause, e.g. ``"disk full: [Errno 28] ..."``
            (the proxy closes sessions with this, then " - rtrec stopped recording").
        report: what opening the log did (created, migrated, sessions recovered).
        db_path: the log file.
        audio_dir: where this writer puts FLAC files.
    """

    def __init__(
        self,
        sink: _Sink,
        report: OpenReport,
        *,
        commit_interval: float,
        queue_size: int,
        max_batch: int,
        on_session_closed: SessionClosedHook | None = None,
    ) -> None:
        # Accepted and not yet written, in ``_estimate`` bytes: at most the reserve (one
        # larger message is let through alone). Two counters, one per thread.
        self._budget = sink.reserve.size
        self._offered_bytes = 0  # trio's thread
        self._written_bytes = 0  # the writer's thread
        self.failed = trio.Event()
        self.failure: str | None = None
        self.report = report
        self.db_path = sink.db_path
        self.audio_dir = sink.audio_dir
        self._sink = sink
        self._interval = commit_interval
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._tracker = _Tracker()
        self._token = trio.lowlevel.current_trio_token()
        # Shared with the thread. deque appends and pops are atomic; the flags below are
        # plain attributes whose single reads and writes are too (the GIL orders them).
        self._queue: collections.deque[LogMessage | _Flush | _Stop] = collections.deque()
        # how trio wakes the thread, never waiting itself (src/rtrec/store/doorbell.py)
        self._bell = Doorbell()
        self._thread_idle = False  # the thread waits for a first message, without timeout
        self._batch_room = max_batch  # messages that would fill the thread's open batch
        self._room_wanted = False  # a sender waits for room in the queue
        self._progress_wanted = False  # someone waits in wait_committed
        self._closing = False  # _Stop is queued: nothing may follow it
        # trio side only
        self._room: trio.Event | None = None
        self._progress = trio.Event()
        self._done = trio.Event()
        # flushes not answered yet: a failure must answer those still queued too
        self._flushes: set[_Flush] = set()
        # written by the thread, read by statistics()
        self._committed = 0
        self._commits = 0
        self._last_batch_at: float | None = None
        self._slowest_batch = 0.0
        # sessions whose close is committed, for the hook; unbounded: the thread never waits
        self._on_closed = on_session_closed
        self._closed_send, self._closed_receive = trio.open_memory_channel[str](math.inf)

    async def send(self, message: LogMessage) -> None:
        """Queue one message; waits while the queue is full (back-pressure).

        The messages of one session must come from one task at a time, in order: hold a
        per-session lock from assigning ``seq`` until the frame (and its AudioChunk) is sent.

        Raises:
            RecordingFailed: the writer failed, or is closed.
            LogProtocolError: the message cannot come next for its session (a bug).
        """
        while not self.offer(message):
            await self._wait_for_room()

    def offer(self, *messages: LogMessage) -> bool:
        """Queue ``messages`` now, all of them, if the queue has room for all; else none.

        The relay's fast path: no checkpoint, no task switch. When it returns False, the
        caller waits with ``send`` (back-pressure), keeping the same order. (A message
        refused with ``LogProtocolError``, a sender bug, leaves those before it queued.)

        Raises:
            RecordingFailed: the writer failed, or is closed.
            LogProtocolError: a message cannot come next for its session (a bug).
        """
        self._check_open()
        queue = self._queue
        if len(queue) + len(messages) > self._queue_size:
            return False
        size = 0
        if self._budget:
            size = sum(map(_estimate, messages))
            pending = self._offered_bytes - self._written_bytes
            if pending and pending + size > self._budget:
                return False
        tracker = self._tracker
        for message in messages:
            tracker.check(message)
            queue.append(message)
            tracker.apply(message)
        self._offered_bytes += size
        if self._thread_idle or len(queue) >= self._batch_room:
            self._wake_thread()
        return True

    def _check_open(self) -> None:
        if self.failure is not None:
            raise RecordingFailed(self.failure)
        if self._closing:
            raise RecordingFailed("the log writer is closed")

    def _wake_thread(self) -> None:
        self._bell.ring()

    async def _wait_for_room(self) -> None:
        if self._room is None:
            self._room = trio.Event()
        room = self._room
        self._room_wanted = True
        self._wake_thread()  # it takes the queue now, however young the batch
        await room.wait()

    async def flush(self) -> None:
        """Return once everything sent before is committed to DuckDB and its audio written.

        A frame with audio is committed together with its AudioChunk: if the chunk was not
        sent yet, that one frame is not committed by this flush.

        Raises:
            RecordingFailed: the writer failed before getting there.
        """
        self._check_open()
        marker = _Flush()
        self._flushes.add(marker)
        try:
            self._queue.append(marker)
            self._wake_thread()
            await marker.done.wait()
        finally:
            self._flushes.discard(marker)
        if self.failure is not None:
            raise RecordingFailed(self.failure)

    async def settle(self) -> None:
        """``flush``, for a reader about to query the log: a failed writer is no error here
        (the reader gets what DuckDB holds; the next open replays the journal)."""
        with contextlib.suppress(RecordingFailed):
            await self.flush()

    async def wait_committed(self, messages: int) -> None:
        """Wait, without forcing a commit, until ``messages`` messages in all are committed.

        Raises:
            RecordingFailed: the writer failed (or stopped) first.
        """
        while self._committed < messages:
            if self.failure is not None:
                raise RecordingFailed(self.failure)
            if self._done.is_set():
                raise RecordingFailed("the log writer is closed")
            # the flag first: a batch committed after it is seen wakes us
            self._progress_wanted = True
            if self._committed >= messages:
                return
            await self._progress.wait()

    def statistics(self) -> WriterStatistics:
        """How far the writer has got."""
        return WriterStatistics(
            queued=len(self._queue),
            committed=self._committed,
            commits=self._commits,
            last_batch_at=self._last_batch_at,
            slowest_batch=self._slowest_batch,
        )

    # -- the writer's thread ------------------------------------------------------------

    def _run_thread(self) -> None:
        """The thread's body: batches until ``_Stop`` (or a failure), then finalise."""
        stopped = False
        try:
            since: float | None = None
            while not stopped:
                batch = self._take(since)
                since = time.monotonic()
                stopped = batch.stop
                if self._room_wanted:  # the queue was just emptied into the batch
                    self._room_wanted = False
                    self._token.run_sync_soon(self._open_room)
                if self.failure is None and (batch.messages or batch.flushes):
                    self._write(batch)
                    if self._room_wanted:  # bytes written: room for senders waiting on them
                        self._room_wanted = False
                        self._token.run_sync_soon(self._open_room)
                if batch.flushes:
                    self._token.run_sync_soon(_answer, batch.flushes)
                if self.failure is not None:
                    break
            if self.failure is None:
                try:
                    self._sink.finalise_open()
                except Exception as exc:
                    self._fail(exc)
        finally:
            # Should the thread die of a bug, nobody may wait for it forever: senders get
            # RecordingFailed and leaving the writer's block does not hang.
            if not stopped and self.failure is None:
                self.failure = "the log writer stopped unexpectedly"
            self._token.run_sync_soon(self._finished)

    def _take(self, since: float | None) -> _Batch:
        """Wait for the next batch and take it: due, full, or urgent (a flush, the stop).

        The thread ticks every ``commit_interval`` while messages keep coming and takes
        what each tick finds, so a message waits one interval at most and a steady stream
        costs one wake-up per batch, with nothing asked of the senders. A tick that finds
        nothing puts the thread to sleep until a sender queues something.

        ``since``: when the previous batch was taken (the last tick).
        """
        batch = _Batch()
        queue = self._queue
        # the first batch of all starts with an empty tick
        deadline = time.monotonic() if since is None else since + self._interval
        while True:
            while queue and not batch.urgent and len(batch.messages) < self._max_batch:
                batch.add(queue.popleft())
            if batch.urgent or len(batch.messages) >= self._max_batch:
                return batch
            if self._room_wanted and batch.messages and self._budget:
                return batch  # senders wait for the bytes of this batch to be written
            if self._room_wanted:  # the queue is empty now: let the senders go on
                self._room_wanted = False
                self._token.run_sync_soon(self._open_room)
            now = time.monotonic()
            if now < deadline:
                # a sender wakes us early once the queue holds what fills the batch
                self._batch_room = self._max_batch - len(batch.messages)
                self._bell.wait(deadline - now)
                continue
            if batch.messages:
                return batch
            # An empty tick: sleep until a sender queues something. The flag goes up
            # before the last look at the queue, so whatever is queued after that look
            # finds it up and wakes us.
            self._thread_idle = True
            if not queue:
                self._bell.wait()
            self._thread_idle = False
            deadline = time.monotonic() + self._interval

    def _write(self, batch: _Batch) -> None:
        self._last_batch_at = started = time.monotonic()
        try:
            # a flush also makes everything committed visible in DuckDB (a reader's query
            # on the control socket flushes first)
            self._sink.write_batch(batch.messages, merge=bool(batch.flushes))
        except Exception as exc:
            if is_disk_full(exc):
                self._disk_full(exc, batch)
            else:
                self._fail(exc)
            return
        self._written_bytes += batch.estimate
        self._slowest_batch = max(self._slowest_batch, time.monotonic() - started)
        self._committed += len(batch.messages)
        self._commits += bool(batch.messages)
        closed = (
            [m.session_id for m in batch.messages if isinstance(m, SessionClose)]
            if self._on_closed is not None
            else []
        )
        if closed or self._progress_wanted:
            self._progress_wanted = False
            self._token.run_sync_soon(self._after_batch, closed)

    def _disk_full(self, exc: Exception, batch: _Batch) -> None:
        """The disk is full: stop accepting, then journal all that was accepted."""
        self.failure = disk_full_reason(exc)
        # Once trio's thread has run this, no ``offer`` is half done: the queue holds
        # everything ever accepted, and every later offer raises.
        caught_up = threading.Event()

        def stop_senders() -> None:
            self._wake_all()
            caught_up.set()

        self._token.run_sync_soon(stop_senders)
        caught_up.wait(timeout=10)
        rest: list[LogMessage] = []
        flushes: list[_Flush] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Flush):
                flushes.append(item)
            elif not isinstance(item, _Stop):
                rest.append(item)
        lost = self._sink.salvage([*batch.messages, *rest], self.failure)
        if lost:
            self.failure += f"; {lost} frames could not be saved"
        _log.error("%s: recording stopped: %s", self.db_path, self.failure)
        if flushes:
            self._token.run_sync_soon(_answer, flushes)

    def _fail(self, exc: Exception) -> None:
        self.failure = describe_error(exc)
        # senders learn at once (offer checks ``failure``); waiting ones are woken
        self._token.run_sync_soon(self._wake_all)
        try:
            self._sink.mark_failed(self.failure)
        except Exception as again:
            # The disk refuses even that; the next open marks these sessions interrupted.
            self.failure += f" (marking the sessions failed failed too: {again})"

    # -- called in trio's thread by the writer's thread ----------------------------------

    def _open_room(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            room.set()

    def _after_batch(self, closed: list[str]) -> None:
        for session_id in closed:
            self._closed_send.send_nowait(session_id)
        self._progress.set()
        self._progress = trio.Event()

    def _wake_all(self) -> None:
        if self.failure is not None:
            self.failed.set()
        self._open_room()
        self._progress.set()
        self._progress = trio.Event()
        for marker in self._flushes:
            marker.done.set()

    def _finished(self) -> None:
        self._wake_all()
        self._closed_send.close()
        self._done.set()

    # -- trio side -----------------------------------------------------------------------

    async def _run_closed_hook(self, hook: SessionClosedHook, done: trio.Event) -> None:
        # Its own limiter: the hook runs beside the writer, never in its way, and a
        # failing hook is logged and forgotten: the session is recorded all the same.
        limiter = trio.CapacityLimiter(1)
        # Shielded: a cancelled block still commits what was queued (``_stop``), and the
        # sessions it closes are handed over here; this ends when the thread has finished
        # and ``_finished`` closed the channel.
        try:
            with trio.CancelScope(shield=True):
                async with self._closed_receive:
                    async for session_id in self._closed_receive:
                        try:
                            await trio.to_thread.run_sync(
                                _call_hook, hook, self._sink.con, session_id, limiter=limiter
                            )
                        except Exception:
                            _log.exception(
                                "session %s is recorded, but %s failed on it; "
                                "`rtrec index` will index it later",
                                session_id,
                                getattr(hook, "__name__", repr(hook)),
                            )
        finally:
            done.set()

    async def _stop(self) -> None:
        """Queue the stop and wait until the thread has written everything before it."""
        if not self._closing:
            self._closing = True
            self._queue.append(_Stop())
            self._wake_thread()
        await self._done.wait()


def _answer(flushes: list[_Flush]) -> None:
    for marker in flushes:
        marker.done.set()


def _call_hook(hook: SessionClosedHook, con: duckdb.DuckDBPyConnection, session_id: str) -> None:
    cursor = con.cursor()
    try:
        hook(cursor, session_id)
    finally:
        cursor.close()


def _open_for_writing(
    db_path: Path, audio_dir: Path | None, memory_limit: int | None
) -> tuple[duckdb.DuckDBPyConnection, OpenReport, MemoryLimit | None]:
    """``open_log``, then the writer's DuckDB settings (blocking: run it in a thread)."""
    con, report = open_log(db_path, audio_dir, version=__version__)
    try:
        memory = None
        if memory_limit is not None:
            con.execute(f"SET memory_limit = '{memory_limit}B'")
            memory = MemoryLimit(con, memory_limit)
        # One DuckDB thread: the writer's batches are small (a second thread costs more in
        # hand-offs than it saves, ~10% of the writer's CPU here), and a heavy query from a
        # reader on the control socket must not take the relay's second core.
        con.execute("SET threads = 1")
    except BaseException:
        con.close()
        raise
    return con, report, memory


@asynccontextmanager
async def open_log_writer(
    db_path: Path,
    audio_dir: Path | None = None,
    *,
    commit_interval: float = 0.2,
    merge_interval: float = DEFAULT_MERGE_INTERVAL,
    queue_size: int = 1024,
    max_batch: int = 2000,
    serve_queries: bool = True,
    on_session_closed: SessionClosedHook | None = None,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    disk_reserve: int = DEFAULT_DISK_RESERVE,
) -> AsyncIterator[LogWriter]:
    """Open a log for writing and run its writer task for the duration of the block.

    Opening creates or migrates the log and recovers sessions a crashed writer left open
    (see ``src/rtrec/store/log.py``). Leaving the block drains the queue, commits, and finalises
    every open session's audio; sessions not closed with ``SessionClose`` stay ``open``, so
    the next open marks them interrupted.

    Args:
        db_path: the DuckDB file (created if missing).
        audio_dir: where FLAC files go (default: the log's recorded one, else
            ``<db stem>.audio`` beside it).
        commit_interval: the longest a message waits before its batch is committed (to
            the journal or DuckDB), seconds.
        merge_interval: the longest a committed frame stays in the journal before it is
            moved into DuckDB, seconds (src/rtrec/store/journal.py).
        queue_size: messages the channel holds before ``send`` waits.
        max_batch: messages per transaction at most.
        serve_queries: answer read queries from other processes on the log's control
            socket while the writer holds the file (see src/rtrec/store/control.py).
        on_session_closed: called for each session once its ``SessionClose`` is committed,
            in a worker thread beside the writer's thread, with a cursor of the writer's
            connection and the session id (the CLI indexes the session with it). An
            exception is logged and the session left as recorded. Leaving the block waits
            for the calls still due.
        memory_limit: DuckDB's ``memory_limit`` for the writer's database (its buffer
            pool, which also serves the control socket's queries; larger ones spill to
            disk), e.g. ``"256MB"``, raised ahead of very large frames (duckdb_memory.py);
            None leaves DuckDB's default, 80% of the RAM, and then the cache of the growing
            log grows with it.
        disk_reserve: bytes of disk set aside beside the log, and the most the writer
            accepts before it has written it (docs/recorder.md, "When the disk fills");
            0 sets nothing aside and bounds the queue by ``queue_size`` only.

    Raises:
        LogInUse, NotAnRtrecLog, LogTooNew: the log cannot be opened for writing.
        LogDiskFull: there is no room for the reserve.
    """
    for name, value in (("commit_interval", commit_interval), ("merge_interval", merge_interval)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number of seconds, not {value}")
    if disk_reserve < 0:
        raise ValueError(f"disk_reserve must be 0 or more bytes, not {disk_reserve}")
    if queue_size < 1 or max_batch < 1:
        raise ValueError("queue_size and max_batch must be at least 1")
    limit = None if memory_limit is None else parse_size(memory_limit)
    db_path = Path(db_path)
    con, report, memory = await trio.to_thread.run_sync(
        lambda: _open_for_writing(db_path, audio_dir, limit)
    )
    try:
        sink = await trio.to_thread.run_sync(
            lambda: _Sink(
                con,
                db_path,
                report.audio_dir,
                merge_interval=merge_interval,
                disk_reserve=disk_reserve,
                memory=memory,
            )
        )
    except BaseException:
        con.close()
        raise
    writer = LogWriter(
        sink,
        report,
        commit_interval=commit_interval,
        queue_size=queue_size,
        max_batch=max_batch,
        on_session_closed=on_session_closed,
    )
    # Daemon: should the trio side never reach ``_stop`` (it always does, shielded, when
    # the block is left), the thread must not keep the process alive.
    thread = threading.Thread(target=writer._run_thread, name="rtrec log writer", daemon=True)
    thread.start()
    try:
        async with trio.open_nursery() as nursery:
            hooked = trio.Event()
            try:
                if on_session_closed is not None:
                    nursery.start_soon(writer._run_closed_hook, on_session_closed, hooked)
                else:
                    hooked.set()
                if serve_queries:
                    await nursery.start(
                        partial(serve_control, db_path, con, before_query=writer.settle)
                    )
                yield writer
            finally:
                # also when the control socket did not start: the hook's task (shielded)
                # ends only once the thread has stopped
                with trio.CancelScope(shield=True):
                    await writer._stop()
                    await hooked.wait()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps what the caller's block raised; give it back as it was raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            # again, for a nursery that failed before the block (the control socket
            # could not start): the thread must still drain and end
            await writer._stop()
            await trio.to_thread.run_sync(thread.join)
            await trio.to_thread.run_sync(con.close)
            sink.journal.close()
            sink.reserve.release()
