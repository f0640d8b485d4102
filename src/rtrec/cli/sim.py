"""``rtrec sim``: serve the simulated Realtime API from the command line."""

from __future__ import annotations

import signal
import sys
from functools import partial
from pathlib import Path

import click
import trio

from rtrec.cli.options import echo_tls, tls_from_options, tls_options
from rtrec.simulator.scenario import DEFAULT_SCENARIO, Scenario, ScenarioError, load_scenario
from rtrec.simulator.server import Pace, serve_simulator
from rtrec.transport.tls import TlsServer

__all__ = ["sim"]


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT, e.g. 127.0.0.1:0; got {value!r}")
    return host, int(port)


async def _serve(
    host: str, port: int, scenario: Scenario, pace: Pace, seed: int, tls: TlsServer | None
) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            url = await nursery.start(
                partial(
                    serve_simulator,
                    host,
                    port,
                    scenario=scenario,
                    pace=pace,
                    seed=seed,
                    ssl_context=None if tls is None else tls.context,
                )
            )
            # The first line of stdout is the URL, for scripts (and tests) that start us.
            print(url, flush=True)
            echo_tls(tls)
            click.echo(
                f"rtrec sim: scenario {scenario.name!r}, pace {pace.value}, seed {seed};"
                " Ctrl-C to stop",
                err=True,
            )
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


@click.command("sim")
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on; port 0 picks a free port.",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scenario file (TOML, see src/rtrec/fixtures/scenarios/README.md); default: built-in.",
)
@click.option(
    "--pace",
    type=click.Choice([p.value for p in Pace]),
    default=Pace.REALTIME.value,
    show_default=True,
    help="realtime: events at their time; fast: every response at once.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every id.")
@tls_options
def sim(
    listen: str,
    scenario: Path | None,
    pace: str,
    seed: int,
    tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve a simulated OpenAI Realtime API (GA and beta) over WebSocket.

    Prints the base URL (ws://HOST:PORT/v1) as the first line of stdout, then serves until
    Ctrl-C. Point a client at it, e.g. AsyncOpenAI(api_key="sk-test",
    websocket_base_url=URL). The same seed, scenario and client input give the same events.
    """
    host, port = _parse_listen(listen)
    try:
        loaded = load_scenario(scenario) if scenario else DEFAULT_SCENARIO
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    secure = tls_from_options(tls, tls_cert, tls_key)
    try:
        trio.run(_serve, host, port, loaded, Pace(pace), seed, secure)
    except BaseException as exc:
        # trio reports a task's error inside an ExceptionGroup; a busy port is a message.
        error = _unwrap(exc)
        if isinstance(error, OSError):
            raise click.ClickException(f"cannot serve on {listen}: {error}") from None
        raise
    click.echo("rtrec sim: stopped", err=True)
    sys.stdout.flush()
