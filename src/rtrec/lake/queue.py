"""The local publish queue: closed sessions waiting to go to the lake, beside the log.

When a session closes, ``stage_session`` writes its rows — the tables of the Parquet export
(``src/rtrec/store/parquet.py``), selected for that one session — as Parquet files into
``<log>.lake-queue/<session id>/``, with the absolute paths of its FLACs. It reads only the
local log and writes only the local disk, so the lake being slow or down never reaches the
proxy. The publisher (``src/rtrec/lake/publish.py``) empties the queue into the lake.

Crash safety comes from renames: a session is staged under ``.staging-<id>`` and renamed into
place when whole, so a queue entry is always complete; a batch is written down in
``batches/<batch id>.json`` before any of it is committed, and removed (after its sessions)
once every table has it, so a publisher that restarts finishes the batches it had started
under the same id (which is how the catalog recognises what was already committed).

The queue is bounded (``DEFAULT_QUEUE_LIMIT`` sessions): past the bound a closed session is
not staged and the recorder says so once per session; it stays in the local log, and
``rtrec publish --lake`` publishes it later.

What became of each session is written down beside the queue, so that ``rtrec sessions``
can show it: ``ledger.jsonl`` gets one line per session staged, published, or given up on
(queue full, audio gone; the session stays in the local log), the last line of a session
being its state; ``attempt.json`` holds the outcome of the publisher's last try, so queued
sessions show why they wait while the lake is down (``publication_states``). This module
needs no lake dependency.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from rtrec.store.log import resolve_audio_path
from rtrec.store.parquet import PARQUET_TABLES, PRICE_TABLES

__all__ = [
    "DEFAULT_QUEUE_LIMIT",
    "LAKE_TABLES",
    "Publication",
    "PublishQueue",
    "publication_states",
    "queue_dir",
    "queued_sessions",
]

_log = logging.getLogger(__name__)

#: The tables a lake holds, in the order they are committed: ``sessions`` last, because a
#: session counts as published (and the lake's views show its rows) once its row is there.
LAKE_TABLES: Final = tuple(
    [t for t in PARQUET_TABLES if t not in (*PRICE_TABLES, "sessions")] + ["sessions"]
)

#: Sessions the queue holds at most.
DEFAULT_QUEUE_LIMIT: Final = 10_000

#: Runs a read query on the log and returns its result (a cursor of the writer's
#: connection in the recorder, a ``LogReader`` in ``rtrec publish``).
Query = Callable[[str, Sequence[Any]], pa.Table]


def queue_dir(db_path: Path) -> Path:
    """The queue folder of a log: ``rtrec.duckdb`` -> ``rtrec.duckdb.lake-queue``."""
    return db_path.with_name(db_path.name + ".lake-queue")


def queued_sessions(db_path: Path) -> list[str]:
    """The ids of the sessions waiting in a log's queue (none when it has no queue)."""
    folder = queue_dir(db_path)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not _internal(p.name))


def _internal(name: str) -> bool:
    return name.startswith(".") or name == "batches"


_LEDGER: Final = "ledger.jsonl"
_ATTEMPT: Final = "attempt.json"
#: when this log began publishing: sessions started since then belong to the queue
_SINCE: Final = "since.json"

State = Literal["queued", "published", "failed"]


@attrs.frozen
class Publication:
    """Where one session stands with the lake.

    ``queued`` waits in the queue; ``failed`` either waits and the publisher's last try
    failed (``retrying``: it tries again), or was given up on (the session stays in the
    local log and ``rtrec publish --lake`` publishes it once the reason is fixed).
    """

    state: State
    reason: str | None = None
    retrying: bool = False

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def describe(self) -> str:
        """One line: the state, and why for a failure."""
        if self.state != "failed":
            return self.state
        then = "retrying" if self.retrying else "`rtrec publish --lake` retries"
        return f"failed: {self.reason} ({then})"


def publication_states(db_path: Path) -> dict[str, Publication]:
    """What became of each session the log's queue has seen (none when it has no queue).

    A session in the queue is ``queued``, or ``failed`` (retrying) when the publisher's
    last try failed; one no longer in it is what its last ledger line says.
    """
    folder = queue_dir(db_path)
    states: dict[str, Publication] = {}
    with contextlib.suppress(FileNotFoundError), (folder / _LEDGER).open("rb") as ledger:
        for line in ledger:
            try:
                entry = orjson.loads(line)
                states[str(entry["session"])] = Publication(entry["state"], entry.get("reason"))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line cut short by a crash: the line before it stands
    error = None
    with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
        error = orjson.loads((folder / _ATTEMPT).read_bytes()).get("error")
    for session_id in queued_sessions(db_path):
        states[session_id] = (
            Publication("queued") if error is None else Publication("failed", error, True)
        )
    return states


def normalise(table: pa.Table) -> pa.Table:
    """Arrow types an Iceberg table takes: UTC timestamps and no view types.

    DuckDB gives TIMESTAMPTZ in the connection's time zone and may give string views;
    Iceberg stores ``timestamptz`` as UTC microseconds and knows no views. The values are
    unchanged (a time zone on an Arrow timestamp is only a label).
    """
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            kind = pa.timestamp("us", tz="UTC")
        elif pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
            kind = pa.binary()
        fields.append(field.with_type(kind))
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


class PublishQueue:
    """One log's queue folder (see the module docstring)."""

    def __init__(self, db_path: Path, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the queue limit must be at least 1")
        self.db_path = Path(db_path)
        self.folder = queue_dir(self.db_path)
        self.limit = limit

    def sessions(self) -> list[str]:
        """The sessions waiting, oldest id first (ids are time-ordered UUIDv7)."""
        return queued_sessions(self.db_path)

    def stage(self, query: Query, session_id: str) -> bool:
        """Write one closed session into the queue; False when the queue is full.

        Staging a session again replaces its entry (the same rows).
        """
        self.folder.mkdir(mode=0o700, exist_ok=True)  # rows of conversations: owner only
        entry = self.folder / session_id
        if not entry.exists() and len(self.sessions()) >= self.limit:
            self.note([session_id], "failed", f"the queue was full ({self.limit:,} sessions)")
            _log.warning(
                "lake queue full (%d sessions in %s): session %s stays in the local log "
                "only; `rtrec publish --lake LAKE %s` publishes it later",
                self.limit,
                self.folder,
                session_id,
                session_id,
            )
            return False
        staging = self.folder / f".staging-{session_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        for table in LAKE_TABLES:
            rows = query(PARQUET_TABLES[table].format(where="WHERE s.session_id = ?"), [session_id])
            if table == "audio_streams":
                rows = self._absolute_paths(rows)
            pq.write_table(normalise(rows), staging / f"{table}.parquet")
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staging, entry)
        self.note([session_id], "queued")
        return True

    def _absolute_paths(self, rows: pa.Table) -> pa.Table:
        """audio_streams with each FLAC's absolute path (the log stores them relative)."""
        paths = [str(resolve_audio_path(self.db_path, p)) for p in rows.column("path").to_pylist()]
        return with_paths(rows, paths)

    def read(self, session_ids: Sequence[str], table: str) -> pa.Table | None:
        """The staged rows of ``table`` for these sessions, in one Arrow table (None: no rows)."""
        parts = [pq.read_table(self.folder / sid / f"{table}.parquet") for sid in session_ids]
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="permissive")

    def remove(self, session_id: str) -> None:
        """Drop a session from the queue (it is in the lake)."""
        shutil.rmtree(self.folder / session_id, ignore_errors=True)

    def give_up(self, session_id: str, reason: str) -> None:
        """Drop a session that cannot be published, saying why (it stays in the log)."""
        self.note([session_id], "failed", reason)
        self.remove(session_id)

    # -- what became of each session (``publication_states``) ---------------------------

    def note(self, session_ids: Sequence[str], state: State, reason: str | None = None) -> None:
        """Append the sessions' new state to the ledger.

        One ``write`` on a file opened for appending, so lines of the recorder's writer
        thread and of its publisher thread never interleave.
        """
        if not session_ids:
            return
        at = time.time()
        lines = b"".join(
            orjson.dumps({"session": sid, "state": state, "reason": reason, "at": at}) + b"\n"
            for sid in session_ids
        )
        self.folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.folder / _LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)

    def begin(self) -> None:
        """Write down, once per log, when its sessions began to be queued (``since``)."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        if not (self.folder / _SINCE).exists():
            tmp = self.folder / f".{_SINCE}"
            tmp.write_bytes(orjson.dumps({"at_ns": time.time_ns()}))
            os.replace(tmp, self.folder / _SINCE)

    def since(self) -> int | None:
        """When the log began publishing (Unix ns), or None when it never did."""
        try:
            return int(orjson.loads((self.folder / _SINCE).read_bytes())["at_ns"])
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def attempted(self, error: str | None) -> None:
        """Write down how the publisher's last try ended (None: it reached the lake)."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        tmp = self.folder / f".{_ATTEMPT}"
        tmp.write_bytes(orjson.dumps({"error": error, "at": time.time()}))
        os.replace(tmp, self.folder / _ATTEMPT)

    # -- batches -----------------------------------------------------------------------

    def open_batches(self) -> list[tuple[str, list[str]]]:
        """Batches a publisher started and did not finish: (batch id, session ids)."""
        folder = self.folder / "batches"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            sessions = orjson.loads(path.read_bytes())["sessions"]
            found.append((path.stem, [str(s) for s in sessions]))
        return found

    def start_batch(self, session_ids: Sequence[str]) -> str:
        """Write a new batch down before committing any of it; returns its id."""
        batch_id = uuid.uuid4().hex
        folder = self.folder / "batches"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = folder / f".{batch_id}.json"
        tmp.write_bytes(orjson.dumps({"sessions": list(session_ids)}))
        os.replace(tmp, folder / f"{batch_id}.json")
        return batch_id

    def finish_batch(self, batch_id: str, session_ids: Sequence[str]) -> None:
        """Every table has the batch: drop its sessions, then the batch itself."""
        self.note(session_ids, "published")
        for sid in session_ids:
            self.remove(sid)
        (self.folder / "batches" / f"{batch_id}.json").unlink(missing_ok=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[bool]:
        """Hold the queue for publishing; yields False when another process holds it."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        with (self.folder / ".lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def audio_paths(rows: pa.Table) -> list[tuple[str, str, int, str]]:
    """(session id, stream, sample rate, path) of each staged FLAC."""
    return list(
        zip(
            rows.column("session_id").to_pylist(),
            rows.column("stream").to_pylist(),
            rows.column("sample_rate").to_pylist(),
            rows.column("path").to_pylist(),
            strict=True,
        )
    )


def with_paths(rows: pa.Table, paths: Sequence[str]) -> pa.Table:
    """audio_streams with its ``path`` column replaced."""
    index = rows.schema.get_field_index("path")
    return rows.set_column(index, "path", pa.array(paths, pa.string()))
