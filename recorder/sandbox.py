"""Locking a DuckDB connection down for queries a user typed (``rtrec sql``).

Such a query reads the log, nothing else: DuckDB's ``enable_external_access = false`` stops
``COPY ... TO`` files, ``read_csv('/any/file')``, ``ATTACH``, ``INSTALL``/``LOAD`` and every
network access; ``lock_configuration`` stops the query from turning that back on. A Parquet
export is read through ``allowed_directories``, which stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from rtrec.schemas.errors import RtrecError

__all__ = ["BadQuery", "lock_down", "one_statement"]


class BadQuery(RtrecError, ValueError):
    """The query text is not one SQL statement."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lock_down(con: duckdb.DuckDBPyConnection, *, readable: Sequence[Path] = ()) -> None:
    """Make ``con`` unable to reach files (but ``readable`` folders), extensions or the
    network, for good: nothing run on it later can change its settings."""
    if readable:
        folders = ", ".join(_literal(str(Path(p).resolve()) + "/") for p in readable)
        con.execute(f"SET allowed_directories = [{folders}]")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def one_statement(sql: str) -> None:
    """Check that ``sql`` holds exactly one statement.

    Raises:
        BadQuery: none (an empty or blank query) or several, or it does not parse.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise BadQuery(str(exc).splitlines()[0]) from None
    if not statements:
        raise BadQuery("the query is empty: give one SQL statement, e.g. 'SELECT * FROM sessions'")
    if len(statements) > 1:
        raise BadQuery(
            f"give one SQL statement at a time, not {len(statements)} "
            "(only the last one's result would show)"
        )
