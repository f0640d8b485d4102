"""The simulator's session core (``SimSession``), driven without sockets.

Every server event these tests see is checked against the official SDK's models and
rtrec's strict schema (``simkit.check_server_event``). Times are virtual: ``send(..., at=t)``
delivers a client frame at ``t`` seconds on the session's timeline.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from rtrec.schemas.g711 import ulaw_decode
from rtrec.simulator import WEATHER_TOOL, load_scenario, parse_scenario

from .simkit import (
    SCENARIOS,
    Core,
    append,
    audio_of,
    first,
    silence,
    speech,
    speech_g711,
    types,
    user_text,
    without_deltas,
)

VAD_500 = {"type": "server_vad", "silence_duration_ms": 500}


def ga_update(**session: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", **session}}


def voice_core(protocol: str = "ga", **options: Any) -> Core:
    """A session with input transcription and a 500 ms silence window."""
    core = Core(protocol, **options)
    if protocol == "ga":
        core.send(
            ga_update(
                audio={
                    "input": {
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": VAD_500,
                    }
                }
            )
        )
    else:
        core.send(
            {
                "type": "session.update",
                "session": {
                    "input_audio_transcription": {"model": "whisper-1"},
                    "turn_detection": VAD_500,
                },
            }
        )
    return core


# --------------------------------------------------------------------------- session


def test_session_opens_with_created_events_in_each_protocol() -> None:
    """A GA session starts with session.created (type realtime, audio nested) and
    conversation.created; a beta one with the flat beta session."""
    ga, beta = Core("ga"), Core("beta")
    assert types(ga.log) == ["session.created", "conversation.created"]
    assert ga.log[0]["session"]["type"] == "realtime"
    assert ga.log[0]["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert types(beta.log) == ["session.created", "conversation.created"]
    assert "type" not in beta.log[0]["session"]
    assert beta.log[0]["session"]["input_audio_format"] == "pcm16"
    assert ga.log[0]["session"]["expires_at"] == beta.log[0]["session"]["expires_at"]


def test_session_update_merges_and_echoes_the_full_config() -> None:
    """Only the fields sent change; session.updated carries the whole effective config."""
    core = Core()
    before = core.log[0]["session"]
    (updated,) = core.send(
        ga_update(instructions="Be brief.", audio={"output": {"voice": "marin"}})
    )
    after = updated["session"]
    assert after["instructions"] == "Be brief."
    assert after["audio"]["output"]["voice"] == "marin"
    assert after["audio"]["output"]["format"] == before["audio"]["output"]["format"]
    assert after["audio"]["input"] == before["audio"]["input"]
    assert after["tools"] == []
    assert after["id"] == before["id"]


def test_turn_detection_update_is_completed_with_defaults() -> None:
    """A partial turn_detection replaces the old one, completed with its type's defaults."""
    core = Core()
    (updated,) = core.send(
        ga_update(audio={"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}})
    )
    td = updated["session"]["audio"]["input"]["turn_detection"]
    assert td == {
        "type": "server_vad",
        "threshold": 0.7,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        (
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm16"}}}},
            "invalid_value",
            "session.audio.output.format.type",
        ),
        (
            {"type": "realtime", "audio": {"output": {"voice": "robot"}}},
            "invalid_value",
            "session.audio.output.voice",
        ),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3.0}}},
            "decimal_above_max_value",
            "session.audio.output.speed",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "high"}}},
            },
            "invalid_type",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "max_output_tokens": 0},
            "integer_below_min_value",
            "session.max_output_tokens",
        ),
        (
            {"type": "realtime", "tools": [{"type": "function", "name": "f", "meta": {}}]},
            "unknown_parameter",
            "session.tools[0].meta",
        ),
    ],
)
def test_invalid_session_update_is_an_error_and_changes_nothing(
    session: dict[str, Any], code: str, param: str
) -> None:
    """An invalid config gets an error naming code, param and the client event_id; the
    session keeps its config and accepts the next valid update."""
    core = Core()
    (error,) = core.send({"type": "session.update", "event_id": "evt_1", "session": session})
    assert error["type"] == "error"
    body = error["error"]
    assert (body["type"], body["code"], body["param"], body["event_id"]) == (
        "invalid_request_error",
        code,
        param,
        "evt_1",
    )
    assert body["message"]
    (updated,) = core.send(ga_update(instructions="ok"))
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"] == core.log[0]["session"]["audio"]


def test_beta_format_error_matches_the_captured_message() -> None:
    """Beta rejects an unknown audio format with the service's own wording."""
    core = Core("beta")
    (error,) = core.send(
        {"type": "session.update", "event_id": "e", "session": {"input_audio_format": "pcm24"}}
    )
    assert error["error"]["message"] == (
        "Invalid value: 'pcm24'. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'."
    )
    assert error["error"]["param"] == "session.input_audio_format"


def test_voice_cannot_change_after_assistant_audio() -> None:
    """Once the assistant has spoken, a voice change is refused (the service's rule)."""
    core = Core()
    core.send(user_text("Hi"))
    core.send({"type": "response.create"})
    core.drain()
    (error,) = core.send(ga_update(audio={"output": {"voice": "ash"}}))
    assert error["error"]["code"] == "cannot_update_voice"
    (ok,) = core.send(ga_update(audio={"output": {"voice": "alloy"}}))
    assert ok["type"] == "session.updated"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_type", None),
        ('{"event_id": "e"}', "missing_required_parameter", "type"),
        ('{"type": "response.explode", "event_id": "e"}', "invalid_value", "type"),
        ('{"type": "response.audio.delta", "event_id": "e"}', "invalid_value", "type"),
        (
            '{"type": "conversation.item.truncate", "event_id": "e", "item_id": "x",'
            ' "content_index": 0, "audio_end_ms": "5"}',
            "invalid_type",
            "audio_end_ms",
        ),
        (
            '{"type": "conversation.item.delete", "event_id": "e"}',
            "missing_required_parameter",
            "item_id",
        ),
        (
            '{"type": "input_audio_buffer.append", "event_id": "e", "audio": "%%%"}',
            "invalid_value",
            "audio",
        ),
        (
            '{"type": "input_audio_buffer.append", "event_id": "e", "audio": "AAA", "extra": 1}',
            "unknown_parameter",
            "extra",
        ),
        (
            '{"type": "input_audio_buffer.commit", "event_id": "e"}',
            "input_audio_buffer_commit_empty",
            None,
        ),
        ('{"type": "response.cancel", "event_id": "e"}', "response_cancel_not_active", None),
        (
            '{"type": "conversation.item.delete", "event_id": "e", "item_id": "item_nope"}',
            "invalid_value",
            "item_id",
        ),
        ('{"type": "output_audio_buffer.clear", "event_id": "e"}', "invalid_value", "type"),
    ],
)
def test_bad_client_input_gets_an_error_and_the_session_stays_usable(
    frame: str, code: str, param: str | None
) -> None:
    """Each kind of bad input gets one error event with the service's code; afterwards a
    normal turn still works."""
    core = Core()
    (error,) = core.send(frame)
    assert error["type"] == "error"
    assert error["error"]["code"] == code
    assert error["error"]["param"] == param
    core.send(user_text("still there?"))
    core.send({"type": "response.create"})
    assert types(core.drain())[-1] == "response.done"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("[1]", "Invalid event: expected a JSON object, but got an array instead."),
        ("7", "Invalid event: expected a JSON object, but got an integer instead."),
        ('{"type": 7}', "Invalid type for 'type': expected a string, but got an integer instead."),
        ('{"type": {}}', "Invalid type for 'type': expected a string, but got an object instead."),
        (
            '{"type": "conversation.item.delete", "item_id": null}',
            "Invalid type for 'item_id': expected a string, but got null instead.",
        ),
    ],
)
def test_type_errors_name_json_types(frame: str, message: str) -> None:
    """Wrong JSON types are described in JSON's words, as the service does."""
    (error,) = Core().send(frame)
    assert error["error"]["message"] == message


def test_bad_input_errors_echo_the_client_event_id() -> None:
    """Errors about a client event name it by event_id, except those the service sends
    with null (response_cancel_not_active, as captured)."""
    core = Core()
    (error,) = core.send({"type": "input_audio_buffer.append", "event_id": "evt_7", "audio": "@@"})
    assert error["error"]["event_id"] == "evt_7"
    (error,) = core.send({"type": "response.cancel", "event_id": "evt_8"})
    assert error["error"]["event_id"] is None


def test_an_append_over_15_mib_is_refused_without_decoding() -> None:
    """An append whose audio exceeds 15 MiB is an error; the buffer is unchanged."""
    core = Core()
    big = "A" * (15 * 1024 * 1024 // 3 * 4 + 8)
    (error,) = core.send({"type": "input_audio_buffer.append", "event_id": "big", "audio": big})
    assert error["error"]["code"] == "invalid_value"
    assert error["error"]["param"] == "audio"
    assert "15 MiB" in error["error"]["message"]
    (error,) = core.send({"type": "input_audio_buffer.commit"})
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"


@pytest.mark.parametrize(
    ("protocol", "response", "param"),
    [
        ("ga", {"modalities": ["text"]}, "response.modalities"),
        ("ga", {"voice": "ash"}, "response.voice"),
        ("beta", {"output_modalities": ["text"]}, "response.output_modalities"),
        ("beta", {"max_output_tokens": 20}, "response.max_output_tokens"),
        ("ga", {"conversation": "conv_other"}, "response.conversation"),
        ("ga", {"output_modalities": ["audio", "text"]}, "response.output_modalities"),
        ("beta", {"modalities": ["audio"]}, "response.modalities"),
        ("ga", {"metadata": {"n": 1}}, "response.metadata.n"),
        ("ga", {"input": [{"type": "item_reference", "id": "item_gone"}]}, "response.input[0].id"),
    ],
)
def test_invalid_response_parameters_are_refused(
    protocol: str, response: dict[str, Any], param: str
) -> None:
    """Per-response overrides are checked like session ones: the other protocol's fields,
    unknown conversations, bad modality sets, non-string metadata, unknown references."""
    core = Core(protocol)
    (error,) = core.send({"type": "response.create", "event_id": "r", "response": response})
    assert (error["error"]["param"], error["error"]["event_id"]) == (param, "r")
    assert core.drain() == []


def test_response_create_while_active_is_refused() -> None:
    """A second in-band response while one runs: conversation_already_has_active_response,
    with the active id and a null event_id (as captured)."""
    core = Core()
    core.send(user_text("Hi"))
    created = first(core.send({"type": "response.create"}), "response.created")
    (error,) = core.send({"type": "response.create", "event_id": "again"})
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert created["response"]["id"] in error["error"]["message"]
    assert error["error"]["event_id"] is None


# --------------------------------------------------------------------------- voice turns


def test_voice_turn_follows_the_captured_ga_order() -> None:
    """Fixture speech through server VAD gives the GA sequence of PROTOCOL.md §7 (a) with
    the done events in the order of §9, and the transcription arrives after the response
    started."""
    core = voice_core()
    core.stream(speech("hello"))
    core.drain()
    events = core.log[3:]  # after session.created, conversation.created, session.updated
    order = without_deltas([e for e in events if "input_audio_transcription" not in e["type"]])
    assert order == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        # the transcript leads the audio it describes, as on the GA wire
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        *order[14:-6],
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    assert set(order[14:-6]) <= {
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
    }
    all_types = types(events)
    assert all_types.index("conversation.item.input_audio_transcription.delta") > all_types.index(
        "response.created"
    )
    assert all_types.index(
        "conversation.item.input_audio_transcription.completed"
    ) < all_types.index("response.done")


def test_vad_offsets_commit_exactly_the_spoken_audio() -> None:
    """speech_started/stopped carry cumulative offsets (prefix padding and silence window
    included), and the committed item's audio is exactly that slice of what was appended."""
    core = voice_core()
    pcm = speech("weather")
    core.stream(pcm)
    started = first(core.log, "input_audio_buffer.speech_started")
    stopped = first(core.log, "input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 0  # speech at 300 ms, 300 ms prefix padding
    assert stopped["audio_end_ms"] == 2780  # last speech frame ends 2280 ms, +500 ms silence
    assert (
        started["item_id"]
        == stopped["item_id"]
        == first(core.log, "input_audio_buffer.committed")["item_id"]
    )
    retrieved = core.send({"type": "conversation.item.retrieve", "item_id": started["item_id"]})[0]
    audio = base64.b64decode(retrieved["item"]["content"][0]["audio"])
    assert audio == pcm[: 2780 * 48]


def test_offsets_are_cumulative_across_turns() -> None:
    """A second utterance reports offsets from the start of all appended audio."""
    core = voice_core()
    core.stream(speech("weather"))
    core.drain()
    core.stream(speech("joke"))
    starts = [
        e["audio_start_ms"] for e in core.log if e["type"] == "input_audio_buffer.speech_started"
    ]
    assert starts[0] == 0
    # the second file starts at 2980 ms and speaks 300 ms into it; minus 300 ms of padding
    assert starts[1] == 2980


def test_input_transcription_uses_the_scenario_and_reports_usage() -> None:
    """The transcript comes from the scenario turn, streamed in deltas that add up to it,
    then completed with token usage (gpt-4o models) and stored on the item."""
    core = voice_core(scenario=load_scenario(SCENARIOS / "demo.toml"))
    core.stream(speech("hello"))
    core.drain()
    deltas = [e["delta"] for e in core.log if e["type"].endswith("transcription.delta")]
    done = first(core.log, "conversation.item.input_audio_transcription.completed")
    assert "".join(deltas) == done["transcript"] == "Hello! Can you hear me?"
    assert done["usage"]["type"] == "tokens"
    assert done["usage"]["input_token_details"]["audio_tokens"] == 24
    item = core.send({"type": "conversation.item.retrieve", "item_id": done["item_id"]})[0]["item"]
    assert item["content"][0]["transcript"] == "Hello! Can you hear me?"
    reply = first(core.log, "response.output_audio_transcript.done")["transcript"]
    assert reply == "Yes, I can hear you clearly. How can I help you today?"


def test_whisper_transcription_reports_duration_usage() -> None:
    """whisper-1 sends one delta and bills by duration (beta session here)."""
    core = voice_core("beta")
    core.stream(speech("joke"))
    core.drain()
    deltas = [e for e in core.log if e["type"].endswith("transcription.delta")]
    done = first(core.log, "conversation.item.input_audio_transcription.completed")
    assert len(deltas) == 1
    assert deltas[0]["delta"] == done["transcript"]
    assert done["usage"] == {"type": "duration", "seconds": 2.8}


def test_default_silence_window_splits_a_sentence_pause() -> None:
    """At the service's default 200 ms, the pause in "Hello! Can you hear me?" ends a turn."""
    core = Core()
    core.stream(speech("hello"))
    core.drain()
    assert types(core.log).count("input_audio_buffer.committed") == 2


def test_audio_reply_is_speech_of_the_transcript_length() -> None:
    """The reply audio is PCM16 whose length follows the transcript, and it streams in
    100 ms deltas; output tokens count its audio at 50 ms per token."""
    core = voice_core()
    core.stream(speech("hello"))
    core.drain()
    audio = audio_of(core.log)
    transcript = first(core.log, "response.output_audio_transcript.done")["transcript"]
    seconds = len(audio) / 48000
    assert 0.04 < seconds / len(transcript) < 0.09
    deltas = [e for e in core.log if e["type"] == "response.output_audio.delta"]
    assert all(len(base64.b64decode(d["delta"])) == 4800 for d in deltas[:-1])
    usage = first(core.log, "response.done")["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] == (len(audio) // 48 + 49) // 50


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_input_and_output(law: str) -> None:
    """With G.711 formats, 8 kHz input is heard by VAD and the reply audio is G.711 at
    8 kHz (one byte per sample)."""
    fmt = {"type": "audio/pcmu" if law == "ulaw" else "audio/pcma"}
    core = Core()
    core.send(
        ga_update(
            audio={"input": {"format": fmt, "turn_detection": VAD_500}, "output": {"format": fmt}}
        )
    )
    core.stream(speech_g711("weather", law), rate=8000, width=1)
    core.drain()
    stopped = first(core.log, "input_audio_buffer.speech_stopped")
    assert abs(stopped["audio_end_ms"] - 2780) <= 20
    done = first(core.log, "response.done")["response"]
    assert done["audio"]["output"]["format"] == fmt
    deltas = [
        base64.b64decode(e["delta"]) for e in core.log if e["type"] == "response.output_audio.delta"
    ]
    assert {len(d) for d in deltas[:-1]} == {800}  # 100 ms at 8 kHz, one byte a sample
    transcript = first(core.log, "response.output_audio_transcript.done")["transcript"]
    assert 0.04 < sum(map(len, deltas)) / 8000 / len(transcript) < 0.09


def test_g711_ulaw_reply_decodes_to_speech() -> None:
    """µ-law reply bytes decode to audio as loud as the PCM16 reply (same synthesiser)."""
    core = Core("beta")
    core.send({"type": "session.update", "session": {"output_audio_format": "g711_ulaw"}})
    core.send(user_text("Hi"))
    core.send({"type": "response.create"})
    core.drain()
    samples = ulaw_decode(audio_of(core.log))
    assert samples.std() > 1000
    assert first(core.log, "response.done")["response"]["output_audio_format"] == "g711_ulaw"


def test_manual_turns_commit_and_clear() -> None:
    """With turn_detection null nothing is detected; commit makes the item (no automatic
    response), clear empties the buffer, and a commit of < 100 ms is refused."""
    core = Core()
    core.send(ga_update(audio={"input": {"turn_detection": None}}))
    core.stream(speech("hello"))
    assert "input_audio_buffer.speech_started" not in types(core.log)
    events = core.send({"type": "input_audio_buffer.commit"})
    assert types(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert core.drain() == []
    core.send(append(silence(50)))
    (error,) = core.send({"type": "input_audio_buffer.commit"})
    assert error["error"]["message"].endswith("buffer only has 50.00ms of audio.")
    assert types(core.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]


def test_semantic_vad_uses_an_eagerness_window() -> None:
    """semantic_vad acts as server VAD with a silence window by eagerness: "high" splits
    hello.flac at its pause, "low" does not."""
    counts = {}
    for eagerness in ("high", "low"):
        core = Core()
        core.send(
            ga_update(
                audio={
                    "input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}
                }
            )
        )
        core.stream(speech("hello") + silence(1000))
        counts[eagerness] = types(core.log).count("input_audio_buffer.committed")
    assert counts == {"high": 2, "low": 1}


def test_create_response_false_waits_for_the_client() -> None:
    """With create_response false, a VAD turn commits but no response starts."""
    core = Core()
    core.send(ga_update(audio={"input": {"turn_detection": {**VAD_500, "create_response": False}}}))
    core.stream(speech("weather"))
    core.drain()
    assert "input_audio_buffer.committed" in types(core.log)
    assert "response.created" not in types(core.log)


def test_idle_timeout_triggers_a_response_on_the_audio_timeline() -> None:
    """idle_timeout_ms counts streamed audio after the reply would have finished playing;
    then timeout_triggered, a user item and a response with the idle reply follow."""
    core = Core()
    core.send(ga_update(audio={"input": {"turn_detection": {**VAD_500, "idle_timeout_ms": 2000}}}))
    core.send(user_text("Hi"))
    core.send({"type": "response.create"})
    core.drain()
    reply_ms = len(audio_of(core.log)) // 48
    core.stream(silence(reply_ms + 1500))
    assert "input_audio_buffer.timeout_triggered" not in types(core.log)
    core.stream(silence(600))
    timeout = first(core.log, "input_audio_buffer.timeout_triggered")
    played = len(audio_of(core.log)) // 2  # ticks: reply samples at 24 kHz
    # the wait starts when the reply has finished playing and lasts idle_timeout_ms
    assert timeout["audio_start_ms"] == played // 24
    assert timeout["audio_end_ms"] == (played + 2000 * 24) // 24
    committed = core.log[core.log.index(timeout) + 1]
    assert committed["type"] == "input_audio_buffer.committed"
    assert committed["item_id"] == timeout["item_id"]
    events = core.drain()
    assert (
        first(events, "response.output_audio_transcript.done")["transcript"]
        == "Are you still there?"
    )


# --------------------------------------------------------------------------- text, out of band


def test_text_modality_streams_output_text() -> None:
    """output_modalities ["text"] gives output_text deltas whose concatenation is the done
    text, and an output_text item part; no audio."""
    core = Core(scenario=load_scenario(SCENARIOS / "demo.toml"))
    core.send(ga_update(output_modalities=["text"]))
    core.send(user_text("what time is it"))
    core.send({"type": "response.create"})
    events = core.drain()
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == first(events, "response.output_text.done")["text"]
    assert text == "I am a simulator, so it is always the same time for me."
    item = first(events, "response.output_item.done")["item"]
    assert item["content"] == [{"type": "output_text", "text": text}]
    assert "response.output_audio.delta" not in types(events)


def test_out_of_band_response_stays_out_of_the_conversation() -> None:
    """conversation "none": no conversation.item events, conversation_id null, metadata and
    instructions honoured, and the pending user turn is still answered afterwards."""
    scenario = parse_scenario(
        '[[turn]]\ntext = "classify"\nreply = "billing"\n[[turn]]\nreply = "main answer"'
    )
    core = Core(scenario=scenario)
    core.send(user_text("Hello"))
    events = core.send(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "instructions": "Classify the topic.",
                "metadata": {"topic": "classification"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Classify!"}],
                    }
                ],
            },
        }
    )
    events += core.drain()
    assert not [t for t in types(events) if t.startswith("conversation.item")]
    done = first(events, "response.done")["response"]
    assert done["conversation_id"] is None
    assert done["metadata"] == {"topic": "classification"}
    assert done["output"][0]["content"][0]["text"] == "billing"
    core.send({"type": "response.create"})
    assert (
        first(core.drain(), "response.output_audio_transcript.done")["transcript"] == "main answer"
    )


def test_out_of_band_response_may_run_beside_an_in_band_one() -> None:
    """An out-of-band response.create is accepted while the default conversation is busy."""
    core = Core()
    core.send(user_text("Hi"))
    core.send({"type": "response.create"})
    events = core.send({"type": "response.create", "response": {"conversation": "none"}})
    assert types(events)[0] == "response.created"
    done = [e for e in core.drain() if e["type"] == "response.done"]
    assert len(done) == 2


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_max_output_tokens_cuts_the_reply(modality: str) -> None:
    """A reply longer than max_output_tokens stops there: the item and the response end
    incomplete (reason max_output_tokens) and the usage stays within the limit."""
    core = Core(scenario=parse_scenario('[[turn]]\nreply = "one two three four five six seven"'))
    core.send(user_text("Hi"))
    limit = 12 if modality == "audio" else 3
    core.send(
        {
            "type": "response.create",
            "response": {"max_output_tokens": limit, "output_modalities": [modality]},
        }
    )
    events = core.drain()
    done = first(events, "response.done")["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["output"][0]["status"] == "incomplete"
    part = done["output"][0]["content"][0]
    said = part.get("transcript", part.get("text"))
    assert "one two three four five six seven".startswith(said)
    assert 0 < len(said) < len("one two three four five six seven")
    assert 0 < done["usage"]["output_tokens"] <= limit
    assert first(events, "conversation.item.done")["item"]["status"] == "incomplete"


# --------------------------------------------------------------------------- function calls


def weather_core(protocol: str = "ga") -> Core:
    core = Core(protocol, scenario=load_scenario(SCENARIOS / "weather.toml"))
    session = {"tools": [WEATHER_TOOL]}
    core.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", **session} if protocol == "ga" else session,
        }
    )
    return core


def test_function_call_round_trip() -> None:
    """The scripted turn answers with a spoken preamble and a function_call in one
    response; after the function output and response.create the answer is spoken."""
    core = weather_core()
    core.send(user_text("What's the weather in Paris?"))
    core.send({"type": "response.create"})
    events = core.drain()
    done = first(events, "response.done")["response"]
    assert [o["type"] for o in done["output"]] == ["message", "function_call"]
    call = done["output"][1]
    assert call["name"] == "get_weather"
    assert call["arguments"] == '{"city":"Paris","unit":"celsius"}'
    args = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    args_done = first(events, "response.function_call_arguments.done")
    assert args == args_done["arguments"] == call["arguments"]
    assert args_done["name"] == "get_weather"
    assert args_done["call_id"] == call["call_id"]
    assert first(events, "response.output_item.added")["output_index"] == 0
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c":14}'}
    added = core.send({"type": "conversation.item.create", "item": output})
    assert added[0]["previous_item_id"] == call["id"]
    core.send({"type": "response.create"})
    answer = first(core.drain(), "response.output_audio_transcript.done")["transcript"]
    assert answer == 'Here is what the weather service says: {"temp_c":14}'


def test_beta_function_call_args_done_has_name() -> None:
    """Beta's function_call_arguments.done carries the function's name, as a real beta
    capture does though the beta SDK model lacks it (PROTOCOL.md §3.2, §8.7)."""
    core = weather_core("beta")
    core.send(user_text("weather?"))
    core.send({"type": "response.create"})
    done = first(core.drain(), "response.function_call_arguments.done")
    assert done["name"] == "get_weather"


def test_a_call_without_its_tool_is_answered_in_words() -> None:
    """When the session lacks the scripted tool, the call's answer is spoken instead."""
    core = Core(scenario=load_scenario(SCENARIOS / "demo.toml"))
    core.send(user_text("first"))
    core.send(user_text("weather please"))
    core.send({"type": "response.create"})
    events = core.drain()
    assert "response.function_call_arguments.done" not in types(events)
    said = first(events, "response.output_audio_transcript.done")["transcript"]
    assert said.startswith("Let me check that for you. It is fourteen degrees")


# --------------------------------------------------------------------------- barge-in


def test_barge_in_cancels_the_response_mid_stream() -> None:
    """User speech while audio streams: speech_started, then the open part's done events,
    the item incomplete, response.done cancelled with turn_detected, then the new turn."""
    core = voice_core(scenario=load_scenario(SCENARIOS / "demo.toml"))
    core.stream(speech("hello"), at=0.0)
    core.advance(1.0)  # 0.3 s in, audio started at 2x: a few chunks are out
    sent_before = len(audio_of(core.log))
    assert sent_before > 0
    events = core.stream(speech("stop"), at=1.0)
    order = without_deltas(events)
    i = order.index("input_audio_buffer.speech_started")
    assert order[i + 1 : i + 7] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    done = first(events, "response.done")["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    partial = first(events, "response.output_audio_transcript.done")["transcript"]
    assert "Yes, I can hear you clearly. How can I help you today?".startswith(partial)
    assert len(partial) < 54


def test_barge_in_before_any_output_gives_an_empty_cancelled_response() -> None:
    """Cancelled before its first item: response.done cancelled with no output and zero
    usage, and no item events (as captured)."""
    core = Core()
    core.send(user_text("Hi"), at=0.0)
    core.send({"type": "response.create"}, at=0.0)
    events = core.send({"type": "response.cancel"}, at=0.05)
    assert types(events) == ["response.done"]
    response = events[0]["response"]
    assert response["output"] == []
    assert response["usage"]["total_tokens"] == 0
    assert response["status_details"]["reason"] == "client_cancelled"
    assert core.drain() == []


def test_truncate_cuts_audio_and_clears_the_transcript() -> None:
    """After a cancel, truncate to what was played: truncated event, retrieve shows the
    shorter audio and an empty transcript; beyond the audio is an error."""
    core = Core()
    core.send(user_text("Hi"), at=0.0)
    core.send({"type": "response.create"}, at=0.0)
    core.advance(0.6)
    (done, *_) = [
        e for e in core.send({"type": "response.cancel"}, at=0.6) if e["type"] == "response.done"
    ]
    item_id = done["response"]["output"][0]["id"]
    sent_ms = len(audio_of(core.log)) // 48
    (error,) = core.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": sent_ms + 1,
        }
    )
    assert (
        error["error"]["message"]
        == f"Audio content of {sent_ms}ms is already shorter than {sent_ms + 1}ms"
    )
    (truncated,) = core.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 150,
        }
    )
    assert truncated == {
        **truncated,
        "type": "conversation.item.truncated",
        "item_id": item_id,
        "audio_end_ms": 150,
    }
    item = core.send({"type": "conversation.item.retrieve", "item_id": item_id})[0]["item"]
    assert len(base64.b64decode(item["content"][0]["audio"])) == 150 * 48
    assert item["content"][0]["transcript"] == ""
    assert item["status"] == "incomplete"


def test_truncate_refuses_user_items() -> None:
    """Only assistant audio can be truncated."""
    core = Core()
    (added, _) = core.send(user_text("Hi"))
    (error,) = core.send(
        {
            "type": "conversation.item.truncate",
            "item_id": added["item"]["id"],
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    assert error["error"]["code"] == "unsupported_content_type"


def test_interrupt_response_false_defers_the_next_reply() -> None:
    """Without interrupt_response, speech does not cancel; the new turn's reply starts once
    the current response is done."""
    core = Core()
    core.send(
        ga_update(audio={"input": {"turn_detection": {**VAD_500, "interrupt_response": False}}})
    )
    core.send(user_text("Hi"), at=0.0)
    core.send({"type": "response.create"}, at=0.0)
    core.stream(speech("weather"), at=0.5)
    assert "response.done" not in types(core.log)
    core.drain()
    statuses = [e["response"]["status"] for e in core.log if e["type"] == "response.done"]
    assert statuses == ["completed", "completed"]


# --------------------------------------------------------------------------- items


def test_item_create_orders_by_previous_item_id() -> None:
    """Items go last by default, first with "root", after a given item otherwise; an
    unknown predecessor is an error."""
    core = Core()
    a = core.send(user_text("a"))[0]["item"]["id"]
    b_events = core.send({**user_text("b"), "previous_item_id": "root"})
    assert b_events[0]["previous_item_id"] is None
    b = b_events[0]["item"]["id"]
    c_events = core.send({**user_text("c"), "previous_item_id": b})
    assert c_events[0]["previous_item_id"] == b
    (error,) = core.send({**user_text("d"), "previous_item_id": "item_missing"})
    assert error["error"]["param"] == "previous_item_id"
    c = c_events[0]["item"]["id"]
    (added, _) = core.send(user_text("e"))
    assert added["previous_item_id"] == a
    assert core.send({"type": "conversation.item.delete", "item_id": c}) == [
        {**core.log[-1], "type": "conversation.item.deleted", "item_id": c}
    ]
    (error,) = core.send({"type": "conversation.item.retrieve", "item_id": c})
    assert error["error"]["code"] == "invalid_value"


def test_item_create_keeps_client_ids_and_never_echoes_audio() -> None:
    """A client-chosen id is kept (a duplicate is an error); input audio is not echoed but
    is returned by retrieve."""
    core = Core()
    audio = base64.b64encode(speech("hello")[:4800]).decode()
    item = {
        "id": "item_mine",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": audio}],
    }
    added, _done = core.send({"type": "conversation.item.create", "item": item})
    assert added["item"]["id"] == "item_mine"
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    (error,) = core.send({"type": "conversation.item.create", "item": item})
    assert error["error"]["param"] == "item.id"
    got = core.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})[0]["item"]
    assert got["content"][0]["audio"] == audio


def test_beta_items_use_created_and_flat_shapes() -> None:
    """Beta announces items once with conversation.item.created, items carry
    object realtime.item, assistant parts say audio."""
    core = Core("beta")
    (created,) = core.send(user_text("Hi"))
    assert created["type"] == "conversation.item.created"
    assert created["item"]["object"] == "realtime.item"
    core.send({"type": "response.create"})
    events = core.drain()
    assert "conversation.item.done" not in types(events)
    item = first(events, "response.output_item.done")["item"]
    assert item["object"] == "realtime.item"
    assert item["content"][0]["type"] == "audio"
    assert "response.audio.delta" in types(events)
    assert first(core.log, "rate_limits.updated")["rate_limits"][0]["name"] == "requests"


# --------------------------------------------------------------------------- determinism


def script(core: Core) -> list[dict[str, Any]]:
    core.stream(speech("weather"), at=0.0)
    core.advance(0.8)
    core.stream(speech("stop"), at=0.8)
    core.send(user_text("what time is it"), at=5.0)
    core.send({"type": "response.create"}, at=5.0)
    core.drain()
    return core.log


def test_same_seed_and_input_give_identical_events() -> None:
    """Two sessions with the same seed, scenario and input emit the same events, byte for
    byte; another seed changes the ids but not the shape."""
    scenario = load_scenario(SCENARIOS / "demo.toml")
    one = script(voice_core(seed=7, scenario=scenario))
    two = script(voice_core(seed=7, scenario=scenario))
    other = script(voice_core(seed=8, scenario=scenario))
    assert one == two
    assert types(one) == types(other)
    assert one[0]["session"]["id"] != other[0]["session"]["id"]
    assert audio_of(one) == audio_of(other)
