"""``rtrec replay SESSION --drive URL|sim``: re-drive a recording against a server.

CLI wiring: it joins the driver (``rtrec.replay.driver``), the log and, for ``--drive sim``,
the simulator. ``replay_cli.py`` adds ``drive_options`` to ``rtrec replay`` and hands over
to ``run_drive`` when ``--drive`` is given.

The recorded client side is sent to the server, the new exchange is recorded as a new
session of ``--db`` (tagged ``rtrec.drive_of``), and the diff of the old and new
conversations is printed. Exit codes as ``rtrec diff``: 0 equal, 1 different, 2 trouble
(the drive could not finish: a timeout, a rejected handshake, ...; the diff is still
printed when a new session was recorded). A drive that stopped because the server went idle
without what the next recorded client frame waited for (the new conversation took another
shape) exits 1: the conversations differ, and a line says which frames were not sent.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit

import attrs
import click
import orjson
import trio

from rtrec.cli.common import Exit, Trouble, is_path, progress_bar, require_log
from rtrec.cli.record import is_loopback_host
from rtrec.replay import ConversationDiff, diff_conversations, rebuild
from rtrec.replay.drive_plan import DrivePlan
from rtrec.replay.driver import DriveOptions, DriveResult, drive_session, load_frames, plan_for
from rtrec.replay.live import diff_live, fold_live
from rtrec.replay.playback import Pace
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import Direction, FrameRecord
from rtrec.simulator import (
    DEFAULT_SCENARIO,
    Scenario,
    ScenarioError,
    load_scenario,
    serve_simulator,
)
from rtrec.store.reader import AudioSource, check_audio, read_frames

__all__ = ["DriveArgs", "drive_options", "run_drive", "take_drive_options"]

F = TypeVar("F", bound=Callable[..., Any])

#: The key sent to a simulator or another server on this machine when OPENAI_API_KEY is not
#: set (the simulator wants one, any will do). Not a real key.
LOCAL_KEY: Final = "sk-rtrec-drive-local"


@attrs.frozen
class DriveArgs:
    """The ``--drive`` options of one command line."""

    drive: str
    wait_timeout: float
    idle_grace: float
    scenario: Path | None
    seed: int
    model: str | None


def drive_options(command: F) -> F:
    """``--drive`` and the options that go with it, as click decorators."""
    decorators = [
        click.option(
            "--drive",
            "drive",
            metavar="URL|sim",
            help="Send SESSION's client side to the server at URL (Realtime or GPT-Live, as "
            "recorded) "
            "(wss://api.openai.com/v1, ws://127.0.0.1:PORT/v1) or to the built-in simulator, "
            "record the new exchange as a new session of --db and print the diff of the two "
            "conversations (exit 0 equal, 1 different, 2 trouble). The key comes from "
            "OPENAI_API_KEY. --pace applies.",
        ),
        click.option(
            "--wait-timeout",
            type=float,
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="With --drive: the longest one wait for the server may last.",
        ),
        click.option(
            "--idle-grace",
            type=float,
            default=2.0,
            show_default=True,
            metavar="SECONDS",
            help="With --drive: stop waiting for a server event once the server is idle (no "
            "response in progress, no speech heard, no transcription outstanding) and nothing "
            "was sent or received for this long; the frames left out are named, exit 1.",
        ),
        click.option(
            "--scenario",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="With --drive sim: the simulator's scenario file [default: built-in].",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="With --drive sim: the simulator's seed (its ids).",
        ),
        click.option(
            "--model",
            default=None,
            help="With --drive: ask for this model instead of the recorded one.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def take_drive_options(options: dict[str, Any]) -> DriveArgs | None:
    """Remove the ``drive_options`` from a command's keyword arguments; the ``DriveArgs``
    when ``--drive`` was given, else None (the others must then be left at their defaults).

    Raises:
        click.UsageError: a driver option without ``--drive``, or a simulator option
            without ``--drive sim``.
    """
    drive: str | None = options.pop("drive")
    args = DriveArgs(
        drive=drive or "",
        wait_timeout=options.pop("wait_timeout"),
        idle_grace=options.pop("idle_grace"),
        scenario=options.pop("scenario"),
        seed=options.pop("seed"),
        model=options.pop("model"),
    )
    if drive is None:
        given = _given(("wait_timeout", "idle_grace", "seed"))
        if args.scenario is not None or args.model is not None or given:
            raise click.UsageError(
                "--scenario, --model, --seed, --wait-timeout and --idle-grace go with --drive"
            )
        return None
    if args.drive != "sim" and args.scenario is not None:
        raise click.UsageError("--scenario only applies with --drive sim")
    if not args.wait_timeout > 0:
        raise click.BadParameter("must be above 0", param_hint="--wait-timeout")
    if not args.idle_grace > 0:
        raise click.BadParameter("must be above 0", param_hint="--idle-grace")
    return args


def _given(names: tuple[str, ...]) -> bool:
    """Whether the command line set any of these options (not just their defaults)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    return any(
        ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
        for name in names
    )


def _api_key(drive: str) -> str:
    """The key for the server: OPENAI_API_KEY; a placeholder for the simulator or a server
    on this machine when it is not set."""
    if drive == "sim":
        return LOCAL_KEY
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if is_loopback_host(urlsplit(drive).hostname or ""):
        return LOCAL_KEY
    raise click.UsageError(f"OPENAI_API_KEY is not set: {drive} needs a key")


async def _drive(
    plan: DrivePlan,
    audio: AudioSource,
    db: Path,
    args: DriveArgs,
    options: DriveOptions,
    key: str,
    scenario: Scenario,
) -> DriveResult:
    async with trio.open_nursery() as nursery:
        upstream = args.drive
        if upstream == "sim":
            # realtime unless the drive is instant: barge-in needs a reply still streaming
            pace = "fast" if math.isinf(options.pace.speed) else "realtime"
            upstream = await nursery.start(
                functools.partial(serve_simulator, scenario=scenario, pace=pace, seed=args.seed)
            )
        result = await drive_session(
            plan, audio, upstream=upstream, db=db, api_key=key, options=options
        )
        nursery.cancel_scope.cancel()
    return result


def run_drive(session: str, db: Path, args: DriveArgs, *, pace: str) -> None:
    """Drive SESSION (a bundle directory, or an id or prefix in ``db``) as ``args`` say,
    print the new session and the diff, and exit 0 (equal), 1 (different) or 2 (trouble)."""
    try:
        speed = Pace.parse(pace)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pace") from None
    options = DriveOptions(
        pace=speed, wait_timeout=args.wait_timeout, idle_grace=args.idle_grace, model=args.model
    )
    if args.drive != "sim" and urlsplit(args.drive).scheme not in ("ws", "wss"):
        raise click.BadParameter(
            f"{args.drive!r}: give a ws:// or wss:// base URL, or 'sim'", param_hint="--drive"
        )
    key = _api_key(args.drive)
    try:
        scenario = load_scenario(args.scenario) if args.scenario else DEFAULT_SCENARIO
        # as every command reads SESSION: a path is a bundle, anything else an id in --db
        if is_path(session):
            frames, row, audio = load_frames(Path(session))
        else:
            require_log(db)
            frames, row, audio = load_frames(db, session)
        # before connecting: a drive that stops at the first missing chunk leaves a junk
        # session behind in the log
        check_audio((f for f in frames if f.direction is Direction.CLIENT), audio)
    except (RtrecError, ScenarioError) as exc:
        _trouble(f"{exc}; nothing was driven")
    plan = plan_for(frames, row)
    if args.model is not None and not plan.dialect.model_in_query:
        raise click.UsageError(
            f"--model: a {plan.dialect.name} session names its model in its first client "
            "event, not in the URL; --model applies to Realtime recordings"
        )
    target = "the simulator" if args.drive == "sim" else args.drive
    click.echo(
        f"driving {plan.session_id} ({len(plan.steps)} client events, {plan.appends} audio "
        f"appends) against {target}; recording into {db}",
        err=True,
    )
    try:
        with audio, progress_bar("driving: client events sent", len(plan.steps)) as bar:
            options = attrs.evolve(options, on_sent=lambda n, total: bar.update(n, total))
            result = trio.run(_drive, plan, audio, db, args, options, key, scenario)
    except BaseException as exc:
        error = _unwrap(exc)  # trio reports a task's error inside an ExceptionGroup
        if isinstance(error, RtrecError | OSError):
            _trouble(str(error))
        if isinstance(error, KeyboardInterrupt):
            _trouble(f"interrupted; what was driven until then is recorded in {db}")
        raise
    report = result.report
    for event in report.errors:
        click.echo(f"the server sent an error: {orjson.dumps(event).decode()}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if result.session_id is None:
        _trouble(report.failure or "no session was recorded")
    click.echo(f"new session {result.session_id} in {db}")
    diff = _DIFFS[plan.dialect.family](frames, list(read_frames(db, result.session_id)))
    click.echo(diff.report(session, result.session_id), nl=False)
    if report.failure is not None:
        _trouble(report.failure)
    if (not_sent := report.not_sent()) is not None:
        click.echo(f"rtrec replay --drive: {not_sent}", err=True)
        sys.exit(Exit.DIFFERENT)  # the server went another way: the conversations differ
    if not diff.equal:
        sys.exit(Exit.DIFFERENT)


def _diff_realtime(a: Sequence[FrameRecord], b: Sequence[FrameRecord]) -> ConversationDiff:
    return diff_conversations(rebuild(a).state, rebuild(b).state)


def _diff_live(a: Sequence[FrameRecord], b: Sequence[FrameRecord]) -> ConversationDiff:
    return diff_live(fold_live(a), fold_live(b))


#: ``Dialect.family`` -> how the recorded and the new session are compared
_DIFFS: Final[
    Mapping[str, Callable[[Sequence[FrameRecord], Sequence[FrameRecord]], ConversationDiff]]
] = {"realtime": _diff_realtime, "live": _diff_live}


def _trouble(message: str) -> NoReturn:
    raise Trouble(f"replay --drive: {message}")


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
