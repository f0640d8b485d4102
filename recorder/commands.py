"""The log's commands: ``rtrec sessions``, ``export`` and ``repair``.

They work on ``./rtrec.duckdb`` unless ``--db`` names another log. ``sessions`` and
``export`` also work while ``rtrec record`` writes the log (through its control socket);
``repair`` needs the file itself. ``rtrec import`` indexes what it imports, so it lives in
the CLI layer (``rtrec/import_cli.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rtrec._version import __version__
from rtrec.recorder.bundle import export_session
from rtrec.recorder.log import open_log
from rtrec.recorder.options import db_option
from rtrec.recorder.reader import open_log_reader, read_sessions
from rtrec.schemas.errors import RtrecError

__all__ = ["export_command", "repair_command", "sessions_command"]

_db_option = db_option("The log file.")


def _fail(exc: RtrecError) -> click.ClickException:
    return click.ClickException(str(exc))


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.command("sessions")
@_db_option
def sessions_command(db: Path) -> None:
    """List the sessions of a log: id, start (UTC), duration, model, events, audio, status."""
    try:
        with open_log_reader(db) as log:
            sessions = read_sessions(log)
            live = log.live
    except RtrecError as exc:
        raise _fail(exc) from None
    count = f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s")
    table = Table(title=f"{count} in {db}" + (" (being recorded)" if live else ""))
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("start (UTC)", no_wrap=True)
    table.add_column("duration", justify="right")
    table.add_column("model")
    table.add_column("events", justify="right")
    table.add_column("audio", justify="right")
    table.add_column("status")
    stale = False
    for s in sessions:
        status = s.status
        if status == "open" and not live:
            status, stale = "open*", True
        duration = s.duration_s
        table.add_row(
            s.session_id,
            _when(s.started_ns),
            "" if duration is None else f"{duration:.1f} s",
            s.model or "",
            str(s.events),
            f"{s.audio_seconds:.1f} s",
            status,
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or captured: do not squeeze rows into 80 columns
    console.print(table)
    if stale:
        console.print(
            "* no recorder holds this log, so these sessions were cut off; "
            "`rtrec repair` marks them interrupted and repairs their audio",
            highlight=False,
        )


@click.command("export")
@click.argument("session")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the bundle to (new or empty).",
)
@_db_option
def export_command(session: str, out: Path, db: Path) -> None:
    """Write SESSION (an id or a unique prefix) as a bundle directory.

    The bundle holds session.json, events.jsonl and the session's FLAC files.
    """
    try:
        result = export_session(db, session, out)
    except RtrecError as exc:
        raise _fail(exc) from None
    click.echo(
        f"exported {result.session_id}: {result.events} events, "
        f"{len(result.files)} files, {result.size:,} bytes -> {result.out_dir}"
    )


@click.command("repair")
@_db_option
def repair_command(db: Path) -> None:
    """Mark sessions a crashed recorder left open as interrupted, and repair their audio.

    Opening a log for recording does the same; this does it without recording.
    """
    if not db.exists():
        raise click.ClickException(f"no rtrec log at {db}")
    try:
        con, report = open_log(db, version=__version__)
    except RtrecError as exc:
        raise _fail(exc) from None
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
