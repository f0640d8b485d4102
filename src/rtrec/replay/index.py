"""Indexing: materialise ``items`` and ``indexed_turns`` for finished sessions.

Items (messages with their text and transcripts, function calls with their outputs, audio
durations as heard after truncation) follow the reducer's ordering and truncation rules,
which SQL over ``events`` would have to duplicate; so they are rebuilt by
``rtrec.replay.rebuild`` and stored. Turns are the ``turns`` query of
``src/rtrec/schemas/storage.py`` run over the session's own events, stored so that the ``turns``
view does not recompute every turn of the log for each latency query.

A session is indexed when it closes, by ``rtrec record`` (``index_session`` is its log
writer's ``on_session_closed`` hook, run beside the committer), when ``rtrec import``
loads it, or by ``rtrec index``, which needs the log file itself (stop ``rtrec record``
first) and indexes every session that is not ``open`` and not indexed yet (or that has
more events than when it was indexed); ``--redo`` indexes them all again.

It needs the replay reducer and the log store, so it lives in ``rtrec.replay`` (which may
import both); ``rtrec.cli.index`` is the command over it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from rtrec._version import __version__
from rtrec.replay import Item, rebuild
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.storage import SessionStatus, live_model_fill, summary_query, turns_query
from rtrec.store.log import open_log
from rtrec.store.rows import FRAME_COLUMNS, frame_columns_from_arrow, in_seq_order

__all__ = ["index_log", "index_session", "item_rows"]

_TODO: Final = """
SELECT s.session_id, count(e.seq) AS events
FROM sessions s LEFT JOIN events e USING (session_id)
LEFT JOIN indexed i USING (session_id)
WHERE s.status <> ?
GROUP BY s.session_id, i.events
HAVING ? OR i.events IS NULL OR i.events <> count(e.seq)
ORDER BY s.session_id
"""

_COLUMNS: Final = (
    "session_id",
    "item_id",
    "position",
    "type",
    "role",
    "status",
    "origin",
    "response_id",
    "text",
    "transcript",
    "audio_s",
    "heard_audio_s",
    "truncated",
    "name",
    "call_id",
    "arguments",
    "output",
    "first_seq",
    "first_ms",
    "deleted",
)


def _joined(values: list[str | None]) -> str | None:
    present = [v for v in values if v]
    return "".join(present) if present else None


def _row(session_id: str, item: Item, position: int | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "item_id": item.id,
        "position": position,
        "type": item.type,
        "role": item.role,
        "status": item.status,
        "origin": item.origin,
        "response_id": item.response_id,
        "text": _joined([p.text.value for p in item.parts]),
        # what was said (generated, or transcribed): truncation shows in heard_audio_s
        "transcript": _joined([p.transcript.value for p in item.parts]),
        "audio_s": sum(a.duration for p in item.parts for a in p.audio),
        "heard_audio_s": sum(a.duration for p in item.parts for a in p.heard_audio),
        "truncated": item.truncated,
        "name": item.name,
        "call_id": item.call_id,
        "arguments": item.arguments.value,
        "output": item.output,
        "first_seq": item.first_seq,
        "first_ms": item.first_t_ns / 1e6,
        "deleted": item.deleted_seq is not None,
    }


def item_rows(session_id: str, frames: Iterable[pa.RecordBatch]) -> list[dict[str, Any]]:
    """The ``items`` rows of one session, from its frames (selected with ``FRAME_COLUMNS``).

    Conversation items get their 0-based ``position``; items that never entered the
    conversation (out-of-band output, deleted items) have none.
    """
    batches = list(frames)
    columns = (
        frame_columns_from_arrow(session_id, pa.Table.from_batches(batches))
        if batches
        else FrameColumns.from_records((), session_id)
    )
    state = rebuild(columns).state
    rows = [_row(session_id, item, i) for i, item in enumerate(state.conversation)]
    placed = {item.id for item in state.conversation}
    rows += [
        _row(session_id, item, None)
        for item in sorted(state.items.values(), key=lambda i: i.first_seq)
        if item.id not in placed
    ]
    return rows


# ``index_log`` reads the events of several sessions in one scan, up to this many rows: one
# scan per session costs a pass over the whole log (0.1 s per session at 10 M events).
_ROWS_PER_READ: Final = 200_000


def index_session(con: duckdb.DuckDBPyConnection, session_id: str) -> int:
    """Write one session's ``items`` and ``indexed_turns`` and mark it ``indexed``; a
    GPT-Live session also gets its ``sessions.model`` (named by its events, not its URL).

    The items are rebuilt by the replay reducer; the turns are the ``turns`` query
    (``src/rtrec/schemas/storage.py``) run over this session's events alone, so they equal what the
    view computes from the whole log. Everything is replaced in one transaction: indexing
    again (``--redo``) gives the same rows. Blocking: on a trio loop call it from a worker
    thread, with a connection (or cursor) that no other thread uses meanwhile. This is the
    hook ``rtrec record`` gives its log writer (``on_session_closed``).

    Returns:
        The number of items written.
    """
    frames = in_seq_order(
        con.sql(
            f"SELECT {FRAME_COLUMNS}, wall_time FROM events WHERE session_id = ?",
            params=[session_id],
        ).to_arrow_table()
    )
    return _write_index(con, [session_id], frames)[session_id]


def _spans(frames: pa.Table) -> dict[str, tuple[int, int]]:
    """Where each session's rows are in ``frames`` (ordered by session): offset, length."""
    ids = frames.column("session_id").to_pylist()
    spans: dict[str, tuple[int, int]] = {}
    begin = 0
    for n in range(1, len(ids) + 1):
        if n == len(ids) or ids[n] != ids[begin]:
            spans[str(ids[begin])] = (begin, n - begin)
            begin = n
    return spans


def _write_index(
    con: duckdb.DuckDBPyConnection, sessions: list[str], frames: pa.Table
) -> dict[str, int]:
    """Index ``sessions`` from ``frames`` (all their events, by session and seq) in one
    transaction; returns the items written per session."""
    spans = _spans(frames)
    rows: list[dict[str, Any]] = []
    written: dict[str, int] = {}
    for session_id in sessions:
        offset, length = spans.get(session_id, (0, 0))
        found = item_rows(session_id, frames.slice(offset, length).to_batches())
        written[session_id] = len(found)
        rows += found
    items = pa.Table.from_pylist(rows, schema=_schema(con)) if rows else None
    now = datetime.now(UTC)
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM items WHERE list_contains(?, session_id)", [sessions])
        con.execute("DELETE FROM indexed_turns WHERE list_contains(?, session_id)", [sessions])
        con.execute("DELETE FROM indexed_summary WHERE list_contains(?, session_id)", [sessions])
        if items is not None:
            con.register("rtrec_new_items", items)
            con.execute(f"INSERT INTO items SELECT {', '.join(_COLUMNS)} FROM rtrec_new_items")
            con.unregister("rtrec_new_items")
        # one statement for all the sessions: the query costs more to plan than to run
        con.register("rtrec_session_events", frames)
        for table, query in (("indexed_turns", turns_query), ("indexed_summary", summary_query)):
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT * FROM ({query('rtrec_session_events')})"
            )
        con.execute(live_model_fill("rtrec_session_events"))
        con.unregister("rtrec_session_events")
        con.executemany(
            "INSERT OR REPLACE INTO indexed VALUES (?, ?, ?, ?)",
            [[sid, spans.get(sid, (0, 0))[1], now, __version__] for sid in sessions],
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # BEGIN itself may have failed
            con.execute("ROLLBACK")
        raise
    return written


def _reads(todo: list[tuple[str, int]]) -> Iterator[list[str]]:
    """Group sessions (in order) into reads of about ``_ROWS_PER_READ`` events."""
    group: list[str] = []
    rows = 0
    for session_id, events in todo:
        if group and rows + events > _ROWS_PER_READ:
            yield group
            group, rows = [], 0
        group.append(session_id)
        rows += events
    if group:
        yield group


def _read_events(con: duckdb.DuckDBPyConnection, sessions: list[str]) -> pa.Table:
    """The events of ``sessions`` in one scan, by session and seq."""
    return con.sql(
        f"SELECT {FRAME_COLUMNS}, wall_time FROM events "
        # the range lets DuckDB skip row groups by their min/max before the list test
        "WHERE session_id BETWEEN ? AND ? AND list_contains(?, session_id) "
        "ORDER BY session_id, seq",
        params=[min(sessions), max(sessions), sessions],
    ).to_arrow_table()


def index_log(
    db: Path, *, redo: bool = False, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Index the sessions that need it (as ``index_session``); returns items per session.

    A session needs it when it is finished (not ``open``) and not indexed yet, or has more
    events than when it was indexed; ``redo`` indexes every finished session again.

    Raises:
        LogError: the log cannot be opened for writing (a recorder holds it: ``LogInUse``).
    """
    con, _ = open_log(db, version=__version__)
    try:
        todo = [
            (str(sid), int(n))
            for sid, n in con.execute(_TODO, [SessionStatus.OPEN.value, redo]).fetchall()
        ]
        if progress is not None:
            progress(0, len(todo))
        done: dict[str, int] = {}
        for group in _reads(todo):
            done |= _write_index(con, group, _read_events(con, group))
            if progress is not None:
                progress(len(done), len(todo))
        return done
    finally:
        con.close()


def _schema(con: duckdb.DuckDBPyConnection) -> pa.Schema:
    return con.sql("SELECT * FROM items LIMIT 0").to_arrow_table().schema
