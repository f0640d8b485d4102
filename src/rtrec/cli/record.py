"""``rtrec record``: run the recording proxy on a log until Ctrl-C.

CLI wiring over ``open_recorder`` (src/rtrec/recorder/open_recorder.py): options in, the URL out,
sessions indexed as they close, and the process tuned for relaying (``tune_process``).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import click
import duckdb
import trio

from rtrec.cli.common import Trouble, console
from rtrec.cli.lake import lake_option
from rtrec.cli.options import db_option, echo_tls, tls_from_options, tls_options
from rtrec.cli.record_console import SessionConsole
from rtrec.lake.config import LakeConfig, load_lake_config
from rtrec.lake.publish import serve_publisher
from rtrec.lake.queue import PublishQueue
from rtrec.process import tune_process
from rtrec.recorder.open_recorder import open_recorder
from rtrec.recorder.proxy import DEFAULT_UPSTREAM, ProxyOptions
from rtrec.recorder.redact import PathRedactor
from rtrec.replay.index import index_session
from rtrec.schemas.errors import RtrecError
from rtrec.simulator import DEFAULT_SCENARIO, load_scenario
from rtrec.store.writer import DEFAULT_DISK_RESERVE, LogWriter
from rtrec.transport.tls import TlsServer

__all__ = ["is_loopback_host", "parse_listen", "record_command", "run_recorder"]


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) to a host and a port.

    Raises:
        click.BadParameter: not of that form.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter(f"expected HOST:PORT, e.g. 127.0.0.1:8765, not {value!r}")
    return host.strip("[]"), int(port)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, without brackets) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def session_closed_hook(
    db: Path, *, index: bool, lake: bool
) -> Callable[[duckdb.DuckDBPyConnection, str], None] | None:
    """What the writer calls as each session's close is committed: index it, queue it."""
    if not (index or lake):
        return None
    queue = PublishQueue(db)
    if lake:
        queue.begin()

    def closed(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        if index:
            index_session(con, session_id)
        if lake:
            queue.stage(
                lambda sql, params: con.sql(sql, params=list(params)).to_arrow_table(),
                session_id,
            )

    return closed


async def run_recorder(
    *,
    host: str,
    port: int,
    upstream: str,
    db: Path,
    audio_dir: Path | None,
    options: ProxyOptions,
    scenario: Path | None = None,
    index: bool = True,
    quiet: bool = False,
    disk_reserve: int = DEFAULT_DISK_RESERVE,
    tls: TlsServer | None = None,
    lake: LakeConfig | None = None,
) -> str | None:
    """Record until SIGINT/SIGTERM, then close every session cleanly and commit the log.

    With ``lake``, each closed session is then queued beside the log and published to the
    lake in the background (docs/fleet.md).

    With ``index``, each session is indexed (items, turns, figures) once its close is
    committed, beside the writer (docs/sql.md). Unless ``quiet``, a line per session opened
    and closed goes to stderr (``SessionConsole``).

    Returns:
        None, or why recording stopped early (the log writer failed, e.g. a full disk);
        it was said on stderr at once, and the recorder refused sessions from then on.
    """
    started_ns = time.time_ns()  # sessions of earlier runs started before it (stage_missed)
    simulator = None
    if upstream == "sim":
        simulator = {"scenario": load_scenario(scenario) if scenario else DEFAULT_SCENARIO}
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            open_recorder(
                upstream,
                db=db,
                audio_dir=audio_dir,
                host=host,
                port=port,
                options=options,
                simulator=simulator,
                on_session_closed=session_closed_hook(db, index=index, lake=lake is not None),
                tap=None if quiet else SessionConsole(console(stderr=True)).tap,
                disk_reserve=disk_reserve,
                tls=tls,
            ) as recorder,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_say_when_failed, recorder.writer, db)
            if lake is not None:
                nursery.start_soon(
                    functools.partial(serve_publisher, lake, db, started_ns=started_ns)
                )
            print(recorder.url, flush=True)
            echo_tls(tls)
            print(
                f'OpenAI SDK: AsyncOpenAI(websocket_base_url="{recorder.url}"), then '
                "client.realtime.connect(model=...)",
                flush=True,
            )
            print(
                f"recording to {db} (upstream {upstream}); Ctrl-C closes the sessions "
                "and commits the log",
                file=sys.stderr,
                flush=True,
            )
            async for _ in signals:
                break
            print("closing sessions...", file=sys.stderr, flush=True)
            await recorder.close_sessions()
            nursery.cancel_scope.cancel()
        return recorder.writer.failure


async def _say_when_failed(writer: LogWriter, db: Path) -> None:
    """Say on stderr, the moment it happens, that recording stopped and what to do."""
    await writer.failed.wait()
    print(
        f"rtrec: recording stopped: {writer.failure}\n"
        "rtrec: every session was closed with that reason and new ones are refused (503); "
        f"free space, stop this recorder, then run `rtrec repair --db {db}`",
        file=sys.stderr,
        flush=True,
    )


@click.command("record")
@click.option(
    "--listen", default="127.0.0.1:8765", show_default=True, help="HOST:PORT to serve clients on."
)
@click.option(
    "--upstream",
    default=DEFAULT_UPSTREAM,
    show_default=True,
    help="The Realtime server's base URL, or 'sim' for the built-in simulator.",
)
@db_option("The log to append to (created when missing).")
@click.option(
    "--audio-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where FLAC files go [default: <db stem>.audio next to the log].",
)
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Label the sessions (repeatable)."
)
@click.option(
    "--redact",
    "redact",
    multiple=True,
    metavar="JSONPATH",
    help="Also redact this path in every event, e.g. $.session.instructions (repeatable).",
)
@click.option("--no-audio", is_flag=True, help="Record events but not audio (frames stay whole).")
@click.option(
    "--max-message-size",
    type=int,
    default=16 * 2**20,
    show_default=True,
    help="Largest message relayed; larger ones close the session with 1009.",
)
@click.option(
    "--disk-reserve",
    type=str,
    default=f"{DEFAULT_DISK_RESERVE >> 20}MiB",
    show_default=True,
    metavar="SIZE",
    help="Disk space set aside beside the log, and the most the recorder holds unwritten: "
    "on a full disk it still takes every frame already forwarded (docs/recorder.md).",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --upstream sim: the simulator's scenario file.",
)
@tls_options
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No line per session opened and closed on stderr (errors still end the command).",
)
@click.option(
    "--no-index",
    is_flag=True,
    help="Do not index sessions as they close (run `rtrec index` later); indexing shares "
    "the interpreter with the proxy.",
)
@lake_option(
    "Also publish each closed session to this lake (a TOML file; `--lake` alone: the file "
    "RTREC_LAKE names); see docs/fleet.md."
)
def record_command(
    listen: str,
    upstream: str,
    db: Path,
    audio_dir: Path | None,
    tags: tuple[str, ...],
    redact: tuple[str, ...],
    no_audio: bool,
    max_message_size: int,
    disk_reserve: str,
    scenario: Path | None,
    quiet: bool,
    tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    no_index: bool,
    lake: str | None,
) -> None:
    """Record Realtime sessions through a transparent WebSocket proxy.

    Prints the base URL to give clients as the first line of stdout. Every client and server
    event goes to the DuckDB log (--db) in order, audio to FLAC, secrets redacted first.
    Each session opened and closed gets a line on stderr (time, id, user agent, protocol;
    duration, events, audio seconds, close code and side), errors in red; --quiet drops them.
    """
    host, port = parse_listen(listen)
    reserve = parse_size(disk_reserve, "--disk-reserve")
    if not is_loopback_host(host):
        click.echo(f"warning: listening on {host}, reachable from other machines", err=True)
    pairs = []
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, not {tag!r}", param_hint="--tag")
        pairs.append((key, value))
    try:
        PathRedactor(redact)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--redact") from None
    if scenario is not None and upstream != "sim":
        raise click.BadParameter(
            "--scenario only applies with --upstream sim", param_hint="--scenario"
        )
    options = ProxyOptions(
        upstream=upstream,
        max_message_size=max_message_size,
        record_audio=not no_audio,
        redact_paths=tuple(redact),
        tags=tuple(pairs),
    )
    secure = tls_from_options(tls, tls_cert, tls_key)
    lake_config = None
    if lake is not None:
        try:
            lake_config = load_lake_config(lake or None)
        except RtrecError as exc:
            raise click.BadParameter(str(exc), param_hint="--lake") from None
        # the publisher's one-line reports (published, failed, queue full) go to stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("rtrec record: %(message)s"))
        lake_log = logging.getLogger("rtrec.lake")
        lake_log.addHandler(handler)
        lake_log.setLevel(logging.INFO)
    tune_process()  # this process relays and writes the log
    try:
        failure = trio.run(
            lambda: run_recorder(
                host=host,
                port=port,
                upstream=upstream,
                db=db,
                audio_dir=audio_dir,
                options=options,
                scenario=scenario,
                index=not no_index,
                quiet=quiet,
                disk_reserve=reserve,
                tls=secure,
                lake=lake_config,
            )
        )
    except RtrecError as exc:
        raise Trouble(str(exc)) from None
    except OSError as exc:
        raise Trouble(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    if failure is not None:
        raise Trouble(f"recording stopped early: {failure}")


_UNITS: Final = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(value: str, option: str) -> int:
    """``64MiB``, ``64M``, ``512KiB`` or a number of bytes.

    Raises:
        click.BadParameter: not a size.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", value, re.IGNORECASE)
    if match is None:
        raise click.BadParameter(f"expected a size such as 64MiB, not {value!r}", param_hint=option)
    return int(match.group(1)) * _UNITS[match.group(2).upper()]
