"""The reducer against every ordering PROTOCOL.md §9 reports from real captures.

Each test writes the small event stream that shows one ordering and asserts the items the
reducer rebuilds from it.
"""

from __future__ import annotations

from rtrec.replay import AnomalyKind, ConversationState, rebuild
from rtrec.replay.testing import Frame, client, record_events, server

from .replay_streams import Wire


def rebuild_state(frames: list[Frame]) -> ConversationState:
    return rebuild(record_events(frames).records).state


def texts(state: ConversationState) -> list[tuple[str | None, str | None]]:
    """(role, first part's heard transcript or text) per conversation item."""
    out = []
    for item in state.conversation:
        part = item.parts[0] if item.parts else None
        value = None
        if part is not None:
            value = part.text.value if part.text.value is not None else part.heard_transcript
        out.append((item.role, value))
    return out


def assistant_turn(w: Wire, *, response: str, item: str, previous: str, said: str) -> list[Frame]:
    final = w.assistant(item, status="completed", transcript=said)
    return [
        w.response_created(response),
        w.output_item_added(response, 0, w.assistant(item)),
        *w.item_added(w.assistant(item), previous),
        w.part_added(response, item, "audio"),
        w.audio_delta(response, item, 2400),
        w.transcript_delta(response, item, said),
        w.transcript_done(response, item, said),
        w.part_done(response, item, "audio", said),
        *w.item_done(final, previous),
        w.output_item_done(response, 0, final),
        w.response_done(response, [final]),
    ]


def test_rate_limits_after_response_done_is_not_part_of_the_turn() -> None:
    """GA's rate_limits.updated tens of ms after response.done changes limits, not the turn."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        *assistant_turn(w, response="R1", item="A1", previous="U1", said="Hello."),
        w.rate_limits(remaining=777),
    ]
    state = rebuild_state(frames)
    assert texts(state) == [("user", "hi"), ("assistant", "Hello.")]
    assert state.responses["R1"].status == "completed"
    assert state.rate_limits is not None
    assert state.rate_limits[0]["remaining"] == 777
    assert state.rate_limits_seq == state.seq


def test_rate_limits_after_response_created_in_beta() -> None:
    """Beta's rate_limits.updated right after response.created leaves the response open."""
    w = Wire("beta")
    frames = [
        w.session_created(),
        w.response_created("R1"),
        w.rate_limits(remaining=5),
    ]
    state = rebuild_state(frames)
    assert state.responses["R1"].status == "in_progress"
    assert state.rate_limits is not None
    assert state.rate_limits[0]["remaining"] == 5


def test_output_item_added_alone_does_not_place_the_item() -> None:
    """An item announced by response.output_item.added waits for conversation.item.added,
    the only event with previous_item_id, to enter the conversation."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1",)
    assert [i.id for i in state.detached] == ["A1"]
    assert state.responses["R1"].output == ("A1",)

    state = rebuild_state([*frames, *w.item_added(w.assistant("A1"), "U1")])
    assert state.order == ("U1", "A1")
    assert state.detached == ()


def test_ga_finalisation_order_content_part_item_output_item_response() -> None:
    """GA: content_part.done, conversation.item.done, output_item.done, response.done."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        *assistant_turn(w, response="R1", item="A1", previous="U1", said="Hi there."),
    ]
    state = rebuild_state(frames)
    a1 = state.items["A1"]
    assert a1.status == "completed"
    assert a1.parts[0].type == "output_audio"
    assert a1.parts[0].heard_transcript == "Hi there."
    assert a1.parts[0].audio[0].samples == 2400
    assert state.responses["R1"].output == ("A1",)


def test_ga_user_item_added_and_done_at_once_with_null_transcript() -> None:
    """GA user items: added then done within a millisecond of committed, transcript null;
    the item gets the VAD slice of the input audio."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(2000),
        w.speech_started("U1", 300),
        w.speech_stopped("U1", 1500),
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
    ]
    state = rebuild_state(frames)
    u1 = state.items["U1"]
    assert state.order == ("U1",)
    assert u1.status == "completed"
    assert u1.parts[0].transcript.value is None
    (ref,) = u1.parts[0].audio
    assert (ref.offset, ref.samples) == (300 * 24, 1200 * 24)


def test_input_transcriptions_arrive_late_and_out_of_commit_order() -> None:
    """Transcriptions come after the next response.created, amid assistant deltas, after a
    cancelled response.done, and B, A, C for items committed A, B, C: keyed by item id."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(6000),
        w.speech_started("UA", 100),
        w.speech_stopped("UA", 1000),
        w.committed("UA", None),
        *w.user_item(w.user_audio("UA"), None),
        w.response_created("R1"),
        w.input_transcript("UB", "second"),  # before UB exists at all
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "UA"),
        w.part_added("R1", "A1", "audio"),
        w.transcript_delta("R1", "A1", "One"),
        w.input_transcript("UA", "first"),  # in the middle of assistant deltas
        w.transcript_delta("R1", "A1", " two"),
        w.response_done(
            "R1",
            [w.assistant("A1", status="incomplete", transcript="One two")],
            status="cancelled",
            reason="turn_detected",
        ),
        w.speech_started("UB", 2000),
        w.speech_stopped("UB", 3000),
        w.committed("UB", "A1"),
        *w.user_item(w.user_audio("UB"), "A1"),
        w.speech_started("UC", 4000),
        w.speech_stopped("UC", 5000),
        w.committed("UC", "UB"),
        *w.user_item(w.user_audio("UC"), "UB"),
        w.input_transcript("UC", "third"),
    ]
    state = rebuild_state(frames)
    assert state.order == ("UA", "A1", "UB", "UC")
    assert [state.items[i].parts[0].heard_transcript for i in ("UA", "UB", "UC")] == [
        "first",
        "second",
        "third",
    ]
    # the early transcript's item was a shell until the item arrived; flagged, not lost
    assert any(a.kind is AnomalyKind.ITEM_NOT_SEEN for a in state.anomalies)
    assert state.items["UB"].parts[0].audio[0].samples == 1000 * 24


def test_empty_cancelled_response_has_no_items() -> None:
    """response.created, speech_started, response.done (cancelled, output [], zero usage)
    with no item events: a cancelled response and an unchanged conversation."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        w.response_created("R1"),
        w.speech_started("U2", 900),
        w.response_done("R1", [], status="cancelled", reason="turn_detected"),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1",)
    resp = state.responses["R1"]
    assert (resp.status, resp.output, resp.interrupted) == ("cancelled", (), True)
    assert resp.usage is not None
    assert resp.usage["total_tokens"] == 0
    assert state.detached == ()


def barge_in(w: Wire, *, item_status: str, truncate_ms: int) -> list[Frame]:
    partial = w.assistant("A1", status=item_status, transcript="It is sunny in")
    return [
        w.session_created(),
        *w.user_item(w.user_text("U1", "weather?"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.part_added("R1", "A1", "audio"),
        w.audio_delta("R1", "A1", 4800),
        w.transcript_delta("R1", "A1", "It is sunny in"),
        w.speech_started("U2", 5000),
        server(
            {"type": "output_audio_buffer.cleared", "event_id": "e-webrtc-1", "response_id": "R1"}
        ),
        w.audio_done("R1", "A1"),
        w.transcript_done("R1", "A1", "It is sunny in"),
        w.part_done("R1", "A1", "audio", "It is sunny in"),
        w.output_item_done("R1", 0, partial),
        w.response_done("R1", [partial], status="cancelled", reason="turn_detected"),
        w.truncate("A1", truncate_ms),
        w.truncated("A1", truncate_ms),
    ]


def test_barge_in_truncation_after_response_done() -> None:
    """Barge-in: cancelled response, item incomplete, truncation landing after response.done;
    the audio is cut at audio_end_ms and the heard transcript cleared."""
    state = rebuild_state(barge_in(Wire("ga"), item_status="incomplete", truncate_ms=120))
    a1 = state.items["A1"]
    part = a1.parts[0]
    assert a1.status == "incomplete"
    assert part.truncated_at_ms == 120
    assert sum(r.samples for r in part.heard_audio) == 120 * 24
    assert sum(r.samples for r in part.audio) == 4800
    assert part.heard_transcript == ""
    assert part.transcript.value == "It is sunny in"
    assert state.responses["R1"].interrupted


def test_barge_in_truncation_at_zero_ms() -> None:
    """audio_end_ms can be 0: nothing of the item was heard."""
    state = rebuild_state(barge_in(Wire("ga"), item_status="incomplete", truncate_ms=0))
    part = state.items["A1"].parts[0]
    assert part.truncated_at_ms == 0
    assert part.heard_audio == ()
    assert part.heard_transcript == ""


def test_output_item_done_completed_then_cancel_lands() -> None:
    """output_item.done says completed and the cancel lands right after: the item keeps the
    status the server gave it; the response is cancelled."""
    state = rebuild_state(barge_in(Wire("ga"), item_status="completed", truncate_ms=60))
    assert state.items["A1"].status == "completed"
    assert state.responses["R1"].status == "cancelled"
    assert state.items["A1"].truncated


def test_webrtc_output_buffer_events_amid_deltas_change_nothing() -> None:
    """output_audio_buffer.started amid transcript deltas and .stopped after response.done,
    with event ids of another format, leave the conversation as without them."""
    w = Wire("ga")
    base = [w.session_created(), *w.user_item(w.user_text("U1", "hi"), None)]
    turn = assistant_turn(w, response="R1", item="A1", previous="U1", said="Hello.")
    started = server(
        {"type": "output_audio_buffer.started", "event_id": "x-1", "response_id": "R1"}
    )
    stopped = server(
        {"type": "output_audio_buffer.stopped", "event_id": "x-2", "response_id": "R1"}
    )
    with_webrtc = [*base, *turn[:5], started, *turn[5:], stopped]
    plain = rebuild_state([*base, *turn])
    webrtc = rebuild_state(with_webrtc)
    assert texts(webrtc) == texts(plain) == [("user", "hi"), ("assistant", "Hello.")]
    assert webrtc.anomalies == ()
    assert webrtc.unknown_types == {}


def test_inconsistent_ga_part_types_and_obfuscation() -> None:
    """part.type "audio" in content_part.added and "output_audio" in the final item are one
    part; the deltas' extra obfuscation field is tolerated."""
    w = Wire("ga")
    state = rebuild_state(
        [
            w.session_created(),
            *w.user_item(w.user_text("U1", "hi"), None),
            *assistant_turn(w, response="R1", item="A1", previous="U1", said="Yes."),
        ]
    )
    (part,) = state.items["A1"].parts
    assert part.type == "output_audio"
    assert part.heard_transcript == "Yes."


def test_one_response_with_a_message_and_a_function_call() -> None:
    """A response with a message at output_index 0 and a function_call at 1 yields both items,
    in order, with the call's arguments and name."""
    w = Wire("ga")
    call = w.call("F1", "call_1", "get_weather")
    call_done = w.call("F1", "call_1", "get_weather", '{"city":"Paris"}', "completed")
    msg_done = w.assistant("A1", status="completed", text="Let me check.")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "weather?"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.part_added("R1", "A1", "text"),
        w.text_delta("R1", "A1", "Let me check."),
        w.text_done("R1", "A1", "Let me check."),
        *w.item_done(msg_done, "U1"),
        w.output_item_done("R1", 0, msg_done),
        w.output_item_added("R1", 1, call),
        *w.item_added(call, "A1"),
        w.args_delta("R1", "F1", "call_1", '{"city":', index=1),
        w.args_delta("R1", "F1", "call_1", '"Paris"}', index=1),
        w.args_done("R1", "F1", "call_1", "get_weather", '{"city":"Paris"}', index=1),
        *w.item_done(call_done, "A1"),
        w.output_item_done("R1", 1, call_done),
        w.response_done("R1", [msg_done, call_done]),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1", "A1", "F1")
    f1 = state.items["F1"]
    assert (f1.type, f1.name, f1.call_id, f1.arguments.value) == (
        "function_call",
        "get_weather",
        "call_1",
        '{"city":"Paris"}',
    )
    assert state.responses["R1"].output == ("A1", "F1")


def test_several_audio_items_with_interleaved_audio() -> None:
    """Newer models: two audio message items in one response, the first item's
    output_audio.done arriving after the second item's deltas began; each item keeps its
    own audio."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "tell me two things"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.part_added("R1", "A1", "audio"),
        w.audio_delta("R1", "A1", 1000),
        w.transcript_delta("R1", "A1", "First."),
        w.output_item_added("R1", 1, w.assistant("A2")),
        *w.item_added(w.assistant("A2"), "A1"),
        w.part_added("R1", "A2", "audio", output_index=1),
        w.audio_delta("R1", "A2", 500, output_index=1),
        w.audio_delta("R1", "A1", 1000),
        w.audio_done("R1", "A1"),
        w.transcript_delta("R1", "A2", "Second.", output_index=1),
        w.audio_delta("R1", "A2", 500, output_index=1),
        w.response_done(
            "R1",
            [
                w.assistant("A1", status="completed", transcript="First."),
                w.assistant("A2", status="completed", transcript="Second."),
            ],
        ),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1", "A1", "A2")
    a1, a2 = state.items["A1"].parts[0], state.items["A2"].parts[0]
    assert [r.samples for r in a1.audio] == [1000, 1000]  # two stretches of the stream
    assert [r.samples for r in a2.audio] == [500, 500]
    assert (a1.heard_transcript, a2.heard_transcript) == ("First.", "Second.")


def test_output_item_done_before_the_last_transcript_deltas() -> None:
    """output_item.done (with the whole transcript) before the last deltas: the transcript is
    neither cut short nor doubled."""
    w = Wire("ga")
    final = w.assistant("A1", status="completed", transcript="One two three")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "count"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.part_added("R1", "A1", "audio"),
        w.transcript_delta("R1", "A1", "One"),
        w.output_item_done("R1", 0, final),
    ]
    early = rebuild_state(frames)
    assert early.items["A1"].parts[0].heard_transcript == "One two three"
    late = rebuild_state(
        [
            *frames,
            w.transcript_delta("R1", "A1", " two"),
            w.transcript_delta("R1", "A1", " three"),
            w.response_done("R1", [final]),
        ]
    )
    assert late.items["A1"].parts[0].heard_transcript == "One two three"


def test_beta_name_inside_a_ga_session() -> None:
    """A GA session that sends the beta response.audio_transcript.done is understood."""
    w = Wire("ga")
    beta = Wire("beta")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        w.response_created("R1"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.part_added("R1", "A1", "audio"),
        w.transcript_delta("R1", "A1", "Hel"),
        beta.transcript_done("R1", "A1", "Hello!"),
        beta.audio_delta("R1", "A1", 240),
    ]
    state = rebuild_state(frames)
    part = state.items["A1"].parts[0]
    assert part.transcript.final == "Hello!"
    assert part.audio[0].samples == 240
    assert state.protocol == "ga"
    assert state.unknown_types == {}


def test_transcript_for_a_user_item_not_seen_yet() -> None:
    """A transcript for a user item the log has not shown (a spoken turn that triggers a tool
    call) is kept and joins the item when it arrives."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        w.input_transcript_delta("U1", "What's the "),
        w.input_transcript_delta("U1", "weather"),
        w.input_transcript("U1", "What's the weather?"),
    ]
    before = rebuild_state(frames)
    assert before.order == ()
    assert before.items["U1"].parts[0].transcript.value == "What's the weather?"
    state = rebuild_state([*frames, *w.user_item(w.user_audio("U1"), None)])
    assert state.order == ("U1",)
    u1 = state.items["U1"]
    assert u1.role == "user"
    assert u1.parts[0].heard_transcript == "What's the weather?"
    assert u1.parts[0].transcription is not None
    assert u1.parts[0].transcription.status == "completed"


def test_error_with_null_event_id_and_a_fatal_close() -> None:
    """GA errors (event_id often null) leave the session going; a close right after is a
    recorder mark, counted, not an event."""
    from rtrec.replay.testing import mark

    w = Wire("ga")
    frames = [
        w.session_created(),
        w.response_create(),
        w.error("conversation_already_has_active_response", "busy", None),
        *w.user_item(w.user_text("U1", "still here"), None),
        w.error("server_error", "fatal", None),
        mark("close", {"code": 4000, "reason": "server error", "by": "server"}),
    ]
    state = rebuild_state(frames)
    assert [e.code for e in state.errors] == [
        "conversation_already_has_active_response",
        "server_error",
    ]
    assert all(e.caused_by is None and e.client_event_id is None for e in state.errors)
    assert state.order == ("U1",)
    assert state.marks == {"close": 1}


def test_transcription_only_session_without_rate_limits() -> None:
    """A transcription-only session (no responses, no rate_limits.updated) rebuilds its user
    items with their transcripts."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        w.session_updated(
            type="transcription", audio={"input": {"transcription": {"model": "whisper-1"}}}
        ),
        *w.appends(1500),
        w.speech_started("U1", 200),
        w.speech_stopped("U1", 1200),
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
        w.input_transcript("U1", "hello"),
    ]
    state = rebuild_state(frames)
    assert state.session is not None
    assert state.session["type"] == "transcription"
    assert state.rate_limits is None
    assert state.responses == {}
    assert texts(state) == [("user", "hello")]


def test_unknown_event_types_are_counted_never_fatal() -> None:
    """Event types a newer server sends are counted by name and change nothing else."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        server({"type": "response.reasoning.delta", "event_id": "e1", "delta": "hmm"}),
        *w.user_item(w.user_text("U1", "hi"), None),
        server({"type": "response.reasoning.delta", "event_id": "e2", "delta": "ok"}),
        client({"type": "session.future_thing", "x": 1}),
    ]
    state = rebuild_state(frames)
    assert state.unknown_types == {"response.reasoning.delta": 2, "session.future_thing": 1}
    assert state.order == ("U1",)


def test_deltas_before_their_item() -> None:
    """Deltas for an item the log has not announced are kept on a shell item and merged when
    conversation.item.added arrives."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        w.response_created("R1"),
        w.audio_delta("R1", "A1", 480),
        w.transcript_delta("R1", "A1", "Hi"),
        w.output_item_added("R1", 0, w.assistant("A1")),
        *w.item_added(w.assistant("A1"), "U1"),
        w.transcript_delta("R1", "A1", " you"),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1", "A1")
    part = state.items["A1"].parts[0]
    assert (part.heard_transcript, part.audio[0].samples) == ("Hi you", 480)
    assert state.responses["R1"].first_delta_t_ns is not None


def test_log_that_starts_mid_session() -> None:
    """A log without session.created, whose first item names a predecessor the log never
    shows: items appended in order, the first flagged; a response.done without its
    response.created still counts."""
    w = Wire("ga")
    final = w.assistant("A9", status="completed", transcript="Sure.")
    frames = [
        w.transcript_delta("R8", "A8", "...and that's all."),
        *w.user_item(w.user_text("U9", "thanks"), "A8"),
        w.response_created("R9"),
        w.output_item_added("R9", 0, w.assistant("A9")),
        *w.item_added(w.assistant("A9"), "U9"),
        w.transcript_delta("R9", "A9", "Sure."),
        w.response_done("R9", [final]),
        w.response_done("R8", [], status="completed"),
    ]
    state = rebuild_state(frames)
    assert not state.session_started
    assert state.protocol == "ga"
    assert state.order == ("U9", "A9")
    assert state.orphans == ("U9",)
    assert [i.id for i in state.detached] == ["A8"]
    kinds = {a.kind for a in state.anomalies}
    assert AnomalyKind.UNKNOWN_PREDECESSOR in kinds
    assert AnomalyKind.RESPONSE_NOT_SEEN in kinds
    assert state.responses["R8"].status == "completed"

    # when the missing predecessor does show up, the orphan moves into place after it
    later = rebuild_state([*frames, *w.user_item(w.user_text("A8", "(late)"), None)])
    assert later.order == ("A8", "U9", "A9")
    assert later.orphans == ()


def test_vad_audio_in_a_log_that_starts_mid_session_is_flagged() -> None:
    """Without session.created the input timeline's origin is unknown: a VAD slice is still
    made, and flagged as possibly misaligned."""
    w = Wire("ga")
    frames = [
        *w.appends(1000),
        w.speech_started("U1", 100),
        w.speech_stopped("U1", 900),
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
    ]
    state = rebuild_state(frames)
    assert state.items["U1"].parts[0].audio[0].samples == 800 * 24
    assert [a.kind for a in state.anomalies] == [AnomalyKind.INPUT_TIMELINE_UNKNOWN]
    started = rebuild_state([w.session_created(), *frames])
    assert started.anomalies == ()
