"""``rtrec index``: index finished sessions (the library is ``rtrec.replay.index``)."""

from __future__ import annotations

from pathlib import Path

import click

from rtrec.cli.common import progress_bar, require_log, trouble
from rtrec.cli.options import db_option
from rtrec.replay.index import index_log

__all__ = ["index_command"]


@click.command("index")
@db_option("The log file (not while `rtrec record` holds it).")
@click.option("--redo", "--all", "redo", is_flag=True, help="Index every session again.")
def index_command(db: Path, redo: bool) -> None:
    """Index finished sessions: items (text, transcripts, calls, audio heard) and turns.

    The recorder and `rtrec import` index sessions themselves; this fills in what is
    missing (older logs, a failed indexing). Sessions already indexed are skipped unless
    they gained events, or --redo is given.
    """
    require_log(db)
    with trouble(), progress_bar("indexing sessions") as bar:
        done = index_log(db, redo=redo, progress=lambda n, total: bar.update(n, total))
    items = sum(done.values())
    click.echo(f"indexed {len(done)} session{'' if len(done) == 1 else 's'}, {items} items")
