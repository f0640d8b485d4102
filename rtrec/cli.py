"""The ``rtrec`` command line: wiring only; each command calls into the library."""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path
from typing import Final

import click
import orjson
from rich.console import Console
from rich.table import Table

from rtrec import __version__

#: Each command's module and object, imported only when the command runs (or --help lists
#: it): the modules behind them pull in DuckDB, trio, numpy and the protocol model, and a
#: command should not pay for all of them at start-up.
COMMANDS: Final = {
    "replay": "rtrec.replay_cli:replay_command",
    "diff": "rtrec.replay_cli:diff_command",
    "sessions": "rtrec.recorder.commands:sessions_command",
    "export": "rtrec.recorder.commands:export_command",
    "import": "rtrec.import_cli:import_command",
    "repair": "rtrec.recorder.commands:repair_command",
    "sql": "rtrec.recorder.sql:sql_command",
    "export-parquet": "rtrec.recorder.sql:export_parquet_command",
    "audio": "rtrec.recorder.extract:audio_command",
    "show": "rtrec.show:show_command",
    "index": "rtrec.sql_items:index_command",
    "report": "rtrec.report:report_command",
    "sim": "rtrec.simulator.cli:sim",
    "record": "rtrec.record:record_command",
    "demo": "rtrec.demo:demo_command",
    "playback": "rtrec.replay.playback_cli:playback_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands in ``COMMANDS`` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, name = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise RuntimeError(f"{COMMANDS[cmd_name]} is not the {cmd_name!r} command")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="rtrec")
def cli() -> None:
    """Record OpenAI Realtime API sessions and replay them."""


def _first_difference(a: object, b: object, path: str) -> str:
    """The JSON path of the first place where two decoded JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if a.get(key, ...) != b.get(key, ...):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{index}]")
    return path


@cli.command("check-events")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_events(path: Path) -> None:
    """Type every event of a JSON-lines file and check typing loses nothing.

    Each line is one Realtime event, or an object with the event under "event". Prints the
    events by type; exits 1 if any line is not valid JSON, does not fit its event type, or
    comes back as a different JSON value once typed and written back (compared as decoded
    JSON: key order and number spelling are not checked, since rtrec stores each frame's
    original text and never rewrites a payload from its typed form).
    """
    from rtrec import schemas  # the protocol model takes a while to import

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
            written = schemas.to_dict(event)
            if written != obj:
                where = _first_difference(obj, written, "$")
                problems.append(f"line {number}: {where} differs once typed and written back")
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


def main() -> None:
    """Console-script entry point."""
    cli()
