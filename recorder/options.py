"""Command-line options that several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from rtrec.recorder.log import DEFAULT_DB

__all__ = ["LIVE_LOG_HELP", "db_option"]

F = TypeVar("F", bound=Callable[..., Any])

LIVE_LOG_HELP = "The log file (it may be being recorded)."


def db_option(help: str = LIVE_LOG_HELP, *, must_exist: bool = False) -> Callable[[F], F]:
    """The ``--db PATH`` option naming the DuckDB log, ``./rtrec.duckdb`` by default.

    Args:
        help: What the command does with the log (whether it may be live, for example).
        must_exist: Refuse a path that does not exist (for commands that never create a log).
    """
    return click.option(
        "--db",
        "db",
        type=click.Path(exists=must_exist, dir_okay=False, path_type=Path),
        default=DEFAULT_DB,
        show_default=True,
        help=help,
    )
