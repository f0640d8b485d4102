"""Whole conversations, written once and emitted in GA or beta form by ``Wire``.

The same scenario in both protocols must rebuild to the same conversation (names aside); the
property tests fold these streams in every split and order.
"""

from __future__ import annotations

from collections.abc import Callable

from rtrec.replay.testing import Frame

from .replay_streams import Wire


def voice(w: Wire) -> list[Frame]:
    """Two server-VAD voice turns with audio replies and late user transcripts."""
    return [
        w.session_created(),
        w.session_updated(
            **(
                {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}
                if w.ga
                else {"input_audio_transcription": {"model": "whisper-1"}}
            )
        ),
        *w.appends(1800),
        *w.voice_turn(
            user="item_U1",
            previous=None,
            assistant="item_A1",
            response="resp_1",
            said="It is sunny in Paris today.",
            heard="What is the weather in Paris?",
            speech=(300, 1600),
        ),
        *w.appends(1700, seed=30),
        *w.voice_turn(
            user="item_U2",
            previous="item_A1",
            assistant="item_A2",
            response="resp_2",
            said="You are welcome.",
            speech=(2000, 3300),
        ),
        w.input_transcript("item_U2", "Thanks!"),
    ]


def text_and_call(w: Wire) -> list[Frame]:
    """A typed question, a function call round trip, and a text answer."""
    call = w.call("item_F1", "call_abc", "get_weather")
    call_done = w.call("item_F1", "call_abc", "get_weather", '{"city":"Paris"}', "completed")
    answer = w.assistant("item_A1", status="completed", text="21 degrees and sunny.")
    return [
        w.session_created(),
        w.create(w.user_text(None, "Weather in Paris?"), event_id="evt_c1"),
        *w.user_item(w.user_text("item_U1", "Weather in Paris?"), None),
        w.response_create(event_id="evt_c2"),
        w.response_created("resp_1"),
        w.output_item_added("resp_1", 0, call),
        *w.item_added(call, "item_U1"),
        w.args_delta("resp_1", "item_F1", "call_abc", '{"city":'),
        w.args_delta("resp_1", "item_F1", "call_abc", '"Paris"}'),
        w.args_done("resp_1", "item_F1", "call_abc", "get_weather", '{"city":"Paris"}'),
        *w.item_done(call_done, "item_U1"),
        w.output_item_done("resp_1", 0, call_done),
        w.response_done("resp_1", [call_done]),
        w.rate_limits(),
        w.create(w.call_output(None, "call_abc", '{"temp":21}'), event_id="evt_c3"),
        *w.user_item(w.call_output("item_O1", "call_abc", '{"temp":21}'), "item_F1"),
        w.response_create(event_id="evt_c4"),
        w.response_created("resp_2"),
        w.output_item_added("resp_2", 0, w.assistant("item_A1")),
        *w.item_added(w.assistant("item_A1"), "item_O1"),
        w.part_added("resp_2", "item_A1", "text"),
        w.text_delta("resp_2", "item_A1", "21 degrees"),
        w.text_delta("resp_2", "item_A1", " and sunny."),
        w.text_done("resp_2", "item_A1", "21 degrees and sunny."),
        w.part_done("resp_2", "item_A1", "text", "21 degrees and sunny."),
        *w.item_done(answer, "item_O1"),
        w.output_item_done("resp_2", 0, answer),
        w.response_done("resp_2", [answer]),
        w.response_cancel(event_id="evt_c5"),
        w.error("response_cancel_not_active", "There is no active response.", "evt_c5"),
    ]


def barge_in(w: Wire) -> list[Frame]:
    """A voice turn whose reply the user interrupts; the client truncates what was heard."""
    partial = w.assistant("item_A1", status="incomplete", transcript="Paris is lovely in")
    return [
        w.session_created(),
        *w.appends(1500),
        w.speech_started("item_U1", 200),
        w.speech_stopped("item_U1", 1200),
        w.committed("item_U1", None),
        *w.user_item(w.user_audio("item_U1"), None),
        w.response_created("resp_1"),
        w.output_item_added("resp_1", 0, w.assistant("item_A1")),
        *w.item_added(w.assistant("item_A1"), "item_U1"),
        w.part_added("resp_1", "item_A1", "audio"),
        w.audio_delta("resp_1", "item_A1", 12000, seed=3),
        w.transcript_delta("resp_1", "item_A1", "Paris is"),
        *w.appends(1000, seed=40),
        w.speech_started("item_U2", 1600),
        w.audio_delta("resp_1", "item_A1", 12000, seed=4),
        w.transcript_delta("resp_1", "item_A1", " lovely in"),
        w.audio_done("resp_1", "item_A1"),
        w.transcript_done("resp_1", "item_A1", "Paris is lovely in"),
        w.part_done("resp_1", "item_A1", "audio", "Paris is lovely in"),
        w.output_item_done("resp_1", 0, partial),
        w.response_done("resp_1", [partial], status="cancelled", reason="turn_detected"),
        w.truncate("item_A1", 420),
        w.truncated("item_A1", 420),
        w.speech_stopped("item_U2", 2400),
        w.committed("item_U2", "item_A1"),
        *w.user_item(w.user_audio("item_U2"), "item_A1"),
        w.input_transcript("item_U2", "Wait, stop."),
        w.response_created("resp_2"),
        w.response_done("resp_2", [], status="cancelled", reason="client_cancelled"),
    ]


SCENARIOS: dict[str, Callable[[Wire], list[Frame]]] = {
    "voice": voice,
    "text_and_call": text_and_call,
    "barge_in": barge_in,
}
