"""Locking a DuckDB connection down for queries a user typed (``rtrec sql``).

Such a query reads the log, nothing else: DuckDB's ``enable_external_access = false`` stops
``COPY ... TO`` files, ``read_csv('/any/file')``, ``ATTACH``, ``INSTALL``/``LOAD`` and every
network access; ``lock_configuration`` stops the query from turning that back on. A Parquet
export is read through ``allowed_directories``, which stay readable.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson

from rtrec.schemas.errors import RtrecError

__all__ = ["BadQuery", "lock_down", "one_statement", "reads_only"]

#: Table functions that read nothing: they make rows from their arguments.
_SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {"range", "generate_series", "unnest", "json_each", "json_tree", "duckdb_settings"}
)


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


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def reads_only(sql: str, relations: Collection[str]) -> None:
    """Check that ``sql`` is one SELECT that reads ``relations`` (the log's tables and
    views) and nothing else: no file, no URL, no other database.

    Raises:
        BadQuery: it is not a SELECT, or it names something else to read.
    """
    con = duckdb.connect()
    try:
        ((text,),) = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    finally:
        con.close()
    tree = orjson.loads(text)
    if tree.get("error"):
        message = str(tree.get("error_message", "")).splitlines()[0]
        if "Only SELECT statements" in message:  # DuckDB's words for "not a query"
            word = sql.split(None, 1)[0].upper() if sql.strip() else "an empty statement"
            message = (
                f"a log being recorded answers read queries (SELECT, EXPLAIN) only, not {word}"
            )
        raise BadQuery(message)
    nodes = list(_nodes(tree))
    ctes = {
        str(entry["key"]).lower()
        for node in nodes
        if isinstance(node.get("cte_map"), dict)
        for entry in node["cte_map"].get("map", [])
    }
    known = {name.lower() for name in relations} | ctes
    for node in nodes:
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str(node.get("function", {}).get("function_name", ""))
            if name.lower() not in _SAFE_TABLE_FUNCTIONS:
                raise BadQuery(f"{name}() reads outside the log: not allowed in `rtrec sql`")
        elif kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            catalog = str(node.get("catalog_name", ""))
            if name.lower() not in known or catalog not in ("", "main", "temp"):
                raise BadQuery(
                    f"{'.'.join(p for p in (catalog, name) if p)} is not a table or view "
                    "of the log: `rtrec sql` reads the log only"
                )
