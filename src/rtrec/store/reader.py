"""Reading a log, whether or not a recorder is writing it, and rebuilding frames byte for byte.

``open_log_reader(db_path)`` gives a ``LogReader`` whose queries go to the recorder's control
socket when one holds the log, and to the file, opened read-only for that one query, when
none does. Opening per query keeps the file free: a recorder started meanwhile gets its
lock, and the reader's next query goes through the new recorder's socket. A reader never
writes: frames a killed recorder left in its journal (src/rtrec/store/journal.py) are shown in
``events`` from the journal itself, until the next read-write open moves them in.

On top of it: ``read_sessions``, ``read_frames``, ``read_frame_columns`` (the same rows as
``FrameColumns``, what replay rebuilds a session from fastest), ``read_audio``, ``LogAudio``
(an ``AudioSource`` over the FLAC archive) and ``rebuild_frame``, which puts the base64
audio back into a payload and gives the exact text of the original WebSocket message.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import duckdb
import numpy as np
import pyarrow as pa
import soundfile as sf

from rtrec.schemas import g711
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import FrameKind, FrameRecord, Stream
from rtrec.store.audio import Samples, read_flac
from rtrec.store.control import ControlUnavailable, live_writer, query_socket
from rtrec.store.journal import journal_path, pending_journal, read_journal
from rtrec.store.log import (
    LogError,
    LogInUse,
    connect,
    default_audio_dir,
    read_meta,
    resolve_audio_path,
)
from rtrec.store.rows import (
    COLUMNS_SELECT,
    FRAME_COLUMNS,
    BadRows,
    frame_columns_from_arrow,
    frames_from_arrow,
    frames_to_arrow,
    in_seq_order,
)
from rtrec.store.sandbox import lock_down, reads_only

__all__ = [
    "AudioMissing",
    "AudioSource",
    "LogAudio",
    "LogReader",
    "SessionInfo",
    "SessionNotFound",
    "StreamInfo",
    "check_audio",
    "open_log_reader",
    "pick_session",
    "read_audio",
    "read_frame_columns",
    "read_frames",
    "read_sessions",
    "read_streams",
    "rebuild_frame",
    "resolve_session",
]

_BATCH_ROWS: Final = 8192
# What a sandboxed query on a live log may read (src/rtrec/store/sandbox.py).
_RELATIONS: Final = "SELECT table_name FROM information_schema.tables"
_log = logging.getLogger(__name__)


class SessionNotFound(LogError, LookupError):
    """No session (or more than one) matches the id or prefix given."""


class AudioMissing(LogError, LookupError):
    """The archive lacks samples a frame refers to (lost in a crash, or files removed).

    A LookupError, as ``rtrec.replay``'s ``AudioSource`` protocol asks of missing samples.
    """


class LogReader:
    """Read-only access to one log; get one from ``open_log_reader``.

    Attributes:
        db_path: the log file.
        live: whether the latest query was answered by a recorder holding the log.
    """

    def __init__(self, db_path: Path, *, sandboxed: bool = False) -> None:
        self.db_path = db_path
        self.live = False
        self.sandboxed = sandboxed
        self._audio_dir: Path | None = None
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_pending: pa.Table | None = None
        self._relations: set[str] | None = None  # a live log's tables and views, sandboxed

    @contextmanager
    def held(self) -> Iterator[LogReader]:
        """Answer the queries made inside from one read-only open of the file.

        Each query otherwise opens the file (and checks it is an rtrec log) for itself,
        which costs more than a small query. Holding it keeps a recorder from starting
        meanwhile, but a writer retries a held lock for 3 s, longer than a replay reads.
        With a recorder serving the log, queries go to its socket as usual.

        Raises:
            LogError: the log cannot be read (see ``batches``).
        """
        con, pending = None, None
        if self._held is None and live_writer(self.db_path) is None:
            try:
                con, pending = _connect_read_only(self.db_path, sandboxed=self.sandboxed)
            except LogInUse:
                if live_writer(self.db_path) is None:
                    raise
                # a recorder started since we asked: its socket answers the queries
        if con is None:
            yield self
            return
        try:
            read_meta(con, self.db_path)
            self._held, self._held_pending = con, pending
            yield self
        finally:
            self._held, self._held_pending = None, None
            con.close()

    @contextmanager
    def batches(self, sql: str, params: Sequence[Any] = ()) -> Iterator[pa.RecordBatchReader]:
        """Run a read query; yields an Arrow reader that streams its result in batches.

        Raises:
            LogError: the log cannot be read (see ``LogNotFound``, ``NotAnRtrecLog``, ...).
            QueryRefused: a recorder serves the log and rejected the query.
        """
        if self._held is not None:
            self.live = False
            with self._held.cursor() as cursor:  # one per query: results may overlap
                _show_pending(cursor, self._held_pending)
                yield cursor.sql(sql, params=list(params) or None).to_arrow_reader(_BATCH_ROWS)
            return
        for attempt in range(2):
            try:
                if self.sandboxed and self._relations is None:
                    # the recorder's connection cannot be locked down: check the query
                    with query_socket(self.db_path, _RELATIONS) as names:
                        self._relations = set(names.read_all().column(0).to_pylist())
                if self._relations is not None:
                    reads_only(sql, self._relations)
                with query_socket(self.db_path, sql, list(params)) as stream:
                    self.live = True
                    yield stream
                    return
            except ControlUnavailable:
                pass
            try:
                con, _ = _connect_read_only(self.db_path, sandboxed=self.sandboxed)
            except LogInUse:
                if attempt == 0:
                    continue  # a recorder started between our two tries: ask its socket
                raise
            try:
                read_meta(con, self.db_path)
                self.live = False
                yield con.sql(sql, params=list(params) or None).to_arrow_reader(_BATCH_ROWS)
                return
            finally:
                con.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read query and return the whole result."""
        with self.batches(sql, params) as batches:
            return batches.read_all()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query; the result as a list of dicts."""
        with self.batches(sql, params) as batches:
            return [row for batch in batches for row in batch.to_pylist()]

    @property
    def audio_dir(self) -> Path:
        """The audio directory recorded in the log (where new sessions' FLACs go)."""
        if self._audio_dir is None:
            found = self.rows("SELECT value FROM meta WHERE key = 'audio_dir'")
            self._audio_dir = (
                resolve_audio_path(self.db_path, found[0]["value"])
                if found
                else default_audio_dir(self.db_path)
            )
        return self._audio_dir

    def resolve(self, stored: str) -> Path:
        """A path as stored in ``audio_streams.path``, made usable."""
        return resolve_audio_path(self.db_path, stored)


def _pending_frames(db_path: Path) -> pa.Table | None:
    """The frames a stopped recorder left in its journal, as ``events`` rows (None: none).

    Reading never writes: the frames are shown beside the file's own rows, and the next
    read-write open of the log (``rtrec repair``, ``rtrec record``) moves them in.
    """
    if not pending_journal(db_path):
        return None
    path = journal_path(db_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _log.warning("%s: cannot read %s (%s); its frames are left out", db_path, path, exc)
        return None
    frames, _ = read_journal(data)
    return frames_to_arrow(frames) if frames else None


def _show_pending(con: duckdb.DuckDBPyConnection, pending: pa.Table | None) -> None:
    """Make ``events`` on ``con`` (a connection or a cursor: temporary views are each
    one's own) include the journal's frames not yet in the file."""
    if pending is None:
        return
    ((catalog,),) = con.execute("SELECT current_database()").fetchall()
    events = f'"{str(catalog).replace(chr(34), chr(34) * 2)}".main.events'
    con.register("rtrec_pending_frames", pending)
    # A temporary view shadows main.events for every query, the log's own views included.
    con.execute(
        f"CREATE TEMPORARY VIEW events AS SELECT * FROM {events} "
        "UNION ALL BY NAME SELECT * FROM rtrec_pending_frames AS j WHERE NOT EXISTS "
        f"(SELECT 1 FROM {events} AS e WHERE e.session_id = j.session_id AND e.seq = j.seq)"
    )


def _connect_read_only(
    db_path: Path, *, sandboxed: bool = False
) -> tuple[duckdb.DuckDBPyConnection, pa.Table | None]:
    """Open the file read-only, with a killed recorder's journal shown in ``events``.

    The journal holds frames that recorder committed but had not merged yet; reading the
    file without them would miss the end of its sessions. Nothing is written: a reader
    works on a full disk, on a read-only file system and on a log it may only read.

    Returns:
        the connection, and the journal's frames (for the cursors of a held connection).
    """
    pending = _pending_frames(db_path)
    con = connect(db_path, read_only=True)
    try:
        _show_pending(con, pending)
        if sandboxed:
            lock_down(con)
    except BaseException:
        con.close()
        raise
    return con, pending


@contextmanager
def open_log_reader(db_path: Path | str, *, sandboxed: bool = False) -> Iterator[LogReader]:
    """Read a log, live or not (see the module docstring).

    Nothing is opened until the first query, so this never fails by itself; queries raise
    ``LogNotFound``, ``NotAnRtrecLog``, ``LogTooNew`` as they apply.

    Args:
        db_path: the log file.
        sandboxed: run queries on the file on a connection that cannot reach other files,
            extensions or the network (``src/rtrec/store/sandbox.py``), for SQL a user typed.
    """
    yield LogReader(Path(db_path), sandboxed=sandboxed)


@contextmanager
def _reading(log: LogReader | Path | str) -> Iterator[LogReader]:
    if isinstance(log, LogReader):
        yield log
    else:
        with open_log_reader(log) as reader:
            yield reader


@attrs.frozen
class SessionInfo:
    """One session as ``rtrec sessions`` lists it (times in Unix nanoseconds, µs precision)."""

    session_id: str
    started_ns: int
    ended_ns: int | None
    last_event_ns: int | None
    upstream_url: str
    request_path: str
    model: str | None
    protocol: str
    request_headers: str
    subprotocol: str | None
    status: str
    close_code: int | None
    close_reason: str | None
    closed_by: str | None
    tags: str
    rtrec_version: str
    events: int
    audio_seconds: float

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (or to the latest event of a live session)."""
        end = self.ended_ns if self.ended_ns is not None else self.last_event_ns
        return None if end is None else (end - self.started_ns) / 1e9


_SESSIONS_SQL: Final = """
SELECT s.session_id, epoch_us(s.started_at) AS started_us, epoch_us(s.ended_at) AS ended_us,
       epoch_us(e.last_wall) AS last_us, s.upstream_url, s.request_path, s.model, s.protocol,
       s.request_headers, s.subprotocol, s.status, s.close_code, s.close_reason, s.closed_by,
       s.tags, s.rtrec_version, coalesce(e.events, 0) AS events,
       coalesce(e.audio_seconds, 0.0) AS audio_seconds
FROM sessions s LEFT JOIN (
    SELECT session_id, count(*) AS events, max(wall_time) AS last_wall,
           sum(audio_samples / audio_rate) AS audio_seconds
    FROM events GROUP BY session_id
) e USING (session_id)
{where}
ORDER BY s.started_at, s.session_id
"""


def read_sessions(
    log: LogReader | Path | str, session_ids: Sequence[str] | None = None
) -> list[SessionInfo]:
    """Every session of a log (or those named), oldest first, with event and audio totals."""
    where, params = "", []
    if session_ids is not None:
        where = "WHERE list_contains(?, s.session_id)"
        params = [list(session_ids)]
    with _reading(log) as reader:
        rows = reader.rows(_SESSIONS_SQL.format(where=where), params)
    return [
        SessionInfo(
            session_id=r["session_id"],
            started_ns=r["started_us"] * 1000,
            ended_ns=None if r["ended_us"] is None else r["ended_us"] * 1000,
            last_event_ns=None if r["last_us"] is None else r["last_us"] * 1000,
            upstream_url=r["upstream_url"],
            request_path=r["request_path"],
            model=r["model"],
            protocol=r["protocol"],
            request_headers=r["request_headers"],
            subprotocol=r["subprotocol"],
            status=r["status"],
            close_code=r["close_code"],
            close_reason=r["close_reason"],
            closed_by=r["closed_by"],
            tags=r["tags"],
            rtrec_version=r["rtrec_version"],
            events=int(r["events"]),
            audio_seconds=float(r["audio_seconds"]),
        )
        for r in rows
    ]


def resolve_session(log: LogReader | Path | str, ref: str) -> str:
    """The full id of the one session whose id is ``ref`` or starts with it.

    Raises:
        SessionNotFound: none matches, or several do (they are listed).
    """
    with _reading(log) as reader:
        rows = reader.rows(
            "SELECT session_id FROM sessions WHERE starts_with(session_id, ?) "
            "ORDER BY session_id LIMIT 6",
            [ref],
        )
    return pick_session(ref, [str(r["session_id"]) for r in rows], _name(log))


def pick_session(ref: str, ids: Sequence[str], where: str) -> str:
    """The one id of ``ids`` (the first few that start with ``ref``, sorted) that ``ref``
    names.

    Raises:
        SessionNotFound: none, or several (listed); ``where`` names what was searched.
    """
    if ref in ids:
        return ref
    if not ids:
        raise SessionNotFound(f"no session {ref!r} in {where}")
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise SessionNotFound(f"{ref!r} matches several sessions: {shown}; give more of the id")
    return ids[0]


def _name(log: LogReader | Path | str) -> str:
    return str(log.db_path if isinstance(log, LogReader) else log)


def read_frames(log: LogReader | Path | str, session_id: str) -> Iterator[FrameRecord]:
    """The frames of one session in ``seq`` order, streamed (a live session: those committed)."""
    with (
        _reading(log) as reader,
        reader.batches(
            f"SELECT {FRAME_COLUMNS} FROM events WHERE session_id = ? ORDER BY seq", [session_id]
        ) as batches,
    ):
        yield from frames_from_arrow(batches)


def read_frame_columns(log: LogReader | Path | str, session_id: str) -> FrameColumns:
    """The frames of one session in ``seq`` order as ``FrameColumns`` (a live session: those
    committed): the rows ``read_frames`` gives, without an object per row until asked.

    Raises:
        LogError: the log cannot be read, or holds rows no ``FrameRecord`` can (``BadRows``
            says which).
    """
    with _reading(log) as reader:
        table = in_seq_order(
            reader.query(f"SELECT {COLUMNS_SELECT} FROM events WHERE session_id = ?", [session_id])
        )
    try:
        return frame_columns_from_arrow(session_id, table)
    except BadRows as exc:
        raise LogError(f"{_name(log)}, session {session_id}: {exc}") from None


@attrs.frozen
class StreamInfo:
    """One FLAC file of a session (``audio_streams``); ``sha256`` is None while it is open."""

    session_id: str
    stream: Stream
    sample_rate: int
    path: Path
    frames: int
    sha256: str | None


def read_streams(log: LogReader | Path | str, session_id: str) -> list[StreamInfo]:
    """The audio files of one session."""
    with _reading(log) as reader:
        rows = reader.rows(
            "SELECT * FROM audio_streams WHERE session_id = ? ORDER BY stream, sample_rate",
            [session_id],
        )
        return [
            StreamInfo(
                session_id=r["session_id"],
                stream=Stream(r["stream"]),
                sample_rate=int(r["sample_rate"]),
                path=reader.resolve(r["path"]),
                frames=int(r["frames"]),
                sha256=r["sha256"],
            )
            for r in rows
        ]


class AudioSource(Protocol):
    """Where ``rebuild_frame`` and replay get samples from."""

    def samples(self, stream: Stream, sample_rate: int, offset: int, count: int) -> bytes:
        """``count`` 16-bit little-endian samples from ``offset`` of one stream and rate."""
        ...


def check_audio(frames: Iterable[FrameRecord], audio: AudioSource) -> None:
    """Check that ``audio`` holds every sample ``frames`` refer to, reading one sample at
    the end of each stream (before a replay or a drive starts, not in the middle of it).

    Raises:
        AudioMissing: a stream's file is missing, unreadable, or shorter than the frames.
    """
    ends: dict[tuple[Stream, int], int] = {}
    for frame in frames:
        span = frame.audio
        if span is not None and span.samples:
            key = (span.stream, span.sample_rate)
            ends[key] = max(ends.get(key, 0), span.offset + span.samples)
    for (stream, rate), end in sorted(ends.items()):
        try:
            audio.samples(stream, rate, end - 1, 1)
        except AudioMissing:
            raise
        except (LookupError, OSError, RuntimeError) as exc:  # libsndfile's errors included
            raise AudioMissing(
                f"the {stream} audio at {rate} Hz (samples up to {end}) cannot be read: {exc}"
            ) from None


class LogAudio:
    """An ``AudioSource`` over one session's FLAC files.

    Closed files are read with seeks; open ones (a live or crashed session) are decoded
    once, as far as they can be, and kept in memory.
    """

    def __init__(self, streams: Sequence[StreamInfo]) -> None:
        self._streams = {(s.stream, s.sample_rate): s for s in streams}
        self._files: dict[tuple[Stream, int], sf.SoundFile] = {}
        self._decoded: dict[tuple[Stream, int], Samples] = {}

    @classmethod
    def of_session(cls, log: LogReader | Path | str, session_id: str) -> LogAudio:
        """The audio of one session of a log."""
        return cls(read_streams(log, session_id))

    def samples(self, stream: Stream, sample_rate: int, offset: int, count: int) -> bytes:
        """See ``AudioSource``.

        Raises:
            AudioMissing: the archive has no such stream, or ends before ``offset + count``.
        """
        key = (Stream(stream), sample_rate)
        info = self._streams.get(key)
        if info is None:
            raise AudioMissing(f"no {stream} audio at {sample_rate} Hz in this session")
        data = self._read(key, info, offset, count)
        if len(data) != count:
            raise AudioMissing(
                f"{info.path} holds {offset + len(data)} samples; samples "
                f"{offset}..{offset + count} are missing (lost in a crash?)"
            )
        return data.astype("<i2", copy=False).tobytes()

    def _read(self, key: tuple[Stream, int], info: StreamInfo, offset: int, count: int) -> Samples:
        if key in self._decoded:
            return self._decoded[key][offset : offset + count]
        f = self._files.get(key)
        if f is None:
            if not info.path.exists():
                raise AudioMissing(f"audio file {info.path} is missing")
            if info.sha256 is None or sf.info(str(info.path)).frames == 2**63 - 1:
                self._decoded[key] = read_flac(info.path)[0]
                return self._decoded[key][offset : offset + count]
            f = self._files[key] = sf.SoundFile(str(info.path))
        if offset >= f.frames:
            return np.zeros(0, dtype=np.int16)
        if f.tell() != offset:
            f.seek(offset)
        return np.asarray(f.read(count, dtype="int16"), dtype=np.int16).reshape(-1)

    def close(self) -> None:
        """Close the open files."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._decoded.clear()

    def __enter__(self) -> LogAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_audio(
    log: LogReader | Path | str, session_id: str, stream: Stream, sample_rate: int | None = None
) -> tuple[Samples, int]:
    """A whole stream of one session as 16-bit samples: (samples, sample rate).

    Args:
        sample_rate: which file, when the stream changed sample rate during the session;
            None picks the only one (an empty array at 24 kHz when there is no audio).

    Raises:
        ValueError: ``sample_rate`` is None and the stream has several rates.
    """
    stream = Stream(stream)
    infos = [s for s in read_streams(log, session_id) if s.stream == stream]
    if sample_rate is not None:
        infos = [s for s in infos if s.sample_rate == sample_rate]
    if not infos:
        return np.zeros(0, dtype=np.int16), sample_rate or AudioEncoding.PCM16.sample_rate
    if len(infos) > 1:
        rates = ", ".join(str(s.sample_rate) for s in infos)
        raise ValueError(f"session {session_id} has {stream} audio at {rates} Hz: pass sample_rate")
    info = infos[0]
    return read_flac(info.path)[0], info.sample_rate


def encode_audio(pcm: bytes, encoding: AudioEncoding) -> bytes:
    """16-bit little-endian PCM back into the bytes of ``encoding`` (as the wire carried them)."""
    if encoding is AudioEncoding.PCM16:
        return pcm  # as archived: no copy
    return g711.encode(np.frombuffer(pcm, dtype="<i2"), encoding)


def rebuild_frame(record: FrameRecord, audio: AudioSource) -> str | bytes:
    """The WebSocket message a FrameRecord came from, byte for byte.

    Binary messages come back as bytes; text as str, with the frame's base64 audio put back
    where the recorder cut it out (``record.audio.cut_at``). A text message that was not
    UTF-8 (the proxy closed its sender with 1007 and kept it raw) comes back as its bytes.

    Raises:
        AudioMissing: the samples are not in the archive.
    """
    if record.kind is FrameKind.BINARY:
        return record.payload_bin if record.payload_bin is not None else b""
    if record.payload is None and record.payload_bin is not None:
        return record.payload_bin
    payload = record.payload or ""
    span = record.audio
    if span is None or span.cut_at is None:
        return payload
    # an empty audio string has no file behind it (a stream's file starts with its first sample)
    pcm = (
        audio.samples(span.stream, span.sample_rate, span.offset, span.samples)
        if span.samples
        else b""
    )
    text = base64.b64encode(encode_audio(pcm, span.encoding)).decode("ascii")
    return payload[: span.cut_at] + text + payload[span.cut_at :]
