"""Reading the lake: the log's views over every published session, and one session as a log.

``open_lake_sql`` gives an in-memory DuckDB connection with the same tables and views as a
local log (``src/rtrec/store/parquet.py``'s ``create_views``), each table being the Iceberg table's
current data files. pyiceberg plans the scan (which files make up the current snapshot)
and pyarrow reads them — from a folder or an S3-compatible bucket alike, with the keys from
the environment — so DuckDB needs none of its own extensions (its httpfs, iceberg and
postgres extensions have no builds for the DuckDB rtrec locks) and none of its file access:
the connection is made with ``enable_external_access = false`` before the user's query
runs, so that query can read the lake's tables and nothing else on the machine.

Rows of a table whose session has no ``sessions`` row yet belong to a batch still being
published (``src/rtrec/lake/publish.py``): every view but ``sessions`` leaves them out.

``checkout_sessions`` copies published sessions (their rows, and their FLACs fetched from
their lake locations) into a new local log, which every command that reads a log then
works on unchanged: replay, show, report, audio, playback, export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from rtrec.lake.catalog import Lake, open_lake
from rtrec.lake.config import LakeConfig
from rtrec.lake.queue import LAKE_TABLES, with_paths
from rtrec.store.log import open_log
from rtrec.store.parquet import create_views, sql_literal
from rtrec.store.reader import pick_session

__all__ = [
    "checkout_session",
    "checkout_sessions",
    "lake_table",
    "open_lake_sql",
    "resolve_lake_session",
    "run_lake_query",
]


def lake_table(lake: Lake, name: str) -> Any | None:
    """What DuckDB reads one lake table from (None when nothing was published to it yet).

    pyiceberg writes whole files (copy-on-write), so a snapshot is its data files. On a
    folder they are a list of paths for DuckDB's own Parquet reader; in a bucket, a pyarrow
    dataset over them (DuckDB's httpfs has no build for the DuckDB rtrec locks), read lazily,
    column by column. A table with delete files (written by another Iceberg engine) is read
    through pyiceberg's scan, which applies them.
    """
    table = lake.table(name)
    if table is None or table.current_snapshot() is None:
        return None
    scan = table.scan()
    tasks = list(scan.plan_files())
    if any(task.delete_files for task in tasks):
        return scan.to_arrow()
    schema = table.schema().as_arrow()
    if not tasks:
        return schema.empty_table()
    filesystem, _ = lake.filesystem(tasks[0].file.file_path)
    paths = [lake.filesystem(task.file.file_path)[1] for task in tasks]
    if not lake.config.on_s3:
        return LocalFiles(tuple(paths))
    # The table's schema, not the files': files written before a column was added read it
    # as NULL (docs/fleet.md, upgrades).
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)


@attrs.frozen
class LocalFiles:
    """A lake table's current data files on a local (or mounted) folder."""

    paths: tuple[str, ...]

    def relation(self) -> str:
        listed = ", ".join(sql_literal(p) for p in self.paths)
        # union_by_name: files written before a column was added read it as NULL
        return f"read_parquet([{listed}], union_by_name = true)"


def open_lake_sql(lake: Lake) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the log's tables and views over every published session.

    Raises:
        LakeError: the catalog or the storage cannot be read.
    """
    con = duckdb.connect()
    try:
        sources: dict[str, str] = {}
        allowed: list[str] = []
        for name in LAKE_TABLES:
            data = lake_table(lake, name)
            if data is None:
                continue
            if isinstance(data, LocalFiles):
                con.execute(f"CREATE VIEW lake_{name} AS SELECT * FROM {data.relation()}")
                allowed.extend(data.paths)
            else:
                con.register(f"lake_{name}", data)
            sources[name] = (
                f"lake_{name}"
                if name == "sessions"
                else f"(SELECT * FROM lake_{name} WHERE session_id IN "
                "(SELECT session_id FROM lake_sessions))"
            )
        if "sessions" not in sources:
            sources = {}  # nothing is published until a sessions row is
        create_views(con, sources)
        # The views name each table many times: read each file's footer once.
        con.execute("SET parquet_metadata_cache = true")
        # From here on the connection reads the lake's current files and nothing else.
        con.execute("SET allowed_paths = ?", [allowed])
        con.execute("SET enable_external_access = false; SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def resolve_lake_session(con: duckdb.DuckDBPyConnection, ref: str, where: str) -> str:
    """The one published session whose id is ``ref`` or starts with it.

    Raises:
        SessionNotFound: none, or several (listed).
    """
    rows = con.execute(
        "SELECT session_id FROM sessions WHERE starts_with(session_id, ?) "
        "ORDER BY session_id LIMIT 6",
        [ref],
    ).fetchall()
    return pick_session(ref, [str(r[0]) for r in rows], f"the lake ({where})")


def checkout_session(lake: Lake, ref: str, folder: Path) -> tuple[Path, str]:
    """Copy one published session into a new log under ``folder``.

    Its FLACs are fetched from the lake into ``folder/audio``. Returns the log's path and
    the session's full id.

    Raises:
        SessionNotFound: no single published session matches ``ref``.
        LakeError: the lake cannot be read.
    """
    db_path, [session_id] = checkout_sessions(lake, [ref], folder)
    return db_path, session_id


def checkout_sessions(
    lake: Lake, refs: Sequence[str] | None, folder: Path
) -> tuple[Path, list[str]]:
    """Copy published sessions (``refs``: ids or prefixes; None: every one) into a new log
    under ``folder``, with their FLACs fetched into ``folder/audio/<session id>``.

    Returns:
        The log's path and the sessions' full ids, in the order of ``refs``.

    Raises:
        SessionNotFound: a ref matches no single published session (nothing is copied).
        LakeError: the lake cannot be read.
    """
    folder = Path(folder)
    db_path = folder / "lake-session.duckdb"
    with open_lake_sql(lake) as lake_con:
        where = lake.config.describe()
        if refs is None:
            found = lake_con.execute("SELECT session_id FROM sessions ORDER BY session_id")
            session_ids = [str(r[0]) for r in found.fetchall()]
        else:
            session_ids = [resolve_lake_session(lake_con, ref, where) for ref in refs]
        con, _ = open_log(db_path, folder / "audio")
        try:
            for session_id in dict.fromkeys(session_ids):
                audio_dir = folder / "audio" / session_id
                audio_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                for table in LAKE_TABLES:
                    rows = lake_con.sql(
                        f"SELECT * FROM {table} WHERE session_id = ?", params=[session_id]
                    ).to_arrow_table()
                    if table == "audio_streams":
                        rows = _fetch_audio(lake, rows, audio_dir)
                    con.register("lake_rows", rows)
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM lake_rows")
                    con.unregister("lake_rows")
        finally:
            con.close()
    return db_path, session_ids


def _fetch_audio(lake: Lake, streams: pa.Table, audio_dir: Path) -> pa.Table:
    """Download each FLAC the rows refer to; the rows with the local paths."""
    paths = []
    for location in streams.column("path").to_pylist():
        # the name it had in the log (Lake.audio_location)
        target = audio_dir / str(location).rsplit("/", 1)[-1]
        with lake.io.new_input(location).open() as source, target.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        target.chmod(0o600)
        paths.append(str(target))
    return with_paths(streams, paths)


def run_lake_query(config: LakeConfig, sql: str) -> pa.Table:
    """Run one query over every published session of the lake ``config`` names.

    Raises:
        LakeError: the lake cannot be read.
        duckdb.Error: the query itself failed (or tried to reach beyond the lake).
    """
    with open_lake(config) as lake, open_lake_sql(lake) as con:
        return con.sql(sql).to_arrow_table()
