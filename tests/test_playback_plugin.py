"""The pytest plugin (entry point ``pytest11``): the ``rtrec_playback`` fixture serves the
committed fixture bundle fixtures/sessions/weather-ga to the official SDK, and its teardown
fails a test whose client never sent, or sent something else than, the recorded events.

The bundle was recorded from the simulator through `rtrec record` (``python -m
tests.playkit fixtures/sessions/weather-ga ga``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
import trio

from rtrec.pytest_plugin import RECORD_MODES
from rtrec.replay.playback import Send
from rtrec.replay.pytest_plugin import PlaybackServer
from rtrec.replay.record_modes import BundleLocked, RecordMode, bundle_lock
from rtrec.transport.ws import connect

from .playkit import SESSIONS, conversation
from .test_record_sdk import run_sdk

BUNDLE = SESSIONS / "weather-ga"


@pytest.mark.rtrec_playback("fixtures/sessions/weather-ga")
def test_the_sdk_runs_against_the_fixture_bundle(rtrec_playback: PlaybackServer) -> None:
    """The SDK conversation runs against the committed bundle and receives the recorded
    server frames byte for byte; the fixture's teardown checks every client event matched."""
    tap = run_sdk(rtrec_playback.url, "ga", conversation("ga"))
    frames = [s.message for s in rtrec_playback.recording.steps if isinstance(s, Send)]
    assert tap.received == frames[: len(tap.received)]
    assert tap.received[-1].startswith('{"type":"response.done"')


@pytest.mark.rtrec_playback("fixtures/sessions/weather-ga", check=False)
async def test_a_trio_test_can_use_the_fixture(rtrec_playback: PlaybackServer) -> None:
    """A trio test gets the same server: the recorded session.created, then, for the
    recorded session.update, the recorded frames up to session.updated, byte for byte."""
    recording = rtrec_playback.recording
    frames = [s.message for s in recording.steps if isinstance(s, Send)]
    ws = await connect(
        f"{rtrec_playback.url}/realtime?model=gpt-realtime",
        headers=[("Authorization", "Bearer sk-test")],  # as the recorded client
        max_size=None,
    )
    try:
        with trio.fail_after(10):
            assert await ws.receive() == frames[0]
            await ws.send(orjson.dumps(recording.expected[0].event).decode())
            got = [await ws.receive()]
            while '"type":"session.updated"' not in str(got[-1]):
                got.append(await ws.receive())
        assert got == frames[1 : 1 + len(got)]
    finally:
        await ws.close()


INNER = textwrap.dedent(
    """
    import pytest
    from websockets.sync.client import connect

    BUNDLE = {bundle!r}

    @pytest.mark.rtrec_playback(BUNDLE)
    def test_never_connects(rtrec_playback):
        pass

    @pytest.mark.rtrec_playback(BUNDLE)
    def test_sends_another_session_update(rtrec_playback):
        url = rtrec_playback.url + "/realtime?model=gpt-realtime"
        with connect(url, additional_headers={{"Authorization": "Bearer sk-x"}}) as ws:
            ws.recv(timeout=10)
            ws.send('{{"type":"session.update","session":{{"type":"realtime"}}}}')
            try:
                ws.recv(timeout=10)
            except Exception:
                pass

    @pytest.mark.rtrec_playback(BUNDLE, check=False)
    def test_unchecked(rtrec_playback):
        pass
    """
)


def test_teardown_fails_when_recorded_events_were_not_sent_or_differ(tmp_path: Path) -> None:
    """In a user's suite: a test whose client never connects fails saying the recorded
    client events were never sent; one that sends a different session.update fails with
    the mismatch report, although it swallowed the close it got (one failure each, at the
    call, no teardown error); check=False passes."""
    (tmp_path / "test_inner.py").write_text(INNER.format(bundle=str(BUNDLE)))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_inner.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert "2 failed, 1 passed in" in out, out
    assert "FAILED test_inner.py::test_never_connects" in out
    assert "no client connected; 5 recorded client events were never sent" in out
    assert "FAILED test_inner.py::test_sends_another_session_update" in out
    assert "session.update differs: payload ($.session.audio: missing in the live event" in out


def test_the_record_mode_option_defaults_to_none(pytestconfig: pytest.Config) -> None:
    """``--rtrec-record-mode`` is registered by the entry point and defaults to none."""
    assert pytestconfig.getoption("--rtrec-record-mode") == "none"


ONCE = textwrap.dedent(
    """
    import json
    import pytest
    from websockets.sync.client import connect

    @pytest.mark.rtrec_playback({bundle!r})
    def test_text_turn(rtrec_playback):
        url = rtrec_playback.url + "/realtime?model=gpt-realtime"
        headers = {{"Authorization": "Bearer sk-test-not-a-real-key"}}
        with connect(url, additional_headers=headers, max_size=None) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
            item = {{"type": "message", "role": "user",
                     "content": [{{"type": "input_text", "text": {text!r}}}]}}
            ws.send(json.dumps({{"type": "conversation.item.create", "item": item}}))
            ws.send(json.dumps({{"type": "response.create"}}))
            while json.loads(ws.recv(timeout=10))["type"] != "response.done":
                pass
    """
)


def run_inner(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_inner.py", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_record_mode_once_records_a_missing_bundle_then_plays_it_back(tmp_path: Path) -> None:
    """Mode once with the simulator upstream writes the bundle the marker names; the next
    run (mode none) plays it back and passes; a changed client then fails with the diff;
    mode none without the bundle says how to record it."""
    bundle = tmp_path / "bundles" / "text-turn"
    same = ONCE.format(bundle=str(bundle), text="What time is it?")
    missing = run_inner(tmp_path, same)
    assert missing.returncode == 1
    assert "--rtrec-record-mode once --rtrec-upstream" in missing.stdout
    first = run_inner(tmp_path, same, "--rtrec-record-mode", "once", "--rtrec-upstream", "sim")
    assert first.returncode == 0, first.stdout
    assert (bundle / "session.json").is_file()
    recorded = (bundle / "events.jsonl").read_bytes()
    again = run_inner(tmp_path, same)
    assert again.returncode == 0, again.stdout
    assert (bundle / "events.jsonl").read_bytes() == recorded  # played, not re-recorded
    changed = run_inner(tmp_path, ONCE.format(bundle=str(bundle), text="What day is it?"))
    assert changed.returncode == 1
    assert "$.item.content[0].text: recorded" in changed.stdout


LIVE = textwrap.dedent(
    """
    import asyncio, base64, json, uuid
    import pytest
    from openai import AsyncOpenAI

    SILENCE = base64.b64encode(bytes(4800)).decode()  # 100 ms of PCM16 at 24 kHz

    async def talk(url, thought):
        client = AsyncOpenAI(api_key="sk-test-not-a-real-key", websocket_base_url=url)
        async with client.live.connect() as conn:
            async def until(kind):
                while True:
                    event = json.loads(await conn.recv_bytes())
                    if event["type"] == kind:
                        return event
            await conn.session.start(session={{"model": "gpt-live-1"}})
            await until("session.started")
            mine = f"think-{{uuid.uuid4()}}"  # an id of the client's own, new on every run
            await conn.session.thinking.append(content=thought, delegation_id=None, event_id=mine)
            for _ in range(20):  # the media clock: the server places the append as it hears
                await conn.session.input_audio.append(audio=SILENCE)
            ack = await until("session.thinking.appended")
            assert ack["client_event_id"] == mine
            await conn.session.close()
            await until("session.closed")

    @pytest.mark.rtrec_playback({bundle!r})
    def test_live_turn(rtrec_playback):
        asyncio.run(asyncio.wait_for(talk(rtrec_playback.url, "The user sounds busy."), 30))

    @pytest.mark.rtrec_playback({bundle!r})
    def test_other_thought(rtrec_playback):
        asyncio.run(asyncio.wait_for(talk(rtrec_playback.url, "The user is calm."), 30))
    """
)


def test_a_live_session_is_recorded_once_then_played_back(tmp_path: Path) -> None:
    """GPT-Live through the fixture: mode once records the SDK's ``client.live`` session
    from the simulator; mode none plays it back and passes, the client's own event id
    (new on every run) echoed in the acknowledgement it waits for, while a client that
    appends other context fails with the field diff; new_episodes is refused, saying why."""
    bundle = tmp_path / "bundles" / "live-turn"
    source = LIVE.format(bundle=str(bundle))
    first = run_inner(
        tmp_path,
        source,
        "-k",
        "live_turn",
        "--rtrec-record-mode",
        "once",
        "--rtrec-upstream",
        "sim",
    )
    assert first.returncode == 0, first.stdout
    assert orjson.loads((bundle / "session.json").read_bytes())["session"]["protocol"] == "live"
    recorded = (bundle / "events.jsonl").read_bytes()
    again = run_inner(tmp_path, source)
    assert again.returncode == 1
    assert "1 failed, 1 passed in" in again.stdout, again.stdout
    assert "FAILED test_inner.py::test_other_thought" in again.stdout
    assert "session.thinking.append differs" in again.stdout
    assert "$.content: recorded" in again.stdout
    assert (bundle / "events.jsonl").read_bytes() == recorded  # played, not re-recorded
    episodes = run_inner(
        tmp_path, source, "-k", "live_turn", "--rtrec-record-mode", "new_episodes",
        "--rtrec-upstream", "sim",
    )  # fmt: skip
    assert episodes.returncode == 1
    assert "an upstream cannot take a live recording over" in episodes.stdout
    assert "Traceback" not in episodes.stdout


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """The entry point module (loaded into every pytest run where rtrec is installed)
    imports neither trio, duckdb, pyarrow, soundfile nor the log writer (issue #19)."""
    heavy = ["trio", "duckdb", "pyarrow", "soundfile", "numpy", "rtrec.store.writer"]
    code = f"import sys, rtrec.pytest_plugin; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_light_module_spells_the_record_modes_as_the_enum() -> None:
    """``--rtrec-record-mode``'s choices are RecordMode's values."""
    assert tuple(m.value for m in RecordMode) == RECORD_MODES


def test_a_bundle_lock_held_elsewhere_times_out_with_its_path(tmp_path: Path) -> None:
    """While one holder has a bundle's lock, another waits and gives up after its timeout
    naming the lock file; once released, the lock file is gone and the lock is free."""
    bundle = tmp_path / "bundles" / "turn"
    with (
        bundle_lock(bundle, timeout=1),
        pytest.raises(BundleLocked, match=r"\.turn\.rtrec-lock\) for 0\.1 s"),
        bundle_lock(bundle, timeout=0.1),
    ):
        pass
    assert list(bundle.parent.iterdir()) == []
    with bundle_lock(bundle, timeout=0.1):
        pass


NAMES = textwrap.dedent(
    """
    import pytest
    from rtrec.replay.pytest_plugin import default_bundle

    @pytest.mark.parametrize("city", ["Paris", "New York/NY"])
    def test_city(request, city):
        print("BUNDLE", default_bundle(request.node, request.config.getini("rtrec_bundle_dir")))

    class TestAgent:
        def test_turn(self, request):
            print("BUNDLE", default_bundle(request.node, request.config.getini("rtrec_bundle_dir")))
    """
)


@pytest.mark.parametrize("bundle_dir", ["", "recordings"])
def test_default_bundle_names_follow_the_test(tmp_path: Path, bundle_dir: str) -> None:
    """Without a path in the marker, each test (class and parametrize id included, with
    what cannot be in a file name replaced) gets rtrec_bundles/<module>/<test> beside its
    module, or <rtrec_bundle_dir>/<module path>/<test> from the ini file's folder."""
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nrtrec_bundle_dir = {bundle_dir}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_names.py").write_text(NAMES)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "sub"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    got = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if "BUNDLE" in line]
    base = tmp_path / "sub" / "rtrec_bundles" / "test_names"
    if bundle_dir:
        base = tmp_path / "recordings" / "sub" / "test_names"
    assert got == [
        str(base / "test_city[Paris]"),
        str(base / "test_city[New_York_NY]"),
        str(base / "TestAgent.test_turn"),
    ]
