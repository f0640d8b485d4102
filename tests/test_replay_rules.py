"""The reducer against every rule of PROTOCOL.md §8: GA vs beta differences (8.1-8.10) and
the reducer rules that apply to both."""

from __future__ import annotations

import base64

import attrs
import pytest

from rtrec.replay import AnomalyKind, ConversationState, canonical_state, fold, rebuild, transcript
from rtrec.replay._rules import BETA_EVENT_NAMES
from rtrec.replay.testing import Frame, client, record_events, server
from rtrec.schemas import g711

from .replay_streams import Wire


def rebuild_state(frames: list[Frame]) -> ConversationState:
    return rebuild(record_events(frames).records).state


def open_turn(w: Wire, item: str = "A1", response: str = "R1") -> list[Frame]:
    return [
        w.session_created(),
        *w.user_item(w.user_text("U1", "hi"), None),
        w.response_created(response),
        w.output_item_added(response, 0, w.assistant(item)),
        *w.item_added(w.assistant(item), "U1"),
    ]


# --------------------------------------------------------------------------- §8.1 names


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_8_1_beta_and_ga_delta_names_grow_the_same_part(protocol: str) -> None:
    """§8.1: every beta delta/done name maps onto its GA meaning (text, audio, transcript)."""
    w = Wire(protocol)
    frames = [
        *open_turn(w),
        w.part_added("R1", "A1", "audio"),
        w.part_added("R1", "A1", "text", content_index=1),
        w.audio_delta("R1", "A1", 480),
        w.transcript_delta("R1", "A1", "spoken"),
        w.text_delta("R1", "A1", "writ", content_index=1),
        w.text_delta("R1", "A1", "ten", content_index=1),
        w.audio_done("R1", "A1"),
        w.transcript_done("R1", "A1", "spoken."),
        w.text_done("R1", "A1", "written.", content_index=1),
    ]
    part0, part1 = rebuild_state(frames).items["A1"].parts
    assert (part0.type, part0.heard_transcript, part0.audio[0].samples) == (
        "output_audio",
        "spoken.",
        480,
    )
    assert (part1.type, part1.text.value, part1.text.deltas) == (
        "output_text",
        "written.",
        "written",
    )


def test_8_1_every_beta_name_in_the_rules_has_a_ga_class() -> None:
    """§8.1: the alias table only names events the schema layer knows, on both sides."""
    from rtrec.schemas import event_types

    known = event_types()
    for beta, ga in BETA_EVENT_NAMES.items():
        assert issubclass(known[beta], known[ga]) or known[beta].__name__.startswith(
            "TranscriptionSession"
        )


def test_8_1_beta_item_created_both_places_and_finalises() -> None:
    """§8.1: beta conversation.item.created plays GA's added and done: placed and final."""
    w = Wire("beta")
    state = rebuild_state([w.session_created(), *w.item_added(w.user_text("U1", "hello"), None)])
    assert state.order == ("U1",)
    assert state.items["U1"].status == "completed"
    assert state.items["U1"].parts[0].text.value == "hello"


# --------------------------------------------------------------------------- §8.2 content types


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_8_2_content_types_are_normalised_to_the_ga_vocabulary(protocol: str) -> None:
    """§8.2: beta item types text/audio and content_part types text/audio (both protocols)
    become output_text/output_audio; user part types stay as they are."""
    w = Wire(protocol)
    final = w.assistant("A1", status="completed", transcript="a", text="b")
    frames = [
        *open_turn(w),
        w.part_added("R1", "A1", "audio"),
        w.part_added("R1", "A1", "text", content_index=1),
        w.output_item_done("R1", 0, final),
    ]
    state = rebuild_state(frames)
    assert [p.type for p in state.items["A1"].parts] == ["output_audio", "output_text"]
    assert [p.type for p in state.items["U1"].parts] == ["input_text"]


# --------------------------------------------------------------------------- §8.3 item shapes


def test_8_3_flat_beta_items_and_ga_union_items_and_mcp_items() -> None:
    """§8.3: beta's flat item, GA's typed items and MCP items (no status) all rebuild."""
    beta = Wire("beta")
    state = rebuild_state(
        [
            beta.session_created(),
            *beta.item_added(beta.call("F1", "call_1", "lookup", '{"q":1}', "completed"), None),
        ]
    )
    assert (state.items["F1"].type, state.items["F1"].arguments.value) == (
        "function_call",
        '{"q":1}',
    )

    w = Wire("ga")
    mcp_item = {
        "id": "M1",
        "type": "mcp_call",
        "server_label": "docs",
        "name": "search",
        "arguments": "",
    }
    frames = [
        w.session_created(),
        w.response_created("R1"),
        w.output_item_added("R1", 0, mcp_item),
        *w.item_added(mcp_item, None),
        server(
            {
                "type": "response.mcp_call_arguments.delta",
                "event_id": "m1",
                "response_id": "R1",
                "item_id": "M1",
                "output_index": 0,
                "delta": '{"q":',
                "obfuscation": "zz",
            }
        ),
        server(
            {
                "type": "response.mcp_call_arguments.delta",
                "event_id": "m2",
                "response_id": "R1",
                "item_id": "M1",
                "output_index": 0,
                "delta": '"x"}',
            }
        ),
        server(
            {
                "type": "response.mcp_call.in_progress",
                "event_id": "m3",
                "item_id": "M1",
                "output_index": 0,
            }
        ),
        server(
            {
                "type": "response.mcp_call_arguments.done",
                "event_id": "m4",
                "response_id": "R1",
                "item_id": "M1",
                "output_index": 0,
                "arguments": '{"q":"x"}',
            }
        ),
        server(
            {
                "type": "response.mcp_call.completed",
                "event_id": "m5",
                "item_id": "M1",
                "output_index": 0,
            }
        ),
        w.output_item_done("R1", 0, {**mcp_item, "arguments": '{"q":"x"}', "output": "found"}),
    ]
    state = rebuild_state(frames)
    m1 = state.items["M1"]
    assert (m1.type, m1.name, m1.arguments.value, m1.output, m1.status) == (
        "mcp_call",
        "search",
        '{"q":"x"}',
        "found",
        "completed",
    )
    assert m1.fields["server_label"] == "docs"


# --------------------------------------------------------------------------- §8.4 references


def test_8_4_item_references_never_become_items() -> None:
    """§8.4: a GA response.create input item_reference is not a conversation item; a beta
    item_reference content part is kept as a part."""
    w = Wire("ga")
    state = rebuild_state(
        [
            w.session_created(),
            *w.user_item(w.user_text("U1", "hi"), None),
            client(
                {
                    "type": "response.create",
                    "response": {
                        "conversation": "none",
                        "input": [{"type": "item_reference", "id": "U1"}],
                    },
                }
            ),
        ]
    )
    assert state.order == ("U1",)
    assert set(state.items) == {"U1"}

    beta = Wire("beta")
    item = {
        "id": "U2",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "item_reference", "id": "U1"}],
    }
    state = rebuild_state([beta.session_created(), *beta.item_added(item, None)])
    (part,) = state.items["U2"].parts
    assert (part.type, part.fields["id"]) == ("item_reference", "U1")


# --------------------------------------------------------------------------- §8.5 shapes, audio


def test_8_5_session_shapes_and_g711_audio_rates() -> None:
    """§8.5: the effective session config is kept as the server stated it, and audio in a
    G.711 session is 8 kHz: durations come from each chunk's own rate."""
    beta = Wire("beta")
    ulaw = base64.b64encode(g711.ulaw_encode(g711.ulaw_decode(bytes(range(256))) * 1)).decode()
    frames = [
        beta.session_created(input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"),
        *[client({"type": "input_audio_buffer.append", "audio": ulaw}) for _ in range(25)],
        beta.speech_started("U1", 0),
        beta.speech_stopped("U1", 500),
        beta.committed("U1", None),
        *beta.user_item(beta.user_audio("U1"), None),
        beta.response_created("R1"),
        beta.output_item_added("R1", 0, beta.assistant("A1")),
        *beta.item_added(beta.assistant("A1"), "U1"),
        server(
            {
                "type": "response.audio.delta",
                "event_id": "d1",
                "response_id": "R1",
                "item_id": "A1",
                "output_index": 0,
                "content_index": 0,
                "delta": ulaw,
            }
        ),
    ]
    state = rebuild_state(frames)
    assert state.session is not None
    assert state.session["input_audio_format"] == "g711_ulaw"
    (user_ref,) = state.items["U1"].parts[0].audio
    assert (user_ref.sample_rate, user_ref.samples) == (8000, 4000)
    (out_ref,) = state.items["A1"].parts[0].audio
    assert (out_ref.sample_rate, out_ref.samples, out_ref.duration) == (8000, 256, 0.032)


# --------------------------------------------------------------------------- §8.6 transcription


def test_8_6_transcription_sessions_ga_and_beta() -> None:
    """§8.6: beta transcription_session.updated and GA session.updated (type transcription)
    both set the session, and say which protocol it is."""
    beta = rebuild_state(
        [
            server(
                {
                    "type": "transcription_session.updated",
                    "event_id": "e1",
                    "session": {
                        "input_audio_format": "pcm16",
                        "input_audio_transcription": {"model": "whisper-1"},
                    },
                }
            )
        ]
    )
    assert beta.protocol == "beta"
    assert beta.session is not None
    assert beta.session["input_audio_transcription"]["model"] == "whisper-1"
    ga = rebuild_state(
        [
            server(
                {
                    "type": "session.updated",
                    "event_id": "e1",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                    },
                }
            )
        ]
    )
    assert ga.protocol == "ga"
    assert ga.session is not None
    assert ga.session["type"] == "transcription"


# --------------------------------------------------------------------------- §8.7 call name


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_8_7_function_name_from_the_done_event_or_the_item(protocol: str) -> None:
    """§8.7: GA names the function in arguments.done; beta only in the item."""
    w = Wire(protocol)
    call = w.call("F1", "call_1", "get_weather")
    state = rebuild_state(
        [
            w.session_created(),
            w.response_created("R1"),
            w.output_item_added("R1", 0, call),
            *w.item_added(call, None),
            w.args_delta("R1", "F1", "call_1", "{}"),
            w.args_done("R1", "F1", "call_1", "get_weather", "{}"),
        ]
    )
    f1 = state.items["F1"]
    assert (f1.name, f1.call_id, f1.arguments.value) == ("get_weather", "call_1", "{}")


# --------------------------------------------------------------------------- §8.8 usage


def test_8_8_usage_is_kept_as_the_server_sent_it() -> None:
    """§8.8: GA usage with image_tokens and cached_tokens_details (and anything newer) is
    kept whole."""
    w = Wire("ga")
    usage = {
        "total_tokens": 30,
        "input_tokens": 20,
        "output_tokens": 10,
        "input_token_details": {
            "text_tokens": 10,
            "audio_tokens": 5,
            "image_tokens": 5,
            "cached_tokens": 8,
            "cached_tokens_details": {"text_tokens": 8, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 4, "audio_tokens": 6},
        "brand_new_counter": 3,
    }
    state = rebuild_state(
        [w.session_created(), w.response_created("R1"), w.response_done("R1", [], usage=usage)]
    )
    kept = state.responses["R1"].usage
    assert kept is not None
    assert kept["input_token_details"]["cached_tokens_details"]["text_tokens"] == 8
    assert kept["brand_new_counter"] == 3


# --------------------------------------------------------------------------- §8.9 GA-only events


def test_8_9_ga_only_events_are_accepted() -> None:
    """§8.9: transcription segments, idle timeout, DTMF and MCP list-tools events are taken
    in: segments and the timeout's audio are kept, the rest changes nothing."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(3000),
        w.timeout_triggered("U1", 1000, 2500),
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
        server(
            {
                "type": "conversation.item.input_audio_transcription.segment",
                "event_id": "s1",
                "item_id": "U1",
                "content_index": 0,
                "id": "seg_1",
                "text": "hello",
                "speaker": "A",
                "start": 0.0,
                "end": 0.8,
            }
        ),
        server(
            {
                "type": "input_audio_buffer.dtmf_event_received",
                "event": "5",
                "received_at": 1767233035,
            }
        ),
        server({"type": "mcp_list_tools.in_progress", "event_id": "l1", "item_id": "L1"}),
        server({"type": "mcp_list_tools.completed", "event_id": "l2", "item_id": "L1"}),
    ]
    state = rebuild_state(frames)
    part = state.items["U1"].parts[0]
    assert part.audio[0].samples == 1500 * 24
    assert part.transcription is not None
    assert part.transcription.segments[0]["speaker"] == "A"
    assert state.items["L1"].status == "completed"
    assert state.unknown_types == {}
    assert state.order == ("U1",)


# --------------------------------------------------------------------------- §8.10 detection


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_8_10_protocol_detected_from_session_created(protocol: str) -> None:
    """§8.10: GA sessions have type and audio; beta sessions have modalities and formats."""
    w = Wire(protocol)
    assert rebuild_state([w.session_created()]).protocol == protocol


# --------------------------------------------------------------------------- shared rules


def test_insertion_after_previous_item_id_null_first_and_unknown_flagged() -> None:
    """Items go after previous_item_id; null puts an item first (root insertion), ahead of
    what is there; an unknown predecessor appends and flags it."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("A", "a"), None),
        *w.user_item(w.user_text("B", "b"), "A"),
        *w.user_item(w.user_text("C", "c"), "B"),
        *w.user_item(w.user_text("X", "x"), "A"),  # inserted between A and B
        *w.user_item(w.user_text("R", "r"), None),  # inserted at the root
        *w.user_item(w.user_text("Z", "z"), "nope"),  # unknown predecessor
        *w.user_item(w.user_text("Y", "y"), "X"),  # after X, ahead of B
    ]
    state = rebuild_state(frames)
    assert state.order == ("R", "A", "X", "Y", "B", "C", "Z")
    assert state.orphans == ("Z",)
    assert [a.kind for a in state.anomalies] == [AnomalyKind.UNKNOWN_PREDECESSOR]


def test_insertion_order_survives_deletion_of_the_predecessor() -> None:
    """Deleting an item keeps its successors where they were."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.user_item(w.user_text("A", "a"), None),
        *w.user_item(w.user_text("B", "b"), "A"),
        *w.user_item(w.user_text("C", "c"), "B"),
        w.deleted("B"),
        *w.user_item(w.user_text("D", "d"), "C"),
    ]
    state = rebuild_state(frames)
    assert state.order == ("A", "C", "D")
    assert [i.id for i in state.deleted] == ["B"]
    assert state.items["B"].deleted_seq is not None


def test_deltas_address_item_and_content_index_and_done_replaces() -> None:
    """Deltas grow (item_id, content_index); the *.done value replaces what they built."""
    w = Wire("ga")
    frames = [
        *open_turn(w),
        w.text_delta("R1", "A1", "Helo", content_index=1),
        w.text_delta("R1", "A1", "?", content_index=0),
        w.text_done("R1", "A1", "Hello", content_index=1),
        w.text_delta("R1", "A1", " late", content_index=1),  # after done: ignored
    ]
    parts = rebuild_state(frames).items["A1"].parts
    assert [(p.index, p.text.value) for p in parts] == [(0, "?"), (1, "Hello")]


def test_snapshots_merge_and_never_erase_with_nulls() -> None:
    """conversation.item.done, output_item.done and response.done.output carry no audio and
    maybe null transcripts: accumulated audio and transcripts survive them."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(1000),
        w.speech_started("U1", 0),
        w.speech_stopped("U1", 1000),
        w.committed("U1", None),
        *w.item_added(w.user_audio("U1"), None),
        w.input_transcript("U1", "hello"),
        *w.item_done(w.user_audio("U1", transcript=None), None),
        *open_turn(w)[2:],
        w.part_added("R1", "A1", "audio"),
        w.audio_delta("R1", "A1", 2400),
        w.transcript_delta("R1", "A1", "Hi"),
        w.output_item_done("R1", 0, w.assistant("A1", status="completed", transcript=None)),
        w.response_done("R1", [w.assistant("A1", status="completed")]),
    ]
    state = rebuild_state(frames)
    u1, a1 = state.items["U1"].parts[0], state.items["A1"].parts[0]
    assert (u1.heard_transcript, u1.audio[0].samples) == ("hello", 24000)
    assert (a1.heard_transcript, a1.audio[0].samples) == ("Hi", 2400)


def test_vad_user_audio_is_the_slice_between_the_speech_marks() -> None:
    """VAD: the user item's audio is [audio_start_ms, audio_end_ms] of all audio appended in
    the session, across turns (offsets keep growing)."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(2000),
        w.speech_started("U1", 250),
        w.speech_stopped("U1", 1750),
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
        *w.appends(2000, seed=50),
        w.speech_started("U2", 2100),
        w.speech_stopped("U2", 3900),
        w.committed("U2", "U1"),
        *w.user_item(w.user_audio("U2"), "U1"),
    ]
    rec = record_events(frames)
    state = rebuild(rec.records).state
    (r1,) = state.items["U1"].parts[0].audio
    (r2,) = state.items["U2"].parts[0].audio
    assert (r1.offset, r1.samples) == (250 * 24, 1500 * 24)
    assert (r2.offset, r2.samples) == (2100 * 24, 1800 * 24)
    # and the references point at exactly the samples the client sent there
    appended = b"".join(
        base64.b64decode(f.event["audio"])  # type: ignore[index]
        for f in frames
        if isinstance(f.event, dict) and f.event.get("type") == "input_audio_buffer.append"
    )
    got = rec.audio.samples(r2.stream, r2.sample_rate, r2.offset, r2.samples)
    assert got == appended[2100 * 48 : 3900 * 48]


def test_manual_commit_takes_what_was_appended_since_the_last_commit_or_clear() -> None:
    """Manual turns: commit takes everything since the previous commit or clear; appends
    racing the server's committed belong to the next turn; a clear drops pending audio."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        *w.appends(500),
        w.commit(),
        *w.appends(300, seed=5),  # sent before the server's committed: the next turn's audio
        w.committed("U1", None),
        *w.user_item(w.user_audio("U1"), None),
        *w.appends(400, seed=9),
        w.commit(),
        w.committed("U2", "U1"),
        *w.user_item(w.user_audio("U2"), "U1"),
        *w.appends(200, seed=13),
        w.clear(),
        w.cleared(),
        *w.appends(100, seed=17),
        w.commit(),
        w.committed("U3", "U2"),
        *w.user_item(w.user_audio("U3"), "U2"),
    ]
    state = rebuild_state(frames)
    audio = {i: [(r.offset, r.samples) for r in state.items[i].parts[0].audio] for i in state.order}
    assert audio == {
        "U1": [(0, 500 * 24)],
        "U2": [(500 * 24, 700 * 24)],
        "U3": [(1400 * 24, 100 * 24)],
    }
    assert state.input.pending_ms == 0
    assert state.anomalies == ()


def test_cleared_without_a_client_clear_drops_pending_audio() -> None:
    """input_audio_buffer.cleared with no client clear in the log still empties the buffer."""
    w = Wire("ga")
    state = rebuild_state([w.session_created(), *w.appends(300), w.cleared()])
    assert state.input.appended_ms == 300
    assert state.input.pending_ms == 0


def test_item_create_audio_matched_by_id_or_by_next_user_audio_item() -> None:
    """conversation.item.create with input_audio: the audio of the client event goes to the
    item with the client's id, or to the next user input_audio item without one."""
    w = Wire("ga")
    audio_item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": w.append(4800).event["audio"]}],
    }  # type: ignore[index]
    with_id = {"id": "mine", **audio_item}
    frames = [
        w.session_created(),
        w.create(audio_item),
        w.create(with_id, event_id="c2"),
        *w.user_item(w.user_audio("mine"), None),
        *w.user_item(w.user_audio("server_id"), "mine"),
    ]
    state = rebuild_state(frames)
    (by_id,) = state.items["mine"].parts[0].audio
    (by_order,) = state.items["server_id"].parts[0].audio
    assert (by_order.offset, by_order.samples) == (0, 4800)
    assert (by_id.offset, by_id.samples) == (4800, 4800)
    assert state.items["mine"].origin == "client"


def test_assistant_audio_is_the_concatenation_of_its_deltas() -> None:
    """Assistant audio = the output_audio deltas of (item_id, content_index), merged into one
    reference while contiguous in the archive."""
    w = Wire("ga")
    frames = [*open_turn(w), *(w.audio_delta("R1", "A1", 100 * (i + 1)) for i in range(4))]
    (ref,) = rebuild_state(frames).items["A1"].parts[0].audio
    assert (ref.offset, ref.samples) == (0, 1000)


def test_truncation_cuts_audio_and_clears_transcript_but_keeps_generated() -> None:
    """conversation.item.truncated cuts the audio at audio_end_ms (samples = ms * rate / 1000),
    clears the heard transcript and keeps the generated one."""
    w = Wire("ga")
    frames = [
        *open_turn(w),
        w.audio_delta("R1", "A1", 24000),
        w.transcript_delta("R1", "A1", "A long answer"),
        w.truncated("A1", 250),
    ]
    part = rebuild_state(frames).items["A1"].parts[0]
    assert sum(r.samples for r in part.heard_audio) == 6000
    assert (part.heard_transcript, part.transcript.value) == ("", "A long answer")


def test_deleted_removes_and_retrieved_refreshes_with_server_audio() -> None:
    """conversation.item.deleted removes the item from the conversation; retrieved refreshes
    an item and brings the server's copy of its audio."""
    w = Wire("ga")
    retrieved_item = {
        **w.user_audio("U1", transcript="server view"),
        "content": [
            {
                "type": "input_audio",
                "transcript": "server view",
                "audio": w.append(240).event["audio"],
            }
        ],
    }  # type: ignore[index]
    frames = [
        w.session_created(),
        *w.user_item(w.user_audio("U1"), None),
        *w.user_item(w.user_text("U2", "bye"), "U1"),
        server({"type": "conversation.item.retrieved", "event_id": "r1", "item": retrieved_item}),
        w.deleted("U2"),
    ]
    state = rebuild_state(frames)
    assert state.order == ("U1",)
    part = state.items["U1"].parts[0]
    assert part.heard_transcript == "server view"
    assert part.retrieved_audio[0].samples == 240
    assert part.audio == ()


def test_cancelled_or_incomplete_response_leaves_unfinished_items_incomplete() -> None:
    """Responses are keyed by id, take status and usage from response.done, and a cancelled
    or incomplete response leaves its unfinished items incomplete."""
    for status in ("cancelled", "incomplete", "failed"):
        w = Wire("ga")
        frames = [
            *open_turn(w),
            w.transcript_delta("R1", "A1", "Cut"),
            w.response_done("R1", [], status=status, usage={"total_tokens": 9}),
        ]
        state = rebuild_state(frames)
        assert state.items["A1"].status == "incomplete"
        assert state.responses["R1"].status == status
        assert state.responses["R1"].usage == {"total_tokens": 9}


def test_errors_link_to_the_client_event_that_caused_them() -> None:
    """error.event_id links an error to the client event with that id (an append too); a null
    or unknown id links nothing."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        w.append(240, event_id="app_1"),
        w.response_cancel(event_id="cancel_1"),
        w.error("response_cancel_not_active", "nothing to cancel", "cancel_1"),
        w.error("invalid_audio", "bad audio", "app_1"),
        w.error("server_error", "oops", None),
        w.error("unknown_thing", "?", "never_sent"),
    ]
    rec = record_events(frames)
    state = rebuild(rec.records).state
    linked = [(e.caused_by.type, e.caused_by.seq) if e.caused_by else None for e in state.errors]
    assert linked == [
        ("response.cancel", rec.records[2].seq),
        ("input_audio_buffer.append", rec.records[1].seq),
        None,
        None,
    ]
    assert state.errors[3].client_event_id == "never_sent"


def test_reducer_tolerates_marks_binary_frames_and_invalid_payloads() -> None:
    """Recorder marks, binary frames and frames that are not JSON are counted and skipped."""
    from rtrec.replay.testing import binary, mark

    w = Wire("ga")
    rec = record_events(
        [
            w.session_created(),
            mark("handshake"),
            binary(b"\x01\x02"),
            *w.user_item(w.user_text("U1", "hi"), None),
        ]
    )
    broken = attrs.evolve(
        rec.records[-1], seq=99, payload='{"type": "conversation.item.added", ', parse_error="eof"
    )
    state = fold(rebuild(rec.records).state, [broken])
    assert state.marks == {"handshake": 1}
    assert state.binary_frames == 1
    assert state.invalid_frames == (99,)
    assert state.order == ("U1",)


def test_a_valid_event_whose_audio_was_not_archived_still_counts() -> None:
    """The recorder sets parse_error on a valid event whose audio it could not decode: the
    event is applied, its audio counted as unarchived."""
    w = Wire("ga")
    rec = record_events([*open_turn(w), w.audio_delta("R1", "A1", 240)])
    last = rec.records[-1]
    broken = attrs.evolve(
        last, audio=None, parse_error="audio: not valid base64; kept inline, not archived"
    )
    state = rebuild([*rec.records[:-1], broken]).state
    assert state.unarchived_audio == 1
    assert state.invalid_frames == ()
    assert state.responses["R1"].first_delta_t_ns == last.t_ns


def test_events_in_the_wrong_direction_change_nothing() -> None:
    """A server event type sent by the client (or the reverse) is flagged and ignored."""
    w = Wire("ga")
    frames = [
        w.session_created(),
        client(
            {
                "type": "conversation.item.added",
                "previous_item_id": None,
                "item": w.user_text("U1", "spoofed"),
            }
        ),
        server({"type": "input_audio_buffer.commit", "event_id": "x"}),
    ]
    state = rebuild_state(frames)
    assert state.order == ()
    assert [a.kind for a in state.anomalies] == [AnomalyKind.WRONG_DIRECTION] * 2


def test_output_audio_buffer_events_are_folded_into_their_response() -> None:
    """§3.1, §9: WebRTC/SIP playout events (started amid the deltas, cleared on a barge-in,
    stopped after response.done) are kept per response with their times and counted; the
    canonical JSON and the transcript show them, and nothing is an unknown type."""
    w = Wire("ga")
    frames = [
        *open_turn(w),
        server({"type": "output_audio_buffer.started", "response_id": "R1"}, t_ms=500),
        server({"type": "output_audio_buffer.cleared", "response_id": "R1"}, t_ms=900),
        w.response_done("R1", [], status="cancelled", reason="turn_detected"),
        server({"type": "output_audio_buffer.stopped", "response_id": "R1"}, t_ms=1200),
    ]
    state = rebuild_state(frames)
    assert [what for what, _ in state.responses["R1"].playback] == ["started", "cleared", "stopped"]
    assert [t // 1_000_000 for _, t in state.responses["R1"].playback] == [500, 900, 1200]
    assert dict(state.playback) == {"started": 1, "cleared": 1, "stopped": 1}
    assert state.unknown_types == {}
    doc = canonical_state(state, stable_ids=True)
    assert doc["playback"] == {"started": 1, "cleared": 1, "stopped": 1}
    assert doc["responses"][0]["playback"] == [
        {"event": "started"},
        {"event": "cleared"},
        {"event": "stopped"},
    ]
    assert "playback started → cleared → stopped" in transcript(state)


def test_transcription_logprobs_and_languages_are_kept() -> None:
    """A completed input transcription's logprobs and detected languages stay in the state
    and in the canonical JSON."""
    w = Wire("ga")
    logprobs = [{"token": "hi", "logprob": -0.1, "bytes": [104, 105]}]
    frames = [
        w.session_created(),
        *w.user_item(w.user_audio("U1"), None),
        server(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": "t1",
                "item_id": "U1",
                "content_index": 0,
                "transcript": "hi",
                "usage": {"type": "duration", "seconds": 0.4},
                "logprobs": logprobs,
                "languages": [{"code": "en"}],
            }
        ),
    ]
    state = rebuild_state(frames)
    transcription = state.items["U1"].parts[0].transcription
    assert transcription is not None
    assert [dict(p) for p in transcription.logprobs or ()] == [
        {"token": "hi", "logprob": -0.1, "bytes": (104, 105)}  # frozen: lists become tuples
    ]
    assert [dict(lang) for lang in transcription.languages or ()] == [{"code": "en"}]
    part = canonical_state(state)["items"][0]["content"][0]
    assert part["transcription"]["logprobs"] == logprobs
    assert part["transcription"]["languages"] == [{"code": "en"}]
