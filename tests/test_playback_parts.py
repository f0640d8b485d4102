"""Playback server parts on small hand-made recordings (rtrec.replay.testing): order gating,
audio gates independent of chunking, error event_id rewriting, recorded pace on trio's
clock, and the matcher/pace option parsing.

Rules: real sockets on 127.0.0.1 port 0 in the test's own trio loop; ``autojump_clock``
wherever time matters (a virtual second passes instantly); a ``fail_after`` cap per test.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from rtrec.replay.matchers import AudioMode, field_diff, parse_matchers, without
from rtrec.replay.playback import (
    OnMismatch,
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    compile_recording,
    serve_playback,
)
from rtrec.replay.testing import Frame, client, record_events, server, tone
from rtrec.transport.ws import Closed, WebSocket, connect

CREATED = {"type": "session.created", "event_id": "event_1", "session": {"id": "sess_1"}}


def build(
    frames: Sequence[Frame],
    *,
    headers: str | None = None,
    protocol: str = "ga",
    path: str | None = None,
) -> Recording:
    """A hand-made recording compiled for playback (``headers``: the session's request
    headers, JSON, as the recorder stores them redacted; ``protocol`` and ``path``: the
    session row's, which choose the dialect)."""
    rec = record_events(list(frames))
    return compile_recording(
        rec.records,
        rec.audio,
        session_id="s",
        protocol=protocol,
        subprotocol=None,
        server_close=None,
        request_headers=headers,
        request_path=path,
    )


@asynccontextmanager
async def playing(
    recording: Recording, options: PlaybackOptions, reports: PlaybackReports
) -> AsyncIterator[WebSocket]:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            lambda task_status: serve_playback(
                recording, options=options, reports=reports, task_status=task_status
            )
        )
        ws = await connect(f"{url}/realtime?model=m", max_size=None)
        try:
            yield ws
        finally:
            await ws.close()
            await reports.wait_idle()
            nursery.cancel_scope.cancel()


async def nothing_within(ws: WebSocket, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await ws.receive()
        return False
    return True


def instant(**kwargs: Any) -> PlaybackOptions:
    return PlaybackOptions(Pace.parse("instant"), **kwargs)


async def test_server_events_wait_for_the_client_events_before_them(autojump_clock) -> None:
    """A server event recorded after a client event is not sent until the live client has
    sent that event, however long it takes (no client timeout)."""
    recording = build(
        [
            server(CREATED),
            client({"type": "response.create"}),
            server({"type": "response.created", "response": {"id": "resp_1"}}),
        ]
    )
    reports = PlaybackReports()
    with trio.fail_after(120):
        async with playing(recording, instant(client_timeout=None), reports) as ws:
            assert await ws.receive() == recording.steps[0].message
            assert await nothing_within(ws, 90)
            await ws.send('{"type":"response.create"}')
            assert await ws.receive() == recording.steps[2].message
    (report,) = reports.sessions
    assert report.ok
    assert report.matched == 1


async def test_audio_gates_count_samples_whatever_the_chunking(autojump_clock) -> None:
    """speech_started, recorded after 2400 samples in one append, goes out once the live
    client has appended 2400 samples in 1200-sample pieces, and not after the first piece."""
    audio = tone(2400)
    recording = build(
        [
            server(CREATED),
            client(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
            ),
            server({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0}),
        ]
    )
    reports = PlaybackReports()
    with trio.fail_after(120):
        async with playing(recording, instant(), reports) as ws:
            await ws.receive()
            for i, piece in enumerate((audio[:2400], audio[2400:])):
                event = {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(piece).decode(),
                }
                await ws.send(orjson.dumps(event).decode())
                if i == 0:
                    assert await nothing_within(ws, 30)
            assert await ws.receive() == recording.steps[2].message
    (report,) = reports.sessions
    assert report.ok, report.render()


async def test_an_error_naming_a_client_event_names_the_live_clients_id() -> None:
    """An error event that names the recorded client's event_id is sent with the live
    client's event_id instead, and is otherwise the recorded text."""
    bad = {"type": "conversation.item.create", "event_id": "evt_recorded", "item": {}}
    error = {
        "type": "error",
        "event_id": "event_2",
        "error": {"type": "invalid_request_error", "message": "no", "event_id": "evt_recorded"},
    }
    recording = build([server(CREATED), client(bad), server(error)])
    reports = PlaybackReports()
    with trio.fail_after(10):
        async with playing(recording, instant(), reports) as ws:
            await ws.receive()
            await ws.send(orjson.dumps({**bad, "event_id": "evt_live_7"}).decode())
            got = await ws.receive()
    recorded = recording.steps[2].message
    assert isinstance(recorded, str)
    assert got == recorded.replace('"event_id":"evt_recorded"', '"event_id":"evt_live_7"')
    assert reports.sessions[0].ok


@pytest.mark.parametrize(("pace", "gaps"), [("recorded", [1.0, 2.0]), ("2", [0.5, 1.0])])
async def test_recorded_pace_reproduces_the_gaps(autojump_clock, pace, gaps) -> None:
    """At recorded pace frames arrive with the recorded gaps (scaled by a speed factor),
    measured on trio's clock."""
    recording = build(
        [
            server(CREATED, t_ms=0),
            server({"type": "rate_limits.updated", "rate_limits": []}, t_ms=1000),
            server({"type": "rate_limits.updated", "rate_limits": [], "n": 2}, t_ms=3000),
        ]
    )
    reports = PlaybackReports()
    with trio.fail_after(60):
        async with playing(recording, PlaybackOptions(Pace.parse(pace)), reports) as ws:
            times = []
            for _ in range(3):
                await ws.receive()
                times.append(trio.current_time())
    measured = [b - a for a, b in itertools.pairwise(times)]
    assert measured == pytest.approx(gaps, abs=1e-3)


async def test_a_skipped_client_event_is_reported_and_warn_goes_on() -> None:
    """A client that skips a recorded event but sends the next one: warn reports the skipped
    one as never sent, says which recorded event the live one matches, and plays on."""
    recording = build(
        [
            server(CREATED),
            client({"type": "input_audio_buffer.commit"}),
            server({"type": "input_audio_buffer.committed", "item_id": "i1"}),
            client({"type": "response.create"}),
            server({"type": "response.created", "response": {"id": "r1"}}),
        ]
    )
    reports = PlaybackReports()
    with trio.fail_after(10):
        async with playing(recording, instant(on_mismatch=OnMismatch.WARN), reports) as ws:
            await ws.receive()
            await ws.send('{"type":"response.create"}')
            assert await ws.receive() == recording.steps[2].message
            assert await ws.receive() == recording.steps[4].message
    (report,) = reports.sessions
    (mismatch,) = report.mismatches
    assert "matches recorded seq 3: 1 recorded client event(s) skipped" in mismatch.summary
    assert report.unsent == [(1, "input_audio_buffer.commit")]
    assert report.matched == 1


async def test_a_silent_client_fails_after_the_client_timeout(autojump_clock) -> None:
    """A client that never sends the awaited event is closed with 1008 once the client
    timeout passes; the report names the awaited event and lists it as never sent."""
    recording = build(
        [
            server(CREATED),
            client({"type": "response.create"}),
            server({"type": "response.created", "response": {"id": "r1"}}),
        ]
    )
    reports = PlaybackReports()
    with trio.fail_after(120):
        async with playing(recording, instant(client_timeout=30), reports) as ws:
            await ws.receive()
            start = trio.current_time()
            with pytest.raises(Closed) as closed:
                await ws.receive()
            assert trio.current_time() - start == pytest.approx(30, abs=1e-3)
    assert closed.value.code == 1008
    (report,) = reports.sessions
    (mismatch,) = report.mismatches
    assert mismatch.summary == (
        "the client sent nothing for 30 s while recorded response.create was awaited"
    )
    assert closed.value.reason == mismatch.reason()
    assert report.unsent == [(1, "response.create")]


def test_pace_and_matcher_options_are_validated() -> None:
    """Bad pace, matcher or audio mode values are refused with the valid choices."""
    assert Pace.parse("instant").delay(5_000_000_000) == 0
    assert Pace.parse("4").delay(2_000_000_000) == 0.5
    assert math.isinf(Pace.parse("instant").speed)
    for bad in ("fast", "0", "-1"):
        with pytest.raises(ValueError, match="'recorded', 'instant' or a speed factor"):
            Pace.parse(bad)
    with pytest.raises(ValueError, match="unknown matcher 'body'; choose from type, payload"):
        parse_matchers("type,body")
    with pytest.raises(ValueError, match="choose from samples, duration, ignore"):
        parse_matchers("type", audio="loud")
    assert parse_matchers("type", audio="duration").audio is AudioMode.DURATION


def test_payload_matcher_ignores_configured_paths() -> None:
    """The payload matcher drops event_id and the configured paths (``*`` for any key or
    index) and reports the remaining differences field by field."""
    recorded = {"type": "x", "event_id": "a", "item": {"id": "i1", "content": [{"t": 1}]}}
    live = {"type": "x", "event_id": "b", "item": {"id": "i2", "content": [{"t": 2}]}}
    spec = parse_matchers("type,payload", ignore=["item.id"])
    verdicts = dict(spec.verdicts(recorded, live))
    assert verdicts["type"] is None
    assert verdicts["payload"] == "$.item.content[0].t: recorded 1 != live 2"
    spec = parse_matchers("payload", ignore=["item.id", "item.content.*.t"])
    assert dict(spec.verdicts(recorded, live)) == {"payload": None}
    assert without(recorded, ["item"]) == {"type": "x", "event_id": "a"}
    assert list(field_diff({"a": [1]}, {"a": [1, 2]})) == ["$.a: 1 elements recorded, 2 live"]
