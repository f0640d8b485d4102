"""rtrec's GPT-Live classes match the official SDK's models (``openai.types.live``), losslessly.

The SDK is walked programmatically (tests/live_sdk.py): a future SDK that adds an event, a
field or a union member fails here until rtrec has a class for it. Where the SDK types an
object that rtrec deliberately keeps as JSON, the path must be listed in ``OPEN`` below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
import pydantic
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrec.cli import cli
from rtrec.schemas import (
    SchemaError,
    SchemaObject,
    UnknownEvent,
    UnknownObject,
    to_dict,
    to_json,
)
from rtrec.schemas import events as realtime
from rtrec.schemas import live_events as le
from rtrec.schemas import live_objects as lo
from rtrec.schemas.dialects import LIVE, LIVE_FORK, LIVE_SIDEBAND, REALTIME_GA, Dialect, dialect_of
from rtrec.schemas.storage import Direction

from .live_sdk import compare, examples, sdk_event_models
from .strategies import for_class, json_objects

DIALECTS: Final[dict[str, Dialect]] = {
    "primary": LIVE,
    "fork": LIVE_FORK,
    "sideband": LIVE_SIDEBAND,
}

#: SDK-typed objects rtrec keeps as open JSON (path with union tags removed), and why.
OPEN: Final = {
    # a Responses API ``ResponseInputItem`` (dozens of item types): the backend's business
    "response.item.create.item",
    # the shell tool's container/local environment, skills and network policy
    "tools[].environment",
}

CASES = [
    pytest.param(endpoint, direction, name, id=f"{endpoint}-{direction}-{name}")
    for (endpoint, direction), models in sorted(sdk_event_models().items())
    for name in sorted(models)
]


def _untyped(value: Any, path: str = "$") -> list[str]:
    """Paths of unknown objects and undeclared keys in a parsed tree."""
    if isinstance(value, UnknownObject | UnknownEvent):
        return [f"{path}: unknown"]
    if isinstance(value, SchemaObject):
        found = [f"{path}.{key}: extra" for key in value.extra]
        for a in attrs.fields(type(value)):
            if a.name != "extra":
                found += _untyped(getattr(value, a.name), f"{path}.{a.name}")
        return found
    if isinstance(value, tuple):
        return [p for i, x in enumerate(value) for p in _untyped(x, f"{path}[{i}]")]
    return []


def test_every_sdk_union_has_exactly_its_classes() -> None:
    """Each connection's dialect knows every type of the SDK union of its direction, and
    invents none: primary, fork and sideband, client and server."""
    for (endpoint, direction), models in sorted(sdk_event_models().items()):
        ours = DIALECTS[endpoint].events(Direction(direction))
        assert set(ours) == set(models), f"{endpoint} {direction}"
        base = le.LiveClientEvent if direction == "client" else le.LiveServerEvent
        assert all(issubclass(c, base) for c in ours.values()), f"{endpoint} {direction}"


@pytest.mark.parametrize(("endpoint", "direction", "name"), CASES)
def test_fields_match_the_sdk(endpoint: str, direction: str, name: str) -> None:
    """Field names, required/optional, nullability and JSON kinds agree with the SDK model,
    recursively through every nested object and union member."""
    model = sdk_event_models()[(endpoint, direction)][name]
    cls = DIALECTS[endpoint].events(Direction(direction))[name]
    open_paths: set[str] = set()
    assert compare(model, cls, name, open_paths) == []
    for path in open_paths:
        plain = re.sub(r"<[^>]*>", "", path)
        assert any(plain.endswith(o) for o in OPEN), f"{path} is kept open but not listed"


def test_every_open_path_is_still_open_in_the_sdk() -> None:
    """The list of deliberately open objects holds no stale entry."""
    used: set[str] = set()
    for (endpoint, direction), models in sdk_event_models().items():
        for name, model in models.items():
            found: set[str] = set()
            compare(model, DIALECTS[endpoint].events(Direction(direction))[name], name, found)
            used |= {o for p in found for o in OPEN if re.sub(r"<[^>]*>", "", p).endswith(o)}
    assert used == OPEN


@pytest.mark.parametrize(("endpoint", "direction", "name"), CASES)
def test_sdk_examples_round_trip(endpoint: str, direction: str, name: str) -> None:
    """Events built from the SDK's models (minimal, all nulls, and one per union variant)
    parse strictly into their class with every field typed, and write back unchanged."""
    model = sdk_event_models()[(endpoint, direction)][name]
    events = DIALECTS[endpoint].events(Direction(direction))
    for example in examples(model):
        model.model_validate(example)  # a valid SDK example to begin with
        event = events.from_dict(example)
        assert type(event) is events[name]
        assert to_dict(event) == example
        assert _untyped(event) == []


def _with_future_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {**{k: _with_future_keys(v) for k, v in value.items()}, "x_future": [1, None]}
    if isinstance(value, list):
        return [_with_future_keys(v) for v in value]
    return value


@pytest.mark.parametrize(("endpoint", "direction", "name"), CASES)
def test_unknown_fields_survive_at_every_level(endpoint: str, direction: str, name: str) -> None:
    """A key no class declares, added to every object of a full example, is kept (in
    ``extra``) and written back in place."""
    model = sdk_event_models()[(endpoint, direction)][name]
    events = DIALECTS[endpoint].events(Direction(direction))
    example = _with_future_keys(examples(model)[2])
    event = events.from_dict(example)
    assert type(event) is events[name]
    assert event.extra == {"x_future": [1, None]}
    assert to_dict(event) == example


@pytest.mark.parametrize("dialect", [LIVE, LIVE_FORK, LIVE_SIDEBAND], ids=lambda d: d.endpoint)
@pytest.mark.parametrize("direction", [Direction.CLIENT, Direction.SERVER])
def test_unknown_types_survive(dialect: Dialect, direction: Direction) -> None:
    """An event type the SDK does not know (yet) is kept whole, strict or lenient."""
    obj = {"type": "session.hologram.delta", "event_id": "e1", "frames": [{"x": 1}]}
    for lenient in (False, True):
        event = dialect.parse(direction, obj, lenient=lenient)
        assert isinstance(event, UnknownEvent)
        assert event.type == "session.hologram.delta"
        assert to_dict(event) == obj


def test_unknown_nested_variants_survive() -> None:
    """An audio format, delegation, question or decision item of a type the schema does not
    know stays an UnknownObject, and the frame round-trips."""
    frame = {
        "type": "session.start",
        "session": {
            "model": "gpt-live-2",
            "audio": {"format": {"type": "audio/opus", "rate": 48000}, "output": {"voice": "x"}},
            "delegation": {"type": "agents", "agents": {"id": "a"}},
            "triggers": [{"type": "regex", "pattern": "help"}],
        },
    }
    event = LIVE.parse(Direction.CLIENT, frame)
    assert isinstance(event, le.SessionStart)
    session = event.session
    assert isinstance(session.audio, lo.LiveAudio)
    assert session.audio.format == UnknownObject(raw={"type": "audio/opus", "rate": 48000})
    assert isinstance(session.delegation, UnknownObject)
    assert session.triggers == (UnknownObject(raw={"type": "regex", "pattern": "help"}),)
    assert to_dict(event) == frame


def test_the_dialect_and_direction_choose_the_class() -> None:
    """Names shared with Realtime, or used in both directions, parse by the connection's
    dialect and the frame's direction."""
    update = {"type": "session.update", "session": {"triggers": []}}
    assert isinstance(REALTIME_GA.parse(Direction.CLIENT, update), realtime.SessionUpdate)
    assert isinstance(LIVE.parse(Direction.CLIENT, update), le.SessionUpdate)
    error = {
        "type": "error",
        "event_id": "e1",
        "error": {
            "type": "invalid_request_error",
            "code": "x",
            "message": "m",
            "client_event_id": "c",
        },
    }
    live_error = LIVE.parse(Direction.SERVER, error)
    assert isinstance(live_error, le.ErrorEvent)
    assert live_error.error.client_event_id == "c"
    assert isinstance(REALTIME_GA.parse(Direction.SERVER, error), realtime.ErrorEvent)
    append = {"type": "session.input_audio.append", "audio": "AAAA"}
    assert isinstance(LIVE_SIDEBAND.parse(Direction.SERVER, append), le.InputAudioReflected)
    assert isinstance(LIVE.parse(Direction.CLIENT, append), le.InputAudioAppend)
    start = {"type": "session.start", "session": {}}
    assert isinstance(LIVE_FORK.parse(Direction.CLIENT, start), le.ForkSessionStart)
    with pytest.raises(SchemaError) as caught:
        LIVE.parse(Direction.CLIENT, start)  # a primary start needs a model
    assert caught.value.problems == (("$.session.model", "missing required field"),)
    with pytest.raises(ValueError, match="not protocol events"):
        LIVE.events(Direction.RECORDER)


def test_a_handshake_path_leads_to_its_events() -> None:
    """One lookup from the upgrade request to the typed event: no branching on names."""
    dialect = dialect_of("/v1/live/sessions/live_1/attach?graceful_close=true", [], [])
    paused = dialect.parse(Direction.SERVER, {"type": "session.paused", "event_id": "e"})
    assert isinstance(paused, le.SessionPaused)
    # the primary's union has no pause: the WebRTC wake policy is reported to the sideband
    primary = dialect_of("/v1/live/sessions", [], [])
    assert isinstance(primary.parse(Direction.SERVER, to_dict(paused)), UnknownEvent)


def test_strict_errors_name_the_path() -> None:
    """A mistyped nested field is reported by JSON path; lenient parsing keeps it raw."""
    frame = {
        "type": "session.started",
        "event_id": "e1",
        "session": {
            "id": "live_1",
            "expires_at": 1,
            "model": "gpt-live-1",
            "status": "active",
            "audio": {"format": {"type": "audio/pcm", "rate": "24000"}},
        },
    }
    with pytest.raises(SchemaError) as caught:
        LIVE.parse(Direction.SERVER, frame)
    assert caught.value.problems == (("$.session.audio.format.rate", "expected int, got str"),)
    event = LIVE.parse(Direction.SERVER, frame, lenient=True)
    assert isinstance(event, le.SessionStarted)
    assert event.session.id == "live_1"
    assert to_dict(event) == frame


def test_typed_access_reads_like_the_protocol() -> None:
    """The classes give the values the reducer needs without dict probing: the audio
    format's encoding and rate, a delegation's target, usage seconds, a decision's answers."""
    started = LIVE.parse(
        Direction.SERVER,
        {
            "type": "session.started",
            "event_id": "e1",
            "client_event_id": "c1",
            "session": {
                "id": "live_1",
                "expires_at": 1_767_232_800,
                "model": "gpt-live-1",
                "status": "active",
                "audio": {
                    "format": {"type": "audio/pcmu", "rate": 8000},
                    "output": {"voice": {"id": "v1"}},
                },
                "delegation": {
                    "type": "responses",
                    "responses": {
                        "model": "gpt-5",
                        "tools": [
                            {"type": "function", "name": "f"},
                            {"type": "web_search", "search_context_size": "low"},
                        ],
                    },
                },
                "input": [{"role": "user", "content": [{"text": "hi"}]}],
            },
        },
    )
    assert isinstance(started, le.SessionStarted)
    audio = started.session.audio
    assert isinstance(audio, lo.LiveAudio)
    assert isinstance(audio.format, lo.LivePcmuFormat)
    assert (audio.format.encoding.value, audio.format.rate) == ("g711_ulaw", 8000)
    assert isinstance(audio.output, lo.LiveAudioOutput)
    assert audio.output.voice == lo.CustomVoice(id="v1")
    delegation = started.session.delegation
    assert isinstance(delegation, lo.ResponsesDelegation)
    tools = delegation.responses.tools
    assert isinstance(tools, tuple)
    assert isinstance(tools[0], lo.LiveFunctionTool)
    assert isinstance(tools[1], lo.HostedTool)
    assert tools[1].extra == {"search_context_size": "low"}
    assert started.session.input == (
        lo.InitialUser(role="user", content=(lo.TextPart(text="hi"),)),
    )
    decided = LIVE.parse(
        Direction.SERVER,
        {
            "type": "decision.event",
            "event_id": "e2",
            "trigger_id": "t1",
            "source_event_id": "e0",
            "source_event_type": "session.input_transcript.delta",
            "delegation_id": None,
            "event": {
                "type": "decision.completed",
                "decision": {
                    "answers": [{"type": "predicate", "name": "upset", "probability": 0.75}],
                    "model": "gpt-5-mini",
                    "usage": {
                        "input_tokens": 10,
                        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                        "output_tokens": 1,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 11,
                    },
                },
            },
        },
    )
    assert isinstance(decided, le.DecisionEvent)
    assert isinstance(decided.event, lo.DecisionCompleted)
    assert decided.event.decision.answers == (
        lo.DecisionPredicateAnswer(name="upset", probability=0.75),
    )
    assert decided.delegation_id is None
    closed = LIVE.parse(
        Direction.SERVER,
        {
            "type": "session.closed",
            "event_id": "e3",
            "reason": "close_requested",
            "session": {"id": "live_1", "expires_at": 1, "model": "gpt-live-1", "status": "active"},
            "usage": {"seconds": 32.5},
        },
    )
    assert isinstance(closed, le.SessionClosed)
    assert (closed.reason, closed.usage.seconds) == ("close_requested", 32.5)


def test_written_events_validate_against_the_sdk() -> None:
    """Events rtrec builds itself (as the simulator could) are what the SDK parses."""
    events: list[tuple[le.LiveEvent, type[pydantic.BaseModel]]] = []
    models = sdk_event_models()[("primary", "server")]
    events.append(
        (
            le.OutputTranscriptDelta(event_id="e1", delta=" hi", start_ms=0, end_ms=120),
            models["session.output_transcript.delta"],
        )
    )
    events.append((le.OutputAudioDelta(delta="AAAA"), models["session.output_audio.delta"]))
    events.append(
        (
            le.DelegationCreated(
                event_id="e2",
                offset_ms=1500,
                delegation=lo.DelegationInfo(id="d1", target="client", type="delegation"),
            ),
            models["session.delegation.created"],
        )
    )
    for event, model in events:
        parsed = model.model_validate_json(to_json(event))
        assert parsed.model_dump(mode="json", exclude_unset=True) == to_dict(event)


def _one_place_per_class() -> list[tuple[str, Direction, type[le.LiveEvent]]]:
    # A class shared by several connections parses the same way in each: test it once.
    found: dict[type[le.LiveEvent], tuple[str, Direction]] = {}
    for endpoint, dialect in sorted(DIALECTS.items()):
        for direction in (Direction.CLIENT, Direction.SERVER):
            for cls in dialect.events(direction).values():
                found.setdefault(cls, (endpoint, direction))
    return sorted(((e, d, c) for c, (e, d) in found.items()), key=lambda x: x[2].__name__)


LIVE_CLASSES = _one_place_per_class()


@pytest.mark.parametrize(
    ("endpoint", "direction", "cls"),
    LIVE_CLASSES,
    ids=[f"{e}-{d.value}-{c.__name__}" for e, d, c in LIVE_CLASSES],
)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_generated_events_round_trip(
    endpoint: str, direction: Direction, cls: type[le.LiveEvent], data: st.DataObject
) -> None:
    """Hypothesis-built instances of every Live event class (unknown keys and nested
    unknown objects included) survive event -> dict -> event through their dialect."""
    event = data.draw(for_class(cls))
    wire = to_dict(event)
    parsed = DIALECTS[endpoint].parse(direction, wire)
    assert parsed == event
    assert to_dict(parsed) == wire


@pytest.mark.parametrize("endpoint", sorted(DIALECTS))
@settings(max_examples=60, deadline=None)
@given(obj=json_objects, data=st.data())
def test_lenient_parse_of_garbage_round_trips(
    endpoint: str, obj: dict[str, Any], data: st.DataObject
) -> None:
    """Lenient parsing of any object with a known Live type never raises and loses nothing."""
    dialect = DIALECTS[endpoint]
    direction = data.draw(st.sampled_from([Direction.CLIENT, Direction.SERVER]))
    name = data.draw(st.sampled_from(sorted(dialect.events(direction))))
    obj = {**obj, "type": name}
    event = dialect.parse(direction, obj, lenient=True)
    assert type(event) is dialect.events(direction)[name]
    assert to_dict(event) == obj


# --------------------------------------------------------------------------- rtrec check-events

_LIVE_LINES: Final = [
    {"direction": "client", "event": {"type": "session.start", "session": {"model": "gpt-live-1"}}},
    {"direction": "client", "event": {"type": "session.input_audio.append", "audio": "AAAA"}},
    {"direction": "server", "event": {"type": "session.input_audio.append", "audio": "AAAA"}},
    {"event": {"type": "session.update", "session": {"triggers": []}}},
    {"event": {"type": "session.usage.updated", "event_id": "e1", "usage": {"seconds": 1}}},
]


def test_check_events_types_gpt_live_lines(tmp_path: Path) -> None:
    """`rtrec check-events --dialect live` types each line by its direction (or by which side
    may send its type) and exits 0 when typing loses nothing; a bad line is named by path."""
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in _LIVE_LINES))
    done = CliRunner().invoke(cli, ["check-events", "--dialect", "live", str(path)])
    assert done.exit_code == 0, done.output
    for cls in ("SessionStart", "InputAudioAppend", "InputAudioReflected", "SessionUpdate"):
        assert cls in done.output
    assert "SessionUsageUpdated" in done.output
    assert "UnknownEvent" not in done.output
    with path.open("ab") as f:
        f.write(b'{"type": "session.start", "session": {"audio": {}}}\n')
    done = CliRunner().invoke(cli, ["check-events", "--dialect", "live", str(path)])
    assert done.exit_code == 1
    assert "line 6: $.session.model: missing required field" in done.output


def test_check_events_reads_a_live_bundle_in_its_dialect(tmp_path: Path) -> None:
    """A bundle's events.jsonl is checked in the dialect of its recorded handshake: a
    sideband's reflected input and pause are typed with no option given."""
    (tmp_path / "session.json").write_bytes(
        orjson.dumps(
            {
                "format": "rtrec-bundle",
                "session": {
                    "request_path": "/v1/live/sessions/live_1/attach?graceful_close=true",
                    "request_headers": '{"Authorization": "Bearer [REDACTED]"}',
                    "subprotocol": None,
                    "protocol": "live",
                },
            }
        )
    )
    rows = [
        {"seq": 0, "direction": "recorder", "payload": None},
        {"seq": 1, "direction": "server", "payload": '{"type":"session.paused","event_id":"e"}'},
        {
            "seq": 2,
            "direction": "server",
            "payload": '{"type":"session.input_audio.append","audio":""}',
        },
        {"seq": 3, "direction": "client", "payload": '{"type":"transport.dtmf.send","event":"5"}'},
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    done = CliRunner().invoke(cli, ["check-events", str(events)])
    assert done.exit_code == 0, done.output
    for cls in ("SessionPaused", "InputAudioReflected", "TransportDtmfSend"):
        assert cls in done.output
    assert "UnknownEvent" not in done.output
    # read as Realtime, the same frames are unknown events
    done = CliRunner().invoke(cli, ["check-events", "--dialect", "ga", str(events)])
    assert "UnknownEvent" in done.output
