"""The schema layer is lossless: ``to_dict(from_dict(x)) == x`` for every JSON object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rtrec import schemas
from rtrec.schemas import UnknownEvent, event_types, from_dict, from_json, to_dict

from .strategies import for_class, json_objects, json_values

WIRE_EXAMPLES = Path(__file__).parent / "data" / "wire_examples.jsonl"


def load_wire_examples() -> list[dict[str, Any]]:
    with WIRE_EXAMPLES.open() as f:
        return [json.loads(line) for line in f if line.strip()]


EXAMPLES = load_wire_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_wire_example_round_trips(example: dict[str, Any]) -> None:
    """Every realistic wire example parses strictly into its own class and writes back
    exactly, unknown fields included."""
    event = from_dict(example["event"])
    assert not isinstance(event, UnknownEvent)
    assert type(event) is event_types()[example["event"]["type"]]
    assert event.type == example["event"]["type"]
    assert to_dict(event) == example["event"]


def test_unknown_fields_of_wire_examples_land_in_extra() -> None:
    """Fields the schema does not declare (GA's obfuscation padding) are kept in extra."""
    with_obfuscation = [e["event"] for e in EXAMPLES if "obfuscation" in e["event"]]
    assert len(with_obfuscation) >= 3
    for obj in with_obfuscation:
        event = from_dict(obj)
        declared = {a.name for a in attrs.fields(type(event))}
        if "obfuscation" not in declared:
            assert event.extra["obfuscation"] == obj["obfuscation"]


def test_wire_examples_cover_every_type() -> None:
    """The hand-written examples exercise every event type the schema knows."""
    seen = {e["event"]["type"] for e in EXAMPLES}
    missing = set(event_types()) - seen
    assert not missing, f"no wire example for {sorted(missing)}"


def test_wire_example_json_text_round_trips() -> None:
    """from_json accepts the text and bytes of a frame and gives the same event."""
    for example in EXAMPLES[:20]:
        text = json.dumps(example["event"])
        assert from_json(text) == from_json(text.encode()) == from_dict(example["event"])


@pytest.mark.parametrize("cls", sorted(set(event_types().values()), key=lambda c: c.__name__))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_generated_events_round_trip(cls: type[schemas.Event], data: st.DataObject) -> None:
    """Hypothesis-built instances of every event class survive dict -> event -> dict."""
    event = data.draw(for_class(cls))
    wire = to_dict(event)
    parsed = from_dict(wire)
    assert parsed == event
    assert to_dict(parsed) == wire


@settings(max_examples=200)
@given(
    obj=json_objects,
    name=st.one_of(st.text(max_size=30), st.sampled_from(["x.unknown", "response.future.delta"])),
)
def test_unknown_types_round_trip(obj: dict[str, Any], name: str) -> None:
    """Objects with a type the schema does not know come back unchanged as UnknownEvent."""
    assume(name not in event_types())  # Hypothesis mines string constants from our code
    obj = {**obj, "type": name}
    event = from_dict(obj)
    assert isinstance(event, UnknownEvent)
    assert event.type == name
    assert to_dict(event) == obj


@settings(max_examples=200)
@given(obj=json_objects, name=st.sampled_from(sorted(event_types())))
def test_lenient_parse_of_garbage_round_trips(obj: dict[str, Any], name: str) -> None:
    """Lenient parsing never raises on any object with a known type, and loses nothing."""
    obj = {**obj, "type": name}
    event = from_dict(obj, lenient=True)
    assert type(event) is event_types()[name]
    assert to_dict(event) == obj


@settings(max_examples=100)
@given(value=json_values)
def test_lenient_parse_keeps_a_mistyped_nested_field(value: Any) -> None:
    """A mistyped nested value is kept raw and the rest of the event stays typed."""
    obj = {
        "type": "response.done",
        "event_id": "event_1",
        "response": {"id": "resp_1", "status": "completed", "usage": {"input_tokens": value}},
    }
    event = from_dict(obj, lenient=True)
    assert isinstance(event, schemas.ResponseDone)
    assert event.response.id == "resp_1"
    assert to_dict(event) == obj
