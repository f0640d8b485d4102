"""The pytest plugin: a playback server for a recorded bundle, as a fixture.

Registered through the ``pytest11`` entry point, so installing rtrec is enough:

    @pytest.mark.rtrec_playback("fixtures/sessions/weather-ga")
    def test_my_agent(rtrec_playback):
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=rtrec_playback.url)
        asyncio.run(my_agent(client))          # the real client code, against the recording

The server runs in a background thread with its own trio loop (``rtrec.replay.threaded``), so
the fixture serves asyncio tests (the official SDK), trio tests and plain threads alike.
At teardown the test fails when a recorded client event was never sent or did not match,
or when nothing connected at all; ``check=False`` in the marker turns that off (the
reports stay on ``rtrec_playback.reports``).

Marker keywords: ``pace`` ("instant" by default: tests never wait for recorded gaps),
``match`` ("type,payload"), ``ignore_paths``, ``audio`` ("samples"), ``audio_tolerance_ms``,
``on_mismatch`` ("fail"), ``tls`` (False; True serves ``wss://`` and sets
``rtrec_playback.ca_file``), ``client_timeout`` (10 s: a client stuck waiting for a reply
the recording only gives after an event it never sends fails the test instead of hanging
it), ``check`` (True). A relative bundle path is taken from the rootdir.

``--rtrec-record-mode`` takes the five modes of ``rtrec.replay.record_modes`` (vcrpy's and
pytest-recording's): ``none`` (the default, for CI) only plays back; ``once`` records a
bundle that does not exist yet; ``new_episodes`` plays back and, where the client leaves
the recording, lets ``--rtrec-upstream`` answer and rewrites the bundle with the session as
the client had it; ``all`` records anew and replaces the bundle; ``rewrite`` deletes the
bundle first, then records. Recording goes through the recorder (a temporary log), and the
bundle is written at teardown from the test's one session.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from rtrec.recorder.reader import read_sessions
from rtrec.recorder.tls import TlsServer, load_tls
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
from rtrec.replay.record_modes import (
    Action,
    BundleMissing,
    RecordMode,
    load_episodes,
    prepare,
    serve_record_mode,
    temporary_log,
    write_bundle,
)
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.errors import RtrecError

__all__ = ["PlaybackServer", "rtrec_playback"]

RECORD_MODES = tuple(m.value for m in RecordMode)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--rtrec-record-mode``."""
    group = parser.getgroup("rtrec", "rtrec playback of recorded Realtime sessions")
    group.addoption(
        "--rtrec-record-mode",
        choices=RECORD_MODES,
        default="none",
        help="none: play recorded bundles back, never record (default, for CI); once: record "
        "a bundle that does not exist yet from --rtrec-upstream; new_episodes: play back, and "
        "where the client leaves the recording let --rtrec-upstream answer and rewrite the "
        "bundle; all: record anew, replacing the bundle; rewrite: delete the bundle, then "
        "record.",
    )
    group.addoption(
        "--rtrec-upstream",
        default=None,
        metavar="URL",
        help="The Realtime server to record from in the record modes but none (a base URL "
        "such as wss://api.openai.com/v1, or 'sim' for the built-in simulator).",
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
    #: the recording served (None while recording: once, all, rewrite)
    recording: Recording | None
    #: every connection's report, filled in as connections end
    reports: PlaybackReports
    #: with ``tls=True`` in the marker: the CA file a client must trust for the ``wss://``
    #: url (``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``); None without TLS
    ca_file: Path | None = None


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
    tls = load_tls() if kwargs.pop("tls", False) else None
    try:
        options = _options(kwargs)
    except ValueError as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: rtrec_playback marker: {exc}") from None
    mode = RecordMode(request.config.getoption("--rtrec-record-mode"))
    try:
        action = prepare(mode, bundle)  # rewrite deletes the bundle here
    except BundleMissing:
        raise pytest.UsageError(
            f"{request.node.nodeid}: no bundle at {bundle}, and record mode none only plays "
            "back; record it once with --rtrec-record-mode once --rtrec-upstream URL (or sim), "
            "or rtrec record + rtrec export"
        ) from None
    except RtrecError as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: {bundle}: {exc}") from None
    if action is not Action.PLAY:
        yield from _record(request, bundle, mode, action, options, check, tls)
        return
    recording = load_recording(bundle)
    reports = PlaybackReports()
    serve = functools.partial(serve_playback, recording, options=options, reports=reports, tls=tls)
    with run_in_thread(serve, timeout=30) as server:
        yield PlaybackServer(server.url, recording, reports, tls.ca_file if tls else None)
        # a client that has closed its side may still be being checked: let it finish
        trio.from_thread.run(_idle, reports, trio_token=server.token)
    if check:
        _check(bundle, recording, reports)


def _record(
    request: pytest.FixtureRequest,
    bundle: Path,
    mode: RecordMode,
    action: Action,
    options: PlaybackOptions,
    check: bool,
    tls: TlsServer | None = None,
) -> Iterator[PlaybackServer]:
    """The record modes: the test's client talks to the recorder, in front of the upstream
    (or, for new_episodes, of the playback server falling through to it); its one session
    becomes the bundle."""
    upstream = request.config.getoption("--rtrec-upstream")
    if not upstream:
        raise pytest.UsageError(
            f"--rtrec-record-mode {mode} needs --rtrec-upstream URL (or sim) to record from"
        )
    episodes = load_episodes(bundle) if action is Action.EPISODES else None
    recording = episodes.recording if episodes is not None else None
    reports = PlaybackReports()
    with temporary_log() as db:
        serve = functools.partial(
            serve_record_mode,
            action,
            mode=mode,
            upstream=upstream,
            db=db,
            episodes=episodes,
            options=options,
            reports=reports,
            sim={"pace": "fast"},
            tls=tls,
        )
        with run_in_thread(serve, timeout=30) as server:
            yield PlaybackServer(server.url, recording, reports, tls.ca_file if tls else None)
            if recording is not None:
                trio.from_thread.run(_idle, reports, trio_token=server.token)
        sessions = read_sessions(db)
        if recording is None:
            if len(sessions) != 1:
                pytest.fail(
                    f"rtrec record mode {mode}: the test opened {len(sessions)} sessions; a "
                    f"bundle holds exactly one, so {bundle} was not written",
                    pytrace=False,
                )
            write_bundle(db, sessions[0].session_id, bundle)
            return
        ids = [s.session_id for s in sessions]
        written = [sid for sid in ids if write_bundle(db, sid, bundle, unless_within=recording)]
        if len(written) > 1:
            pytest.fail(
                f"rtrec record mode new_episodes: {len(written)} sessions of the test left the "
                f"recording; a bundle holds one, so {bundle} holds the last of them",
                pytrace=False,
            )
    if check:
        _check(bundle, recording, reports)


def _check(bundle: Path, recording: Recording, reports: PlaybackReports) -> None:
    """Fail the test when no client connected, or one did not do what was recorded."""
    if not reports.sessions:
        pytest.fail(
            f"rtrec playback of {bundle}: no client connected; "
            f"{len(recording.expected)} recorded client events were never sent",
            pytrace=False,
        )
    failed = [r for r in reports.sessions if not r.ok]
    if failed:
        pytest.fail("\n\n".join(r.render() for r in failed), pytrace=False)


async def _idle(reports: PlaybackReports) -> None:
    with trio.fail_after(10):
        await reports.wait_idle()
