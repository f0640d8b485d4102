"""The wire examples in tests/data/wire_examples.jsonl agree with the official openai SDK models.

Each line is ``{"protocol": "ga"|"beta", "direction": "client"|"server", "name": slug, "event":
{...}}``. Names containing ``extra`` carry fields the SDK does not declare; names containing
``sdk-rejects`` are real wire shapes that the SDK's pydantic union rejects (an SDK gap).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pydantic
import pytest

from .sdk_types import SDK_REJECTS_MARKER, sdk_adapter, sdk_event_types, undeclared_fields

EXAMPLES_PATH = Path(__file__).parent / "data" / "wire_examples.jsonl"
KEYS = frozenset({"protocol", "direction", "name", "event"})
PROTOCOLS = frozenset({"ga", "beta"})
DIRECTIONS = frozenset({"client", "server"})
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
EXTRA_MARKER = "extra"

# Keys whose JSON type is fixed on the wire wherever they occur in these examples.
FLOAT_KEYS = frozenset(
    [
        "threshold",
        "speed",
        "reset_seconds",
        "seconds",
        "start",
        "end",
        "logprob",
        "retention_ratio",
        "strength",
        "temperature",
    ]
)
INT_KEYS = frozenset(
    [
        "audio_start_ms",
        "audio_end_ms",
        "content_index",
        "output_index",
        "expires_at",
        "limit",
        "remaining",
        "prefix_padding_ms",
        "silence_duration_ms",
        "received_at",
        "rate",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "text_tokens",
        "audio_tokens",
        "image_tokens",
        "cached_tokens",
        "post_instructions",
    ]
)
AUDIO_DELTA_TYPES = frozenset({"response.output_audio.delta", "response.audio.delta"})


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token!r}")


def _load_examples() -> list[dict[str, Any]]:
    """Parse the file leniently for parametrization; test_file_parses is the strict check."""
    examples: list[dict[str, Any]] = []
    for line in EXAMPLES_PATH.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line, parse_constant=_reject_constant)
        except ValueError:
            continue
        if isinstance(row, dict) and row.keys() >= KEYS and isinstance(row["event"], dict):
            examples.append(row)
    return examples


EXAMPLES = _load_examples()
ACCEPTED = [row for row in EXAMPLES if SDK_REJECTS_MARKER not in row["name"]]
REJECTED = [row for row in EXAMPLES if SDK_REJECTS_MARKER in row["name"]]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row["name"]) for row in rows]


def _walk(value: Any, key: str | None = None) -> list[tuple[str | None, Any]]:
    """Return every (key, value) pair in a JSON tree; list elements inherit their list's key."""
    pairs: list[tuple[str | None, Any]] = [(key, value)]
    if isinstance(value, dict):
        for child_key, child in value.items():
            pairs.extend(_walk(child, child_key))
    elif isinstance(value, list):
        for child in value:
            pairs.extend(_walk(child, key))
    return pairs


def test_file_parses_with_four_keys_and_unique_names() -> None:
    """Every line is a JSON object with exactly the four keys, valid values and a unique name."""
    lines = EXAMPLES_PATH.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "file must end with a newline"
    rows = []
    for number, line in enumerate(lines[:-1], start=1):
        row = json.loads(line, parse_constant=_reject_constant)
        assert isinstance(row, dict), f"line {number} is not an object"
        assert row.keys() == KEYS, f"line {number} keys: {sorted(row)}"
        assert row["protocol"] in PROTOCOLS, f"line {number}"
        assert row["direction"] in DIRECTIONS, f"line {number}"
        assert isinstance(row["name"], str), f"line {number}"
        assert NAME_RE.match(row["name"]), f"line {number} name {row['name']!r} is not a slug"
        assert isinstance(row["event"], dict), f"line {number}"
        assert isinstance(row["event"].get("type"), str), f"line {number} has no string type"
        rows.append(row)
    duplicates = [name for name, count in Counter(r["name"] for r in rows).items() if count > 1]
    assert not duplicates
    assert len(rows) == len(EXAMPLES)


def test_every_sdk_event_type_has_an_example() -> None:
    """Each SDK union type per protocol/direction has an example, and no example type is unknown."""
    sdk = sdk_event_types()
    covered: dict[tuple[str, str], set[str]] = {key: set() for key in sdk}
    per_key = Counter((row["protocol"], row["direction"]) for row in EXAMPLES)
    unknown = []
    for row in EXAMPLES:
        key = (row["protocol"], row["direction"])
        event_type = row["event"]["type"]
        if event_type not in sdk.get(key, {}):
            unknown.append((row["name"], event_type))
        elif SDK_REJECTS_MARKER not in row["name"]:
            covered[key].add(event_type)
    for key in sorted(sdk):
        print(
            f"{key[0]}/{key[1]}: {len(sdk[key])} SDK types, {len(covered[key])} covered, "
            f"{per_key[key]} examples"
        )
    print(f"total: {len(EXAMPLES)} examples")
    assert not unknown, f"types missing from the SDK union: {unknown}"
    missing = {key: sorted(set(sdk[key]) - covered[key]) for key in sdk}
    assert not any(missing.values()), f"SDK types without an example: {missing}"


@pytest.mark.parametrize("example", ACCEPTED, ids=_ids(ACCEPTED))
def test_example_validates_as_its_sdk_type(example: dict[str, Any]) -> None:
    """The example validates against its SDK union as the member whose type literal matches."""
    key = (example["protocol"], example["direction"])
    event = example["event"]
    model = sdk_event_types()[key].get(event["type"])
    assert model is not None, f"{event['type']!r} is not in the SDK union for {key}"
    instance = sdk_adapter(*key).validate_python(event)
    assert instance.type == event["type"]
    assert type(instance) is model


@pytest.mark.parametrize("example", ACCEPTED, ids=_ids(ACCEPTED))
def test_extra_in_name_iff_undeclared_fields(example: dict[str, Any]) -> None:
    """The name says 'extra' exactly when the SDK model keeps undeclared fields for the event."""
    instance = sdk_adapter(example["protocol"], example["direction"]).validate_python(
        example["event"]
    )
    undeclared = undeclared_fields(instance)
    if EXTRA_MARKER in example["name"]:
        assert undeclared, "named 'extra' but every field is declared by the SDK"
    else:
        assert not undeclared, f"undeclared fields without 'extra' in the name: {undeclared}"


@pytest.mark.parametrize("example", REJECTED, ids=_ids(REJECTED))
def test_sdk_rejects_examples_are_rejected(example: dict[str, Any]) -> None:
    """An example marked sdk-rejects is refused by the SDK union (rename once it accepts)."""
    adapter = sdk_adapter(example["protocol"], example["direction"])
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python(example["event"])


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_audio_fields_are_short_canonical_base64(example: dict[str, Any]) -> None:
    """Audio strings are short canonical base64 (re-encoding the decoded bytes is identity)."""
    event = example["event"]
    audio = [value for key, value in _walk(event) if key == "audio" and isinstance(value, str)]
    if event["type"] in AUDIO_DELTA_TYPES:
        audio.append(event["delta"])
    for text in audio:
        raw = base64.b64decode(text, validate=True)  # raises binascii.Error if malformed
        assert base64.b64encode(raw).decode() == text
        assert 16 <= len(raw) <= 128


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_wire_numbers_keep_their_json_type(example: dict[str, Any]) -> None:
    """Known float fields are JSON floats and known integer fields are JSON ints (never bools)."""
    for key, value in _walk(example["event"]):
        if key in FLOAT_KEYS and value is not None:
            assert type(value) is float, f"{key}={value!r} should be a float"
        if key in INT_KEYS and value is not None:
            assert type(value) is int, f"{key}={value!r} should be an int"
