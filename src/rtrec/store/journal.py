"""The commit journal: where the log writer commits frames between DuckDB merges.

Why: a DuckDB transaction costs 1.5-2.5 ms of CPU however few rows it holds (an Arrow
INSERT of 8 ``events`` rows plus its commit, measured here; ``SELECT 1`` alone is 0.2 ms).
At one voice session that is 8-13 ms of CPU per second for commits every 200 ms, as
much as relaying the session costs. Appending the batch to this file costs 30-60 us. So the
writer commits each batch here within the commit interval, and moves what the journal
holds into DuckDB in one statement every ``merge_interval`` seconds, whenever a batch
carries anything but plain frames (a session starting or closing), on every flush (a
reader's query on the control socket flushes first), and when it stops.

A committed frame is therefore always in DuckDB or in the journal, never only in memory.
After a kill, the next read-write open of the log (``open_log``: the next ``rtrec record``,
``rtrec repair``) moves the journal into DuckDB before it marks sessions interrupted, and
an rtrec reader that finds a journal without a live recorder does that open first.

The file is ``<log>.rtrec-journal`` beside the log. Each batch is one record, appended with
one ``write``: a header (magic, body length, CRC-32 of the body) and a JSON body, a list of
frames, each a JSON array of the ``FrameRecord`` fields in ``_FIELDS`` order (binary payloads
as base64) and its audio span as an array or null: exact for every field, and half the cost
of the bundle's ``events.jsonl`` objects to encode (9 against 17 us for a batch of 8 voice
frames, hot). A record cut short by the kill (or failing its checksum) ends what can be read; its
bytes and anything after are kept in ``<journal>.torn-<time>`` and reported, never dropped.
Frames merged before a kill are found again in the journal if the kill came between the
merge's commit and the journal's truncation: replaying skips rows already in ``events``.

After a full disk the writer also appends lifecycle records (magic ``RTJL``): the session
rows and closes it could no longer put into DuckDB, so that ``rtrec repair`` rebuilds those
sessions whole once space is freed (docs/recorder.md, "When the disk fills").

The journal also merges once it holds ``MERGE_BYTES``: a burst of large frames then reaches
DuckDB in pieces DuckDB can take on a nearly full disk, rather than as one huge merge.

A process kill keeps everything appended (the operating system writes it out). Against a
power cut or kernel crash the journal is ``fdatasync``ed at most once a second, after an
append: up to about a second of events may be lost then (DuckDB synced every commit, every
200 ms, and the FLAC files' audio was and is not synced by rtrec at all).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import struct
import time
import zlib
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import attrs
import duckdb
import orjson

from rtrec.schemas.columns import RECORD_FIELDS, SPAN_FIELDS
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import (
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    SessionClose,
    SessionRecord,
    SessionStatus,
    Stream,
)
from rtrec.store.rows import frames_to_arrow, timestamp

__all__ = [
    "Journal",
    "JournalContents",
    "JournalError",
    "JournalReplay",
    "journal_path",
    "pending_journal",
    "read_journal",
    "read_journal_contents",
    "replay_journal",
]

#: The longest an appended record waits for ``fdatasync``, seconds.
SYNC_INTERVAL: Final = 1.0

_MAGIC: Final = b"RTJ2"
_LIFECYCLE: Final = b"RTJL"  # a JSON object {"sessions": [...], "closes": [...]}
#: Journal size at which it is merged into DuckDB however young (see the module docstring).
MERGE_BYTES: Final = 4 << 20
_HEADER: Final = struct.Struct("<4sII")  # magic, body length, CRC-32 of the body
# A frame in a record: these fields, then the audio span's (or null)
_FIELDS: Final = ("session_id", *RECORD_FIELDS)
_frame_fields: Final = attrgetter(*_FIELDS)
_span_fields: Final = attrgetter(*SPAN_FIELDS)


class JournalError(RtrecError, OSError):
    """The journal cannot be written or read back."""


def journal_path(db_path: Path) -> Path:
    """The journal of the log at ``db_path``: ``rtrec.duckdb`` -> ``rtrec.duckdb.rtrec-journal``."""
    return db_path.with_name(db_path.name + ".rtrec-journal")


def pending_journal(db_path: Path) -> bool:
    """Whether the log has a journal with records not yet moved into DuckDB."""
    try:
        return journal_path(db_path).stat().st_size > 0
    except FileNotFoundError:
        return False


def _base64(value: object) -> str:
    # orjson calls this for what it cannot encode itself: only binary payloads are bytes
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"a journal cannot hold {type(value).__name__}")


def _encode(frames: Sequence[FrameRecord]) -> bytes:
    # tuples built by attrgetter (C), enums encoded by orjson as their values
    body = orjson.dumps(
        [(*_frame_fields(f), None if f.audio is None else _span_fields(f.audio)) for f in frames],
        default=_base64,
    )
    return _HEADER.pack(_MAGIC, len(body), zlib.crc32(body)) + body


def _encode_lifecycle(sessions: Sequence[SessionRecord], closes: Sequence[SessionClose]) -> bytes:
    body = orjson.dumps(
        {
            "sessions": [attrs.asdict(r) for r in sessions],
            "closes": [attrs.asdict(c) for c in closes],
        }
    )
    return _HEADER.pack(_LIFECYCLE, len(body), zlib.crc32(body)) + body


def _decode_lifecycle(body: bytes) -> tuple[list[SessionRecord], list[SessionClose]]:
    obj = orjson.loads(body)
    sessions = [SessionRecord(**r) for r in obj["sessions"]]
    closes = []
    for c in obj["closes"]:
        c["status"] = SessionStatus(c["status"])
        c["closed_by"] = None if c["closed_by"] is None else Direction(c["closed_by"])
        closes.append(SessionClose(**c))
    return sessions, closes


def _decode(row: list[Any]) -> FrameRecord:
    if len(row) != len(_FIELDS) + 1:
        raise ValueError(f"a journal frame has {len(_FIELDS) + 1} fields, not {len(row)}")
    fields = dict(zip(_FIELDS, row[:-1], strict=True))
    fields["direction"] = Direction(fields["direction"])
    fields["kind"] = FrameKind(fields["kind"])
    if fields["payload_bin"] is not None:
        fields["payload_bin"] = base64.b64decode(fields["payload_bin"], validate=True)
    span = row[-1]
    if span is not None:
        audio = dict(zip(SPAN_FIELDS, span, strict=True))
        audio["stream"] = Stream(audio["stream"])
        audio["encoding"] = AudioEncoding(audio["encoding"])
        fields["audio"] = AudioSpan(**audio)
    return FrameRecord(**fields)


class Journal:
    """The open journal of a log writer: the file, and the frames it holds, in order.

    Not thread-safe: only the writer's worker thread uses it, one call at a time.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = journal_path(db_path)
        # ``open_log`` replayed and removed any journal before the writer got the log
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.frames: list[FrameRecord] = []
        #: lifecycle records were appended: the file must stay for ``rtrec repair``
        self.lifecycle = False
        self._size = 0
        self._since: float | None = None  # monotonic time of the oldest unmerged record
        self._synced_at = time.monotonic()

    def append(self, frames: Sequence[FrameRecord]) -> None:
        """Commit ``frames``: once this returns, a kill of the process cannot lose them.

        Raises:
            JournalError: the file could not be written (disk full, I/O error), naming it.
        """
        if not frames:
            return
        if self._fd is None:
            raise JournalError(f"{self.path} is closed")
        self._write(_encode(frames))
        self.frames.extend(frames)
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._synced_at >= SYNC_INTERVAL:
            # at most once a second: ~0.15 ms of CPU each here, 0.8 ms/s at every batch
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise JournalError(f"cannot sync the journal {self.path}: {exc}") from exc
            self._synced_at = now

    def append_lifecycle(
        self, sessions: Sequence[SessionRecord], closes: Sequence[SessionClose]
    ) -> None:
        """Commit session rows and closes that DuckDB could not take (a full disk).

        Raises:
            JournalError: the file could not be written, naming it.
        """
        if not (sessions or closes):
            return
        if self._fd is None:
            raise JournalError(f"{self.path} is closed")
        self._write(_encode_lifecycle(sessions, closes))
        self.lifecycle = True
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise JournalError(f"cannot sync the journal {self.path}: {exc}") from exc

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        at = 0
        try:
            # pwrite may write part of a record (a file system filling up says so that
            # way first); the rest then fails with the real cause, ENOSPC
            while at < len(data):
                written = os.pwrite(self._fd, data[at:], self._size + at)
                if written <= 0:
                    raise OSError(errno.EIO, f"wrote nothing at offset {self._size + at}")
                at += written
        except OSError as exc:
            # a partial record would be read as torn: cut it off so later ones can follow
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from exc
        self._size += len(data)

    def due(self, merge_interval: float) -> bool:
        """Whether the journal should go into DuckDB now: its oldest frame has waited
        ``merge_interval`` seconds, or it holds ``MERGE_BYTES``."""
        return self._since is not None and (
            self._size >= MERGE_BYTES or time.monotonic() - self._since >= merge_interval
        )

    def merged(self) -> None:
        """Forget the frames: DuckDB has committed them."""
        if self.lifecycle:
            return  # only ever after a failure, and the file must reach `rtrec repair`
        self.frames = []
        self._since = None
        if self._size and self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError as exc:
                raise JournalError(f"cannot truncate the journal {self.path}: {exc}") from exc
            self._size = 0

    def close(self) -> None:
        """Close the file; remove it when every frame it held is in DuckDB."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self.frames and not self.lifecycle:
            self.path.unlink(missing_ok=True)


@attrs.frozen
class JournalReplay:
    """What replaying a journal found: frames moved into DuckDB, and a torn tail if any."""

    frames: int
    already_there: int
    torn_bytes: int
    torn_path: Path | None


@attrs.frozen
class JournalContents:
    """What a journal holds, in order of kind: session rows, frames, closes."""

    frames: list[FrameRecord]
    sessions: list[SessionRecord]
    closes: list[SessionClose]
    #: where the readable records end (an offset into the file)
    end: int


def read_journal_contents(data: bytes) -> JournalContents:
    """Every record of a journal's bytes, up to the first torn or foreign one."""
    contents = JournalContents([], [], [], 0)
    at = 0
    while at + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, at)
        body = data[at + _HEADER.size : at + _HEADER.size + length]
        if magic not in (_MAGIC, _LIFECYCLE) or len(body) != length or zlib.crc32(body) != crc:
            break
        try:
            if magic == _MAGIC:
                contents.frames.extend(_decode(row) for row in orjson.loads(body))
            else:
                sessions, closes = _decode_lifecycle(body)
                contents.sessions.extend(sessions)
                contents.closes.extend(closes)
        except (ValueError, KeyError, TypeError):
            break  # checksummed yet not ours: treat it as the torn end, kept aside
        at += _HEADER.size + length
    return attrs.evolve(contents, end=at)


def read_journal(data: bytes) -> tuple[list[FrameRecord], int]:
    """The frames of a journal's bytes, and where its readable records end (an offset)."""
    contents = read_journal_contents(data)
    return contents.frames, contents.end


def replay_journal(con: duckdb.DuckDBPyConnection, db_path: Path) -> JournalReplay | None:
    """Move a journal left by a killed writer into ``events``, then remove it.

    Call it with the log's write lock held (``open_log`` does). Rows already in ``events``
    (merged just before the kill) are skipped. A torn end is kept in a file of its own.

    Returns:
        None when there was no journal (or an empty one).
    """
    path = journal_path(db_path)
    if not pending_journal(db_path):
        path.unlink(missing_ok=True)
        return None
    data = path.read_bytes()
    contents = read_journal_contents(data)
    frames, end = contents.frames, contents.end
    inserted = 0
    if contents.sessions:
        _insert_sessions(con, contents.sessions)
    if frames:
        rtrec_journal = frames_to_arrow(frames)  # noqa: F841 (DuckDB scans it by its name)
        (before,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        con.execute("INSERT OR IGNORE INTO events BY NAME SELECT * FROM rtrec_journal")
        (after,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        inserted = after - before
    if contents.closes:
        _close_sessions(con, contents.closes)
    torn_path = None
    if end < len(data):
        torn_path = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}")
        torn_path.write_bytes(data[end:])
    path.unlink()
    return JournalReplay(
        frames=inserted,
        already_there=len(frames) - inserted,
        torn_bytes=len(data) - end,
        torn_path=torn_path,
    )


def _insert_sessions(con: duckdb.DuckDBPyConnection, sessions: Sequence[SessionRecord]) -> None:
    con.executemany(
        "INSERT INTO sessions (session_id, started_at, upstream_url, request_path, model, "
        "protocol, request_headers, subprotocol, status, tags, rtrec_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [
            [
                s.session_id,
                timestamp(s.started_wall_ns),
                s.upstream_url,
                s.request_path,
                s.model,
                s.protocol,
                s.request_headers,
                s.subprotocol,
                SessionStatus.OPEN.value,
                s.tags,
                s.rtrec_version,
            ]
            for s in sessions
        ],
    )


def _close_sessions(con: duckdb.DuckDBPyConnection, closes: Sequence[SessionClose]) -> None:
    # only sessions still open: a close DuckDB did commit stays as it was
    con.executemany(
        "UPDATE sessions SET ended_at = ?, status = ?, "
        "close_code = ?, close_reason = ?, closed_by = ? WHERE session_id = ? AND status = ?",
        [
            [
                timestamp(c.ended_wall_ns),
                c.status.value,
                c.close_code,
                c.close_reason,
                None if c.closed_by is None else c.closed_by.value,
                c.session_id,
                SessionStatus.OPEN.value,
            ]
            for c in closes
        ],
    )
