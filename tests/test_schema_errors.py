"""Malformed events raise one exception type that names the JSON path and the problem."""

from __future__ import annotations

import pytest

from rtrec.schemas import (
    UNSET,
    InputAudioBufferAppend,
    ResponseOutputAudioDelta,
    SchemaError,
    ServerVad,
    SessionUpdate,
    from_dict,
    from_json,
    structure,
    to_dict,
)


def test_wrong_nested_type_names_the_path() -> None:
    """A string where an int belongs is reported at its full JSON path."""
    with pytest.raises(SchemaError) as info:
        from_dict(
            {"type": "response.done", "event_id": "e", "response": {"usage": {"input_tokens": "3"}}}
        )
    assert info.value.problems == (
        ("$.response.usage.input_tokens", "expected int or null, got str"),
    )
    assert str(info.value).startswith("$.response.usage.input_tokens: expected int")


def test_missing_required_fields_are_all_listed() -> None:
    """Every missing required field is named, not just the first."""
    with pytest.raises(SchemaError) as info:
        from_dict({"type": "conversation.item.truncate", "item_id": "item_1"})
    assert set(info.value.problems) == {
        ("$.content_index", "missing required field"),
        ("$.audio_end_ms", "missing required field"),
    }


def test_list_elements_are_indexed() -> None:
    """A bad element inside an array is reported with its index."""
    with pytest.raises(SchemaError) as info:
        from_dict(
            {
                "type": "rate_limits.updated",
                "event_id": "e",
                "rate_limits": [
                    {"name": "tokens", "limit": 10},
                    {"name": "requests", "limit": "x"},
                ],
            }
        )
    assert info.value.problems == (("$.rate_limits[1].limit", "expected int or null, got str"),)


def test_enum_errors_list_the_valid_values() -> None:
    """An unknown status names the statuses the protocol defines."""
    with pytest.raises(
        SchemaError, match=r"\$\.response\.status: expected one of 'completed'.*; got 'exploded'"
    ):
        from_dict({"type": "response.done", "event_id": "e", "response": {"status": "exploded"}})


def test_no_coercion_of_primitives() -> None:
    """Ints are not silently turned into strings (cattrs would), nor bools into ints."""
    with pytest.raises(SchemaError, match=r"\$\.audio: expected str, got int"):
        from_dict({"type": "input_audio_buffer.append", "audio": 12})
    with pytest.raises(SchemaError, match=r"\$\.audio_end_ms: expected int, got bool"):
        from_dict(
            {
                "type": "conversation.item.truncate",
                "item_id": "i",
                "content_index": 0,
                "audio_end_ms": True,
            }
        )


def test_type_must_be_present_and_a_string() -> None:
    """An object without a string type is rejected in strict mode."""
    with pytest.raises(SchemaError, match=r"\$\.type: missing required field"):
        from_dict({"event_id": "e"})
    with pytest.raises(SchemaError, match=r"\$\.type: expected str, got int"):
        from_dict({"type": 5})


def test_from_json_rejects_non_objects_and_bad_json() -> None:
    """Invalid JSON and non-object JSON get a SchemaError at the root."""
    with pytest.raises(SchemaError, match=r"^\$: invalid JSON"):
        from_json(b"{nope")
    with pytest.raises(SchemaError, match=r"^\$: expected object, got array"):
        from_json("[1, 2]")


def test_lenient_mode_keeps_the_bad_field_raw() -> None:
    """Lenient parsing types what it can and keeps the rest in extra, in the right place."""
    obj = {"type": "input_audio_buffer.append", "event_id": 7, "audio": "AAAA"}
    event = from_dict(obj, lenient=True)
    assert isinstance(event, InputAudioBufferAppend)
    assert event.audio == "AAAA"
    assert event.event_id is UNSET
    assert event.extra == {"event_id": 7}
    assert to_dict(event) == obj


def test_absent_and_null_are_different() -> None:
    """A field that was absent stays absent; a field that was null stays null."""
    absent = from_dict({"type": "session.update", "session": {"type": "realtime"}})
    null = from_dict(
        {"type": "session.update", "session": {"type": "realtime", "instructions": None}}
    )
    assert isinstance(absent, SessionUpdate)
    assert isinstance(null, SessionUpdate)
    assert "instructions" not in to_dict(absent)["session"]
    assert to_dict(null)["session"] == {"type": "realtime", "instructions": None}


def test_int_in_float_field_is_kept_as_int() -> None:
    """JSON 1 and 1.0 are different texts, so a float field keeps an int as an int."""
    vad = structure({"type": "server_vad", "threshold": 1}, ServerVad)
    assert vad.threshold == 1
    assert type(vad.threshold) is int
    assert to_dict(vad) == {"type": "server_vad", "threshold": 1}


def test_constructed_events_serialise_type_first() -> None:
    """Events built in code serialise like the service writes them: type, then event_id."""
    event = ResponseOutputAudioDelta(
        event_id="event_1",
        response_id="resp_1",
        item_id="item_1",
        output_index=0,
        content_index=0,
        delta="AAAA",
    )
    assert list(to_dict(event))[:2] == ["type", "event_id"]
    assert to_dict(event)["type"] == "response.output_audio.delta"
