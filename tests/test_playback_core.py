"""The playback core without sockets: partial order, bounded reordering against audio, client
ids both ways, clock tolerances, handshake checks, and what ends a connection (issues 14, 21).

Each test feeds ``PlaybackCore`` live client messages and times, and checks the actions it
answers with and its report, in the style of mitmproxy's Playbook: no I/O, no clock (the
times are plain numbers of seconds), nothing to wait for.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from rtrec.replay.client_ids import IdMap, rewrite_frame
from rtrec.replay.matchers import AudioMode, parse_matchers
from rtrec.replay.playback_core import (
    Action,
    CloseConnection,
    Diverge,
    OnMismatch,
    Pace,
    Plan,
    PlaybackCore,
    Recording,
    Rules,
    Send,
    SendFrame,
)
from rtrec.replay.testing import client, mark, server, tone

from .test_playback_parts import build

CREATED = {"type": "session.created", "event_id": "event_1", "session": {"id": "sess_1"}}
MS = 24  # PCM16 samples per millisecond at 24 kHz


def append(samples: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(samples).decode()}


def text(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def frames_of(recording: Recording) -> list[str | bytes]:
    return [s.message for s in recording.steps if isinstance(s, Send)]


def sent(actions: Sequence[Action]) -> list[str | bytes]:
    return [a.message for a in actions if isinstance(a, SendFrame)]


def closes(actions: Sequence[Action]) -> list[CloseConnection]:
    return [a for a in actions if isinstance(a, CloseConnection)]


def core(recording: Recording, **rules: Any) -> PlaybackCore:
    rules.setdefault("pace", Pace.parse("instant"))
    return PlaybackCore(Plan.of(recording), Rules(**rules), 0.0)


UPDATE_A = {"type": "session.update", "session": {"type": "realtime", "instructions": "a"}}
UPDATE_B = {"type": "session.update", "session": {"type": "realtime", "tracing": "auto"}}


def two_updates() -> Recording:
    return build(
        [
            server(CREATED),
            client(UPDATE_A),
            server({"type": "session.updated", "session": {"instructions": "a"}}),
            client(UPDATE_B),
            server({"type": "session.updated", "session": {"tracing": "auto"}}),
        ]
    )


def test_client_events_may_arrive_in_either_order() -> None:
    """Two session.updates the recording has in one order, sent in the other (the JS Agents
    SDK's race): both match, the frames go out in recorded order once both have come, and
    the report is clean."""
    recording = two_updates()
    frames = frames_of(recording)
    play = core(recording)
    assert sent(play.start(0.0)) == frames[:1]
    assert sent(play.receive(text(UPDATE_B), 0.01)) == []  # ahead: held for its frame
    assert sent(play.receive(text(UPDATE_A), 0.02)) == frames[1:]
    play.client_closed()
    assert play.report.ok, play.report.render()
    assert play.report.matched == 2


def test_a_skipped_event_is_reported_once_after_the_reorder_wait_and_warn_goes_on() -> None:
    """The second update without the first: nothing happens within the reorder wait; then
    (warn) one mismatch names the missing event and the live one, play goes on, and "never
    sent" lists exactly the missing update; a later duplicate is named as such."""
    recording = two_updates()
    frames = frames_of(recording)
    play = core(recording, on_mismatch=OnMismatch.WARN, reorder_wait=0.5)
    play.start(0.0)
    assert play.receive(text(UPDATE_B), 1.0) == []
    assert play.next_deadline() == pytest.approx(1.5)
    assert play.advance(1.49) == []
    assert sent(play.advance(1.5)) == frames[1:]
    (skip,) = play.report.mismatches
    assert skip.summary == (
        "expected session.update, got session.update, which matches recorded seq 3: "
        "1 recorded client event(s) skipped (none came within 500 ms)"
    )
    assert skip.live == UPDATE_B
    play.receive(text(UPDATE_B), 2.0)
    assert "again: it matches recorded seq 3" in play.report.mismatches[-1].summary
    play.client_closed()
    assert play.report.unsent == [(1, "session.update")]
    assert len(play.report.mismatches) == 2


def test_a_skipped_event_fails_the_session_in_fail_mode() -> None:
    """In fail mode the same skip closes the connection with 1008 and the reason."""
    play = core(two_updates(), reorder_wait=0.5)
    play.start(0.0)
    play.receive(text(UPDATE_B), 1.0)
    (close,) = closes(play.advance(1.5))
    assert close.code == 1008
    assert close.reason.startswith("rtrec playback: seq 1: expected session.update")
    assert play.done


def voice_turn() -> tuple[Recording, bytes]:
    speech = tone(2587 * MS)
    recording = build(
        [
            server(CREATED),
            client(append(speech[: 2500 * MS * 2])),
            client(append(speech[2500 * MS * 2 :])),
            client({"type": "input_audio_buffer.commit"}),
            server({"type": "input_audio_buffer.committed", "item_id": "item_1"}),
        ]
    )
    return recording, speech


def test_a_control_event_that_overtakes_trailing_audio_waits_for_it() -> None:
    """The commit comes after 2500 ms of audio where the recording had 2587 ms (a client
    that sends audio and control events from two tasks): it is held, and committed goes
    out when the last 87 ms arrive."""
    recording, speech = voice_turn()
    play = core(recording)
    play.start(0.0)
    assert play.receive(text(append(speech[: 2500 * MS * 2])), 1.0) == []
    assert play.receive('{"type":"input_audio_buffer.commit"}', 1.01) == []
    assert play.next_deadline() == pytest.approx(1.01 + 0.5 + 0.087)
    assert (
        sent(play.receive(text(append(speech[2500 * MS * 2 :])), 1.1)) == frames_of(recording)[1:]
    )
    play.client_closed()
    assert play.report.ok, play.report.render()


def test_audio_that_never_catches_up_is_a_mismatch_with_the_amounts() -> None:
    """When the missing audio does not come within the wait, the mismatch says how much
    audio the client sent and how much the recording had; the session closes with 1008."""
    recording, speech = voice_turn()
    play = core(recording)
    play.start(0.0)
    play.receive(text(append(speech[: 2500 * MS * 2])), 1.0)
    play.receive('{"type":"input_audio_buffer.commit"}', 1.0)
    (close,) = closes(play.advance(1.0 + 0.5 + 0.087))
    (mismatch,) = play.report.mismatches
    assert mismatch.summary.startswith(
        "the client sent input_audio_buffer.commit after 2500 ms of audio; the recording had "
        "2587 ms of audio at this point (87 ms more, and no more came within 587 ms)"
    )
    assert close.code == 1008
    assert play.report.unsent_audio == (1, pytest.approx(87.0))
    assert "1 audio appends (87 ms of audio)" in play.report.render()


def test_a_control_event_may_not_overtake_more_than_the_audio_lead() -> None:
    """A commit 2587 ms early (no audio at all) is beyond the 2000 ms a control event may
    overtake: a mismatch at once."""
    recording, _ = voice_turn()
    play = core(recording)
    play.start(0.0)
    (close,) = closes(play.receive('{"type":"input_audio_buffer.commit"}', 1.0))
    assert close.code == 1008
    (mismatch,) = play.report.mismatches
    assert mismatch.summary == (
        "the client sent input_audio_buffer.commit after 0 ms of audio; the recording had "
        "2587 ms of audio at this point (2587 ms more, more than the 2000 ms a control "
        "event may overtake)"
    )


def test_ids_the_client_chose_are_learned_and_sent_back() -> None:
    """A client that creates items under its own ids, tags response.create with
    metadata.client_event_id and refers to its item later gets every later server frame
    with its own ids; the match itself passes; the report lists the mapping."""
    recording = build(
        [
            server(CREATED),
            client(
                {
                    "type": "conversation.item.create",
                    "event_id": "evt_rec",
                    "item": {"id": "item_rec", "type": "message", "role": "user", "content": []},
                }
            ),
            server(
                {
                    "type": "conversation.item.added",
                    "previous_item_id": None,
                    "item": {"id": "item_rec", "type": "message"},
                }
            ),
            client(
                {
                    "type": "response.create",
                    "response": {"metadata": {"client_event_id": "ce_rec"}},
                }
            ),
            server(
                {
                    "type": "response.created",
                    "response": {"metadata": {"client_event_id": "ce_rec"}},
                }
            ),
            client({"type": "conversation.item.retrieve", "item_id": "item_rec"}),
            server({"type": "error", "error": {"message": "x", "event_id": "evt_rec"}}),
        ]
    )
    frames = frames_of(recording)
    play = core(recording)
    play.start(0.0)
    live_item = {
        "type": "conversation.item.create",
        "event_id": "evt_live",
        "item": {"id": "item_LIVE", "type": "message", "role": "user", "content": []},
    }
    (added,) = sent(play.receive(text(live_item), 0.1))
    assert added == str(frames[1]).replace("item_rec", "item_LIVE")
    (created,) = sent(
        play.receive(
            text(
                {
                    "type": "response.create",
                    "response": {"metadata": {"client_event_id": "ce_LIVE"}},
                }
            ),
            0.2,
        )
    )
    assert created == str(frames[2]).replace("ce_rec", "ce_LIVE")
    (error,) = sent(
        play.receive('{"type":"conversation.item.retrieve","item_id":"item_LIVE"}', 0.3)
    )
    assert error == str(frames[3]).replace("evt_rec", "evt_live")
    play.client_closed()
    assert play.report.ok, play.report.render()
    assert play.report.ids == {"evt_rec": "evt_live", "item_rec": "item_LIVE", "ce_rec": "ce_LIVE"}


def test_an_id_the_server_made_must_be_sent_back_exactly() -> None:
    """A retrieve of an item the server created (its id came in a server frame) is not a
    client-chosen id: another id there is a mismatch."""
    recording = build(
        [
            server(CREATED),
            server({"type": "conversation.item.added", "item": {"id": "item_srv"}}),
            client({"type": "conversation.item.retrieve", "item_id": "item_srv"}),
            server({"type": "conversation.item.retrieved", "item": {"id": "item_srv"}}),
        ]
    )
    play = core(recording, on_mismatch=OnMismatch.WARN)
    play.start(0.0)
    play.receive('{"type":"conversation.item.retrieve","item_id":"item_other"}', 0.1)
    (mismatch,) = play.report.mismatches
    assert '$.item_id: recorded "item_srv" != live "item_other"' in mismatch.summary


def truncate_recording() -> Recording:
    return build(
        [
            server(CREATED),
            client(
                {
                    "type": "conversation.item.truncate",
                    "item_id": "item_1",
                    "content_index": 0,
                    "audio_end_ms": 2250,
                }
            ),
            server({"type": "conversation.item.truncated", "item_id": "item_1"}),
        ]
    )


@pytest.mark.parametrize(
    ("live_ms", "tolerances", "ok"),
    [(2252, (), True), (1800, (), True), (1700, (), False), (2300, (("audio_end_ms", 10),), False)],
)
def test_audio_end_ms_matches_within_a_tolerance(
    live_ms: int, tolerances: tuple[tuple[str, float], ...], ok: bool
) -> None:
    """audio_end_ms, computed from the client's clock, matches within 500 ms by default;
    --tolerance narrows it; a mismatch shows the exact values."""
    match = parse_matchers("type,payload", tolerances=tolerances)
    play = core(truncate_recording(), match=match, on_mismatch=OnMismatch.WARN)
    play.start(0.0)
    truncate = {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": live_ms,
    }
    play.receive(text(truncate), 0.1)
    assert (not play.report.mismatches) is ok
    if not ok:
        assert (
            f"$.audio_end_ms: recorded 2250 != live {live_ms}" in play.report.mismatches[0].summary
        )


HEADERS = '{"Authorization":"Bearer [REDACTED]"}'


def with_handshake() -> Recording:
    handshake = {"path": "/v1/realtime?model=gpt-realtime", "subprotocols": []}
    return build([mark("rtrec.handshake", handshake), server(CREATED)], headers=HEADERS)


@pytest.mark.parametrize(
    ("path", "headers", "problem"),
    [
        ("/v1/realtime?model=gpt-realtime", [("Authorization", "Bearer k")], None),
        ("/v1/realtime?model=gpt-4o", [("Authorization", "Bearer k")], "query model=gpt-4o"),
        ("/v2/realtime?model=gpt-realtime", [("Authorization", "Bearer k")], "path '/v2/realtime'"),
        ("/v1/realtime?model=gpt-realtime", [], "carries no credentials"),
        (
            "/v1/realtime?model=gpt-realtime",
            [("Authorization", "Bearer k"), ("OpenAI-Beta", "realtime=v1")],
            "selects the beta protocol",
        ),
    ],
)
def test_the_handshake_is_checked_against_the_recording(
    path: str, headers: list[tuple[str, str]], problem: str | None
) -> None:
    """Path, model, protocol and the presence of credentials must be as recorded; a
    difference is a mismatch (fail: closed at once; warn: reported, play goes on)."""
    play = core(with_handshake())
    actions = play.check_handshake(path, headers, [])
    if problem is None:
        assert actions == []
        return
    (close,) = closes(actions)
    assert problem in close.reason
    warned = core(with_handshake(), on_mismatch=OnMismatch.WARN)
    assert warned.check_handshake(path, headers, []) == []
    assert problem in warned.report.mismatches[0].summary
    assert sent(warned.start(0.0)) == frames_of(with_handshake())


def test_an_event_past_the_recording_fails_at_once() -> None:
    """Anything after the recording's last client event closes the connection with 1008
    at once (issue 21: nothing hangs), naming the event; with a fallthrough it diverges."""
    recording = build(
        [server(CREATED), client({"type": "response.create"}), server({"type": "response.done"})]
    )
    play = core(recording)
    play.start(0.0)
    play.receive('{"type":"response.create"}', 0.1)
    (close,) = closes(play.receive('{"type":"response.create"}', 0.2))
    assert close.code == 1008
    assert "after the recording's last client event" in close.reason
    live = core(recording, falls_through=True)
    live.start(0.0)
    live.receive('{"type":"response.create"}', 0.1)
    (diverge,) = live.receive('{"type":"response.create"}', 0.2)
    assert isinstance(diverge, Diverge)
    assert live.unanswered() == ['{"type":"response.create"}']


def test_a_silent_client_ends_after_the_client_timeout() -> None:
    """While the recording waits for it, a client silent for client_timeout fails (1008);
    after the recording's end, a silent client is closed normally (1000)."""
    recording = build(
        [server(CREATED), client({"type": "response.create"}), server({"type": "response.done"})]
    )
    play = core(recording, client_timeout=10.0)
    play.start(0.0)
    assert play.next_deadline() == pytest.approx(10.0)
    (close,) = closes(play.advance(10.0))
    assert close.code == 1008
    assert play.report.mismatches[0].summary == (
        "the client sent nothing for 10 s while recorded response.create was awaited"
    )
    done = core(recording, client_timeout=10.0)
    done.start(0.0)
    done.receive('{"type":"response.create"}', 1.0)
    (close,) = closes(done.advance(11.0))
    assert close.code == 1000
    assert done.report.ok


def test_recorded_pace_is_reproduced_from_the_client_event() -> None:
    """At recorded pace a frame recorded 300 ms after a client event goes out 300 ms after
    the live client sent it (and not before)."""
    recording = build(
        [
            server(CREATED, t_ms=0),
            client({"type": "response.create"}, t_ms=1000),
            server({"type": "response.created"}, t_ms=1300),
        ]
    )
    play = core(recording, pace=Pace.parse("recorded"))
    assert len(sent(play.start(0.0))) == 1
    assert play.receive('{"type":"response.create"}', 5.0) == []
    assert play.next_deadline() == pytest.approx(5.3)
    assert sent(play.advance(5.3)) == frames_of(recording)[1:]


def test_audio_ignore_neither_awaits_nor_compares() -> None:
    """With --audio ignore the frames after recorded audio go out without it."""
    recording, _ = voice_turn()
    play = core(recording, match=parse_matchers("type,payload", audio=AudioMode.IGNORE))
    play.start(0.0)
    assert (
        sent(play.receive('{"type":"input_audio_buffer.commit"}', 0.1)) == frames_of(recording)[1:]
    )


def test_the_core_does_no_io() -> None:
    """The core imports neither trio, the log (duckdb), soundfile nor a WebSocket library."""
    code = (
        "import sys, rtrec.replay.playback_core; "
        "print(sorted(m for m in ('trio', 'duckdb', 'soundfile', 'websockets') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_only_response_metadata_counts_as_client_ids() -> None:
    """Metadata elsewhere (a session's tracing metadata) is compared as data: another value
    there is a mismatch, not a new id."""
    update = {"type": "session.update", "session": {"tracing": {"metadata": {"team": "a"}}}}
    recording = build([server(CREATED), client(update), server({"type": "session.updated"})])
    play = core(recording, on_mismatch=OnMismatch.WARN)
    play.start(0.0)
    other = {"type": "session.update", "session": {"tracing": {"metadata": {"team": "b"}}}}
    play.receive(text(other), 0.1)
    (mismatch,) = play.report.mismatches
    assert '$.session.tracing.metadata.team: recorded "a" != live "b"' in mismatch.summary


def test_audio_beyond_the_recording_is_reported() -> None:
    """Audio appended past the recording's input audio is a mismatch saying how much; after
    the recording's end it fails at once (fail mode)."""
    recording, speech = voice_turn()
    play = core(recording, on_mismatch=OnMismatch.WARN)
    play.start(0.0)
    play.receive(text(append(speech)), 0.1)
    play.receive('{"type":"input_audio_buffer.commit"}', 0.2)
    play.receive(text(append(tone(100 * MS))), 0.3)
    (mismatch,) = play.report.mismatches
    assert mismatch.summary == "the client appended 100 ms more audio than the recording holds"
    play.client_closed()
    assert len(play.report.mismatches) == 1


def test_ids_are_replaced_as_whole_string_tokens_only() -> None:
    """rewrite_frame replaces a recorded id where it is a whole JSON string, escapes
    respected, and leaves it inside longer strings alone."""
    ids = IdMap()
    ids.add("item_a", "item_LIVE")
    ids.add("same", "same")
    frame = (
        '{"type":"x","item_id":"item_a","text":"see item_a","args":"{\\"id\\":\\"item_a\\"}",'
        '"q":"a \\"quoted\\" item_a","ids":["item_a"],"same":"same"}'
    )
    assert rewrite_frame(frame, ids) == (
        '{"type":"x","item_id":"item_LIVE","text":"see item_a","args":"{\\"id\\":\\"item_a\\"}",'
        '"q":"a \\"quoted\\" item_a","ids":["item_LIVE"],"same":"same"}'
    )
    assert rewrite_frame(b"binary item_a", ids) == b"binary item_a"


# ---------------------------------------------------------------- GPT-Live (LIVE.md)


def build_live(frames: Sequence[Any], path: str = "/v1/live/sessions") -> Recording:
    """A hand-made GPT-Live recording (``sessions.protocol`` live, on ``path``)."""
    return build(frames, protocol="live", path=path)


def live_append(samples: bytes) -> dict[str, Any]:
    return {"type": "session.input_audio.append", "audio": base64.b64encode(samples).decode()}


START = {"type": "session.start", "session": {"model": "gpt-live-1"}, "event_id": "rec_start"}
STARTED = {
    "type": "session.started",
    "event_id": "event_1",
    "client_event_id": "rec_start",
    "session": {"id": "live_1", "model": "gpt-live-1", "status": "active"},
}


def test_live_output_follows_the_input_audio_however_it_is_chunked() -> None:
    """GPT-Live's media clock: each recorded output delta goes out once the live client
    has appended as much input audio as the recording had before it, whatever the chunks;
    the appends are one stream (no Expect per append), and the client's own event id comes
    back in ``client_event_id``."""
    speech = tone(200 * MS)
    out = {
        "type": "session.output_audio.delta",
        "delta": base64.b64encode(tone(100 * MS, seed=3)).decode(),
    }
    recording = build_live(
        [
            client(START),
            server(STARTED),
            client(live_append(speech[: 200 * MS])),
            server(out),
            client(live_append(speech[200 * MS :])),
            server({**out, "delta": base64.b64encode(tone(100 * MS, seed=4)).decode()}),
        ]
    )
    assert [e.event["type"] for e in recording.expected] == ["session.start"]
    frames = frames_of(recording)
    play = core(recording)
    assert sent(play.start(0.0)) == []
    got = sent(play.receive(text({**START, "event_id": "mine_1"}), 0.1))
    assert got == [frames[0].replace('"rec_start"', '"mine_1"')]
    assert sent(play.receive(text(live_append(speech[: 150 * MS])), 0.2)) == []  # 75 ms
    assert sent(play.receive(text(live_append(speech[150 * MS : 250 * MS])), 0.3)) == frames[1:2]
    assert sent(play.receive(text(live_append(speech[250 * MS :])), 0.4)) == frames[2:]
    play.client_closed()
    assert play.report.ok, play.report.render()
    assert play.report.ids == {"rec_start": "mine_1"}


def test_live_other_input_audio_is_a_mismatch_naming_the_live_append() -> None:
    """Input audio that differs from the recorded stream is reported at its sample, as a
    ``session.input_audio.append`` (the dialect's append), and closes the connection."""
    recording = build_live(
        [client(START), server(STARTED), client(live_append(tone(100 * MS))), server(STARTED)]
    )
    play = core(recording)
    play.receive(text(START), 0.0)
    actions = play.receive(text(live_append(tone(100 * MS, seed=9))), 0.1)
    assert closes(actions)
    (mismatch,) = play.report.mismatches
    assert mismatch.expected_type == "session.input_audio.append"
    assert mismatch.summary.startswith("appended audio differs from the recording from sample")


def test_live_ids_the_client_invents_inside_items_are_mapped_in_nested_backend_events() -> None:
    """Under Responses delegation the client answers a backend call with a
    ``function_call_output`` item: the ``call_id`` is the server's (it must come back as
    recorded), the item ``id`` the client invented; the nested ``response.event`` that
    echoes the item carries the live client's id, and an ``error`` for its command the live
    ``event_id`` both at the top and inside ``error``."""
    call = {
        "type": "response.event",
        "event_id": "event_2",
        "delegation_id": "dlg_1",
        "event": {
            "type": "response.output_item.done",
            "item": {"type": "function_call", "call_id": "call_srv"},
        },
    }
    answer = {
        "type": "response.item.create",
        "event_id": "rec_answer",
        "item": {
            "type": "function_call_output",
            "id": "fco_rec",
            "call_id": "call_srv",
            "output": "14",
        },
    }
    echoed = {
        "type": "response.event",
        "event_id": "event_3",
        "delegation_id": "dlg_1",
        "event": {
            "type": "response.output_item.added",
            "item": {"id": "fco_rec", "type": "function_call_output"},
        },
    }
    error = {
        "type": "error",
        "event_id": "event_4",
        "client_event_id": "rec_go",
        "error": {
            "type": "invalid_request_error",
            "code": "x",
            "message": "m",
            "client_event_id": "rec_go",
        },
    }
    go = {"type": "response.create", "event_id": "rec_go"}
    recording = build_live(
        [
            client(START),
            server(STARTED),
            server(call),
            client(answer),
            client(go),
            server(echoed),
            server(error),
        ]
    )
    frames = frames_of(recording)
    play = core(recording)
    play.receive(text(START), 0.0)
    live_answer = {**answer, "event_id": "a1", "item": {**answer["item"], "id": "fco_live"}}
    assert sent(play.receive(text(live_answer), 0.1)) == []
    got = sent(play.receive(text({**go, "event_id": "g1"}), 0.2))
    ids = IdMap()
    for old, new in (
        ("rec_start", "rec_start"),
        ("rec_answer", "a1"),
        ("fco_rec", "fco_live"),
        ("rec_go", "g1"),
    ):
        ids.add(old, new)
    assert got == [rewrite_frame(f, ids) for f in frames[2:]]
    assert '"fco_live"' in str(got[0])
    assert str(got[1]).count('"g1"') == 2
    # the server's call id had to come back as recorded
    wrong = core(recording)
    wrong.receive(text(START), 0.0)
    bad = {**answer, "item": {**answer["item"], "call_id": "call_other"}}
    assert closes(wrong.receive(text(bad), 0.1))
    assert "response.item.create differs" in wrong.report.mismatches[0].summary


def test_a_live_sideband_recording_has_no_audio_gates() -> None:
    """A sideband client sends no input audio: the server's reflected
    ``session.input_audio.append`` is a recorded server frame like any other, sent as
    recorded, and the client's ``session.close`` is what the recording waits for."""
    reflected = {
        "type": "session.input_audio.append",
        "audio": base64.b64encode(tone(10 * MS)).decode(),
    }
    close = {"type": "session.close"}
    closed = {"type": "session.closed", "event_id": "event_9", "reason": "close_requested"}
    recording = build_live(
        [server(STARTED), server(reflected), client(close), server(closed)],
        path="/v1/live/sessions/live_1/attach",
    )
    assert recording.dialect.endpoint == "sideband"
    assert recording.audio == b""
    frames = frames_of(recording)
    play = core(recording)
    assert sent(play.start(0.0)) == frames[:2]
    assert sent(play.receive(text(close), 0.1)) == frames[2:]
    play.client_closed()
    assert play.report.ok, play.report.render()
