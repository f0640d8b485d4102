"""``rtrec sql`` and ``rtrec export-parquet``: SQL over a log (live or not) or a Parquet export.

Queries on a log go through ``open_log_reader``: while ``rtrec record`` holds the log they
run on the recorder's connection via its control socket (read-only statements only), and on
the file itself otherwise. The views they can use are documented in docs/sql.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import click
import duckdb
import orjson
import pyarrow as pa
from rich.console import Console

from rtrec.cli.common import (
    Column,
    Trouble,
    console,
    print_fitted,
    progress_bar,
    require_log,
    short_ids,
    table_options,
    trouble,
)
from rtrec.cli.lake import lake_option
from rtrec.cli.options import db_option
from rtrec.lake.config import load_lake_config
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import SCHEMA_VERSION
from rtrec.store.control import QueryRefused
from rtrec.store.log import DEFAULT_DB
from rtrec.store.parquet import export_parquet, open_parquet
from rtrec.store.reader import open_log_reader
from rtrec.store.sandbox import BadQuery, lock_down, one_statement

__all__ = ["FORMATS", "export_parquet_command", "format_result", "run_query", "sql_command"]

FORMATS: Final = ("table", "csv", "json", "markdown")


def run_query(sql: str, *, db: Path = DEFAULT_DB, parquet: Path | None = None) -> pa.Table:
    """Run one statement on a log (live or not) or, with ``parquet``, on a Parquet export.

    The query runs on a connection that can read the log (or the export) and nothing else:
    no files written or read elsewhere, no extensions installed or loaded, no network
    (``src/rtrec/store/sandbox.py``; a live log's control socket takes one SELECT only).

    Raises:
        BadQuery: ``sql`` is not exactly one statement.
        RtrecError: the log or export cannot be read, or a recorder refused the query.
        duckdb.Error: the query itself failed (a permission error for files, extensions).
    """
    one_statement(sql)
    if parquet is not None:
        con = open_parquet(parquet)
        try:
            lock_down(con, readable=[parquet])
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()
    with open_log_reader(db, sandboxed=True) as log:
        result = log.query(sql)
    if result is None:  # pragma: no cover - one_statement lets no empty query through
        raise BadQuery("the query returned nothing")
    return result


#: Significant digits a float keeps in the output: sums of durations in binary floating
#: point come out as 7.56624999999999; 12 digits show 7.56625 and lose nothing measured.
FLOAT_DIGITS: Final = 12


def _tidy(value: Any) -> Any:
    """A value with float noise removed (see ``FLOAT_DIGITS``), inside lists and maps too."""
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    """A cell as text: NULL is empty, floats without noise, times in ISO 8601."""
    value = _tidy(value)
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | dict):
        return orjson.dumps(value, default=_json_default).decode()
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def format_result(result: pa.Table, fmt: str) -> str:
    """A query result as ``csv``, ``json`` (an array of objects) or ``markdown`` text.

    ``table`` is printed by rich instead (``print_table``).

    Raises:
        ValueError: an unknown format.
    """
    names = result.column_names
    rows: Sequence[dict[str, Any]] = [_tidy(row) for row in result.to_pylist()]
    if fmt == "json":
        return orjson.dumps(
            rows, default=_json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_INDENT_2
        ).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(row[n]) for n in names] for row in rows)
        return out.getvalue().rstrip("\n")
    if fmt == "markdown":

        def cell(value: Any) -> str:
            return _text(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(cell(n) for n in names) + " |"]
        lines.append("|" + "|".join("---:" if _numeric(result, n) else "---" for n in names) + "|")
        lines += ["| " + " | ".join(cell(row[n]) for n in names) + " |" for row in rows]
        return "\n".join(lines)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _numeric(result: pa.Table, name: str) -> bool:
    kind = result.schema.field(name).type
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def print_table(
    result: pa.Table, console: Console, title: str | None = None, *, wide: bool = False
) -> None:
    """A query result as a table fitted to the console: columns are kept from the left
    while they fit (the rest are named below it), session ids are shortened to a unique
    prefix, numbers are right-aligned. ``wide`` keeps every column and whole ids."""
    names = result.column_names
    rows = [[_cell(v) for v in row.values()] for row in result.to_pylist()]
    for n, name in enumerate(names):
        if wide or not name.endswith("session_id"):
            continue
        short = short_ids([r[n] for r in rows if r[n]])
        for r in rows:
            r[n] = short.get(r[n], r[n])
    columns = [
        Column(
            name,
            priority=n + 1,
            justify="right" if _numeric(result, name) else "left",
            min_width=None if _unsqueezable(result, name) else 12,
        )
        for n, name in enumerate(names)
    ]
    dropped = print_fitted(console, columns, rows, title=title, wide=wide)
    if dropped:
        names = ", ".join(dropped[:6]) + (", ..." if len(dropped) > 6 else "")
        console.print(f"({len(dropped)} more column{'' if len(dropped) == 1 else 's'}: {names};")
        # on a line of its own, so that the way out is never wrapped apart
        console.print(" --wide or --format csv|json|markdown shows them)")


def _cell(value: Any) -> str:
    """A cell of the terminal table: floats to 6 significant digits, times to the second."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return _text(value)


def _unsqueezable(result: pa.Table, name: str) -> bool:
    """Numbers, times and ids are never cut short in a table."""
    kind = result.schema.field(name).type
    return _numeric(result, name) or pa.types.is_temporal(kind) or name.endswith("_id")


def _one_line(message: str) -> str:
    """DuckDB's error on one line: its caret under the query is dropped, the query line
    it points into is kept."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [line for line in lines if not set(line) <= {"^"}]
    return " ".join(kept)


def _old_log_hint(db: Path) -> str:
    """A hint when a missing table or view is explained by the log's schema version."""
    try:
        with open_log_reader(db) as log:
            rows = log.rows("SELECT value FROM meta WHERE key = 'schema_version'")
    except (RtrecError, QueryRefused, duckdb.Error):
        return ""
    version = int(rows[0]["value"]) if rows and str(rows[0]["value"]).isdigit() else None
    if version is None or version >= SCHEMA_VERSION:
        return ""
    return (
        f"\n{db} has schema version {version}, from an older rtrec, without the views of "
        f"version {SCHEMA_VERSION}: `rtrec repair --db {db}` upgrades it"
    )


@click.command("sql")
@click.argument("query")
@db_option()
@click.option(
    "--parquet",
    "parquet",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Query a folder written by `rtrec export-parquet` instead of a log.",
)
@lake_option(
    "Query every session published to this lake (a TOML file; `--lake` alone: the file "
    "RTREC_LAKE names) instead of a log (docs/fleet.md)."
)
@table_options(FORMATS)
def sql_command(
    query: str, db: Path, parquet: Path | None, lake: str | None, wide: bool, fmt: str
) -> None:
    """Run one read-only SQL QUERY on the log and print the result.

    The views session_summary, turns, responses, function_calls, errors, interruptions,
    rate_limits and playback sit on the tables sessions, events, audio_streams and prices
    (docs/sql.md).
    """
    if parquet is None and lake is None:
        require_log(db)
    try:
        if lake is not None:
            from rtrec.lake.query import run_lake_query

            result = run_lake_query(load_lake_config(lake or None), query)
        else:
            result = run_query(query, db=db, parquet=parquet)
    except duckdb.CatalogException as exc:
        hint = _old_log_hint(db) if parquet is None and lake is None else ""
        raise Trouble(f"{_one_line(str(exc))}{hint.replace(chr(10), '; ')}") from None
    except (RtrecError, QueryRefused, duckdb.Error) as exc:
        raise Trouble(_one_line(str(exc))) from None
    if fmt == "table":
        print_table(result, console(), wide=wide)
        return
    click.echo(format_result(result, fmt))


@click.command("export-parquet")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@db_option()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only sessions that started on or after this UTC day (YYYY-MM-DD).",
)
def export_parquet_command(out: Path, db: Path, since: dt.datetime | None) -> None:
    """Write the log's tables to OUT as Parquet, partitioned by the day sessions started.

    Days exported again replace their partitions. Query the result with
    `rtrec sql --parquet OUT`, DuckDB, or any engine that reads Hive-partitioned Parquet.
    """
    require_log(db)
    with trouble(), progress_bar("exporting") as bar:

        def progress(table: str, rows: int) -> None:
            bar.update(rows, description=f"{table}: rows")

        report = export_parquet(
            db, out, since=None if since is None else since.date(), progress=progress
        )
    counts = ", ".join(f"{n:,} {table}" for table, n in report.rows.items())
    n = len(report.days)
    days = f" ({n} day{'' if n == 1 else 's'})" if n else ""
    click.echo(f"exported {counts} -> {report.out_dir}{days}")
