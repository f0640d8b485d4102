"""Keeping a lake small and lawful: compaction, snapshot expiry, and forgetting a session.

Every published batch adds one data file per table, so a lake fed by many recorders in
small batches gathers many small files, and query planning and reading slow down with the
file count rather than the rows (docs/fleet.md). ``compact`` rewrites the sessions held in
small files as few large ones: it reads those sessions' rows and commits an overwrite
(delete those sessions' rows, append them again) whose filter names exactly those sessions,
so rows that recorders append meanwhile are untouched; a commit that races one of theirs
fails cleanly and is planned again.

``expire`` drops snapshots older than a given age (and so the files only they refer to);
a recorder resuming a batch older than that still finds its rows by session id
(``commit_batch(resumed=True)``).

``forget`` deletes one session everywhere — its rows from every table, ``sessions`` first so
it disappears from every view at once, then its FLACs — and expires the snapshots that
still held it, for privacy requests (docs/fleet.md, retention).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Final

import attrs
import pyarrow.compute as pc

from rtrec.lake.catalog import Lake, LakeError, sessions_filter
from rtrec.lake.queue import LAKE_TABLES

__all__ = ["Compacted", "compact", "expire", "forget"]

#: A data file smaller than this is "small" and worth rewriting.
SMALL_FILE: Final = 32 * 2**20
_TRIES: Final = 20


@attrs.frozen
class Compacted:
    """One table's data files before and after ``compact``."""

    table: str
    files_before: int
    files_after: int


def compact(lake: Lake, *, min_files: int = 8, small: int = SMALL_FILE) -> list[Compacted]:
    """Rewrite each table's small files into few, when it has at least ``min_files`` of them.

    Raises:
        LakeError: the catalog kept refusing the commit.
    """
    from pyiceberg.exceptions import CommitFailedException

    done = []
    for name in LAKE_TABLES:
        for _ in range(_TRIES):
            table = lake.table(name)
            if table is None:
                break
            tasks = list(table.scan().plan_files())
            before = len(tasks)
            smalls = [t.file for t in tasks if t.file.file_size_in_bytes < small]
            if len(smalls) < min_files:
                done.append(Compacted(name, before, before))
                break
            fs, _ = lake.filesystem(smalls[0].file_path)
            import pyarrow.dataset as ds

            paths = [lake.filesystem(f.file_path)[1] for f in smalls]
            ids = pc.unique(
                ds.dataset(paths, format="parquet", filesystem=fs).to_table(columns=["session_id"])[
                    "session_id"
                ]
            ).to_pylist()
            where = sessions_filter([str(i) for i in ids])
            # every row of those sessions, wherever it is: the overwrite deletes them all
            rows = table.scan(row_filter=where).to_arrow()
            try:
                table.overwrite(rows, overwrite_filter=where)
            except CommitFailedException:
                time.sleep(random.uniform(0.05, 0.5))
                continue
            after = len(list(lake.table(name).scan().plan_files()))  # type: ignore[union-attr]
            done.append(Compacted(name, before, after))
            break
        else:
            raise LakeError(f"compacting {name}: the catalog refused {_TRIES} commits in a row")
    return done


def expire(lake: Lake, older_than: dt.timedelta) -> int:
    """Expire every table's snapshots older than ``older_than``; returns how many went."""
    cutoff = dt.datetime.now(dt.UTC) - older_than
    expired = 0
    for name in LAKE_TABLES:
        table = lake.table(name)
        if table is None:
            continue
        current = table.current_snapshot()
        old = [
            s.snapshot_id
            for s in table.snapshots()
            if s.timestamp_ms < cutoff.timestamp() * 1000
            and (current is None or s.snapshot_id != current.snapshot_id)
        ]
        if old:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            expired += len(old)
    return expired


def forget(lake: Lake, session_id: str) -> int:
    """Delete a session from every table and its FLACs from storage; returns rows deleted.

    Its rows stay readable through older snapshots until those expire: ``expire`` with a
    zero age afterwards removes them too (the ``rtrec lake forget`` command does).
    """
    where = sessions_filter([session_id])
    deleted = 0
    streams = None
    for name in ("sessions", *[t for t in LAKE_TABLES if t != "sessions"]):
        table = lake.table(name)
        if table is None:
            continue
        found = table.scan(row_filter=where).to_arrow()
        if name == "audio_streams":
            streams = found
        if found.num_rows:
            table.delete(where)
            deleted += found.num_rows
    if streams is not None:
        for location in streams.column("path").to_pylist():
            lake.io.delete(location)
    return deleted
