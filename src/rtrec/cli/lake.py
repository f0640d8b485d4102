"""The lake's commands: ``rtrec publish``, ``rtrec lake ...``, and ``--lake`` for the
commands that read sessions (``lake_session``, ``lake_sessions``).

``rtrec sql --lake`` lives with ``rtrec sql`` (src/rtrec/cli/sql.py) and ``rtrec record --lake``
with ``rtrec record`` (src/rtrec/cli/record.py); all of them call into ``rtrec.lake``.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rtrec.cli.common import Trouble
from rtrec.cli.options import db_option
from rtrec.lake.config import load_lake_config
from rtrec.lake.queue import DEFAULT_QUEUE_LIMIT, PublishQueue, publication_states
from rtrec.schemas.errors import RtrecError

if TYPE_CHECKING:
    from rtrec.lake.catalog import Lake

__all__ = ["lake_command", "lake_option", "lake_session", "lake_sessions", "publish_command"]

F = TypeVar("F", bound=Callable[..., Any])


def lake_option(help: str) -> Callable[[F], F]:
    """The ``--lake FILE`` option; ``--lake`` alone means the file ``RTREC_LAKE`` names.

    The command gets ``lake``: None without the option, "" for ``--lake`` alone, else the
    file; ``load_lake_config(lake or None)`` reads it.
    """
    return click.option(
        "--lake",
        "lake",
        is_flag=False,
        flag_value="",
        default=None,
        metavar="FILE",
        help=help,
    )


@contextlib.contextmanager
def _checked_out(lake: str, refs: Sequence[str] | None) -> Iterator[tuple[Path, list[str]]]:
    """A temporary log holding the lake's sessions ``refs`` (None: every one), and their
    full ids; a failure is one line."""
    from rtrec.lake.catalog import open_lake
    from rtrec.lake.query import checkout_sessions

    with tempfile.TemporaryDirectory(prefix="rtrec-lake-") as folder:
        try:
            config = load_lake_config(lake or None)
            with open_lake(config) as opened:
                db, session_ids = checkout_sessions(opened, refs, Path(folder))
        except RtrecError as exc:
            raise Trouble(str(exc)) from None
        if not session_ids:
            raise Trouble(f"no session is published in the lake ({config.describe()})")
        yield db, session_ids


def lake_session(command: F) -> F:
    """Give a command that reads SESSION from ``--db`` a ``--lake`` option too.

    With ``--lake``, the session is looked up among the lake's published sessions and
    copied, with its FLACs fetched from the lake, into a temporary log that the command
    reads as ``--db`` (removed afterwards). The command's parameters must be named
    ``session`` and ``db``.
    """

    @lake_option(
        "Read SESSION from this lake (a TOML file; `--lake` alone: the file RTREC_LAKE "
        "names) instead of --db."
    )
    @functools.wraps(command)
    def wrapper(*args: Any, lake: str | None, **kwargs: Any) -> Any:
        if lake is None:
            return command(*args, **kwargs)
        with _checked_out(lake, [kwargs["session"]]) as (db, [session_id]):
            return command(*args, **{**kwargs, "session": session_id, "db": db})

    return wrapper  # type: ignore[return-value]


def lake_sessions(command: F) -> F:
    """``lake_session`` for a command that takes several SESSIONs and ``--all``.

    With ``--lake``, the sessions named (or, with ``--all``, every published session) are
    copied into one temporary log that the command reads as ``--db``. The command's
    parameters must be named ``sessions``, ``every`` and ``db``.
    """

    @lake_option(
        "Read the sessions from this lake (a TOML file; `--lake` alone: the file RTREC_LAKE "
        "names) instead of --db; --all: every published session."
    )
    @functools.wraps(command)
    def wrapper(*args: Any, lake: str | None, **kwargs: Any) -> Any:
        if lake is None or not (kwargs["sessions"] or kwargs["every"]):
            return command(*args, **kwargs)  # it says what is missing
        refs = None if kwargs["every"] else kwargs["sessions"]
        with _checked_out(lake, refs) as (db, session_ids):
            sessions = () if refs is None else tuple(session_ids)
            return command(*args, **{**kwargs, "sessions": sessions, "db": db})

    return wrapper  # type: ignore[return-value]


@click.command("publish")
@click.argument("sessions", nargs=-1)
@db_option()
@lake_option("The lake to publish to (a TOML file; default: the file RTREC_LAKE names).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Sessions per catalog commit.",
)
def publish_command(sessions: tuple[str, ...], db: Path, lake: str | None, batch_size: int) -> None:
    """Publish closed SESSIONS of a log (default: every closed one) to a lake.

    Sessions the lake already has are skipped, so running it again is harmless. Sessions
    that a recorder queued (`rtrec record --lake`) and has not published yet go too.
    """
    from rtrec.lake.catalog import open_lake
    from rtrec.lake.publish import publish_queue, registered_sessions
    from rtrec.store.reader import open_log_reader, read_sessions, resolve_session

    queue = PublishQueue(db, DEFAULT_QUEUE_LIMIT)
    try:
        config = load_lake_config(lake or None)
        with open_log_reader(db) as log, open_lake(config) as opened:
            if sessions:
                wanted = [resolve_session(log, ref) for ref in sessions]
            else:
                wanted = [s.session_id for s in read_sessions(log) if s.status != "open"]
            already = registered_sessions(opened, wanted)
            queue.note(sorted(already), "published")
            queued = set(queue.sessions())
            for session_id in wanted:
                if session_id not in already and session_id not in queued:
                    queue.stage(log.query, session_id)
            with queue.held() as free:
                if not free:
                    raise Trouble(
                        f"a recorder is publishing {db}'s queue ({queue.folder}); it will "
                        "publish these sessions too"
                    )
            batches = publish_queue(opened, queue, batch_size=batch_size)
            queue.attempted(None)
    except RtrecError as exc:
        if queue.folder.is_dir():
            queue.attempted(str(exc))  # `rtrec sessions` shows why the queue waits
        raise Trouble(str(exc)) from None
    published = sum(len(b.sessions) for b in batches)
    conflicts = sum(b.conflicts for b in batches)
    click.echo(
        f"published {published} session{'' if published == 1 else 's'} in {len(batches)} "
        f"batch{'' if len(batches) == 1 else 'es'} ({conflicts} commit races); "
        f"{len(already)} already in the lake ({config.describe()})"
    )
    states = publication_states(db)
    failed = [(sid, states[sid]) for sid in wanted if sid in states and states[sid].failed]
    if failed:
        raise Trouble(
            "; ".join(f"session {sid} not published: {state.reason}" for sid, state in failed)
            + " (it stays in the local log)"
        )


@click.group("lake")
def lake_command() -> None:
    """Look after a lake: compact small files, expire old snapshots, forget a session."""


T = TypeVar("T")


def _on_lake(lake: str | None, work: Callable[[Lake], T]) -> T:
    """Run ``work`` on the lake ``--lake`` names; a failure is one line."""
    from rtrec.lake.catalog import open_lake

    try:
        with open_lake(load_lake_config(lake or None)) as opened:
            return work(opened)
    except RtrecError as exc:
        raise Trouble(str(exc)) from None


_lake_file = lake_option("The lake (a TOML file; default: the file RTREC_LAKE names).")


@lake_command.command("compact")
@_lake_file
@click.option(
    "--min-files",
    type=click.IntRange(min=2),
    default=8,
    show_default=True,
    help="Rewrite a table once it has this many small files.",
)
def compact_command(lake: str | None, min_files: int) -> None:
    """Rewrite each table's small files (one per published batch) into few large ones."""
    from rtrec.lake.maintenance import compact

    done = _on_lake(lake, lambda opened: compact(opened, min_files=min_files))
    for table in done:
        click.echo(f"{table.table}: {table.files_before} -> {table.files_after} data files")


@lake_command.command("expire")
@_lake_file
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0),
    default=7,
    show_default=True,
    help="Expire snapshots older than this (time travel before it goes).",
)
def expire_command(lake: str | None, older_than_days: float) -> None:
    """Drop old snapshots, and the files that only they still used."""
    import datetime as dt

    from rtrec.lake.maintenance import expire

    n = _on_lake(lake, lambda opened: expire(opened, dt.timedelta(days=older_than_days)))
    click.echo(f"expired {n} snapshot{'' if n == 1 else 's'}")


@lake_command.command("forget")
@click.argument("sessions", nargs=-1, required=True)
@_lake_file
def forget_command(sessions: tuple[str, ...], lake: str | None) -> None:
    """Delete SESSIONS (full ids) from the lake everywhere: rows, FLACs, old snapshots.

    For privacy requests; the recorders' local logs keep their own copies (docs/fleet.md).
    """
    import datetime as dt

    from rtrec.lake.maintenance import expire, forget

    def forget_all(opened: Lake) -> None:
        for session_id in sessions:
            rows = forget(opened, session_id)
            click.echo(f"{session_id}: {rows} rows deleted")
        expire(opened, dt.timedelta(0))

    _on_lake(lake, forget_all)
