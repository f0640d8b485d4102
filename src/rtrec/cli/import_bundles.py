"""``rtrec import``: load bundles into a log and index them, with progress.

Each argument is a bundle directory (from ``rtrec export``) or a directory of bundles.
Every bundle is checked and loaded in its own transaction; a broken one is reported and
the others go on; the exit status is 2 (trouble: bad input) if any failed. Each imported
session is indexed at once (items and turns, as ``rtrec index`` does), which needs the
replay reducer: that is why the command lives in the CLI layer rather than beside
``src/rtrec/store/bundle.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click
from rich.markup import escape

from rtrec.cli.common import Exit, progress_bar, trouble
from rtrec.cli.options import db_option
from rtrec.replay.index import index_session
from rtrec.store.bundle import ImportResult, import_bundles

__all__ = ["find_bundles", "import_command"]


def find_bundles(paths: Iterable[Path]) -> list[Path]:
    """The bundles named by ``paths``, in order: a directory holding ``session.json`` is a
    bundle; any other directory stands for its subdirectories (hidden ones left out), each
    taken as a bundle, so one without ``session.json`` is reported as not a bundle. A
    directory with no subdirectory is returned as it is, to be reported the same way."""
    found: list[Path] = []
    for path in paths:
        if (path / "session.json").is_file():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        found.extend(children or [path])
    return found


@click.command("import")
@click.argument(
    "bundles",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@db_option("The log to load the bundles into (created when missing).")
def import_command(bundles: tuple[Path, ...], db: Path) -> None:
    """Load bundle directories (from `rtrec export`) into a log, byte for byte, and index them.

    BUNDLES are bundle directories or directories of bundles. A broken bundle is reported
    and skipped; the exit status is 2 if any bundle was not imported. A bundle whose very
    session the log already holds is reported as already imported, and is no failure.
    """
    todo = find_bundles(bundles)
    failed: list[ImportResult] = []
    imported: list[ImportResult] = []
    already: list[ImportResult] = []
    with trouble(), progress_bar("importing", len(todo)) as bar:

        def progress(result: ImportResult) -> None:
            bar.advance()
            if result.error is not None:
                failed.append(result)
                bar.print(f"[red]failed[/red] {escape(result.error)}")
                return
            if result.already:
                already.append(result)
                bar.echo(f"already imported {result.session_id} (in {db}, the same)")
                return
            imported.append(result)
            bar.echo(f"imported {result.session_id} into {db}")
            if result.hook_error is not None:
                bar.print(
                    f"[yellow]warning[/yellow] {result.session_id} is imported but not "
                    f"indexed ({escape(result.hook_error)}); `rtrec index` will index it"
                )

        import_bundles(db, todo, on_imported=index_session, progress=progress)
    if len(todo) > 1 or failed:
        click.echo(
            f"{len(imported)} of {len(todo)} bundle{'' if len(todo) == 1 else 's'} imported"
            + (f", {len(already)} already there" if already else "")
            + (f", {len(failed)} failed" if failed else ""),
            err=bool(failed),
        )
    if failed:
        sys.exit(Exit.TROUBLE)
