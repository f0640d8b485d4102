"""The pytest plugin's machinery: what the ``rtrec_playback`` fixture serves, and how a
test's playback or recording is judged.

The hooks, options and the fixture itself are in ``rtrec.pytest_plugin`` (the ``pytest11``
entry point), which imports nothing heavy; this module (trio, DuckDB, the recorder, the
playback server) is imported only when a test uses the fixture. docs/testing.md is the
user's guide; docs/playback.md has the record modes.

A test gets a server for one bundle: the marker's path, or the test's own default
(``default_bundle``). The server runs in a background thread with its own trio loop
(``rtrec.replay.threaded``), so asyncio tests (the official SDK), anyio and trio tests and plain
threads alike use it. How a test ends:

- at the end of the call, a connection that failed (a mismatch, an event past the end of
  the recording, a recording the upstream refused) fails the test there, with the readable
  report in place of what the client raised (its ``ConnectionClosedError``): one failure,
  one testcase in junit;
- at teardown, once the connections have closed (a fixture may hold one until then), the
  rest is checked: recorded events never sent, no connection at all, a client still
  connected ``close_timeout`` seconds after the test ended (it is then closed), and, in the
  record modes, whether the session is a recording worth writing. A test that already
  failed on its own is not failed a second time for what followed from it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
import trio

from rtrec.replay.matchers import parse_matchers
from rtrec.replay.playback import (
    OnMismatch,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    SessionReport,
    load_recording,
    serve_playback,
)
from rtrec.replay.record_modes import (
    Action,
    BundleMissing,
    NotARecording,
    RecordMode,
    bundle_lock,
    is_bundle,
    load_episodes,
    prepare,
    serve_record_mode,
    session_problem,
    temporary_log,
    write_bundle,
)
from rtrec.replay.threaded import ThreadedServer, run_in_thread
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import SessionClose
from rtrec.store.reader import read_sessions
from rtrec.transport.tls import TlsServer, load_tls

__all__ = ["PlaybackServer", "TestRun", "default_bundle", "open_test_run"]

#: the marker's keywords (besides the bundle path), and the defaults the plugin picks
_MARKER_KEYS: Final = frozenset(
    {
        "pace",
        "match",
        "ignore_paths",
        "audio",
        "audio_tolerance_ms",
        "on_mismatch",
        "client_timeout",
        "close_timeout",
        "check",
        "sim",
        "tls",
    }
)
_SIM_KEYS: Final = frozenset({"scenario", "seed", "pace"})
#: the close a failed playback connection gets (playback.py's MISMATCH_CLOSE_CODE)
_POLICY_CLOSE: Final = 1008
#: after a test that raised, how long connections may take to finish closing before the
#: call is judged (a mismatch's 1008 close completes in milliseconds)
_SETTLE_S: Final = 1.0
#: characters kept in a bundle's file name; the rest of a test's name becomes "_"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.,=+@\[\]-]")
_NAME_MAX: Final = 120


@attrs.frozen
class PlaybackServer:
    """What the ``rtrec_playback`` fixture gives a test."""

    #: the base URL (``ws://127.0.0.1:PORT/v1``): the SDK's ``websocket_base_url``
    url: str
    #: the recording served (None while recording: once, all, rewrite)
    recording: Recording | None
    #: every connection's report, filled in as connections end
    reports: PlaybackReports
    #: the bundle this test plays or records
    bundle: Path
    #: with ``tls=True`` in the marker: the CA file a client must trust for the ``wss://``
    #: url (``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``); None without TLS
    ca_file: Path | None = None


def default_bundle(item: pytest.Item, bundle_dir: str = "") -> Path:
    """The bundle of a test whose marker names none, as pytest-recording names cassettes:
    ``<module dir>/rtrec_bundles/<module>/<test>``, or with ``bundle_dir`` (the
    ``rtrec_bundle_dir`` ini option, relative to the ini file)
    ``<bundle_dir>/<module path from the rootdir>/<test>``. ``<test>`` is the test's name
    with its class and parametrize id (``TestAgent.test_turn[paris]``), with characters
    that do not belong in a file name replaced by ``_``."""
    module = Path(item.path)
    config = item.config
    if bundle_dir:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        try:
            relative = module.with_suffix("").relative_to(config.rootpath)
        except ValueError:  # a test module outside the rootdir
            relative = Path(module.stem)
        folder = base / bundle_dir / relative
    else:
        folder = module.parent / "rtrec_bundles" / module.stem
    # the node id after the module: "TestAgent::test_turn[paris]"
    name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    name = _UNSAFE.sub("_", name.replace("::", "."))
    if len(name) > _NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[: _NAME_MAX - 13]}-{digest}"
    return folder / name


def _bundle_of(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    """The test's bundle and the marker's keywords."""
    marker = request.node.get_closest_marker("rtrec_playback")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    unknown = sorted(set(kwargs) - _MARKER_KEYS)
    if unknown:
        raise ValueError(
            f"unknown keyword {', '.join(unknown)}; it takes {', '.join(sorted(_MARKER_KEYS))}"
        )
    if marker is not None and marker.args:
        bundle = Path(marker.args[0])
        if not bundle.is_absolute():
            bundle = Path(request.config.rootpath) / bundle
        return bundle, kwargs
    ini = str(request.config.getini("rtrec_bundle_dir") or "")
    return default_bundle(request.node, ini), kwargs


def _options(kwargs: Mapping[str, Any], close_timeout: float) -> PlaybackOptions:
    client_timeout = kwargs.get("client_timeout", 10.0)
    return PlaybackOptions(
        Pace.parse(str(kwargs.get("pace", "instant"))),
        parse_matchers(
            str(kwargs.get("match", "type,payload")),
            ignore=tuple(kwargs.get("ignore_paths", ())),
            audio=kwargs.get("audio", "samples"),
            audio_tolerance_ms=float(kwargs.get("audio_tolerance_ms", 100.0)),
        ),
        OnMismatch(kwargs.get("on_mismatch", "fail")),
        None if client_timeout is None else float(client_timeout),
    )


def _sim(config: pytest.Config, given: Any) -> dict[str, Any]:
    """The simulator's keywords: the command line or ini, then the marker's ``sim``."""
    if given is not None and not isinstance(given, Mapping):
        raise ValueError(f"sim={given!r}: give a dict with {', '.join(sorted(_SIM_KEYS))}")
    given = dict(given or {})
    unknown = sorted(set(given) - _SIM_KEYS)
    if unknown:
        raise ValueError(f"sim: unknown key {', '.join(unknown)}; it takes scenario, seed, pace")
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    scenario: Path | None = None
    if "scenario" in given:
        scenario = config.rootpath / str(given["scenario"])
    elif config.getoption("rtrec_sim_scenario"):
        scenario = Path(config.getoption("rtrec_sim_scenario")).resolve()
    elif config.getini("rtrec_sim_scenario"):
        scenario = base / str(config.getini("rtrec_sim_scenario"))
    seed: Any = given.get("seed", config.getoption("rtrec_sim_seed"))
    if seed is None and config.getini("rtrec_sim_seed"):
        seed = config.getini("rtrec_sim_seed")
    out: dict[str, Any] = {"pace": str(given.get("pace", "fast"))}
    if scenario is not None:
        # imported here: only a simulated upstream with a scenario needs it
        from rtrec.simulator import load_scenario

        out["scenario"] = load_scenario(scenario)
    if seed is not None:
        try:
            out["seed"] = int(seed)
        except ValueError:
            raise ValueError(f"simulator seed {seed!r}: give an integer") from None
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@attrs.define(eq=False)
class TestRun:
    """One test's playback (or recording): the server, and what the hooks learn of it."""

    __test__ = False  # not a test class, whatever pytest's collector thinks of the name

    server: PlaybackServer
    mode: RecordMode
    action: Action
    check: bool
    close_timeout: float
    thread: ThreadedServer
    #: record modes: every session's close as the recorder logged it
    closes: list[SessionClose] = attrs.Factory(list)
    #: the call already failed with rtrec's report (teardown must not repeat it)
    reported: list[str] = attrs.Factory(list)
    #: the test raised on its own: what followed from it is not another failure
    call_failed: bool = False
    #: the test's call ran (not so when a fixture's setup failed, or the test was skipped)
    called: bool = False

    def _wait_idle(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every connection to finish; whether they did."""

        async def wait() -> bool:
            with trio.move_on_after(seconds):
                await self.server.reports.wait_idle()
            return self.server.reports.active == 0

        try:
            return bool(trio.from_thread.run(wait, trio_token=self.thread.token))
        except trio.RunFinishedError:
            return True

    def _snapshot(self) -> tuple[list[SessionReport], list[SessionReport], int, list[SessionClose]]:
        """The finished connections' reports, the open ones' (as they stand), the number
        of connections being served, and the recorder's closes: taken in the server's loop."""

        def take() -> tuple[list[SessionReport], list[SessionReport], int, list[SessionClose]]:
            reports = self.server.reports
            opened = [
                attrs.evolve(r, mismatches=list(r.mismatches), extra=list(r.extra))
                for r in reports.open
            ]
            return list(reports.sessions), opened, reports.active, list(self.closes)

        return trio.from_thread.run_sync(take, trio_token=self.thread.token)

    def _recording_problems(self, closes: list[SessionClose]) -> list[str]:
        problems = []
        for close in closes:
            problem = session_problem(
                close.status, close.close_code, close.close_reason, close.closed_by
            )
            if problem is not None:
                problems.append(
                    f"rtrec record mode {self.mode}: {problem}; {self.server.bundle} was not "
                    "written (a failed session is never a recording)"
                )
        return problems

    def _playback_problems(self, sessions: list[SessionReport], *, causes_only: bool) -> list[str]:
        if not self.check or self.action is Action.RECORD:
            return []
        bad = [r for r in sessions if not r.ok]
        if causes_only:
            # what the client was told off for, not what followed from the test stopping
            bad = [
                r
                for r in bad
                if r.mismatches
                or r.extra
                or r.upstream_error is not None
                or (r.close is not None and r.close[0] == _POLICY_CLOSE)
            ]
        return [r.render() for r in bad]

    def after_call(self, raised: BaseException | None) -> None:
        """Judge the test at the end of its call: fail it here (``pytest.fail``) when one
        of its connections failed, replacing what the client raised because of that."""
        self.called = True
        if self.server.reports.active:
            _, opened, _, _ = self._snapshot()
            if any(r.close is not None for r in opened):
                # the client has closed its side: the server is still judging what it sent
                # last, which takes milliseconds (a fixture's open connection is not waited)
                self._wait_idle(self.close_timeout)
            elif raised is not None:
                self._wait_idle(min(_SETTLE_S, self.close_timeout))
        sessions, opened, active, closes = self._snapshot()
        problems = self._recording_problems(closes)
        problems += self._playback_problems(sessions, causes_only=raised is not None)
        # a connection still open is judged by what it did wrong so far, not by what it
        # has yet to send (a fixture may hold it until teardown)
        problems += self._playback_problems(opened, causes_only=True)
        if raised is None and not problems and not sessions and not active:
            problems += self._nothing_connected()
        if not problems:
            self.call_failed = raised is not None
            return
        self.reported.extend(problems)
        text = "\n\n".join(problems)
        if raised is not None:
            text += f"\n\n(the test then failed with {_one_line(raised)})"
        # from None: the client's error is the consequence, summed up in the line above
        raise pytest.fail.Exception(text, pytrace=False) from None

    def _nothing_connected(self) -> list[str]:
        if not self.check or self.server.recording is None:
            return []
        expected = len(self.server.recording.expected)
        return [
            f"rtrec playback of {self.server.bundle}: no client connected; {expected} "
            "recorded client events were never sent"
        ]


def _stuck(run: TestRun, sessions: int) -> str:
    return (
        f"rtrec: {sessions} client connection(s) to {run.server.url} were still open "
        f"{run.close_timeout:g} s after the test ended (close_timeout), and rtrec closed "
        "them: close the client in the test or in its fixture (async with "
        "client.realtime.connect(...) as connection: ...)"
    )


@contextlib.contextmanager
def open_test_run(request: pytest.FixtureRequest) -> Iterator[TestRun]:
    """Serve the test's bundle (or record it) for the length of the test; on exit, judge
    what the call did not (see the module docstring) and fail the test at teardown.

    Raises:
        pytest.UsageError: the marker or the options are wrong, or mode none has no bundle.
    """
    config = request.config
    where = request.node.nodeid
    try:
        bundle, kwargs = _bundle_of(request)
        close_timeout = float(kwargs.pop("close_timeout", config.getini("rtrec_close_timeout")))
        check = bool(kwargs.pop("check", True))
        sim_given = kwargs.pop("sim", None)
        tls = load_tls() if kwargs.pop("tls", False) else None
        options = _options(kwargs, close_timeout)
        mode = RecordMode(config.getoption("rtrec_record_mode"))
        sim = _sim(config, sim_given) if mode is not RecordMode.NONE else {}
        lock_timeout = float(config.getini("rtrec_lock_timeout"))
    except (ValueError, TypeError) as exc:
        raise pytest.UsageError(f"{where}: rtrec_playback: {exc}") from None
    except RtrecError as exc:  # the scenario file
        raise pytest.UsageError(f"{where}: {exc}") from None
    with contextlib.ExitStack() as stack:
        try:
            if mode is not RecordMode.NONE and not (mode is RecordMode.ONCE and is_bundle(bundle)):
                # one process at a time records or rewrites a bundle (pytest-xdist workers
                # sharing it): the others wait, then play back what it recorded (once)
                stack.enter_context(bundle_lock(bundle, timeout=lock_timeout))
            action = prepare(mode, bundle)
        except BundleMissing:
            raise pytest.UsageError(
                f"{where}: no bundle at {bundle}, and record mode none only plays back; "
                "record it with --rtrec-record-mode once --rtrec-upstream URL (or sim)"
            ) from None
        except RtrecError as exc:
            raise pytest.UsageError(f"{where}: {bundle}: {exc}") from None
        if action is Action.PLAY:
            stack.close()  # nothing will be written: let the other workers play it too
            yield from _play(bundle, options, check, close_timeout, mode, tls)
        else:
            yield from _record(
                request, bundle, mode, action, options, check, close_timeout, sim, tls
            )


def _judge(run: TestRun, problems: list[str]) -> None:
    """Fail the test at teardown with ``problems``, unless the call already failed (or
    never ran: a fixture failed, or the test was skipped)."""
    if problems and run.called and not run.reported and not run.call_failed:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _close_and_collect(run: TestRun) -> tuple[list[SessionReport], str | None]:
    """Wait for the connections to close; the reports, and what to say of stuck ones."""
    stuck = None
    if not run._wait_idle(run.close_timeout):
        stuck = _stuck(run, run.server.reports.active)
    return list(run.server.reports.sessions), stuck


def _play(
    bundle: Path,
    options: PlaybackOptions,
    check: bool,
    close_timeout: float,
    mode: RecordMode,
    tls: TlsServer | None,
) -> Iterator[TestRun]:
    recording = load_recording(bundle)
    reports = PlaybackReports()
    serve = functools.partial(serve_playback, recording, options=options, reports=reports, tls=tls)
    with run_in_thread(serve, timeout=30) as thread:
        run = TestRun(
            PlaybackServer(thread.url, recording, reports, bundle, tls.ca_file if tls else None),
            mode,
            Action.PLAY,
            check,
            close_timeout,
            thread,
        )
        yield run
        _, stuck = _close_and_collect(run)
    # stopping the server closed any connection still open; its report is in now
    problems = [stuck] if stuck is not None else []
    problems += run._playback_problems(reports.sessions, causes_only=False)
    if not reports.sessions:
        problems += run._nothing_connected()
    _judge(run, problems)


def _record(
    request: pytest.FixtureRequest,
    bundle: Path,
    mode: RecordMode,
    action: Action,
    options: PlaybackOptions,
    check: bool,
    close_timeout: float,
    sim: dict[str, Any],
    tls: TlsServer | None,
) -> Iterator[TestRun]:
    """The record modes: the test's client talks to the recorder, in front of the upstream
    (or, for new_episodes, of the playback server falling through to it); its one session
    becomes the bundle, if it is a recording."""
    upstream = request.config.getoption("rtrec_upstream")
    if not upstream:
        raise pytest.UsageError(
            f"--rtrec-record-mode {mode} needs --rtrec-upstream URL (or sim) to record from"
        )
    try:
        episodes = load_episodes(bundle) if action is Action.EPISODES else None
    except RtrecError as exc:  # a damaged bundle, or one new_episodes cannot take over
        raise pytest.UsageError(f"{request.node.nodeid}: {bundle}: {exc}") from None
    recording = episodes.recording if episodes is not None else None
    reports = PlaybackReports()
    closes: list[SessionClose] = []
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
            sim=sim,
            on_close=closes.append,
            tls=tls,
        )
        with run_in_thread(serve, timeout=30) as thread:
            run = TestRun(
                PlaybackServer(
                    thread.url, recording, reports, bundle, tls.ca_file if tls else None
                ),
                mode,
                action,
                check,
                close_timeout,
                thread,
                closes,
            )
            yield run
            if recording is not None:
                run._wait_idle(close_timeout)
        # the recorder closed what was still open (1001: the test ended), and logged it
        problems = run._recording_problems(closes)
        if recording is not None:
            problems += run._playback_problems(reports.sessions, causes_only=False)
        if not problems and run.called:
            problems += _write(db, bundle, mode, recording)
    _judge(run, problems)


def _write(db: Path, bundle: Path, mode: RecordMode, recording: Recording | None) -> list[str]:
    """Write the test's session as the bundle; what went wrong, if anything."""
    sessions = read_sessions(db)
    try:
        if recording is None:
            if len(sessions) != 1:
                return [
                    f"rtrec record mode {mode}: the test opened {len(sessions)} sessions; a "
                    f"bundle holds exactly one, so {bundle} was not written"
                ]
            write_bundle(db, sessions[0].session_id, bundle)
            return []
        written = [
            s.session_id
            for s in sessions
            if write_bundle(db, s.session_id, bundle, unless_within=recording)
        ]
    except NotARecording as exc:
        return [f"rtrec record mode {mode}: {exc}"]
    if len(written) > 1:
        return [
            f"rtrec record mode new_episodes: {len(written)} sessions of the test left the "
            f"recording; a bundle holds one, so {bundle} holds the last of them"
        ]
    return []
