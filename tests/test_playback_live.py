"""GPT-Live playback: a Live conversation recorded with the official SDK's
``client.live.connect()`` through `rtrec record` from `rtrec sim` is served back to the same
client code, twice, byte for byte; the event ids the client chose (echoed by the server as
``client_event_id``) are mapped; audio is gated by duration, however the client chunks it.

Real sockets on 127.0.0.1 port 0; the playback server runs in its own trio loop in a thread,
the SDK on asyncio. Pace is instant: timing is measured by bench/, never here.
"""

from __future__ import annotations

import base64
import functools
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import trio
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed

from rtrec.cli import cli
from rtrec.replay.client_ids import IdMap, rewrite_frame
from rtrec.replay.playback import (
    AudioGate,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    Send,
    load_recording,
    serve_playback,
)
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.dialects import LIVE
from rtrec.store.reader import read_sessions

from .liveplay import (
    LiveBehaviour,
    live_conversation,
    record_live,
    run_live,
)
from .simkit import chunks, silence
from .test_record_sdk import Tap
from .test_sim_cli import first_line
from .test_sim_live import serve as serve_sim

RTREC = Path(sys.executable).parent / "rtrec"

INSTANT = PlaybackOptions(Pace.parse("instant"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tap]:
    """The Live weather conversation recorded through the recorder, as ``DIR/bundle``."""
    work = tmp_path_factory.mktemp("live-rec")
    _, _, tap = record_live(work)
    return work / "bundle", tap


@pytest.fixture
def recorded(work: tuple[Path, Tap]) -> tuple[Recording, Tap]:
    """The recorded bundle, loaded for playback."""
    bundle, tap = work
    return load_recording(bundle), tap


def play(
    recording: Recording, behaviours: list[LiveBehaviour], options: PlaybackOptions = INSTANT
) -> tuple[list[Tap | BaseException], PlaybackReports]:
    """Run the client once per behaviour against one playback server."""
    reports = PlaybackReports()
    taps: list[Tap | BaseException] = []
    serve = functools.partial(serve_playback, recording, options=options, reports=reports)
    with run_in_thread(serve, timeout=30) as server:
        for how in behaviours:
            try:
                taps.append(run_live(server.url, live_conversation(how)))
            except (ConnectionClosed, TimeoutError) as exc:
                taps.append(exc)
        trio.from_thread.run(reports.wait_idle, trio_token=server.token)
    return taps, reports


def sent_frames(recording: Recording) -> list[str | bytes]:
    return [s.message for s in recording.steps if isinstance(s, Send)]


def test_a_live_recording_knows_its_dialect_and_gates_on_input_audio(
    recorded: tuple[Recording, Tap],
) -> None:
    """The recording is GPT-Live: its input appends are audio gates (one stream, compared
    by samples), not events matched one by one, and its other client events are expected."""
    recording, original = recorded
    assert recording.protocol == "live"
    assert recording.dialect is LIVE
    gates = [s for s in recording.steps if isinstance(s, AudioGate)]
    appends = [m for m in original.sent if '"session.input_audio.append"' in str(m)]
    assert len(gates) == len(appends) > 50
    assert [e.event["type"] for e in recording.expected] == [
        "session.start",
        "session.commentary.append",
        "session.close",
    ]


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, Tap]:
    """The conversation under Responses delegation: the backend's function call arrives
    inside ``response.event`` and the client returns its output."""
    work = tmp_path_factory.mktemp("live-responses")
    _, _, tap = record_live(work, LiveBehaviour(delegation="responses"))
    return load_recording(work / "bundle"), tap


def test_sdk_receives_identical_bytes_twice_modulo_its_own_event_ids(
    recorded: tuple[Recording, Tap],
) -> None:
    """Two runs of the same client code get the same frames, byte for byte; they are the
    recorded server frames with the ids the recorded client chose (``rec_*``, echoed as
    ``client_event_id``) replaced by the ones this client chose (``play_*``), and nothing
    else changed. Every recorded client event matches on both runs."""
    identical_twice(recorded, LiveBehaviour(ids="play"), ("start", "answer", "close"))


def test_a_backend_function_call_plays_back_identically_twice(
    responses: tuple[Recording, Tap],
) -> None:
    """The same under Responses delegation: the client answers the call it read from the
    nested ``response.event`` (the server's call id, as recorded) and gets the spoken
    answer, byte for byte on both runs."""
    recording, _ = responses
    assert "response.item.create" in [e.event["type"] for e in recording.expected]
    how = LiveBehaviour(ids="play", delegation="responses")
    identical_twice(responses, how, ("start", "answer", "go", "close"))


def identical_twice(
    recorded: tuple[Recording, Tap], how: LiveBehaviour, names: tuple[str, ...]
) -> None:
    recording, original = recorded
    taps, reports = play(recording, [how, how])
    first, second = taps
    assert isinstance(first, Tap)
    assert isinstance(second, Tap)
    assert first.received == second.received
    ids = IdMap()
    for name in names:
        ids.add(f"rec_{name}", f"play_{name}")
    expected = [rewrite_frame(f, ids) for f in sent_frames(recording)]
    assert first.received == expected[: len(first.received)]
    assert first.received != original.received  # the echoes really were rewritten
    echoes = [orjson.loads(f).get("client_event_id") for f in first.received]
    assert {"play_start", "play_close"} <= set(echoes)
    assert orjson.loads(first.received[-1])["type"] == "session.closed"
    for report in reports.sessions:
        assert report.ok, report.render()
        assert report.completed
        assert report.matched == len(recording.expected)
        assert report.ids == {f"rec_{name}": f"play_{name}" for name in names}


def test_audio_chunked_differently_is_one_stream(recorded: tuple[Recording, Tap]) -> None:
    """A client that appends its microphone in 20 ms pieces instead of 100 ms gets the same
    frames: output audio is released by the duration of input audio, not per append."""
    recording, original = recorded
    taps, reports = play(recording, [LiveBehaviour(chunk_ms=20)])
    (tap,) = taps
    assert isinstance(tap, Tap)
    assert tap.received == original.received
    assert len(tap.sent) > len(original.sent)
    (report,) = reports.sessions
    assert report.ok, report.render()


def test_a_different_answer_fails_with_a_field_diff(recorded: tuple[Recording, Tap]) -> None:
    """A client that answers the delegation differently is closed with 1008; the report
    names the commentary append and shows the differing content."""
    recording, _ = recorded
    taps, reports = play(recording, [LiveBehaviour(answer="15 degrees")])
    (failed,) = taps
    assert isinstance(failed, ConnectionClosed | TimeoutError)
    (report,) = reports.sessions
    assert not report.ok
    (mismatch,) = report.mismatches
    assert "session.commentary.append differs" in mismatch.summary
    assert any("$.content" in line for line in mismatch.diff), mismatch.render()


def test_new_episodes_is_refused_for_a_live_bundle(work: tuple[Path, Tap]) -> None:
    """Record mode new_episodes hands a session to an upstream seeded with the recorded
    conversation, which GPT-Live cannot be: `rtrec playback` says so and exits 2 before
    serving anything."""
    bundle, _ = work
    args = ["playback", str(bundle), "--serve", "127.0.0.1:0", "--record-mode", "new_episodes"]
    result = CliRunner().invoke(cli, [*args, "--upstream", "sim"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "an upstream cannot take a live recording over" in result.output
    assert "ws://" not in result.output


async def fork_script(sdk: Tap) -> None:
    """A fork: an empty ``session.start`` (it inherits the session), a second of audio,
    then ``session.close``."""
    await sdk.conn.session.start(session={})
    await sdk.until("session.started")
    for piece in chunks(silence(1000)):
        await sdk.conn.session.input_audio.append(audio=base64.b64encode(piece).decode())
    await sdk.conn.session.close()
    await sdk.until("session.closed")


def test_a_fork_plays_back_on_its_own_path(tmp_path: Path) -> None:
    """A fork connection (``client.live.forks.connect``) recorded from the simulator plays
    back to the same client byte for byte on ``…/{id}/fork``; a client that forks another
    session is told so (the handshake's path differs from the recording's)."""
    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve_sim, record_to=db), timeout=30) as server:
        original = run_live(server.url, fork_script, fork="live_u1_abc")
    (session,) = read_sessions(db)
    recording = load_recording(db, session.session_id)
    assert recording.dialect.endpoint == "fork"
    reports = PlaybackReports()
    serve = functools.partial(serve_playback, recording, options=INSTANT, reports=reports)
    with run_in_thread(serve, timeout=30) as server:
        again = run_live(server.url, fork_script, fork="live_u1_abc")
        with pytest.raises((ConnectionClosed, TimeoutError)):
            run_live(server.url, fork_script, fork="live_u1_other")
        trio.from_thread.run(reports.wait_idle, trio_token=server.token)
    assert again.received == original.received
    good, bad = reports.sessions
    assert good.ok, good.render()
    (mismatch,) = bad.mismatches
    assert mismatch.summary == (
        "handshake path '/v1/live/sessions/live_u1_other/fork' != recorded "
        "'/v1/live/sessions/live_u1_abc/fork'"
    )


def test_the_rtrec_playback_command_serves_a_live_bundle(work: tuple[Path, Tap]) -> None:
    """`rtrec playback BUNDLE --serve 127.0.0.1:0` (a real subprocess) serves the Live
    bundle to the SDK twice: both runs get the same bytes, the recorded ones with the
    client's ids; stderr reports both connections complete; SIGINT stops it cleanly."""
    bundle, _ = work
    recording = load_recording(bundle)
    proc = subprocess.Popen(
        [str(RTREC), "playback", str(bundle), "--serve", "127.0.0.1:0", "--pace", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = first_line(proc)
        how = LiveBehaviour(ids="cli")
        first = run_live(url, live_conversation(how))
        second = run_live(url, live_conversation(how))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert first.received == second.received
    ids = IdMap()
    for name in ("start", "answer", "close"):
        ids.add(f"rec_{name}", f"cli_{name}")
    assert (
        first.received
        == [rewrite_frame(f, ids) for f in sent_frames(recording)][: len(first.received)]
    )
    assert err.count("3 client events matched") == 2, err
    assert "Traceback" not in err
