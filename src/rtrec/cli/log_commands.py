"""The log's commands: ``rtrec sessions``, ``export`` and ``repair``.

They work on ``./rtrec.duckdb`` unless ``--db`` names another log. ``sessions`` and
``export`` also work while ``rtrec record`` writes the log (through its control socket);
``repair`` needs the file itself. ``rtrec import`` indexes what it imports, so it lives in
the CLI layer (``src/rtrec/cli/import_bundles.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import click
from rich.console import Console

from rtrec._version import __version__
from rtrec.cli.common import (
    Column,
    Trouble,
    console,
    print_fitted,
    progress_bar,
    require_log,
    session_log,
    short_ids,
    table_options,
    trouble,
)
from rtrec.cli.lake import lake_sessions
from rtrec.cli.options import db_option
from rtrec.cli.sql import FORMATS
from rtrec.lake.queue import DEFAULT_QUEUE_LIMIT, Publication, publication_states, queue_dir
from rtrec.store.bundle import export_session
from rtrec.store.log import open_log
from rtrec.store.reader import SessionInfo, open_log_reader, read_sessions

__all__ = ["export_command", "repair_command", "sessions_command"]

_db_option = db_option("The log file.")


#: ``rtrec sessions``' columns: (header, priority, alignment, squeezable to); priority 1
#: fits 80 columns, 2 is shown when there is room, 3 only with --wide or --format.
_SESSION_COLUMNS: Final = (
    Column("id"),
    Column("start (UTC)"),
    Column("duration", justify="right"),
    Column("model", min_width=12),
    Column("events", justify="right"),
    Column("audio", justify="right"),
    Column("status"),
    Column("protocol", priority=2),
    Column("close", priority=2),
    Column("tags", priority=3, min_width=10),
)

#: The column a log with a lake queue (`rtrec record --lake`) gets, after status.
_LAKE_COLUMN: Final = Column("lake")


def _session_row(s: SessionInfo, live: bool, start_format: str) -> list[str]:
    """One session as the table shows it."""
    status = s.status
    if status == "open" and not live:
        status = "open*"
    duration = s.duration_s
    close = "" if s.close_code is None else f"{s.close_code} {s.closed_by or ''}".strip()
    return [
        s.session_id,
        _started(s).strftime(start_format),
        "" if duration is None else f"{duration:.1f} s",
        s.model or "",
        str(s.events),
        f"{s.audio_seconds:.1f} s",
        status,
        s.protocol,
        close,
        s.tags if s.tags not in ("{}", "[]") else "",
    ]


def _started(s: SessionInfo) -> datetime:
    return datetime.fromtimestamp(s.started_ns / 1e9, UTC)


def _session_record(s: SessionInfo, lake: dict[str, Publication] | None) -> dict[str, object]:
    """One session for --format csv|json|markdown: whole ids, numbers as numbers; with
    a lake queue (``lake``), its publication state and the reason of a failure."""
    duration = s.duration_s
    publication: dict[str, object] = {}
    if lake is not None:
        state = lake.get(s.session_id)
        publication = {
            "lake": None if state is None else state.state,
            "lake_error": None if state is None else state.reason,
        }
    return {
        "session_id": s.session_id,
        "started_at": _started(s).isoformat(),
        "duration_s": None if duration is None else round(duration, 3),
        "model": s.model,
        "events": s.events,
        "audio_s": round(s.audio_seconds, 3),
        "status": s.status,
        "protocol": s.protocol,
        "close_code": s.close_code,
        "closed_by": s.closed_by,
        "tags": s.tags,
        **publication,
    }


@click.command("sessions")
@_db_option
@table_options(FORMATS)
def sessions_command(db: Path, wide: bool, fmt: str) -> None:
    """List the sessions of a log: id, start (UTC), duration, model, events, audio, status.

    At 80 columns the id is the shortest prefix that tells the sessions apart (any command
    takes it); protocol, close code and side, and tags follow when there is room, with
    --wide, or in --format csv|json|markdown. A log that `rtrec record --lake` or `rtrec
    publish` queued sessions of has a lake column: queued, published or failed (and why,
    under the table).
    """
    require_log(db)
    with trouble(), open_log_reader(db) as log:
        sessions = read_sessions(log)
        live = log.live
    stale = any(s.status == "open" for s in sessions) and not live
    # `rtrec record --lake` queues closed sessions beside the log until they are published
    lake = publication_states(db) if queue_dir(db).is_dir() else None
    if fmt != "table":
        import pyarrow as pa

        from rtrec.cli.sql import format_result

        records = [_session_record(s, lake) for s in sessions]
        click.echo(format_result(pa.Table.from_pylist(records), fmt))
        return
    out = console()
    this_year = datetime.now(UTC).year
    same_year = all(
        datetime.fromtimestamp(s.started_ns / 1e9, UTC).year == this_year for s in sessions
    )
    rows = [
        _session_row(s, live, "%m-%d %H:%M:%S" if same_year and not wide else "%Y-%m-%d %H:%M:%S")
        for s in sessions
    ]
    if not wide:
        short = short_ids([s.session_id for s in sessions])
        rows = [[short[r[0]], *r[1:]] for r in rows]
    columns = list(_SESSION_COLUMNS)
    if lake is not None:
        at = columns.index(next(c for c in columns if c.header == "status")) + 1
        columns.insert(at, _LAKE_COLUMN)
        for session, row in zip(sessions, rows, strict=True):
            state = lake.get(session.session_id)
            row.insert(at, "" if state is None else state.state)
    count = f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s")
    title = f"{count} in {db}" + (" (being recorded)" if live else "")
    if not wide:  # priority 3 only with --wide or --format
        columns = [c for c in columns if c.priority < 3]
        rows = [r[: len(columns)] for r in rows]
    dropped = print_fitted(out, columns, rows, title=title, wide=wide)
    if dropped:
        out.print(f"(left out for width: {', '.join(dropped)}; --wide shows every column)")
    if lake is not None:
        _print_lake_states(out, db, [lake[s.session_id] for s in sessions if s.session_id in lake])
    if stale:
        out.print(
            "* no recorder holds this log, so these sessions were cut off; "
            "`rtrec repair` marks them interrupted and repairs their audio"
        )


def _print_lake_states(out: Console, db: Path, states: Sequence[Publication]) -> None:
    """Under the sessions table: how many wait for the lake, and each reason of failure."""
    waiting = sum(1 for p in states if p.state == "queued" or p.retrying)
    out.print(
        f"{waiting} session{'' if waiting == 1 else 's'} queued for the lake in "
        f"{queue_dir(db)} (at most {DEFAULT_QUEUE_LIMIT:,}); the recorder publishes them, "
        "`rtrec publish --lake` too",
        highlight=False,
        soft_wrap=True,
    )
    failures = Counter(p.describe().removeprefix("failed: ") for p in states if p.failed)
    for why, n in failures.items():
        out.print(f"{n} failed to publish: {why}", highlight=False, soft_wrap=True)


@click.command("export")
@click.argument("sessions", metavar="SESSION...", nargs=-1)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The bundle directory to write (new or empty); with several sessions or --all, "
    "the directory that gets one bundle per session, named by its id.",
)
@click.option("--all", "every", is_flag=True, help="Export every session of the log.")
@_db_option
@lake_sessions
def export_command(sessions: tuple[str, ...], out: Path, every: bool, db: Path) -> None:
    """Write SESSION as a bundle directory: session.json, events.jsonl and its FLAC files.

    Several SESSIONs (or --all) write one bundle each under --out, with a progress bar.
    With --lake, the sessions are read from the lake (audio fetched from its storage).
    """
    if every == bool(sessions):
        raise click.UsageError("give SESSION (one or more), or --all")
    if every:
        require_log(db)
        with trouble(), open_log_reader(db) as log:
            sessions = tuple(s.session_id for s in read_sessions(log))
        if not sessions:
            raise Trouble(f"no session in {db} to export")
    if len(sessions) == 1 and not every:
        with session_log(sessions[0], db) as (log_path, session_id), trouble():
            result = export_session(log_path, session_id, out)
        click.echo(
            f"exported {result.session_id}: {result.events} events, "
            f"{len(result.files)} files, {result.size:,} bytes -> {result.out_dir}"
        )
        return
    total = 0
    with progress_bar("exporting", len(sessions)) as bar:
        for ref in sessions:
            with session_log(ref, db) as (log_path, session_id), trouble():
                result = export_session(log_path, session_id, out / session_id)
            total += result.size
            bar.advance()
    click.echo(f"exported {len(sessions)} sessions, {total:,} bytes -> {out}")


@click.command("repair")
@_db_option
def repair_command(db: Path) -> None:
    """Mark sessions a crashed recorder left open as interrupted, and repair their audio.

    Opening a log for recording does the same; this does it without recording.
    """
    require_log(db)
    with trouble():
        con, report = open_log(db, version=__version__)
    con.close()
    if report.migrated_from is not None:
        click.echo(f"migrated the log from schema version {report.migrated_from}")
    if not report.interrupted:
        click.echo("nothing to repair: no session was left open")
        return
    for session_id in report.interrupted:
        click.echo(f"{session_id}: marked interrupted")
    for r in report.repairs:
        what = "rewritten" if r.rewritten else "intact"
        lost = f", {r.lost} samples lost" if r.lost else ""
        click.echo(f"  {r.path}: {what}, {r.frames} samples{lost}")
