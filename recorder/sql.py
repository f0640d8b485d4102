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
from rich.progress import Progress
from rich.table import Table

from rtrec.recorder.control import QueryRefused
from rtrec.recorder.log import DEFAULT_DB
from rtrec.recorder.options import db_option
from rtrec.recorder.parquet import export_parquet, open_parquet
from rtrec.recorder.reader import open_log_reader
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import SCHEMA_VERSION

__all__ = ["FORMATS", "export_parquet_command", "format_result", "run_query", "sql_command"]

FORMATS: Final = ("table", "csv", "json", "markdown")


def run_query(sql: str, *, db: Path = DEFAULT_DB, parquet: Path | None = None) -> pa.Table:
    """Run one query on a log (live or not) or, with ``parquet``, on a Parquet export.

    Raises:
        RtrecError: the log or export cannot be read, or a recorder refused the query.
        duckdb.Error: the query itself failed.
    """
    if parquet is not None:
        con = open_parquet(parquet)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()
    with open_log_reader(db) as log:
        return log.query(sql)


def _text(value: Any) -> str:
    """A cell as text: NULL is empty, floats keep their digits, times in ISO 8601."""
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
    rows: Sequence[dict[str, Any]] = result.to_pylist()
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


def print_table(result: pa.Table, console: Console, title: str | None = None) -> None:
    """A query result as a rich table (numbers right-aligned)."""
    table = Table(title=title)
    for name in result.column_names:
        table.add_column(name, justify="right" if _numeric(result, name) else "left")
    for row in result.to_pylist():
        table.add_row(*(_text(v) for v in row.values()))
    console.print(table)


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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def sql_command(query: str, db: Path, parquet: Path | None, fmt: str) -> None:
    """Run one read-only SQL QUERY on the log and print the result.

    The views session_summary, turns, responses, function_calls, errors, interruptions,
    rate_limits and playback sit on the tables sessions, events, audio_streams and prices
    (docs/sql.md).
    """
    try:
        result = run_query(query, db=db, parquet=parquet)
    except duckdb.CatalogException as exc:
        raise click.ClickException(f"{exc}{_old_log_hint(db) if parquet is None else ''}") from None
    except (RtrecError, QueryRefused, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "table":
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)  # piped: do not squeeze columns into 80
        print_table(result, console)
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
    console = Console(stderr=True)
    try:
        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(table: str, rows: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(table, total=None)
                bar.update(tasks[table], completed=rows, description=f"{table}: {rows:,} rows")

            report = export_parquet(
                db, out, since=None if since is None else since.date(), progress=progress
            )
    except (RtrecError, QueryRefused, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from None
    counts = ", ".join(f"{n:,} {table}" for table, n in report.rows.items())
    n = len(report.days)
    days = f" ({n} day{'' if n == 1 else 's'})" if n else ""
    click.echo(f"exported {counts} -> {report.out_dir}{days}")
