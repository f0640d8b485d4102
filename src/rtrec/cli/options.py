"""Command-line options that several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from rtrec.store.log import DEFAULT_DB
from rtrec.transport.tls import TlsError, TlsServer, load_tls, tls_hint

__all__ = ["LIVE_LOG_HELP", "db_option", "echo_tls", "tls_from_options", "tls_options"]

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


def tls_options(command: F) -> F:
    """``--tls``, ``--tls-cert FILE`` and ``--tls-key FILE`` (src/rtrec/transport/tls.py)."""
    file = click.Path(exists=True, dir_okay=False, path_type=Path)
    for decorator in reversed(
        [
            click.option(
                "--tls",
                is_flag=True,
                help="Listen with TLS (wss://), with a certificate for localhost generated on "
                "first use; its CA file is printed (trust it with NODE_EXTRA_CA_CERTS or "
                "SSL_CERT_FILE).",
            ),
            click.option(
                "--tls-cert",
                type=file,
                default=None,
                metavar="FILE",
                help="Listen with TLS using this certificate chain (PEM) instead.",
            ),
            click.option(
                "--tls-key",
                type=file,
                default=None,
                metavar="FILE",
                help="The private key of --tls-cert, when it is not in that file.",
            ),
        ]
    ):
        command = decorator(command)
    return command


def tls_from_options(tls: bool, tls_cert: Path | None, tls_key: Path | None) -> TlsServer | None:
    """The TLS setup the options ask for (None: plain ws://).

    Raises:
        click.ClickException: the certificate cannot be made or used.
    """
    if not tls and tls_cert is None and tls_key is None:
        return None
    try:
        return load_tls(tls_cert, tls_key)
    except TlsError as exc:
        raise click.ClickException(str(exc)) from None


def echo_tls(tls: TlsServer | None) -> None:
    """Say on stderr how a client trusts the server (nothing without TLS)."""
    if tls is not None:
        click.echo(tls_hint(tls), err=True)
