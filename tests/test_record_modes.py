"""Record modes none / once / new_episodes / all / rewrite (issue 6), with real peers: the
simulator on loopback as the upstream, the recorder and the playback server in a thread
with their own trio loop, the official SDK (or a plain websockets client) as the client,
and copies of the committed bundles under fixtures/sessions/.

For each mode: what the client receives and what ends up in the bundle. No test sleeps:
clients wait for the events they need, with timeouts that only stop a hung run.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as sync_connect

from rtrec.cli import cli
from rtrec.replay import rebuild
from rtrec.replay.episodes import pending_audio, seed_items
from rtrec.replay.playback import (
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Send,
    Switch,
    load_recording,
    serve_playback,
)
from rtrec.replay.record_modes import (
    Action,
    BundleMissing,
    NotARecording,
    RecordMode,
    choose,
    load_episodes,
    prepare,
    serve_record_mode,
    write_bundle,
)
from rtrec.replay.threaded import run_in_thread
from rtrec.simulator import load_scenario
from rtrec.simulator.ids import IdFactory
from rtrec.store.bundle import read_bundle
from rtrec.store.reader import read_sessions
from rtrec.transport.ws import accept_handshake

from .playkit import SESSIONS, Behaviour, conversation, record
from .simkit import SCENARIOS
from .test_record_sdk import run_sdk
from .test_sim_cli import first_line

pytest_plugins = ["pytester"]

RTREC = Path(sys.executable).parent / "rtrec"
DEMO = {"scenario": load_scenario(SCENARIOS / "demo.toml"), "pace": "fast"}
KEY = "sk-test-not-a-real-key"  # what run_sdk sends; it must never reach a bundle


def copy_bundle(name: str, tmp_path: Path) -> Path:
    """A writable copy of a committed fixture bundle."""
    target = tmp_path / name
    shutil.copytree(SESSIONS / name, target)
    return target


def bundle_bytes(bundle: Path) -> dict[str, bytes]:
    """Every file of a bundle directory, by name."""
    return {p.name: p.read_bytes() for p in sorted(bundle.iterdir())}


def conversation_of(bundle: Path) -> list[tuple[str | None, str | None, str | None]]:
    """(type, role, text) of each item of a bundle's rebuilt conversation."""
    state = rebuild(read_bundle(bundle).frames).state
    out = []
    for item in state.conversation:
        text = item.output
        for part in item.parts:
            text = part.text.value or part.transcript.value or text
        out.append((item.type, item.role, text))
    return out


def record_mode_server(
    action: Action, mode: RecordMode, bundle: Path, db: Path, upstream: str = "sim"
) -> tuple[Any, PlaybackReports]:
    """serve_record_mode for ``bundle`` as a ``run_in_thread`` target, and its reports."""
    reports = PlaybackReports()
    serve = functools.partial(
        serve_record_mode,
        action,
        mode=mode,
        upstream=upstream,
        db=db,
        episodes=load_episodes(bundle) if action is Action.EPISODES else None,
        options=PlaybackOptions(Pace.parse("instant"), client_timeout=10),
        reports=reports,
        sim=DEMO,
    )
    return serve, reports


def the_session(db: Path) -> str:
    """The one session recorded in ``db``."""
    (session,) = read_sessions(db)
    return session.session_id


# ---------------------------------------------------------------- deciding


def test_each_mode_decides_between_playback_and_recording(tmp_path: Path) -> None:
    """The decision table of docs/playback.md: none plays (and a missing bundle is an error
    naming how to record it), once records only a missing bundle, new_episodes plays an
    existing one with the upstream behind it, all and rewrite always record."""
    there, missing = copy_bundle("text_turn", tmp_path), tmp_path / "missing"
    expected = {
        RecordMode.NONE: (Action.PLAY, None),
        RecordMode.ONCE: (Action.PLAY, Action.RECORD),
        RecordMode.NEW_EPISODES: (Action.EPISODES, Action.RECORD),
        RecordMode.ALL: (Action.RECORD, Action.RECORD),
        RecordMode.REWRITE: (Action.RECORD, Action.RECORD),
    }
    for mode, (with_bundle, without) in expected.items():
        assert choose(mode, there) is with_bundle
        if without is None:
            with pytest.raises(BundleMissing, match="--record-mode once --upstream"):
                choose(mode, missing)
        else:
            assert choose(mode, missing) is without
    with pytest.raises(ValueError, match="give one of none, once, new_episodes, all, rewrite"):
        RecordMode.parse("always")


def test_rewrite_deletes_nothing_before_the_recording_succeeded(tmp_path: Path) -> None:
    """rewrite leaves the bundle in place until a new recording replaces it (issue #21: a
    failed recording must not cost the good bundle)."""
    bundle = copy_bundle("voice_turn", tmp_path)
    before = bundle_bytes(bundle)
    assert prepare(RecordMode.REWRITE, bundle) is Action.RECORD
    assert bundle_bytes(bundle) == before


async def serve_closing_upstream(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A WebSocket upstream that accepts every session and closes it with 1011 at once."""

    async def handle(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=2**20)
        ws = await handshake.accept(None)
        await ws.close(1011, "upstream broke")

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1")


@pytest.mark.parametrize(
    ("upstream", "headers", "cause"),
    [
        ("unreachable", {"Authorization": f"Bearer {KEY}"}, "unreachable: OSError"),
        ("sim", {}, "the upstream refused the handshake with HTTP 401"),
        ("closing", {"Authorization": f"Bearer {KEY}"}, "closed the session with 1011"),
    ],
)
def test_a_failed_session_is_never_written_as_a_bundle(
    tmp_path: Path, upstream: str, headers: dict[str, str], cause: str
) -> None:
    """A session the upstream never took (unreachable, 401 for a client without a key) or
    ended with 1011 is refused by write_bundle with the cause; the good bundle stays byte
    for byte (issue #21, item 2)."""
    bundle = copy_bundle("text_turn", tmp_path)
    before = bundle_bytes(bundle)
    db = tmp_path / "log.duckdb"
    with contextlib.ExitStack() as stack:
        if upstream == "unreachable":
            upstream = f"ws://127.0.0.1:{_free_port()}/v1"
        elif upstream == "closing":
            upstream = stack.enter_context(run_in_thread(serve_closing_upstream)).url
        serve, _ = record_mode_server(Action.RECORD, RecordMode.ALL, bundle, db, upstream)
        server = stack.enter_context(run_in_thread(serve, timeout=30))
        url = f"{server.url}/realtime?model=gpt-realtime"
        with (
            pytest.raises((InvalidHandshake, ConnectionClosed)),
            sync_connect(url, additional_headers=headers) as ws,
        ):
            ws.recv(timeout=10)
    with pytest.raises(NotARecording, match=cause):
        write_bundle(db, the_session(db), bundle)
    assert bundle_bytes(bundle) == before


def test_rewrite_refuses_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    """A session.json that is not a bundle manifest is never deleted."""
    (tmp_path / "session.json").write_text('{"format": "something-else"}')
    with pytest.raises(Exception, match="not an rtrec bundle manifest; not touching it"):
        prepare(RecordMode.REWRITE, tmp_path)
    assert (tmp_path / "session.json").exists()


def test_the_simulator_never_hands_out_an_id_a_client_chose() -> None:
    """Ids a client named (a seeded conversation's) are skipped by the simulator's id
    streams, so a new item or call never shares an id with a seeded one."""
    fresh = IdFactory(0)
    first, second = fresh.new("item"), fresh.new("item")
    seeded = IdFactory(0)
    seeded.take(first)
    assert seeded.new("item") == second


# ---------------------------------------------------------------- seeding


@pytest.mark.parametrize(
    ("name", "protocol"), [("function_call", "ga"), ("function_call_beta", "beta")]
)
def test_seed_items_rebuild_the_recorded_conversation_under_its_ids(
    name: str, protocol: str
) -> None:
    """The items that seed an upstream are the recorded conversation in order, under the
    recorded ids and call_id, assistant speech as text in the protocol's content type, and
    user speech as the archived audio in the wire encoding."""
    contents = read_bundle(SESSIONS / name)
    state = rebuild(contents.frames).state
    episodes = load_episodes(SESSIONS / name)
    items, notes = seed_items(state, protocol, episodes.audio)
    assert [i["id"] for i in items] == list(state.order)
    assert [i["type"] for i in items] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    user, spoken, call, output, _ = items
    assert user["content"][0]["type"] == "input_audio"
    heard = base64.b64decode(user["content"][0]["audio"])
    assert len(heard) > 24_000  # over half a second of PCM16 at 24 kHz
    assert heard in episodes.recording.audio  # the committed slice of what was appended
    assert spoken["content"][0]["type"] == ("output_text" if protocol == "ga" else "text")
    assert spoken["content"][0]["text"] == "Let me check that for you."
    assert call["call_id"] == state.items[call["id"]].call_id
    assert output["output"] == state.items[output["id"]].output
    assert any("seeded as its transcript" in note for note in notes)


def test_pending_audio_is_what_the_recording_had_not_committed() -> None:
    """Input audio after the recorded session's last commit is what the upstream's buffer
    must get; before the first commit, all of it."""
    contents = read_bundle(SESSIONS / "voice_turn")
    replay = rebuild(contents.frames)
    live = bytes(range(256)) * 1000
    assert pending_audio(replay.state_at(0), live) == live
    after = replay.state
    start = round(after.input.pending_from_ms * 24) * 2
    assert start > 0
    assert pending_audio(after, live) == live[start:]


# ---------------------------------------------------------------- new_episodes


def test_new_episodes_answers_a_changed_client_from_the_upstream_and_rewrites_the_bundle(
    tmp_path: Path,
) -> None:
    """A client whose function output changed gets the recorded frames byte for byte up to
    the change, then the simulator's answer to its output; the bundle afterwards holds that
    session: the recorded part, the new output and the new answer, and no API key. Played
    back in mode none, the changed client then matches it."""
    bundle = copy_bundle("weather-ga", tmp_path)
    recorded = [s.message for s in load_recording(bundle).steps if isinstance(s, Send)]
    changed = Behaviour(function_output='{"c":15}')
    serve, reports = record_mode_server(
        Action.EPISODES, RecordMode.NEW_EPISODES, bundle, tmp_path / "log.duckdb"
    )
    with run_in_thread(serve, timeout=30) as server:
        tap = run_sdk(server.url, "ga", conversation("ga", changed))
        report = _settled(server, reports)
    assert report.ok, report.render()
    sent = report.server_frames_sent
    assert report.diverged is not None
    assert "$.item.output" in report.diverged.summary
    assert tap.received[:sent] == recorded[:sent]
    live = [json.loads(m) for m in tap.received[sent:]]
    assert live[-1]["type"] == "response.done"
    answer = live[-1]["response"]["output"][0]["content"][0]["transcript"]
    assert answer == 'The function returned {"c":15}.'

    db = tmp_path / "log.duckdb"
    assert write_bundle(
        db, the_session(db), bundle, unless_within=load_recording(SESSIONS / "weather-ga")
    )
    items = conversation_of(bundle)
    assert items[:-2] == conversation_of(SESSIONS / "weather-ga")[:-2]
    assert items[-2:] == [
        ("function_call_output", None, '{"c":15}'),
        ("message", "assistant", 'The function returned {"c":15}.'),
    ]
    for data in bundle_bytes(bundle).values():
        assert KEY.encode() not in data
    again = PlaybackReports()
    play = functools.partial(
        serve_playback,
        load_recording(bundle),
        options=PlaybackOptions(Pace.parse("instant")),
        reports=again,
    )
    with run_in_thread(play, timeout=30) as server:
        replayed = run_sdk(server.url, "ga", conversation("ga", changed))
        assert _settled(server, again).ok, again.sessions[0].render()
    assert replayed.received == tap.received


def test_new_episodes_seeds_a_beta_upstream_too(tmp_path: Path) -> None:
    """The same change against a bundle recorded with the beta protocol: the simulator,
    seeded with beta items (assistant text as "text" parts), answers the new output, and
    the bundle holds it."""
    bundle = tmp_path / "weather-beta"
    record(bundle, "beta", tmp_path)
    original = load_recording(bundle)
    serve, reports = record_mode_server(
        Action.EPISODES, RecordMode.NEW_EPISODES, bundle, tmp_path / "episodes.duckdb"
    )
    with run_in_thread(serve, timeout=30) as server:
        tap = run_sdk(server.url, "beta", conversation("beta", Behaviour(function_output="7")))
        report = _settled(server, reports)
    assert report.ok, report.render()
    assert report.diverged is not None
    done = json.loads(tap.received[-1])
    assert done["response"]["output"][0]["content"][0]["transcript"] == "The function returned 7."
    db = tmp_path / "episodes.duckdb"
    assert write_bundle(db, the_session(db), bundle, unless_within=original)
    assert conversation_of(bundle)[-2:] == [
        ("function_call_output", None, "7"),
        ("message", "assistant", "The function returned 7."),
    ]


def test_new_episodes_leaves_the_bundle_alone_when_the_client_matches(tmp_path: Path) -> None:
    """A client that does what was recorded is played back; nothing is new, so the bundle
    keeps every byte."""
    bundle = copy_bundle("weather-ga", tmp_path)
    before = bundle_bytes(bundle)
    serve, reports = record_mode_server(
        Action.EPISODES, RecordMode.NEW_EPISODES, bundle, tmp_path / "log.duckdb"
    )
    with run_in_thread(serve, timeout=30) as server:
        run_sdk(server.url, "ga", conversation("ga"))
        report = _settled(server, reports)
    assert report.ok, report.render()
    assert report.completed
    assert report.diverged is None
    db = tmp_path / "log.duckdb"
    assert not write_bundle(db, the_session(db), bundle, unless_within=load_recording(bundle))
    assert bundle_bytes(bundle) == before


def text_turn(ws: Any, text: str) -> list[dict[str, Any]]:
    """One typed turn over a websockets client: the events up to response.done."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    ws.send(json.dumps({"type": "response.create"}))
    got = [json.loads(ws.recv(timeout=10))]
    while got[-1]["type"] != "response.done":
        got.append(json.loads(ws.recv(timeout=10)))
    return got


def recorded_client_messages(bundle: Path) -> list[str]:
    """The client frames of a bundle without audio, as they were sent."""
    frames = read_bundle(bundle).frames
    return [f.payload for f in frames if f.direction.value == "client" and f.payload]


def test_new_episodes_goes_live_when_the_recording_runs_out(tmp_path: Path) -> None:
    """A client that goes on after the recording's last client event (a second typed turn)
    gets it answered by the upstream, which was seeded with the first turn; the bundle then
    holds both turns."""
    bundle = copy_bundle("text_turn", tmp_path)
    update, *_ = recorded_client_messages(bundle)
    serve, reports = record_mode_server(
        Action.EPISODES, RecordMode.NEW_EPISODES, bundle, tmp_path / "log.duckdb"
    )
    with run_in_thread(serve, timeout=30) as server:
        url = f"{server.url}/realtime?model=gpt-realtime"
        with sync_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
            ws.send(update)
            while json.loads(ws.recv(timeout=10))["type"] != "session.updated":
                pass
            first = text_turn(ws, "What time is it?")
            second = text_turn(ws, "Hello! Can you hear me?")
        report = _settled(server, reports)
    assert report.ok, report.render()
    assert report.completed
    assert report.diverged is not None
    assert "after the recording's last client event" in report.diverged.summary
    assert first[-1]["response"]["status"] == "completed"
    assert second[-1]["response"]["output"][0]["content"][0]["text"] == (
        "Yes, I can hear you clearly. How can I help you today?"
    )
    db = tmp_path / "log.duckdb"
    assert write_bundle(
        db, the_session(db), bundle, unless_within=load_recording(SESSIONS / "text_turn")
    )
    texts = [text for _, _, text in conversation_of(bundle)]
    assert texts == [
        "What time is it?",
        "I am a simulator, so it is always the same time for me.",
        "Hello! Can you hear me?",
        "Yes, I can hear you clearly. How can I help you today?",
    ]


def test_new_episodes_with_an_unreachable_upstream_closes_the_client_clearly(
    tmp_path: Path,
) -> None:
    """Where the live upstream cannot take over, the client is closed with 1011 and a
    reason naming the upstream, the report says why, and the bundle stays as it was."""
    bundle = copy_bundle("weather-ga", tmp_path)
    before = bundle_bytes(bundle)
    serve, reports = record_mode_server(
        Action.EPISODES,
        RecordMode.NEW_EPISODES,
        bundle,
        tmp_path / "log.duckdb",
        upstream=f"ws://127.0.0.1:{_free_port()}/v1",
    )
    with run_in_thread(serve, timeout=30) as server:
        with pytest.raises(ConnectionClosed, match="1011"):
            run_sdk(server.url, "ga", conversation("ga", Behaviour(function_output="{}")))
        report = _settled(server, reports)
    assert report.upstream_error is not None
    assert "unreachable" in report.upstream_error
    assert not report.ok
    db = tmp_path / "log.duckdb"
    with pytest.raises(NotARecording, match="the upstream closed the session with 1011"):
        write_bundle(db, the_session(db), bundle, unless_within=load_recording(bundle))
    assert bundle_bytes(bundle) == before


def test_a_failing_fallthrough_ends_its_session_not_the_server(tmp_path: Path) -> None:
    """A bug in the fallthrough closes that client with 1011 and says so in its report; the
    playback server goes on serving the next client."""

    async def broken(switch: Switch) -> tuple[int, str] | None:
        raise RuntimeError("boom")

    reports = PlaybackReports()
    options = PlaybackOptions(Pace.parse("instant"), fallthrough=broken)
    play = functools.partial(
        serve_playback, load_recording(SESSIONS / "weather-ga"), options=options, reports=reports
    )
    with run_in_thread(play, timeout=30) as server:
        with pytest.raises(ConnectionClosed, match="1011"):
            run_sdk(server.url, "ga", conversation("ga", Behaviour(function_output="{}")))
        run_sdk(server.url, "ga", conversation("ga"))
        trio.from_thread.run(_idle, reports, trio_token=server.token)
    errors = sorted(str(r.upstream_error) for r in reports.sessions)
    assert errors == ["None", "internal error: RuntimeError: boom"]
    assert sum(r.ok for r in reports.sessions) == 1


# ---------------------------------------------------------------- all


def test_all_records_every_session_anew_and_replaces_the_bundle(tmp_path: Path) -> None:
    """In mode all nothing is played back: a different question reaches the upstream and is
    answered; the new session replaces the bundle, and golden.json beside it stays."""
    bundle = copy_bundle("text_turn", tmp_path)
    golden = (bundle / "golden.json").read_bytes()
    old_id = read_bundle(bundle).session_id
    update, *_ = recorded_client_messages(bundle)
    serve, _ = record_mode_server(Action.RECORD, RecordMode.ALL, bundle, tmp_path / "log.duckdb")
    with run_in_thread(serve, timeout=30) as server:
        url = f"{server.url}/realtime?model=gpt-realtime"
        with sync_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            ws.recv(timeout=10)
            ws.send(update)
            while json.loads(ws.recv(timeout=10))["type"] != "session.updated":
                pass
            got = text_turn(ws, "Hello! Can you hear me?")
    assert got[-1]["response"]["output"][0]["content"][0]["text"].startswith("Yes, I can hear")
    db = tmp_path / "log.duckdb"
    assert write_bundle(db, the_session(db), bundle)
    assert read_bundle(bundle).session_id != old_id
    assert conversation_of(bundle)[0][2] == "Hello! Can you hear me?"
    assert (bundle / "golden.json").read_bytes() == golden


# ---------------------------------------------------------------- the command line


def test_rtrec_replay_serve_new_episodes_writes_the_bundle_when_a_session_ends(
    tmp_path: Path,
) -> None:
    """`rtrec replay BUNDLE --serve 127.0.0.1:0 --record-mode new_episodes --upstream sim`
    serves the recording, lets the simulator answer a changed client, records the session
    into --db and writes it to the bundle as soon as it ends; SIGINT stops it cleanly."""
    bundle = copy_bundle("weather-ga", tmp_path)
    db = tmp_path / "log.duckdb"
    proc = subprocess.Popen(
        [
            str(RTREC),
            "replay",
            str(bundle),
            "--serve",
            "127.0.0.1:0",
            "--pace",
            "instant",
            "--record-mode",
            "new_episodes",
            "--upstream",
            "sim",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = first_line(proc)
        changed = conversation("ga", Behaviour(function_output='{"c":15}'))
        tap = run_sdk(url, "ga", changed)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "new episode: the client left the recording after seq" in err
    assert f"written to {bundle}" in err
    assert json.loads(tap.received[-1])["type"] == "response.done"
    assert conversation_of(bundle)[-2][2] == '{"c":15}'
    assert len(read_sessions(db)) == 1


def test_rtrec_replay_serve_mode_none_with_a_missing_bundle_fails_clearly(
    tmp_path: Path,
) -> None:
    """Mode none (the default) with no bundle at the path exits 2 saying how to record it;
    a record mode with a session id of the log asks for a bundle directory instead."""
    missing = tmp_path / "bundles" / "new-call"
    result = CliRunner().invoke(cli, ["replay", str(missing), "--serve", "127.0.0.1:0"])
    assert result.exit_code == 2
    assert f"no bundle at {missing}" in result.output
    assert "--record-mode once --upstream URL" in result.output
    result = CliRunner().invoke(
        cli, ["playback", str(missing), "--serve", "127.0.0.1:0", "--record-mode", "sometimes"]
    )
    assert result.exit_code == 2
    assert "'sometimes' is not one of 'none', 'once', 'new_episodes', 'all', 'rewrite'" in (
        result.output
    )


# ---------------------------------------------------------------- the pytest plugin

INNER = """
import json
import pytest
from websockets.sync.client import connect

UPDATE = {update!r}

@pytest.mark.rtrec_playback({bundle!r})
def test_turn(rtrec_playback):
    url = rtrec_playback.url + "/realtime?model=gpt-realtime"
    headers = {{"Authorization": "Bearer {key}"}}
    with connect(url, additional_headers=headers, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        ws.send(UPDATE)
        while json.loads(ws.recv(timeout=10))["type"] != "session.updated":
            pass
        item = {{"type": "message", "role": "user",
                 "content": [{{"type": "input_text", "text": {text!r}}}]}}
        ws.send(json.dumps({{"type": "conversation.item.create", "item": item}}))
        ws.send(json.dumps({{"type": "response.create"}}))
        while json.loads(ws.recv(timeout=10))["type"] != "response.done":
            pass
"""

SAME, OTHER = "What time is it?", "Hello! Can you hear me?"


@pytest.mark.parametrize(
    ("mode", "text", "outcome"),
    [
        ("none", SAME, "kept"),
        ("once", SAME, "kept"),
        ("new_episodes", SAME, "kept"),
        ("new_episodes", OTHER, "new"),
        ("all", SAME, "new"),
        ("rewrite", OTHER, "new"),
    ],
)
def test_the_plugin_takes_every_record_mode(
    pytester: pytest.Pytester, mode: str, text: str, outcome: str
) -> None:
    """`--rtrec-record-mode` accepts all five modes: none and once play the existing bundle
    back (untouched); new_episodes keeps it for a matching client and rewrites it with a
    changed one's new turn; all and rewrite replace it with a new recording (golden.json
    stays). Every run passes, and no run writes the API key."""
    bundle = pytester.path / "bundles" / "text_turn"
    shutil.copytree(SESSIONS / "text_turn", bundle)
    before = bundle_bytes(bundle)
    update, *_ = recorded_client_messages(bundle)
    pytester.makepyfile(INNER.format(update=update, bundle=str(bundle), key=KEY, text=text))
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:asyncio",
        "--rtrec-record-mode",
        mode,
        "--rtrec-upstream",
        "sim",
    )
    result.assert_outcomes(passed=1)
    after = bundle_bytes(bundle)
    assert after["golden.json"] == before["golden.json"]
    if outcome == "kept":
        assert after == before
    else:
        assert read_bundle(bundle).session_id != read_bundle(SESSIONS / "text_turn").session_id
        assert conversation_of(bundle)[0][2] == text
    for data in after.values():
        assert KEY.encode() not in data


def test_the_plugin_in_mode_none_without_the_bundle_says_how_to_record_it(
    pytester: pytest.Pytester,
) -> None:
    """Mode none with a missing bundle errors the test, naming the plugin's options."""
    missing = pytester.path / "bundles" / "missing"
    pytester.makepyfile(INNER.format(update="{}", bundle=str(missing), key=KEY, text=SAME))
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no bundle at*--rtrec-record-mode once --rtrec-upstream*"])


# ---------------------------------------------------------------- helpers


async def _idle(reports: PlaybackReports) -> None:
    with trio.fail_after(10):
        await reports.wait_idle()


def _settled(server: Any, reports: PlaybackReports) -> Any:
    """The one playback report, once the server has finished checking the connection."""
    trio.from_thread.run(_idle, reports, trio_token=server.token)
    (report,) = reports.sessions
    return report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
