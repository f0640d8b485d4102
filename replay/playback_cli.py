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

from rtrec.recorder.options import db_option
from rtrec.replay.matchers import AudioMode, parse_matchers
from rtrec.replay.playback import (
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
from rtrec.schemas.errors import RtrecError

__all__ = [
    "parse_hostport",
    "playback_command",
    "playback_options",
    "run_playback",
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
            "--client-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Fail a session whose client sends nothing this long while an event of it "
            "is awaited [default: wait while it is connected].",
        ),
        click.option(
            "--on-mismatch",
            type=click.Choice([m.value for m in OnMismatch]),
            default=OnMismatch.FAIL.value,
            show_default=True,
            help="fail: close the session (1008) with the reason; warn: report and go on.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _print_report(report: SessionReport) -> None:
    click.echo(report.render(), err=True)


async def _serve(host: str, port: int, recording: Recording, options: PlaybackOptions) -> None:
    class Printing(PlaybackReports):
        def add(self, report: SessionReport) -> None:
            super().add(report)
            _print_report(report)

    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            url = await nursery.start(
                functools.partial(
                    serve_playback, recording, host, port, options=options, reports=Printing()
                )
            )
            # The first line of stdout is the URL, for scripts (and tests) that start us.
            print(url, flush=True)
            click.echo(describe(recording) + "; Ctrl-C to stop", err=True)
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def run_playback(
    recording: Recording,
    *,
    serve: str,
    pace: str,
    match: str,
    ignore_paths: tuple[str, ...],
    audio: str,
    audio_tolerance_ms: float,
    on_mismatch: str,
    client_timeout: float | None = None,
) -> None:
    """Serve ``recording`` as the command-line options say, until interrupted."""
    try:
        host, port = parse_hostport(serve)
        options = PlaybackOptions(
            Pace.parse(pace),
            parse_matchers(
                match, ignore=ignore_paths, audio=audio, audio_tolerance_ms=audio_tolerance_ms
            ),
            OnMismatch(on_mismatch),
            client_timeout,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        trio.run(_serve, host, port, recording, options)
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
def playback_command(session: str, db: Path, serve: str, **options: Any) -> None:
    """Serve a recorded SESSION (a bundle directory, or a session id or prefix in the log)
    as the Realtime server: order-gated, byte for byte, matching what the client sends.

    The same as ``rtrec replay SESSION --serve HOST:PORT``.
    """
    serve_session(session, db, serve, **options)


def serve_session(session: str, db: Path, serve: str, **options: Any) -> None:
    """Load SESSION (bundle directory, or id/prefix in ``db``) and serve it until stopped."""
    try:
        source = Path(session)
        recording = (
            load_recording(source) if source.is_dir() else load_recording(db, session=session)
        )
    except RtrecError as exc:
        raise click.ClickException(str(exc)) from None
    run_playback(recording, serve=serve, **options)
