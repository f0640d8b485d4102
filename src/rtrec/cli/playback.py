"""``rtrec playback SESSION --serve HOST:PORT``: serve a recorded session to any client.

The options live in ``playback_options`` so that they fold into
``rtrec replay SESSION --serve ...`` (issue 6): see its docstring.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from rtrec.cli.common import is_path, require_log
from rtrec.cli.lake import lake_session
from rtrec.cli.options import db_option, echo_tls, tls_from_options, tls_options
from rtrec.replay.matchers import AudioMode, parse_matchers, parse_tolerance
from rtrec.replay.playback import (
    REPEATS_SHOWN,
    OnMismatch,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    SessionReport,
    describe,
    load_recording,
    serve_playback,
)
from rtrec.replay.record_modes import (
    DEFAULT_UPSTREAM,
    Action,
    RecordMode,
    describe_server,
    load_episodes,
    prepare,
    serve_record_mode,
    write_bundle,
)
from rtrec.schemas.errors import RtrecError
from rtrec.transport.tls import TlsServer

__all__ = [
    "parse_hostport",
    "playback_command",
    "playback_options",
    "run_playback",
    "run_recording",
    "serve_session",
]

F = TypeVar("F", bound=Callable[..., Any])


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:0`` for IPv6).

    Raises:
        ValueError: not of that form.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:0)")
    return host.strip("[]"), int(port)


def playback_options(command: F) -> F:
    """The playback server's options but ``--serve``, as click decorators.

    To fold playback into ``rtrec replay``: decorate it with this and an optional
    ``--serve HOST:PORT``, and when ``--serve`` is given call
    ``run_playback(load_recording(...), serve=serve, **those_options)``.
    """
    decorators = [
        click.option(
            "--pace",
            default="recorded",
            show_default=True,
            help="recorded, instant, or a speed factor (2 = twice as fast).",
        ),
        click.option(
            "--match",
            "match",
            default="type,payload",
            show_default=True,
            help="Matchers for client events, comma-separated: type, payload.",
        ),
        click.option(
            "--ignore-path",
            "ignore_paths",
            multiple=True,
            metavar="PATH",
            help="A payload field the payload matcher ignores (dotted, * for any), repeatable.",
        ),
        click.option(
            "--audio",
            type=click.Choice([m.value for m in AudioMode]),
            default=AudioMode.SAMPLES.value,
            show_default=True,
            help="Compare appended audio by samples, by duration, or ignore it.",
        ),
        click.option(
            "--audio-tolerance-ms",
            type=float,
            default=100.0,
            show_default=True,
            help="With --audio duration: how much more or less audio still matches.",
        ),
        click.option(
            "--tolerance",
            "tolerances",
            multiple=True,
            metavar="PATH=MS",
            help="A number the payload matcher accepts within MS of the recorded value "
            "(clock-derived fields), repeatable [default: audio_end_ms=500].",
        ),
        click.option(
            "--reorder-wait-ms",
            type=float,
            default=500.0,
            show_default=True,
            help="How long an event that came ahead of something the recording had before "
            "it waits for it (plus the duration of missing audio).",
        ),
        click.option(
            "--audio-lead-ms",
            type=float,
            default=2000.0,
            show_default=True,
            help="How much recorded audio a control event may overtake.",
        ),
        click.option(
            "--client-timeout",
            type=float,
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="Fail a session whose client sends nothing this long while the recording "
            "waits for it; 0 waits while it is connected.",
        ),
        click.option(
            "--on-mismatch",
            type=click.Choice([m.value for m in OnMismatch]),
            default=OnMismatch.FAIL.value,
            show_default=True,
            help="fail: close the session (1008) with the reason; warn: report and go on.",
        ),
        click.option(
            "--record-mode",
            type=click.Choice([m.value for m in RecordMode]),
            default=RecordMode.NONE.value,
            show_default=True,
            help="none: play back only; once: record SESSION (a bundle directory) from "
            "--upstream if it is missing; new_episodes: play back, and where the client "
            "leaves the recording let --upstream answer and rewrite the bundle with it; all: "
            "record every session anew; rewrite: delete the bundle, then as all "
            "(docs/playback.md).",
        ),
        click.option(
            "--upstream",
            default=DEFAULT_UPSTREAM,
            show_default=True,
            help="The Realtime server recorded from in the record modes, or 'sim' for the "
            "built-in simulator.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return tls_options(command)


class _Printing(PlaybackReports):
    """Prints each report on stderr. A client that reconnects after each failure and fails
    the same way again is written up ``REPEATS_SHOWN`` times; then one line says so, and
    further ones are only counted (a line at 10, 100, 1000, ... repeats)."""

    def add(self, report: SessionReport) -> None:
        super().add(report)
        repeats = self.repeats(report)
        if repeats < REPEATS_SHOWN:
            click.echo(report.render(), err=True)
        elif repeats == REPEATS_SHOWN or _power_of_ten(repeats):
            click.echo(
                f"playback of {report.session_id} (connection {report.connection}): "
                f"{repeats} connections in a row failed the same way; further ones are "
                "counted, not reported",
                err=True,
            )


def _power_of_ten(n: int) -> bool:
    return n >= 10 and str(n).strip("0") == "1"


async def _serve(
    host: str, port: int, recording: Recording, options: PlaybackOptions, tls: TlsServer | None
) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            url = await nursery.start(
                functools.partial(
                    serve_playback,
                    recording,
                    host,
                    port,
                    options=options,
                    reports=_Printing(),
                    tls=tls,
                )
            )
            # The first line of stdout is the URL, for scripts (and tests) that start us.
            print(url, flush=True)
            echo_tls(tls)
            click.echo(describe(recording) + "; Ctrl-C to stop", err=True)
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def _options(
    *,
    serve: str,
    pace: str,
    match: str,
    ignore_paths: tuple[str, ...],
    audio: str,
    audio_tolerance_ms: float,
    on_mismatch: str,
    client_timeout: float | None = 60.0,
    tolerances: tuple[str, ...] = (),
    reorder_wait_ms: float = 500.0,
    audio_lead_ms: float = 2000.0,
    tls: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> tuple[str, int, PlaybackOptions, TlsServer | None]:
    try:
        host, port = parse_hostport(serve)
        options = PlaybackOptions(
            Pace.parse(pace),
            parse_matchers(
                match,
                ignore=ignore_paths,
                audio=audio,
                audio_tolerance_ms=audio_tolerance_ms,
                tolerances=[parse_tolerance(t) for t in tolerances],
            ),
            OnMismatch(on_mismatch),
            client_timeout or None,
            reorder_wait=reorder_wait_ms / 1000,
            audio_lead_ms=audio_lead_ms,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return host, port, options, tls_from_options(tls, tls_cert, tls_key)


def run_playback(recording: Recording, *, serve: str, **options: Any) -> None:
    """Serve ``recording`` as the command-line options say (``playback_options`` but the
    record mode), until interrupted."""
    host, port, parsed, secure = _options(serve=serve, **options)
    try:
        trio.run(_serve, host, port, recording, parsed, secure)
    except BaseException as exc:
        error = _unwrap(exc)  # trio reports a task's error inside an ExceptionGroup
        if isinstance(error, OSError):
            raise click.ClickException(f"cannot listen on {serve}: {error}") from None
        raise
    click.echo("rtrec playback: stopped", err=True)


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@click.command("playback")
@click.argument("session")
@db_option("The log holding SESSION (unused when SESSION is a bundle directory).")
@click.option(
    "--serve",
    "serve",
    required=True,
    metavar="HOST:PORT",
    help="Where to listen (port 0 picks a free one); the base URL is printed first.",
)
@playback_options
@lake_session
def playback_command(session: str, db: Path, serve: str, **options: Any) -> None:
    """Serve a recorded SESSION (a session id, a unique prefix, or a bundle directory) as
    the Realtime or GPT-Live server it was recorded from: order-gated, byte for byte,
    matching what the client sends.

    The same as `rtrec replay SESSION --serve HOST:PORT`.
    """
    serve_session(session, db, serve, **options)


def serve_session(
    session: str,
    db: Path,
    serve: str,
    *,
    record_mode: str = RecordMode.NONE.value,
    upstream: str = DEFAULT_UPSTREAM,
    **options: Any,
) -> None:
    """Serve SESSION (bundle directory, or id/prefix in ``db``) until stopped, recording
    as ``record_mode`` says (see ``rtrec.replay.record_modes``)."""
    mode = RecordMode(record_mode)
    source = Path(session)
    path_like = is_path(session)
    if not path_like:
        require_log(db)
    try:
        if mode is RecordMode.NONE and not path_like:
            run_playback(load_recording(db, session=session), serve=serve, **options)
            return
        # Every mode but none writes a bundle, so SESSION names one (there or not yet).
        if source.exists() and not source.is_dir():
            raise click.ClickException(f"{session} is a file: give a bundle directory")
        action = prepare(mode, source)
        if action is Action.PLAY:
            run_playback(load_recording(source), serve=serve, **options)
            return
        run_recording(action, mode, source, upstream=upstream, db=db, serve=serve, **options)
    except RtrecError as exc:
        raise click.ClickException(str(exc)) from None


def run_recording(
    action: Action,
    mode: RecordMode,
    bundle: Path,
    *,
    upstream: str,
    db: Path,
    serve: str,
    **options: Any,
) -> None:
    """Record sessions from ``upstream`` into ``db`` (new_episodes: play ``bundle`` first)
    and write each one that ends to ``bundle``, until interrupted.

    Raises:
        RtrecError: the bundle or the log cannot be used.
    """
    host, port, parsed, secure = _options(serve=serve, **options)
    episodes = load_episodes(bundle) if action is Action.EPISODES else None

    async def recorded(session_id: str) -> None:
        try:
            written = await trio.to_thread.run_sync(
                functools.partial(
                    write_bundle,
                    db,
                    session_id,
                    bundle,
                    unless_within=episodes.recording if episodes is not None else None,
                )
            )
        except (RtrecError, OSError) as exc:
            # the session stays in the log; say so rather than stop serving
            click.echo(
                f"rtrec {mode}: session {session_id} is in {db} but could not be written "
                f"to {bundle}: {exc}",
                err=True,
            )
            return
        if written:
            click.echo(f"rtrec {mode}: session {session_id} written to {bundle}", err=True)
        else:
            click.echo(
                f"rtrec {mode}: session {session_id} got nothing new from the upstream; "
                f"{bundle} unchanged",
                err=True,
            )

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                url = await nursery.start(
                    functools.partial(
                        serve_record_mode,
                        action,
                        mode=mode,
                        upstream=upstream,
                        db=db,
                        episodes=episodes,
                        options=parsed,
                        reports=_Printing(),
                        host=host,
                        port=port,
                        recorded=recorded,
                        stop=stop,
                        tls=secure,
                    )
                )
                print(url, flush=True)
                echo_tls(secure)
                click.echo(
                    describe_server(mode, action, upstream, bundle, db) + "; Ctrl-C to stop",
                    err=True,
                )
                async for _ in signals:
                    break
            stop.set()

    try:
        trio.run(main)
    except BaseException as exc:
        error = _unwrap(exc)
        if isinstance(error, RtrecError):
            raise error from None
        if isinstance(error, OSError):
            raise click.ClickException(f"cannot listen on {serve}: {error}") from None
        raise
    click.echo(f"rtrec {mode}: stopped", err=True)
