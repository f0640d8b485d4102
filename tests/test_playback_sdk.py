"""The playback server against the official SDK (GA and beta): a conversation recorded through
`rtrec record` from the simulator is served back byte for byte, and a client that behaves
differently gets a precise mismatch report.

Real sockets on 127.0.0.1 port 0; the playback server runs in its own trio loop in a thread
(rtrec.replay.threaded), the SDK on asyncio in the test. Pace is instant: timing is measured by
bench/bench_playback.py, never here.
"""

from __future__ import annotations

import functools

import pytest
import trio
from websockets.exceptions import ConnectionClosed

from rtrec.replay.matchers import AudioMode, parse_matchers
from rtrec.replay.playback import (
    OnMismatch,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    Send,
    load_recording,
    serve_playback,
)
from rtrec.replay.threaded import run_in_thread

from .playkit import Behaviour, conversation, record
from .test_record_sdk import Tap, run_sdk

INSTANT = Pace.parse("instant")


@pytest.fixture(scope="module", params=["ga", "beta"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The weather conversation recorded through the recorder and exported as a bundle."""
    protocol = request.param
    work = tmp_path_factory.mktemp(f"rec-{protocol}")
    tap = record(work / "bundle", protocol, work)
    return protocol, load_recording(work / "bundle"), tap


def play(
    recording: Recording,
    protocol: str,
    behaviours: list[Behaviour],
    options: PlaybackOptions,
) -> tuple[list[Tap | BaseException], PlaybackReports]:
    """Run the SDK conversation once per behaviour against one playback server."""
    reports = PlaybackReports()
    taps: list[Tap | BaseException] = []
    serve = functools.partial(serve_playback, recording, options=options, reports=reports)
    with run_in_thread(serve, timeout=30) as server:
        for how in behaviours:
            try:
                taps.append(run_sdk(server.url, protocol, conversation(protocol, how)))
            except ConnectionClosed as exc:
                taps.append(exc)
        # the server may still be checking what the client sent before it left
        trio.from_thread.run(reports.wait_idle, trio_token=server.token)
    return taps, reports


def sent_frames(recording: Recording) -> list[str | bytes]:
    return [s.message for s in recording.steps if isinstance(s, Send)]


def test_sdk_receives_the_recorded_frames_byte_exact_twice(recorded: tuple) -> None:
    """Two runs in a row of the recorded client receive exactly the recorded server frames,
    byte for byte and in order, and every recorded client event matches."""
    protocol, recording, original = recorded
    taps, reports = play(recording, protocol, [Behaviour(), Behaviour()], PlaybackOptions(INSTANT))
    recorded_frames = sent_frames(recording)
    for tap in taps:
        assert isinstance(tap, Tap)
        assert tap.received == original.received
        assert tap.received == recorded_frames[: len(tap.received)]
        assert tap.sent == original.sent  # the SDK itself behaves the same on both runs
    assert len(reports.sessions) == 2
    for report in reports.sessions:
        assert report.ok, report.render()
        assert report.matched == len(recording.expected)


def test_a_client_chunking_audio_in_20ms_matches_a_100ms_recording(recorded: tuple) -> None:
    """Audio appended in 20 ms pieces matches the recording's 100 ms appends sample for
    sample, and the client gets the same frames."""
    protocol, recording, original = recorded
    taps, reports = play(recording, protocol, [Behaviour(chunk_ms=20)], PlaybackOptions(INSTANT))
    (tap,) = taps
    assert isinstance(tap, Tap)
    assert tap.received == original.received
    assert len(tap.sent) > len(original.sent)  # really chunked differently
    (report,) = reports.sessions
    assert report.ok, report.render()


def test_a_changed_function_output_fails_with_a_field_diff(recorded: tuple) -> None:
    """A different function output closes the session with 1008 and a reason naming the
    recorded seq; the report shows the nearest candidates, which matcher failed and the
    field diff."""
    protocol, recording, _ = recorded
    how = Behaviour(function_output='{"c":15}')
    taps, reports = play(recording, protocol, [how], PlaybackOptions(INSTANT))
    (closed,) = taps
    assert isinstance(closed, ConnectionClosed)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008
    (report,) = reports.sessions
    (mismatch,) = report.mismatches
    assert closed.rcvd.reason == mismatch.reason()
    assert f"seq {mismatch.expected_seq}" in closed.rcvd.reason
    assert mismatch.expected_type == "conversation.item.create"
    text = mismatch.render()
    assert 'recorded "{\\"c\\":14}" != live "{\\"c\\":15}"' in text
    assert "$.item.output" in text
    assert "type ok, payload FAILED" in text
    assert mismatch.candidates[0].seq == mismatch.expected_seq


def test_warn_mode_reports_the_changed_output_and_goes_on(recorded: tuple) -> None:
    """With on_mismatch=warn the conversation completes; the one mismatch is reported."""
    protocol, recording, original = recorded
    how = Behaviour(function_output='{"c":15}')
    options = PlaybackOptions(INSTANT, on_mismatch=OnMismatch.WARN)
    taps, reports = play(recording, protocol, [how], options)
    (tap,) = taps
    assert isinstance(tap, Tap)
    assert tap.received == original.received
    (report,) = reports.sessions
    assert [m.expected_type for m in report.mismatches] == ["conversation.item.create"]
    assert not report.ok


def test_a_missing_response_create_is_reported_as_never_sent(recorded: tuple) -> None:
    """A client that leaves without its last response.create: the report names that
    recorded event (type and seq) as never sent."""
    protocol, recording, _ = recorded
    how = Behaviour(send_final_response_create=False)
    _, reports = play(recording, protocol, [how], PlaybackOptions(INSTANT))
    (report,) = reports.sessions
    last = recording.expected[-1]
    assert last.event["type"] == "response.create"
    assert report.unsent == [(last.seq, "response.create")]
    assert not report.mismatches
    assert f"seq {last.seq} response.create" in report.render()


def test_changed_audio_is_a_mismatch_by_samples_but_not_by_duration(recorded: tuple) -> None:
    """Audio compared by samples flags a changed sample with its position; compared by
    duration the same client passes, and ignoring audio passes too."""
    protocol, recording, _ = recorded
    index = len(recording.audio) // 3
    altered = bytearray(recording.audio)
    altered[index] ^= 0x01
    changed = Recording(
        recording.session_id,
        recording.protocol,
        recording.subprotocol,
        recording.steps,
        bytes(altered),
        recording.server_close,
    )
    warn = OnMismatch.WARN
    _, by_samples = play(
        changed, protocol, [Behaviour()], PlaybackOptions(INSTANT, on_mismatch=warn)
    )
    (report,) = by_samples.sessions
    (mismatch,) = report.mismatches
    assert f"from sample {index // 2}" in mismatch.summary
    for mode in (AudioMode.DURATION, AudioMode.IGNORE):
        spec = parse_matchers("type,payload", audio=mode)
        _, reports = play(changed, protocol, [Behaviour()], PlaybackOptions(INSTANT, spec))
        (report,) = reports.sessions
        assert report.ok, report.render()
