"""The ``rtrec`` command line: wiring only; each command calls into the library."""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Final

import click
import orjson
from rich.markup import escape

from rtrec import __version__
from rtrec.cli.common import (
    EXIT_STATUS_HELP,
    Column,
    Exit,
    Trouble,
    as_trouble,
    console,
    fit_table,
    output_width,
)

#: Each command's module and object, imported only when the command runs (or --help lists
#: it): the modules behind them pull in DuckDB, trio, numpy and the protocol model, and a
#: command should not pay for all of them at start-up.
COMMANDS: Final = {
    "replay": "rtrec.cli.replay:replay_command",
    "diff": "rtrec.cli.replay:diff_command",
    "sessions": "rtrec.cli.log_commands:sessions_command",
    "export": "rtrec.cli.log_commands:export_command",
    "import": "rtrec.cli.import_bundles:import_command",
    "repair": "rtrec.cli.log_commands:repair_command",
    "sql": "rtrec.cli.sql:sql_command",
    "export-parquet": "rtrec.cli.sql:export_parquet_command",
    "publish": "rtrec.cli.lake:publish_command",
    "lake": "rtrec.cli.lake:lake_command",
    "audio": "rtrec.cli.audio:audio_command",
    "show": "rtrec.cli.show:show_command",
    "index": "rtrec.cli.index:index_command",
    "report": "rtrec.cli.report:report_command",
    "sim": "rtrec.cli.sim:sim",
    "record": "rtrec.cli.record:record_command",
    "demo": "rtrec.cli.demo:demo_command",
    "playback": "rtrec.cli.playback:playback_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands in ``COMMANDS`` are imported on first use, and whose
    commands all keep the exit-code contract (``rtrec.cli.common``): an error a command
    lets through that bad input or a broken file can cause is one line and status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if type(exc) is click.ClickException:  # a plain error: trouble, never status 1
                raise Trouble(exc.message) from None
            raise
        except Exception as exc:
            found = as_trouble(exc)
            if found is None:
                raise
            raise found from None

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


#: Files rtrec creates hold conversations: only their owner may read them (0600, folders
#: 0700), unless --group-readable or --umask says otherwise. DuckDB creates the log and its
#: .wal, libsndfile the FLACs: the process umask is what reaches all of them.
PRIVATE_UMASK: Final = 0o077
GROUP_READABLE_UMASK: Final = 0o027


def _umask(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        mask = int(value, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise click.BadParameter(f"expected an octal umask such as 077, not {value!r}")
    return mask


@click.group(cls=LazyGroup, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, prog_name="rtrec")
@click.option(
    "--group-readable",
    is_flag=True,
    help="Let the owner's group read the files rtrec creates (umask 027); by default only "
    "their owner can (umask 077): they hold conversations.",
)
@click.option(
    "--umask",
    "umask",
    metavar="OCTAL",
    default=None,
    help="The umask for the files rtrec creates, e.g. 022 [default: 077].",
)
def cli(group_readable: bool, umask: str | None) -> None:
    """Record OpenAI Realtime API sessions and replay them.

    SESSION, in every command that takes one, is a session id, a unique prefix of one, or
    a bundle directory (from rtrec export).
    """
    mask = _umask(umask)
    if mask is not None and group_readable:
        raise click.UsageError("give --group-readable or --umask, not both")
    chosen = mask if mask is not None else GROUP_READABLE_UMASK if group_readable else PRIVATE_UMASK
    from rtrec.process import set_file_mask  # imports the log writer: only when run

    before = set_file_mask(chosen)
    # for the command's run only: a caller running the CLI in its own process keeps its own
    click.get_current_context().call_on_close(lambda: set_file_mask(before))


#: Problems ``check-events`` prints before it only counts them.
SHOWN_PROBLEMS: Final = 20


def _event_of(obj: object) -> tuple[dict[str, Any] | None, str | None]:
    """The event a JSON line holds, or why there is none to check (None, None: a line to
    skip, as a recorder's own mark or a binary frame of a bundle)."""
    if isinstance(obj, dict) and isinstance(obj.get("event"), dict):
        return obj["event"], None
    if isinstance(obj, dict) and {"seq", "direction", "payload"} <= obj.keys():
        # a log row, as a bundle's events.jsonl holds: the event is its payload (with any
        # audio cut out to "", which is still a valid event)
        if obj["direction"] == "recorder" or obj["payload"] is None:
            return None, None
        try:
            payload = orjson.loads(obj["payload"])
        except (orjson.JSONDecodeError, TypeError):
            return None, "the payload is not JSON (a frame the recorder kept as it came)"
        return (payload, None) if isinstance(payload, dict) else (None, "not a JSON object")
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, None


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


def _bundle_dialect(path: Path) -> str | None:
    """The dialect key of the session a bundle's ``events.jsonl`` belongs to (from the
    handshake recorded in the ``session.json`` beside it), or None when there is none."""
    from rtrec.schemas.dialects import dialect_of

    try:
        session = orjson.loads((path.parent / "session.json").read_bytes())["session"]
        headers = orjson.loads(session.get("request_headers") or "{}")
        subprotocol = session.get("subprotocol")
        return dialect_of(
            session["request_path"], list(headers.items()), [subprotocol] if subprotocol else []
        ).key
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


@cli.command("check-events")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dialect",
    type=click.Choice(["ga", "beta", "live", "live-fork", "live-sideband"]),
    help="the protocol of the events (default: a bundle's own, else Realtime GA)",
)
def check_events(path: Path, dialect: str | None) -> None:
    """Type every event of a JSON-lines file and check typing loses nothing.

    Each line is one event (Realtime, or GPT-Live with --dialect live, live-fork or
    live-sideband), an object with the event under "event" (and its "direction", "client" or
    "server"), or a log row of a bundle's events.jsonl (its payload is checked in the
    bundle's own dialect; recorder marks and binary frames are skipped). A GPT-Live event
    without a direction is read as the client's if the client may send its type, else as the
    server's. Prints the events by type; exits 1 if any line is not valid JSON, does not fit
    its event type, or comes back as a different JSON value once typed and written back
    (compared as decoded JSON: key order and number spelling are not checked, since rtrec
    stores each frame's original text and never rewrites a payload from its typed form), and
    2 if the file is not JSON lines.
    """
    from rtrec import schemas  # the protocol model takes a while to import
    from rtrec.schemas.dialects import DIALECTS
    from rtrec.schemas.storage import Direction

    chosen = DIALECTS[dialect or _bundle_dialect(path) or "ga"]
    out = console()
    counts: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    skipped = parsed = 0
    with path.open("rb") as lines:
        head = lines.read(4096)
        lines.seek(0)
        if b"\0" in head or not _utf8(head):
            raise Trouble(f"{path} is not a JSON-lines file (it holds binary data)")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                problems.append(f"line {number}: invalid JSON: {exc}")
                if parsed == 0 and len(problems) >= SHOWN_PROBLEMS:
                    raise Trouble(
                        f"{path} is not a JSON-lines file (none of its first "
                        f"{len(problems)} lines is JSON)"
                    ) from None
                continue
            parsed += 1
            event_obj, problem = _event_of(obj)
            if problem is not None:
                problems.append(f"line {number}: {problem}")
                continue
            if event_obj is None:
                skipped += 1
                continue
            side = obj.get("direction") if isinstance(obj, dict) else None
            if side not in ("client", "server"):
                side = "client" if event_obj.get("type") in chosen.client_events else "server"
            events = chosen.events(Direction(side))
            try:
                event = events.from_dict(event_obj)
            except schemas.SchemaError as exc:
                problems.append(f"line {number}: {exc}")
                event = events.from_dict(event_obj, lenient=True)
            written = schemas.to_dict(event)
            if written != event_obj:
                where = _first_difference(event_obj, written, "$")
                problems.append(f"line {number}: {where} differs once typed and written back")
            counts[(event.type, type(event).__name__)] += 1

    out.print(f"{sum(counts.values())} events in {path}", soft_wrap=True)
    table, _ = fit_table(
        [Column("type"), Column("class", min_width=12), Column("count", justify="right")],
        [[name, cls, str(n)] for (name, cls), n in sorted(counts.items())],
        width=output_width(out),
    )
    out.print(table)
    if skipped:
        out.print(f"{skipped} lines skipped: recorder marks and binary frames of a log")
    for problem in problems[:SHOWN_PROBLEMS]:
        out.print(f"[red]{escape(problem)}[/red]", soft_wrap=True)
    if len(problems) > SHOWN_PROBLEMS:
        out.print(f"[red]... and {len(problems) - SHOWN_PROBLEMS} more problems[/red]")
    if problems:
        sys.exit(Exit.DIFFERENT)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3  # a character cut at the end of the block
    return True


def main() -> None:
    """Console-script entry point."""
    cli()
