"""The log as Parquet: export its tables partitioned by day, and query such an export.

``export_parquet`` writes ``sessions``, ``events``, ``audio_streams``, ``items``,
``indexed_turns``, ``indexed_summary``, ``indexed``, ``prices`` and ``time_prices`` under a
folder, one Hive-style partition per UTC day a session started (``events/day=2026-11-23/``): a
session's rows all land in the partition of the day it started, so exporting a day again
replaces exactly that day, and every session is whole in every export. It reads through
``open_log_reader``, so it works while a recorder writes the log (sessions still open are
exported as far as they are committed).

``open_parquet`` gives an in-memory DuckDB connection with the same tables and views (the
views of ``src/rtrec/schemas/storage.py``) over such a folder, so the same queries give the same
answers. The FLAC audio stays where it is; ``audio_streams.path`` still names it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import attrs
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from rtrec.schemas.storage import ITEMS, MATERIALISED, PRICES, TABLES, VIEWS
from rtrec.store.log import LogError
from rtrec.store.reader import open_log_reader

__all__ = [
    "PARQUET_TABLES",
    "PRICE_TABLES",
    "ParquetExport",
    "create_views",
    "export_parquet",
    "open_parquet",
    "sql_literal",
]

# The day of a session's start, in UTC: the partition key of every table but the prices.
_DAY: Final = "strftime(s.started_at AT TIME ZONE 'UTC', '%Y-%m-%d')"

#: Table -> the query that exports it (``{where}`` restricts sessions by start day).
PARQUET_TABLES: Final = {
    "sessions": f"SELECT s.*, {_DAY} AS day FROM sessions s {{where}}",
    "events": f"SELECT e.*, {_DAY} AS day FROM events e JOIN sessions s USING (session_id) "
    "{where}",
    "audio_streams": f"SELECT a.*, {_DAY} AS day FROM audio_streams a "
    "JOIN sessions s USING (session_id) {where}",
    "items": f"SELECT i.*, {_DAY} AS day FROM items i JOIN sessions s USING (session_id) {{where}}",
    "indexed_turns": f"SELECT t.*, {_DAY} AS day FROM indexed_turns t "
    "JOIN sessions s USING (session_id) {where}",
    "indexed_summary": f"SELECT t.*, {_DAY} AS day FROM indexed_summary t "
    "JOIN sessions s USING (session_id) {where}",
    "indexed": f"SELECT i.*, {_DAY} AS day FROM indexed i JOIN sessions s USING (session_id) "
    "{where}",
    "prices": "SELECT * FROM prices",
    "time_prices": "SELECT * FROM time_prices",
}

#: The tables exported whole, with no ``day``: they belong to no session.
PRICE_TABLES: Final = ("prices", "time_prices")


@attrs.frozen
class ParquetExport:
    """What ``export_parquet`` wrote: rows per table and the days it (re)wrote."""

    out_dir: Path
    rows: dict[str, int]
    days: tuple[str, ...]


def export_parquet(
    db_path: Path,
    out_dir: Path,
    *,
    since: dt.date | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ParquetExport:
    """Write the log's tables as Parquet under ``out_dir``, partitioned by day.

    Args:
        db_path: the log (live or not).
        out_dir: the export folder; days exported again replace their partitions, other
            days already there are kept.
        since: only sessions that started on or after this UTC day.
        progress: called with (table, rows written so far) after each batch.

    Raises:
        LogError: the log cannot be read.
    """
    out_dir = Path(out_dir)
    where, params = "", []
    if since is not None:
        where = "WHERE s.started_at >= ?::TIMESTAMPTZ"
        params = [f"{since.isoformat()} 00:00:00+00"]
    rows: dict[str, int] = {}
    days: set[str] = set()
    with open_log_reader(db_path) as log:
        for table, sql in PARQUET_TABLES.items():
            query = sql.format(where=where)
            with log.batches(query, params if "{where}" in sql else ()) as batches:
                count = _write(batches, out_dir / table, table, days, progress)
            rows[table] = count
    return ParquetExport(out_dir=out_dir, rows=rows, days=tuple(sorted(days)))


def _write(
    batches: pa.RecordBatchReader,
    target: Path,
    table: str,
    days: set[str],
    progress: Callable[[str, int], None] | None,
) -> int:
    """Stream one table into ``target``; returns its rows and adds the days written to ``days``."""
    partitioned = "day" in batches.schema.names
    count = 0
    target.mkdir(parents=True, exist_ok=True)  # marks the export even when it has no rows

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal count
        for batch in batches:
            count += batch.num_rows
            if partitioned:
                days.update(str(d) for d in batch.column("day").unique().to_pylist())
            if progress is not None:
                progress(table, count)
            yield batch

    ds.write_dataset(
        counted(),
        target,
        schema=batches.schema,
        format="parquet",
        partitioning=["day"] if partitioned else None,
        partitioning_flavor="hive" if partitioned else None,
        # a day exported again replaces that day's files; unpartitioned prices overwrite
        existing_data_behavior="delete_matching" if partitioned else "overwrite_or_ignore",
        basename_template="part-{i}.parquet",
    )
    return count


def open_parquet(folder: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the log's tables and views over a Parquet export.

    Raises:
        LogError: ``folder`` is not an export (it has no ``sessions`` folder).
    """
    folder = Path(folder)
    if not (folder / "sessions").is_dir():
        raise LogError(f"{folder} is not an rtrec Parquet export: it has no sessions folder")
    present = {t for t in PARQUET_TABLES if any((folder / t).rglob("*.parquet"))}
    con = duckdb.connect()
    try:
        # The views name each table many times (the fallbacks of turns and session_summary
        # over the events of sessions not indexed): without the cache every mention reads
        # the files' footers again, which took most of a session_summary query.
        con.execute("SET parquet_metadata_cache = true")
        # Tables with no rows were written as no files: they come from the log's own DDL.
        sources = {
            table: f"read_parquet({sql_literal(str(folder / table / '**' / '*.parquet'))}, "
            "hive_partitioning = true)"
            for table in present
        }
        create_views(con, sources)
    except BaseException:
        con.close()
        raise
    return con


def create_views(con: duckdb.DuckDBPyConnection, sources: dict[str, str]) -> None:
    """The log's tables and views on ``con``, each table read from ``sources[table]``.

    ``sources`` maps a table of ``PARQUET_TABLES`` to the relation it is read from (a
    ``read_parquet(...)`` call, a registered Arrow object, a subquery), which has the
    export's ``day`` column; a table missing from it is empty, as the log's DDL makes it.
    The lake (``rtrec.lake``) builds the same views over its Iceberg tables.
    """
    con.execute("CREATE SCHEMA empty; SET schema = 'empty'")
    con.execute(TABLES + ITEMS + MATERIALISED + PRICES)
    con.execute("SET schema = 'main'")
    for table in PARQUET_TABLES:
        if table not in sources:
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM empty.{table}")
            continue
        exclude = "" if table in PRICE_TABLES else " EXCLUDE (day)"
        con.execute(f"CREATE VIEW {table} AS SELECT *{exclude} FROM {sources[table]}")
    con.execute(VIEWS)


def sql_literal(text: str) -> str:
    """A SQL string literal (CREATE VIEW takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"
