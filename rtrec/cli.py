"""The ``rtrec`` command line: wiring only; each command calls into the library."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from rtrec import __version__, schemas
from rtrec.demo import demo_command
from rtrec.import_cli import import_command
from rtrec.record import record_command
from rtrec.recorder.commands import (
    export_command,
    repair_command,
    sessions_command,
)
from rtrec.recorder.extract import audio_command
from rtrec.recorder.sql import export_parquet_command, sql_command
from rtrec.replay.playback_cli import playback_command
from rtrec.replay_cli import diff_command, replay_command
from rtrec.report import report_command
from rtrec.show import show_command
from rtrec.simulator.cli import sim
from rtrec.sql_items import index_command


@click.group()
@click.version_option(__version__, prog_name="rtrec")
def cli() -> None:
    """Record OpenAI Realtime API sessions and replay them."""


@cli.command("check-events")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_events(path: Path) -> None:
    """Type every event of a JSON-lines file and check it writes back unchanged.

    Each line is one Realtime event, or an object with the event under "event". Prints the
    events by type; exits 1 if any line is not valid JSON, does not fit its event type, or
    would not round-trip exactly.
    """
    console = Console()
    counts: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                problems.append(f"line {number}: invalid JSON: {exc}")
                continue
            if isinstance(obj, dict) and isinstance(obj.get("event"), dict):
                obj = obj["event"]
            if not isinstance(obj, dict):
                problems.append(f"line {number}: not a JSON object")
                continue
            try:
                event = schemas.from_dict(obj)
            except schemas.SchemaError as exc:
                problems.append(f"line {number}: {exc}")
                event = schemas.from_dict(obj, lenient=True)
            if schemas.to_dict(event) != obj:
                problems.append(f"line {number}: does not round-trip")
            counts[(event.type, type(event).__name__)] += 1

    table = Table(title=f"{sum(counts.values())} events in {path}")
    table.add_column("type")
    table.add_column("class")
    table.add_column("count", justify="right")
    for (name, cls), n in sorted(counts.items()):
        table.add_row(name, cls, str(n))
    console.print(table)
    for problem in problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    if problems:
        sys.exit(1)


cli.add_command(replay_command)
cli.add_command(diff_command)
cli.add_command(sessions_command)
cli.add_command(export_command)
cli.add_command(import_command)
cli.add_command(repair_command)
cli.add_command(sql_command)
cli.add_command(export_parquet_command)
cli.add_command(audio_command)
cli.add_command(show_command)
cli.add_command(index_command)
cli.add_command(report_command)
cli.add_command(sim)
cli.add_command(record_command)
cli.add_command(demo_command)
cli.add_command(playback_command)


def main() -> None:
    """Console-script entry point."""
    cli()
