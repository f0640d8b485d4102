"""What every ``rtrec`` command shares: the exit-code contract, one-line errors, what a
SESSION argument means, and output that fits the terminal.

- **Exit codes** (``Exit``): 0 success or equal, 1 a difference or a failed check, 2 a usage
  error or trouble (no such session, bad input, an unreadable file). ``Trouble`` is the
  one-line error of status 2; ``trouble()`` turns rtrec's, DuckDB's and the system's errors
  into it, and the command group (``rtrec.cli``) does the same for any that a command
  lets through, so bad input never ends in a traceback.
- **SESSION** is a session id, a unique prefix of one, or a bundle directory, in every
  command (``session_log``, ``is_path``).
- **Tables** choose their columns by priority to fit the width (``fit_table``), ids are
  shown as their shortest unique prefix (``short_ids``), and long lines wrap with a hanging
  indent (``wrap_hanging``); ``--wide`` and ``--format`` (``table_options``) give the rest.
"""

from __future__ import annotations

import enum
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = [
    "EXIT_STATUS_HELP",
    "Column",
    "Exit",
    "Trouble",
    "as_trouble",
    "console",
    "fit_table",
    "is_path",
    "output_width",
    "print_unbounded",
    "progress_bar",
    "require_log",
    "session_log",
    "short_ids",
    "table_options",
    "trouble",
    "wrap_hanging",
]

F = TypeVar("F", bound=Callable[..., Any])


class Exit(enum.IntEnum):
    """The exit status of every command."""

    OK = 0
    DIFFERENT = 1
    TROUBLE = 2


EXIT_STATUS_HELP: Final = (
    "Exit status, for every command: 0 success (or equal); 1 a difference or a failed "
    "check (rtrec diff, replay --golden, replay --drive, check-events); 2 a usage error or "
    "trouble (no such session, bad input, an unreadable file)."
)


class Trouble(click.ClickException):
    """A one-line error that ends the command with status 2."""

    exit_code = Exit.TROUBLE


def as_trouble(exc: BaseException) -> Trouble | None:
    """The one-line error for an exception bad input or a broken file can raise, or None
    for anything else (a bug, which should show its traceback)."""
    from rtrec.schemas.errors import RtrecError  # the protocol model is slow to import

    if isinstance(exc, Trouble):
        return exc
    if isinstance(exc, RtrecError):
        return Trouble(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return Trouble(f"{where}{exc.strerror or exc}")
    # DuckDB is imported by the commands that use it, never here (start-up stays fast)
    if type(exc).__module__.partition(".")[0] in ("duckdb", "_duckdb"):
        return Trouble(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
    return None


@contextmanager
def trouble(*also: type[BaseException]) -> Iterator[None]:
    """Turn rtrec's, DuckDB's and the system's errors (and ``also``) into ``Trouble``."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        found = as_trouble(exc)
        if found is None and isinstance(exc, also):
            found = Trouble(str(exc))
        if found is None:
            raise
        raise found from None


# -- SESSION ----------------------------------------------------------------------------


def is_path(ref: str) -> bool:
    """Whether a SESSION argument names a path (a bundle directory) rather than an id: it
    exists, or it has a path separator in it. Session ids never do."""
    return Path(ref).exists() or "/" in ref or os.sep in ref


def require_log(db: Path) -> None:
    """Refuse a ``--db`` that is not there, with the message every command gives."""
    if not db.exists():
        raise Trouble(f"no rtrec log at {db}")
    if db.is_dir():
        raise Trouble(f"{db} is a directory, not an rtrec log")


@contextmanager
def session_log(ref: str, db: Path) -> Iterator[tuple[Path, str]]:
    """The log that holds SESSION and its full id.

    A session id or unique prefix is looked up in ``db``. A bundle directory is imported
    (checked as ``rtrec import`` checks it, and indexed) into a temporary log that is
    deleted afterwards, so that every command that reads a log reads a bundle the same way.

    Raises:
        Trouble: no such session or log, or not a sound bundle.
    """
    if not is_path(ref):
        from rtrec.store.reader import resolve_session

        require_log(db)
        with trouble():
            session_id = resolve_session(db, ref)
        yield db, session_id
        return
    path = Path(ref)
    if not path.is_dir():
        what = "a file" if path.exists() else "not there"
        raise Trouble(
            f"{ref} is {what}: give a bundle directory (with session.json), "
            "or a session id in the log"
        )
    from rtrec.replay.index import index_session
    from rtrec.store.bundle import import_bundles

    with tempfile.TemporaryDirectory(prefix="rtrec-bundle-") as scratch:
        log = Path(scratch) / "bundle.duckdb"
        with trouble():
            (result,) = import_bundles(log, [path], on_imported=index_session)
        if result.error is not None or result.session_id is None:
            raise Trouble(result.error or f"{ref}: not imported")
        yield log, result.session_id


# -- tables and text that fit -------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or as ``COLUMNS`` says; when the output is piped
    and ``COLUMNS`` is not set, wide enough that nothing is squeezed (a table then takes its
    natural width)."""
    width = None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    made = Console(stderr=stderr, width=width, highlight=False)
    if width is None and not made.is_terminal:
        made = Console(stderr=stderr, width=10_000, highlight=False)
    return made


def output_width(target: Console) -> int | None:
    """The width to fit text to, or None when there is no limit (piped output)."""
    return None if target.width >= 10_000 else target.width


@attrs.frozen
class Column:
    """A table column: its header, priority (1 is kept longest), alignment, and the width
    below which it is not squeezed (None: never squeezed, e.g. ids, times and paths)."""

    header: str
    priority: int = 1
    justify: str = "left"
    min_width: int | None = None


_GAP: Final = 2  # columns are separated by two spaces (box.SIMPLE_HEAD, no edges)


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None,
) -> tuple[Table, list[str]]:
    """A borderless table of the columns that fit ``width``, dropped by priority (highest
    number first, later columns first among equals), in their given order. (Print a title
    above it with ``soft_wrap=True``: a table title wraps to the table's width, and cuts
    paths in it.)

    Returns:
        The table and the headers of the columns left out.
    """

    def natural(i: int) -> int:
        return max([len(columns[i].header), *(len(r[i]) for r in rows)])

    def needed(i: int) -> int:
        squeeze = columns[i].min_width
        return natural(i) if squeeze is None else min(natural(i), max(squeeze, 1))

    kept = list(range(len(columns)))
    widths = {i: natural(i) for i in kept}
    if width is not None:
        by_drop = sorted(kept, key=lambda i: (-columns[i].priority, -i))
        while len(kept) > 1 and sum(needed(i) for i in kept) + _GAP * (len(kept) - 1) > width:
            kept.remove(by_drop.pop(0))
        # Squeeze the widest squeezable column first, one character at a time, down to its
        # minimum: rich alone would not cut a column below its longest word.
        excess = sum(widths[i] for i in kept) + _GAP * (len(kept) - 1) - width
        while excess > 0:
            room = [i for i in kept if widths[i] > needed(i)]
            if not room:
                break
            widest = max(room, key=lambda i: (widths[i], i))
            widths[widest] -= 1
            excess -= 1
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for i in kept:
        c = columns[i]
        squeezable = c.min_width is not None
        table.add_column(
            c.header,
            justify=c.justify,  # type: ignore[arg-type]
            no_wrap=not squeezable,
            overflow="ellipsis" if squeezable else "fold",  # "ignore" would not justify
            min_width=None if squeezable else natural(i),
            max_width=widths[i] if squeezable else None,
        )
    for r in rows:
        table.add_row(*(r[i] for i in kept))
    dropped = [columns[i].header for i in range(len(columns)) if i not in kept]
    return table, dropped


def print_fitted(
    target: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None,
    wide: bool,
) -> list[str]:
    """Print ``rows`` as a table under ``title``: fitted to the terminal (``fit_table``), or
    with every column at its natural width when ``wide``. Returns the headers left out, for
    the caller's note under the table."""
    table, dropped = fit_table(columns, rows, width=None if wide else output_width(target))
    if title:
        target.print(title, soft_wrap=True)
    print_unbounded(target, table)
    return dropped


def print_unbounded(target: Console, renderable: Any) -> None:
    """Print ``renderable`` at its natural width even where that is wider than the
    terminal (``--wide``): the terminal wraps its lines rather than rich cropping them."""
    unbounded = target.options.update(width=100_000, max_width=100_000)
    needed = Measurement.get(target, unbounded, renderable).maximum
    if needed <= target.width:
        target.print(renderable)
        return
    wide = Console(
        file=target.file,
        width=needed,
        force_terminal=target.is_terminal,
        color_system=target.color_system,  # type: ignore[arg-type]
        highlight=False,
    )
    wide.print(renderable)


def short_ids(ids: Sequence[str], *, least: int = 8) -> dict[str, str]:
    """Each id's shortest prefix (at least ``least`` characters) that tells the given ids
    apart, as git shows commits; the whole id when it is not longer."""
    unique = sorted(set(ids))
    out: dict[str, str] = {}
    for n, full in enumerate(unique):
        length = least
        for other in (unique[n - 1] if n else None, unique[n + 1] if n + 1 < len(unique) else None):
            if other is not None:
                common = len(os.path.commonprefix([full, other]))  # noqa: RUF071 (not paths)
                length = max(length, common + 1)
        short = full[:length]
        # never end on a separator: 01a244dd- reads as a typo
        while short.endswith(("-", "_")) and len(short) < len(full):
            short = full[: len(short) + 1]
        out[full] = short
    return out


#: Where a transcript line's body starts: after its time and speaker, or its indent.
_BODY: Final = re.compile(r"^( *\d+\.\d+s  [a-z_]+ +|[a-z_]+ +| +)(?=\S)")


def wrap_hanging(text: str, width: int | None, *, indent: int | None = None) -> str:
    """``text`` with each line longer than ``width`` wrapped at spaces, continuation lines
    indented under the start of the line's body (after a transcript's time and speaker
    columns, or its leading spaces) or by ``indent``. Words longer than a line (ids, paths,
    URLs) are never cut: they overflow instead."""
    if width is None:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        if indent is None:
            found = _BODY.match(line)
            hang = len(found.group(1)) if found else 0
            hang = hang if hang < width // 2 else 4
        else:
            hang = indent
        current, fresh = line[:hang], True
        for word in line[hang:].split(" "):
            if not fresh and len(current) + 1 + len(word) > width:
                out.append(current)
                current, fresh = " " * hang, True
            current += word if fresh else " " + word
            fresh = False
        out.append(current)
    return "\n".join(out)


def table_options(formats: Sequence[str]) -> Callable[[F], F]:
    """``--wide`` and ``--format``, as click decorators."""

    def decorate(command: F) -> F:
        command = click.option(
            "--format",
            "fmt",
            type=click.Choice(list(formats)),
            default=formats[0],
            show_default=True,
            help="table: fitted to the terminal; the others print every column in full.",
        )(command)
        return click.option(
            "--wide",
            is_flag=True,
            help="Every column and whole ids, however wide the table gets.",
        )(command)

    return decorate


# -- progress -----------------------------------------------------------------------------

#: Work shorter than this gets no progress bar (it would only flicker).
BAR_AFTER_S: Final = 1.0


class ProgressBar:
    """A rich progress bar on stderr that appears only once the work has taken more than
    ``BAR_AFTER_S`` (and only on a terminal), and is gone when the work is done."""

    def __init__(self, description: str, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task(description, total=total)
        self._begun = time.monotonic()
        self._shown = False

    def _tick(self) -> None:
        if not self._shown and time.monotonic() - self._begun > BAR_AFTER_S:
            self._shown = True
            self._progress.start()

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""
        self._progress.advance(self._task, n)
        self._tick()

    def update(
        self, completed: int, total: int | None = None, description: str | None = None
    ) -> None:
        """Where the work is: ``completed`` of ``total`` units."""
        changes: dict[str, Any] = {"completed": completed}
        if total is not None:
            changes["total"] = total
        if description is not None:
            changes["description"] = description
        self._progress.update(self._task, **changes)
        self._tick()

    def print(self, text: str) -> None:
        """A line on stderr above the bar (rich markup)."""
        self.console.print(text, soft_wrap=True)

    def echo(self, text: str) -> None:
        """A line of the command's output (stdout). While the bar is on the terminal, and
        stdout is that terminal, it goes above the bar (written to stdout, it would land
        on the bar's line); piped, it goes to the pipe."""
        if self._shown and sys.stdout.isatty():
            self.console.print(text, soft_wrap=True, markup=False)
        else:
            click.echo(text)

    def stop(self) -> None:
        """Remove the bar."""
        if self._shown:
            self._progress.stop()


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[ProgressBar]:
    """A ``ProgressBar`` for the work done in the ``with`` block."""
    bar = ProgressBar(description, total)
    try:
        yield bar
    finally:
        bar.stop()
