"""``rtrec index``: materialise the ``items`` table with the replay reducer.

Items (messages with their text and transcripts, function calls with their outputs, audio
durations as heard after truncation) follow the reducer's ordering and truncation rules,
which SQL over ``events`` would have to duplicate; so they are rebuilt by
``rtrec.replay.rebuild`` and stored. Indexing runs on demand, never in the recorder: the
writer must not spend time on it while it forwards frames. It needs the log file itself
(stop ``rtrec record`` first), indexes every session that is not ``open`` and not indexed
yet (or that has more events than when it was indexed), and ``--all`` redoes them all.

It joins the recorder and replay halves of rtrec, so it lives in the CLI layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click
import duckdb
import pyarrow as pa
from rich.console import Console
from rich.progress import Progress

from rtrec._version import __version__
from rtrec.recorder.log import DEFAULT_DB, open_log
from rtrec.recorder.rows import FRAME_COLUMNS, frame_columns_from_arrow
from rtrec.replay import Item, rebuild
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import SessionStatus

__all__ = ["index_command", "index_log", "item_rows"]

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


def index_log(
    db: Path, *, redo: bool = False, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Rebuild ``items`` for the sessions that need it; returns items written per session.

    Raises:
        LogError: the log cannot be opened for writing (a recorder holds it: ``LogInUse``).
    """
    con, _ = open_log(db, version=__version__)
    try:
        todo = con.execute(_TODO, [SessionStatus.OPEN.value, redo]).fetchall()
        done: dict[str, int] = {}
        for n, (session_id, events) in enumerate(todo, start=1):
            frames = con.sql(
                f"SELECT {FRAME_COLUMNS} FROM events WHERE session_id = ? ORDER BY seq",
                params=[session_id],
            ).to_arrow_table()
            rows = item_rows(str(session_id), frames.to_batches())
            table = pa.Table.from_pylist(rows, schema=_schema(con)) if rows else None
            con.execute("BEGIN")
            con.execute("DELETE FROM items WHERE session_id = ?", [session_id])
            if table is not None:
                con.register("new_items", table)
                con.execute(f"INSERT INTO items SELECT {', '.join(_COLUMNS)} FROM new_items")
                con.unregister("new_items")
            con.execute(
                "INSERT OR REPLACE INTO indexed VALUES (?, ?, ?, ?)",
                [session_id, events, datetime.now(UTC), __version__],
            )
            con.execute("COMMIT")
            done[str(session_id)] = len(rows)
            if progress is not None:
                progress(n, len(todo))
        return done
    finally:
        con.close()


def _schema(con: duckdb.DuckDBPyConnection) -> pa.Schema:
    return con.sql("SELECT * FROM items LIMIT 0").to_arrow_table().schema


@click.command("index")
@click.option(
    "--db",
    "db",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    help="The log file (not while `rtrec record` holds it).",
)
@click.option("--all", "redo", is_flag=True, help="Index every session again.")
def index_command(db: Path, redo: bool) -> None:
    """Rebuild the items table (text, transcripts, calls, audio heard) with the reducer.

    Sessions already indexed are skipped unless they gained events, or --all is given.
    """
    console = Console(stderr=True)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("indexing sessions", total=None)

            def progress(n: int, total: int) -> None:
                bar.update(task, completed=n, total=total)

            done = index_log(db, redo=redo, progress=progress)
    except RtrecError as exc:
        raise click.ClickException(str(exc)) from None
    items = sum(done.values())
    click.echo(f"indexed {len(done)} session{'' if len(done) == 1 else 's'}, {items} items")
