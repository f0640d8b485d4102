"""The pytest plugin: a playback server for a recorded bundle, as a fixture.

Registered through the ``pytest11`` entry point, so installing rtrec is enough:

    @pytest.mark.rtrec_playback("fixtures/sessions/weather-ga")
    def test_my_agent(rtrec_playback):
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=rtrec_playback.url)
        asyncio.run(my_agent(client))          # the real client code, against the recording

The server runs in a background thread with its own trio loop (``rtrec._threaded``), so
the fixture serves asyncio tests (the official SDK), trio tests and plain threads alike.
At teardown the test fails when a recorded client event was never sent or did not match,
or when nothing connected at all; ``check=False`` in the marker turns that off (the
reports stay on ``rtrec_playback.reports``).

Marker keywords: ``pace`` ("instant" by default: tests never wait for recorded gaps),
``match`` ("type,payload"), ``ignore_paths``, ``audio`` ("samples"), ``audio_tolerance_ms``,
``on_mismatch`` ("fail"), ``client_timeout`` (10 s: a client stuck waiting for a reply
the recording only gives after an event it never sends fails the test instead of hanging
it), ``check`` (True). A relative bundle path is taken from the
rootdir. ``--rtrec-record-mode none`` (the default, for CI) only plays back; ``once``
records a bundle that does not exist yet: the fixture's URL is then a recorder in front of
``--rtrec-upstream`` (``sim`` for the simulator), and the test's one session is exported to
the bundle path at teardown (vcrpy's and pytest-recording's ``once``).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from rtrec._threaded import run_in_thread
from rtrec.recorder.bundle import export_session
from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.recorder.reader import read_sessions
from rtrec.recorder.writer import open_log_writer
from rtrec.replay.matchers import parse_matchers
from rtrec.replay.playback import (
    OnMismatch,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    load_recording,
    serve_playback,
)

__all__ = ["PlaybackServer", "rtrec_playback"]

RECORD_MODES = ("none", "once")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--rtrec-record-mode``."""
    group = parser.getgroup("rtrec", "rtrec playback of recorded Realtime sessions")
    group.addoption(
        "--rtrec-record-mode",
        choices=RECORD_MODES,
        default="none",
        help="none: play recorded bundles back, never record (default, for CI); once: record "
        "a bundle that does not exist yet through the recorder against --rtrec-upstream.",
    )
    group.addoption(
        "--rtrec-upstream",
        default=None,
        metavar="URL",
        help="The Realtime server to record from in record mode once (a base URL such as "
        "wss://api.openai.com/v1, or 'sim' for the built-in simulator).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers",
        "rtrec_playback(bundle, **options): the bundle the rtrec_playback fixture serves",
    )


@attrs.frozen
class PlaybackServer:
    """What the ``rtrec_playback`` fixture gives a test."""

    #: the base URL (``ws://127.0.0.1:PORT/v1``): the SDK's ``websocket_base_url``
    url: str
    #: the recording served (None while recording, in record mode once)
    recording: Recording | None
    #: every connection's report, filled in as connections end
    reports: PlaybackReports


def _options(kwargs: dict[str, Any]) -> PlaybackOptions:
    return PlaybackOptions(
        Pace.parse(str(kwargs.get("pace", "instant"))),
        parse_matchers(
            str(kwargs.get("match", "type,payload")),
            ignore=tuple(kwargs.get("ignore_paths", ())),
            audio=kwargs.get("audio", "samples"),
            audio_tolerance_ms=float(kwargs.get("audio_tolerance_ms", 100.0)),
        ),
        OnMismatch(kwargs.get("on_mismatch", "fail")),
        kwargs.get("client_timeout", 10.0),
    )


@pytest.fixture
def rtrec_playback(request: pytest.FixtureRequest) -> Iterator[PlaybackServer]:
    """A playback server for the bundle named by the test's ``rtrec_playback`` marker."""
    marker = request.node.get_closest_marker("rtrec_playback")
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the rtrec_playback fixture needs "
            '@pytest.mark.rtrec_playback("path/to/bundle")'
        )
    bundle = Path(marker.args[0])
    if not bundle.is_absolute():
        bundle = Path(request.config.rootpath) / bundle
    kwargs = dict(marker.kwargs)
    check = bool(kwargs.pop("check", True))
    try:
        options = _options(kwargs)
    except ValueError as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: rtrec_playback marker: {exc}") from None
    mode = request.config.getoption("--rtrec-record-mode")
    if mode == "once" and not (bundle / "session.json").exists():
        yield from _record(request, bundle)
        return
    if not (bundle / "session.json").exists():
        raise pytest.UsageError(
            f"{request.node.nodeid}: no bundle at {bundle}; record it once with "
            "--rtrec-record-mode once --rtrec-upstream URL (or rtrec record + rtrec export)"
        )
    recording = load_recording(bundle)
    reports = PlaybackReports()
    serve = functools.partial(serve_playback, recording, options=options, reports=reports)
    with run_in_thread(serve, timeout=30) as server:
        yield PlaybackServer(server.url, recording, reports)
        # a client that has closed its side may still be being checked: let it finish
        trio.from_thread.run(_idle, reports, trio_token=server.token)
    if not check:
        return
    if not reports.sessions:
        pytest.fail(
            f"rtrec playback of {bundle}: no client connected; "
            f"{len(recording.expected)} recorded client events were never sent",
            pytrace=False,
        )
    failed = [r for r in reports.sessions if not r.ok]
    if failed:
        pytest.fail("\n\n".join(r.render() for r in failed), pytrace=False)


def _record(request: pytest.FixtureRequest, bundle: Path) -> Iterator[PlaybackServer]:
    """Record mode once: the test's client talks to the upstream through the recorder; its
    one session becomes the bundle."""
    upstream = request.config.getoption("--rtrec-upstream")
    if not upstream:
        raise pytest.UsageError("--rtrec-record-mode once needs --rtrec-upstream URL (or sim)")
    work = Path(tempfile.mkdtemp(prefix="rtrec-record-"))
    db = work / "log.duckdb"
    reports = PlaybackReports()
    try:
        with run_in_thread(functools.partial(_serve_recorder, db, upstream), timeout=30) as server:
            yield PlaybackServer(server.url, None, reports)
        sessions = read_sessions(db)
        if len(sessions) != 1:
            pytest.fail(
                f"rtrec record mode once: the test opened {len(sessions)} sessions; a bundle "
                f"holds exactly one, so {bundle} was not written",
                pytrace=False,
            )
        export_session(db, sessions[0].session_id, bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _serve_recorder(
    db: Path, upstream: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """What `rtrec record` runs (log writer, proxy, and the simulator for ``sim``)."""
    async with open_log_writer(db) as writer, trio.open_nursery() as nursery:
        if upstream == "sim":
            # imported here: only record mode once with the simulator needs it
            from rtrec.simulator import serve_simulator

            upstream = await nursery.start(functools.partial(serve_simulator, pace="fast"))
        recorder = Recorder(writer, ProxyOptions(upstream=upstream))
        url = await nursery.start(recorder.serve, "127.0.0.1", 0)
        try:
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await recorder.close_sessions()


async def _idle(reports: PlaybackReports) -> None:
    with trio.fail_after(10):
        await reports.wait_idle()
