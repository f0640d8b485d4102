"""rtrec's pytest plugin (the ``pytest11`` entry point): the ``rtrec_playback`` fixture, its
marker, options and hooks. docs/testing.md is the guide.

    @pytest.mark.rtrec_playback                     # the bundle: rtrec_bundles/<module>/<test>
    async def test_my_agent(rtrec_playback):
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=rtrec_playback.url)
        await my_agent(client)                      # the real client code, against the recording

Installing rtrec loads this module into every pytest run, used or not, so it imports
nothing but pytest: the fixture imports the machinery (``rtrec.replay.pytest_plugin``:
trio, DuckDB, the recorder, the playback server) the first time a test asks for it
(issue #19: the plugin had cost every run of an unrelated suite about a second).

Marker: ``@pytest.mark.rtrec_playback(path=None, **options)``. The path is optional (by
default one bundle per test, parametrize id included, like pytest-recording's cassettes);
a relative one is taken from the rootdir. Options: ``pace`` ("instant"), ``match``
("type,payload"), ``ignore_paths``, ``audio`` ("samples"), ``audio_tolerance_ms``,
``on_mismatch`` ("fail"), ``client_timeout`` (10 s for a silent client while a recorded
event is awaited), ``close_timeout`` (the ``rtrec_close_timeout`` ini option: how long a
client may stay connected after the test), ``tls`` (False; True serves ``wss://`` and sets
``rtrec_playback.ca_file``), ``check`` (True; False leaves the reports to the test) and
``sim`` (``{"scenario": path, "seed": n, "pace": "fast"}``, for the
simulator upstream of the record modes).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from rtrec.replay.pytest_plugin import PlaybackServer, TestRun

__all__ = ["RECORD_MODES", "rtrec_playback"]

#: ``rtrec.replay.record_modes.RecordMode``'s values, spelled out here so that loading the
#: plugin imports nothing of rtrec (tests/test_playback_plugin.py keeps the two equal)
RECORD_MODES: Final = ("none", "once", "new_episodes", "all", "rewrite")
_RUN: Final[pytest.StashKey[TestRun]] = pytest.StashKey()
#: what the call hook leaves alone: pytest's own skip / xfail / exit, and Ctrl-C
_NOT_OURS: Final = (pytest.skip.Exception, pytest.xfail.Exception, pytest.exit.Exception)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The record mode and upstream, the simulator's scenario and seed, and the ini options."""
    group = parser.getgroup("rtrec", "rtrec playback of recorded Realtime sessions")
    group.addoption(
        "--rtrec-record-mode",
        dest="rtrec_record_mode",
        choices=RECORD_MODES,
        default="none",
        help="none: play recorded bundles back, never record (default, for CI); once: record "
        "the bundles that do not exist yet from --rtrec-upstream; new_episodes: play back, "
        "and where the client leaves the recording let --rtrec-upstream answer and rewrite "
        "the bundle; all, rewrite: record anew, replacing each bundle once its recording "
        "succeeded.",
    )
    group.addoption(
        "--rtrec-upstream",
        dest="rtrec_upstream",
        default=None,
        metavar="URL",
        help="The Realtime server to record from in the record modes but none (a base URL "
        "such as wss://api.openai.com/v1, or 'sim' for the built-in simulator).",
    )
    group.addoption(
        "--rtrec-sim-scenario",
        dest="rtrec_sim_scenario",
        default=None,
        metavar="FILE",
        help="The scenario file (TOML) of the simulator upstream (--rtrec-upstream sim); "
        "default: the ini option rtrec_sim_scenario, else the built-in one.",
    )
    group.addoption(
        "--rtrec-sim-seed",
        dest="rtrec_sim_seed",
        default=None,
        type=int,
        metavar="N",
        help="The seed of the simulator upstream's ids (default: the ini option "
        "rtrec_sim_seed, else 0; 1 in new_episodes, so new ids differ from recorded ones).",
    )
    parser.addini(
        "rtrec_bundle_dir",
        "Where the bundles of tests whose marker names none go, relative to the ini file "
        "(<dir>/<module path>/<test>); default: rtrec_bundles/<module>/<test> beside each "
        "test module.",
        default="",
    )
    parser.addini(
        "rtrec_sim_scenario",
        "The simulator upstream's scenario file, relative to the ini file.",
        default="",
    )
    parser.addini("rtrec_sim_seed", "The simulator upstream's seed.", default="")
    parser.addini(
        "rtrec_close_timeout",
        "Seconds a client may stay connected after its test before rtrec closes it and "
        "fails the test.",
        default="2",
    )
    parser.addini(
        "rtrec_lock_timeout",
        "Seconds a test waits for another process (a pytest-xdist worker) recording the "
        "same bundle.",
        default="600",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers",
        "rtrec_playback(bundle=None, **options): the bundle the rtrec_playback fixture "
        "serves or records (default: one per test), and how",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Judge a test's playback at the end of its call, so that a failed connection fails
    the call itself (one failure, with rtrec's report in place of the client's error)."""
    try:
        result = yield
    except _NOT_OURS:
        raise
    except Exception as exc:
        run = item.stash.get(_RUN, None)
        if run is not None:
            run.after_call(exc)  # raises rtrec's failure, or notes the test's own
        raise
    run = item.stash.get(_RUN, None)
    if run is not None:
        run.after_call(None)
    return result


@pytest.fixture
def rtrec_playback(request: pytest.FixtureRequest) -> Iterator[PlaybackServer]:
    """A playback server for the test's bundle (or, in the record modes, a recorder in
    front of ``--rtrec-upstream``); its ``url`` is the SDK's ``websocket_base_url``."""
    # imported here, not at the top: see the module docstring
    from rtrec.replay.pytest_plugin import open_test_run

    with open_test_run(request) as run:
        request.node.stash[_RUN] = run
        try:
            yield run.server
        finally:
            del request.node.stash[_RUN]
