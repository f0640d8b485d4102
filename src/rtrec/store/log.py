"""Opening an event log: create, check, migrate, and recover after a crash.

A log is one DuckDB file (default ``./rtrec.duckdb``) plus an audio directory (default
``rtrec.audio/`` beside it, recorded in ``meta`` so readers find it). Everything here is
blocking; the async writer calls it through ``trio.to_thread``.

Opening a log read-write (``open_log``) does, in one go:

1. create the tables of ``src/rtrec/schemas/storage.py`` in an empty file, or check that an existing
   file is an rtrec log whose ``schema_version`` this rtrec understands, and run the chained
   ``MIGRATIONS`` of an older one;
2. move the frames a killed writer committed to its journal into ``events``
   (src/rtrec/store/journal.py);
3. mark every session still ``open`` as ``interrupted``: only a live writer keeps sessions
   open, and we now hold the only write lock, so whoever wrote them died;
4. repair those sessions' FLAC files, which a killed writer leaves with a header claiming
   ``SF_COUNT_MAX`` frames (see ``src/rtrec/store/audio.py``).
"""

from __future__ import annotations

import errno
import re
import time
from pathlib import Path
from typing import Final

import attrs
import duckdb

from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import DDL, MIGRATIONS, SCHEMA_VERSION, VIEWS, SessionStatus
from rtrec.store import audio
from rtrec.store.control import live_writer
from rtrec.store.journal import JournalReplay, replay_journal

__all__ = [
    "DEFAULT_DB",
    "LogDiskFull",
    "LogError",
    "LogInUse",
    "LogNotFound",
    "LogTooNew",
    "NotAnRtrecLog",
    "OpenReport",
    "StreamRepair",
    "connect",
    "default_audio_dir",
    "disk_full_reason",
    "is_disk_full",
    "open_log",
    "read_meta",
    "recover_interrupted",
    "reserve_path",
    "resolve_audio_path",
]

DEFAULT_DB: Final = Path("rtrec.duckdb")

#: Close reason of a session found ``open`` when the log is next opened for writing.
INTERRUPTED_REASON: Final = "the recorder stopped without closing the session (crash or kill)"

# How long a writer retries a lock held by another process. Readers without a live
# writer open the file read-only for one query at a time (see src/rtrec/store/reader.py), so a
# lock held by one of them is gone in milliseconds; a lock held this long is a writer.
_LOCK_RETRY_SECONDS: Final = 3.0


class LogError(RtrecError):
    """A log file cannot be used as asked."""


class LogNotFound(LogError, FileNotFoundError):
    """There is no log at that path."""


class NotAnRtrecLog(LogError):
    """The file is not a DuckDB database, or a DuckDB database that rtrec did not create."""


class LogTooNew(LogError):
    """The log was written by a newer rtrec: its schema version is above ours."""


class LogDiskFull(LogError, OSError):
    """The file system holding the log has no space left for what had to be written."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the file system running out of space.

    DuckDB and libsndfile say so in words, Python in ``errno``.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full_reason(exc: BaseException) -> str:
    """``exc`` as a reason that starts with its cause: ``disk full: <what failed>``."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"disk full: {detail.removeprefix('IO Error: ')}"


class LogInUse(LogError):
    """Another process holds the log file's write lock (usually a running ``rtrec record``)."""


@attrs.frozen
class StreamRepair:
    """What repairing one FLAC file of an interrupted session found.

    ``lost`` counts samples that committed events refer to but that the crash took with it
    (the encoder's last, unfinished block); those frames cannot be rebuilt byte for byte.
    """

    session_id: str
    stream: str
    sample_rate: int
    path: Path
    frames: int
    rewritten: bool
    lost: int


@attrs.frozen
class OpenReport:
    """What ``open_log`` did besides opening."""

    created: bool
    migrated_from: int | None
    interrupted: tuple[str, ...]
    repairs: tuple[StreamRepair, ...]
    audio_dir: Path
    journal: JournalReplay | None = None


def reserve_path(db_path: Path) -> Path:
    """The disk space a log writer holds in reserve: ``<log>.rtrec-reserve`` (see
    ``src/rtrec/store/writer.py``); a killed writer's is stale and freed by the next open."""
    return db_path.with_name(db_path.name + ".rtrec-reserve")


def default_audio_dir(db_path: Path) -> Path:
    """The audio directory beside a log: ``rtrec.duckdb`` -> ``rtrec.audio``."""
    return db_path.with_suffix(".audio")


def resolve_audio_path(db_path: Path, stored: str) -> Path:
    """Turn a path stored in the log (relative to the log's folder, or absolute) into a path."""
    path = Path(stored)
    return path if path.is_absolute() else db_path.resolve().parent / path


def _stored_path(db_path: Path, path: Path) -> str:
    """Store paths relative to the log's folder when inside it, so log + audio can move together."""
    base = db_path.resolve().parent
    full = path.resolve()
    try:
        return full.relative_to(base).as_posix()
    except ValueError:
        return str(full)


_LOCK_PID = re.compile(r"\(PID (\d+)\)")


def connect(
    db_path: Path, *, read_only: bool = False, lock_wait: float = _LOCK_RETRY_SECONDS
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file with clear errors for the usual problems.

    A writer retries for ``lock_wait`` seconds while another process holds the lock, since
    a reader without a live recorder holds it only for one query.

    Raises:
        LogNotFound: read-only and there is no file.
        LogInUse: another process holds the file (message names its pid).
        NotAnRtrecLog: the file is not a DuckDB database.
    """
    if read_only and not db_path.exists():
        raise LogNotFound(f"no rtrec log at {db_path}")
    deadline = time.monotonic() + (0.0 if read_only else lock_wait)
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                if time.monotonic() < deadline:
                    # A blocking open in a worker thread: waiting here delays only the opener.
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                pid = _LOCK_PID.search(text)
                holder = f" (pid {pid.group(1)})" if pid else ""
                raise LogInUse(
                    f"{db_path} is held by another process{holder}, usually a running "
                    "`rtrec record`; readers reach it through its control socket, but this "
                    "operation needs the file itself: stop the recorder first"
                ) from exc
            if "not a valid duckdb" in text.lower() or "database file" in text.lower():
                raise NotAnRtrecLog(f"{db_path} is not a DuckDB database: {exc}") from exc
            raise LogError(f"cannot open {db_path}: {exc}") from exc
        except duckdb.Error as exc:
            raise NotAnRtrecLog(f"{db_path} is not an rtrec log: {exc}") from exc


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {str(name) for (name,) in rows}


def read_meta(con: duckdb.DuckDBPyConnection, db_path: Path) -> dict[str, str]:
    """The ``meta`` table of an rtrec log, checked.

    Raises:
        NotAnRtrecLog: the database has no rtrec ``meta`` table or no schema version.
        LogTooNew: the schema version is newer than this rtrec's.
    """
    if "meta" not in _tables(con):
        raise NotAnRtrecLog(f"{db_path} is a DuckDB database but not an rtrec log (no meta table)")
    meta = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()}
    version = meta.get("schema_version")
    if version is None or not version.isdigit():
        raise NotAnRtrecLog(f"{db_path} has a meta table but no rtrec schema_version")
    if int(version) > SCHEMA_VERSION:
        raise LogTooNew(
            f"{db_path} has schema version {version}, newer than this rtrec's "
            f"({SCHEMA_VERSION}); upgrade rtrec to read it"
        )
    return meta


def _set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def _migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Run ``MIGRATIONS[version]``, ``MIGRATIONS[version + 1]``, ... up to ``SCHEMA_VERSION``."""
    for step in range(version, SCHEMA_VERSION):
        migration = MIGRATIONS[step]
        if isinstance(migration, str):
            con.execute(migration)
        else:
            migration(con)
    _set_meta(con, "schema_version", str(SCHEMA_VERSION))


def open_log(
    db_path: Path, audio_dir: Path | None = None, *, version: str = ""
) -> tuple[duckdb.DuckDBPyConnection, OpenReport]:
    """Open (or create) a log for writing, migrate it, and recover interrupted sessions.

    Args:
        db_path: the DuckDB file; created with the rtrec tables when missing or empty.
        audio_dir: where new sessions' FLAC files go. Default: the one recorded in the log,
            else ``default_audio_dir(db_path)``. A different one is recorded for later readers;
            files of earlier sessions keep their stored paths.
        version: the rtrec version recorded as ``created_by`` in a new log.

    Raises:
        NotAnRtrecLog, LogTooNew, LogInUse: see ``connect`` and ``read_meta``.
    """
    db_path = Path(db_path)
    pid = live_writer(db_path)
    if pid is not None:
        raise LogInUse(
            f"{db_path} is being recorded by `rtrec record` (pid {pid}); stop it first "
            "(it repairs the log when it starts, and readers can use the log meanwhile)"
        )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = connect(db_path)
    except LogError as exc:
        if is_disk_full(exc):
            raise LogDiskFull(
                f"{disk_full_reason(exc)}; free space on the disk of {db_path} and run "
                "`rtrec repair` again"
            ) from None
        raise
    # We hold the write lock: a reserve left here is a killed writer's, and on a full
    # disk it is the room this open needs.
    reserve_path(db_path).unlink(missing_ok=True)
    try:
        created = False
        migrated_from: int | None = None
        con.execute("BEGIN")
        if not _tables(con):
            con.execute(DDL)
            _set_meta(con, "schema_version", str(SCHEMA_VERSION))
            _set_meta(con, "created_by", f"rtrec {version}".strip())
            created = True
        meta = read_meta(con, db_path)
        current = int(meta["schema_version"])
        if current < SCHEMA_VERSION:
            _migrate(con, current)
            migrated_from = current
        # Views hold no data: recreating them lets a fixed definition reach existing logs.
        con.execute(VIEWS)
        if audio_dir is None:
            stored = meta.get("audio_dir")
            audio_dir = (
                resolve_audio_path(db_path, stored) if stored else default_audio_dir(db_path)
            )
        audio_dir = Path(audio_dir)
        _set_meta(con, "audio_dir", _stored_path(db_path, audio_dir))
        con.execute("COMMIT")
        journal = replay_journal(con, db_path)
        interrupted, repairs = recover_interrupted(con, db_path, audio_dir)
    except (duckdb.Error, OSError) as exc:
        con.close()
        if is_disk_full(exc):
            raise LogDiskFull(
                f"{disk_full_reason(exc)}; free space on the disk of {db_path} and run "
                "`rtrec repair` again (nothing was lost: what is not in the log yet is in "
                "its journal)"
            ) from None
        raise
    except BaseException:
        con.close()
        raise
    report = OpenReport(
        created=created,
        migrated_from=migrated_from,
        interrupted=interrupted,
        repairs=repairs,
        audio_dir=audio_dir,
        journal=journal,
    )
    return con, report


def recover_interrupted(
    con: duckdb.DuckDBPyConnection, db_path: Path, audio_dir: Path
) -> tuple[tuple[str, ...], tuple[StreamRepair, ...]]:
    """Mark ``open`` sessions as interrupted and repair their audio.

    Only call this while holding the log's write lock with no live writer in this process:
    then an ``open`` session has nobody recording it.
    """
    rows = con.execute(
        "SELECT session_id FROM sessions WHERE status = ? ORDER BY session_id",
        [SessionStatus.OPEN.value],
    ).fetchall()
    sessions = tuple(str(sid) for (sid,) in rows)
    repairs: list[StreamRepair] = []
    for session_id in sessions:
        found = repair_session_audio(con, db_path, audio_dir, session_id)
        repairs.extend(found)
        reason = INTERRUPTED_REASON
        lost = [r for r in found if r.lost]
        if lost:
            reason += "; audio lost in the crash: " + ", ".join(
                f"{r.stream} {r.sample_rate} Hz {r.lost} samples" for r in lost
            )
        con.execute(
            "UPDATE sessions SET status = ?, close_reason = ?, ended_at = COALESCE(ended_at, "
            "(SELECT max(wall_time) FROM events WHERE events.session_id = sessions.session_id), "
            "started_at) WHERE session_id = ?",
            [SessionStatus.INTERRUPTED.value, reason, session_id],
        )
    return sessions, tuple(repairs)


def repair_session_audio(
    con: duckdb.DuckDBPyConnection, db_path: Path, audio_dir: Path, session_id: str
) -> list[StreamRepair]:
    """Make every FLAC of one session readable and bring its ``audio_streams`` rows up to date.

    Files the log does not know yet (the crash came between creating a file and committing
    its row) are found in the session's folder and registered.
    """
    known = {
        (str(stream), int(rate)): resolve_audio_path(db_path, str(path))
        for stream, rate, path in con.execute(
            "SELECT stream, sample_rate, path FROM audio_streams WHERE session_id = ?",
            [session_id],
        ).fetchall()
    }
    folder = audio_dir / session_id
    if folder.is_dir():
        known_paths = {p.resolve() for p in known.values()}
        for path in sorted(folder.glob("*.flac")):
            if path.resolve() in known_paths:
                continue
            key = audio.parse_stream_filename(path.name)
            rate = audio.header_rate(path)
            if key is None or rate is None:
                continue
            known.setdefault((key.value, rate), path)
            con.execute(
                "INSERT INTO audio_streams VALUES (?, ?, ?, ?, 0, NULL) ON CONFLICT DO NOTHING",
                [session_id, key.value, rate, _stored_path(db_path, path)],
            )
    repairs = []
    for (stream, rate), path in sorted(known.items()):
        frames, rewritten = audio.repair_flac(path, rate) if path.exists() else (0, False)
        if not path.exists():
            audio.write_flac(path, audio.empty_samples(), rate)
            rewritten = True
        (referenced,) = con.execute(
            "SELECT coalesce(max(audio_offset + audio_samples), 0) FROM events "
            "WHERE session_id = ? AND audio_stream = ? AND audio_rate = ?",
            [session_id, stream, rate],
        ).fetchall()[0]
        con.execute(
            "UPDATE audio_streams SET frames = ?, sha256 = ? "
            "WHERE session_id = ? AND stream = ? AND sample_rate = ?",
            [frames, audio.sha256_file(path), session_id, stream, rate],
        )
        repairs.append(
            StreamRepair(
                session_id=session_id,
                stream=stream,
                sample_rate=rate,
                path=path,
                frames=frames,
                rewritten=rewritten,
                lost=max(0, int(referenced) - frames),
            )
        )
    return repairs


def stored_path(db_path: Path, path: Path) -> str:
    """The form in which ``audio_streams.path`` stores a file path (see ``resolve_audio_path``)."""
    return _stored_path(db_path, path)
