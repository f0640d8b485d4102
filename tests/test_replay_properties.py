"""Properties of the reducer: incremental equals batch, time travel equals a fresh fold, GA
equals beta, and nothing a log can hold makes it fail."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtrec.replay import (
    INITIAL,
    ConversationState,
    apply,
    canonical_state,
    diff_conversations,
    fold,
    rebuild,
)
from rtrec.replay.testing import Frame, record_events
from rtrec.schemas import event_types
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

from .replay_scenarios import SCENARIOS
from .replay_streams import Wire
from .strategies import json_values

RECORDINGS = {
    f"{name}-{protocol}": record_events(build(Wire(protocol))).records
    for name, build in SCENARIOS.items()
    for protocol in ("ga", "beta")
}

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def renumbered(records: list[FrameRecord]) -> list[FrameRecord]:
    return [attrs.evolve(r, seq=i) for i, r in enumerate(records, start=1)]


@st.composite
def streams(draw: st.DrawFn) -> list[FrameRecord]:
    """A recorded scenario, as recorded or with its rows in another order (the reducer must
    be a function of the rows, whatever they say)."""
    records = list(RECORDINGS[draw(st.sampled_from(sorted(RECORDINGS)))])
    if draw(st.booleans()):
        records = draw(st.permutations(records))
    elif draw(st.booleans()):
        records = records[draw(st.integers(0, len(records))) :]  # a log cut at the front
    return renumbered(records)


@FAST
@given(data=st.data(), records=streams())
def test_folding_in_any_split_equals_folding_at_once(
    data: st.DataObject, records: list[FrameRecord]
) -> None:
    """fold(s, 1..n) equals folding the same rows in pieces, each from the previous state."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=6)))
    state = INITIAL
    start = 0
    for cut in [*cuts, len(records)]:
        state = fold(state, records[start:cut])
        start = cut
    assert state == fold(INITIAL, records)


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_every_single_split_of_each_scenario_equals_folding_at_once(name: str) -> None:
    """For every k, folding rows 1..k and then k+1..n equals folding 1..n at once."""
    records = RECORDINGS[name]
    whole = fold(INITIAL, records)
    for k in range(len(records) + 1):
        assert fold(fold(INITIAL, records[:k]), records[k:]) == whole, f"split at {k}"


@settings(max_examples=15, deadline=None)
@given(records=streams())
def test_applying_one_row_at_a_time_equals_folding_at_once(records: list[FrameRecord]) -> None:
    """apply(...apply(apply(s, e1), e2)..., en) equals fold(s, [e1..en])."""
    state = INITIAL
    for record in records:
        state = apply(state, record)
    assert state == fold(INITIAL, records)


def test_apply_does_not_change_the_state_it_is_given() -> None:
    """The fold is pure: the input state is equal to itself before and after."""
    records = list(RECORDINGS["voice-ga"])
    half = fold(INITIAL, records[:40])
    snapshot = canonical_state(half)
    fold(half, records[40:])
    apply(half, records[40])
    assert canonical_state(half) == snapshot


@FAST
@given(
    name=st.sampled_from(sorted(RECORDINGS)),
    every=st.integers(1, 40),
    data=st.data(),
)
def test_time_travel_equals_a_fresh_fold_of_the_prefix(
    name: str, every: int, data: st.DataObject
) -> None:
    """Replay.state_at(seq) and state_at_time(t) equal folding the rows up to there."""
    records = RECORDINGS[name]
    replay = rebuild(records, checkpoint_every=every)
    index = data.draw(st.integers(0, len(records)))
    prefix = records[:index]
    expected = fold(INITIAL, prefix)
    seq = prefix[-1].seq if prefix else -1
    assert replay.state_at(seq) == expected
    t_ns = prefix[-1].t_ns if prefix else -1
    assert replay.state_at_time(t_ns) == expected
    assert replay.state == fold(INITIAL, records)


def test_time_travel_points_in_seconds_and_milliseconds() -> None:
    """Replay.at takes a seq, "12.5s" or "800ms", and rejects anything else clearly."""
    records = RECORDINGS["voice-ga"]  # one row per millisecond, from seq 0 at t = 0
    replay = rebuild(records, checkpoint_every=16)
    assert replay.at(10) == replay.at("10") == fold(INITIAL, records[:11])
    assert replay.at("0.0105s") == replay.at("10ms") == fold(INITIAL, records[:11])
    assert replay.at("0s") == fold(INITIAL, records[:1])
    with pytest.raises(ValueError, match=r"give a seq \(120\) or a time"):
        replay.at("soon")


def test_rebuild_rejects_rows_out_of_order_or_from_two_sessions() -> None:
    """rebuild names the problem when rows are not one session in seq order."""
    records = list(RECORDINGS["voice-ga"][:5])
    with pytest.raises(ValueError, match="seq 1 follows seq 2"):
        rebuild([records[0], records[2], records[1]])
    other = attrs.evolve(records[1], session_id="other", seq=99)
    with pytest.raises(ValueError, match="two sessions"):
        rebuild([records[0], other])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ga_and_beta_recordings_rebuild_to_the_same_conversation(name: str) -> None:
    """The same scenario recorded in GA and in beta gives the same conversation: equal
    structural diff and equal canonical items, responses and errors (names aside)."""
    ga = rebuild(RECORDINGS[f"{name}-ga"]).state
    beta = rebuild(RECORDINGS[f"{name}-beta"]).state
    diff = diff_conversations(ga, beta)
    assert diff.equal, diff.report("GA", "beta")
    doc_ga = canonical_state(ga, stable_ids=True)
    doc_beta = canonical_state(beta, stable_ids=True)
    for key in ("items", "detached_items", "deleted_items", "responses", "errors"):
        assert doc_ga[key] == doc_beta[key], key
    assert (doc_ga["protocol"], doc_beta["protocol"]) == ("ga", "beta")


# --------------------------------------------------------------------------- robustness

_TYPES = sorted(event_types())
_IDS = st.sampled_from(["A", "B", "C", "R1", "R2", "call_1", "evt_1"])
_KEYS = {
    "item_id": _IDS,
    "response_id": _IDS,
    "previous_item_id": st.one_of(st.none(), _IDS),
    "content_index": st.one_of(st.integers(0, 2), json_values),
    "output_index": st.one_of(st.integers(0, 2), json_values),
    "delta": st.one_of(st.text(max_size=5), json_values),
    "audio_start_ms": st.one_of(st.integers(-100, 5000), json_values),
    "audio_end_ms": st.one_of(st.integers(-100, 5000), json_values),
    "event_id": st.one_of(_IDS, json_values),
    "item": st.one_of(
        st.fixed_dictionaries(
            {"id": _IDS},
            optional={
                "type": st.sampled_from(["message", "function_call", "mcp_call", "zzz"]),
                "role": st.sampled_from(["user", "assistant", "system"]),
                "status": st.one_of(st.sampled_from(["in_progress", "completed"]), json_values),
                "content": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "type": st.sampled_from(["audio", "text", "input_audio", "x"]),
                            "transcript": st.one_of(st.none(), st.text(max_size=4)),
                            "text": json_values,
                        },
                    ),
                    max_size=2,
                ),
            },
        ),
        json_values,
    ),
    "response": st.one_of(
        st.fixed_dictionaries(
            {"id": _IDS},
            optional={
                "status": st.sampled_from(["in_progress", "completed", "cancelled", "x"]),
                "output": st.lists(st.fixed_dictionaries({"id": _IDS}), max_size=2),
                "usage": json_values,
            },
        ),
        json_values,
    ),
    "error": st.one_of(
        st.fixed_dictionaries(
            {"type": st.text(max_size=3), "message": st.text(max_size=3)},
            optional={"event_id": _IDS},
        ),
        json_values,
    ),
    "session": st.one_of(
        st.fixed_dictionaries({}, optional={"type": st.text(max_size=3)}), json_values
    ),
    "transcript": json_values,
    "text": json_values,
    "arguments": json_values,
}


@st.composite
def junk_records(draw: st.DrawFn) -> list[FrameRecord]:
    """Rows of events with known types and fields of any shape, in any direction, with or
    without audio spans."""
    out = []
    for seq in range(1, draw(st.integers(1, 25)) + 1):
        body: dict[str, Any] = {"type": draw(st.sampled_from(_TYPES))}
        for key in draw(st.lists(st.sampled_from(sorted(_KEYS)), max_size=6, unique=True)):
            body[key] = draw(_KEYS[key])
        span = None
        if draw(st.booleans()):
            span = AudioSpan(
                stream=draw(st.sampled_from(list(Stream))),
                offset=draw(st.integers(0, 1000)),
                samples=draw(st.integers(0, 500)),
                encoding=AudioEncoding.PCM16,
                sample_rate=draw(st.sampled_from([24000, 8000])),
                cut_at=None,
            )
        direction = draw(st.sampled_from(list(Direction)))
        kind = draw(st.sampled_from([FrameKind.TEXT] * 8 + [FrameKind.BINARY, FrameKind.MARK]))
        out.append(
            FrameRecord(
                session_id="junk",
                seq=seq,
                direction=direction,
                t_ns=seq * 1000,
                wall_ns=seq * 1000,
                kind=kind,
                wire_size=0,
                payload=json.dumps(body),
                type=body["type"],
                event_id=body.get("event_id") if isinstance(body.get("event_id"), str) else None,
                item_id=body.get("item_id"),
                audio=span,
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(records=junk_records(), cut=st.integers(0, 25))
def test_reducer_never_fails_on_malformed_events(records: list[FrameRecord], cut: int) -> None:
    """Events of known types with fields of any shape are folded without an exception (the
    lenient parser keeps what it cannot type), and still fold the same in two pieces."""
    state = fold(INITIAL, records)
    assert state.events == len(records)
    assert fold(fold(INITIAL, records[:cut]), records[cut:]) == state
    canonical_state(state)  # and every view can show the result


WIRE_EXAMPLES = Path(__file__).parent / "data" / "wire_examples.jsonl"


def test_every_recorded_wire_example_folds_in_any_order() -> None:
    """The 246 real wire events, in file order and shuffled, fold without an exception and
    are all known types."""
    frames = []
    for line in WIRE_EXAMPLES.read_text().splitlines():
        example = json.loads(line)
        direction = Direction.CLIENT if example["direction"] == "client" else Direction.SERVER
        frames.append(Frame(example["event"], direction))
    records = list(record_events(frames).records)
    state = fold(INITIAL, records)
    assert state.unknown_types == {}
    assert state.invalid_frames == ()
    rng = random.Random(5)
    for _ in range(5):
        rng.shuffle(records)
        assert isinstance(fold(INITIAL, renumbered(records)), ConversationState)


def test_reducer_imports_neither_trio_duckdb_nor_soundfile() -> None:
    """Importing rtrec.replay (and so the reducer) in a fresh interpreter loads no trio,
    duckdb or soundfile."""
    code = (
        "import sys, rtrec.replay, rtrec.replay._reducer; "
        "print(sorted(m for m in ('trio', 'duckdb', 'soundfile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rows_with_plain_string_enums_rebuild_the_same() -> None:
    """A log reader may hand over kind, direction and stream as plain strings (DuckDB
    VARCHARs): the rebuilt state and its canonical JSON are the same."""
    for name, records in RECORDINGS.items():
        plain = [
            attrs.evolve(
                r,
                kind=str(r.kind),
                direction=str(r.direction),
                audio=attrs.evolve(r.audio, stream=str(r.audio.stream)) if r.audio else None,
            )
            for r in records
        ]
        want = canonical_state(rebuild(records).state)
        assert canonical_state(rebuild(plain).state) == want, name


@FAST
@given(records=st.one_of(streams(), junk_records()), data=st.data())
def test_rows_as_columns_fold_and_time_travel_the_same(
    records: list[FrameRecord], data: st.DataObject
) -> None:
    """The same rows handed over as FrameColumns (what a log reader gives) rebuild, fold in
    pieces and time travel to exactly the states the FrameRecords give."""
    cols = FrameColumns.from_records(records)
    assert list(cols) == records
    every = data.draw(st.integers(1, 40))
    want, got = rebuild(records, checkpoint_every=every), rebuild(cols, checkpoint_every=every)
    assert got.state == want.state
    last = records[-1].seq if records else -1  # junk_records() may draw no rows at all
    for seq in range(-1, last + 2):
        assert got.state_at(seq) == want.state_at(seq), seq
    cut = data.draw(st.integers(0, len(records)))
    head, tail = (FrameColumns.from_records(part) for part in (records[:cut], records[cut:]))
    assert fold(fold(INITIAL, head), tail) == want.state


def typed_only(records: list[FrameRecord]) -> list[FrameRecord]:
    """The rows without their ``type`` column: the fast paths recognise a row by it, so
    every row goes through the schema's parser and a typed handler."""
    return [attrs.evolve(r, type=None) for r in records]


HOT_TYPES = ("input_audio_buffer.append", "response.output_audio.delta", "response.audio.delta")


def test_the_scenarios_hold_rows_of_every_hot_type() -> None:
    """The recordings the fast-path tests fold hold appends, audio deltas and text deltas
    with archived audio, so those tests compare the fast paths and not only the typed
    path with itself."""
    rows = [r for records in RECORDINGS.values() for r in records]
    assert any(r.type == "input_audio_buffer.append" and r.audio for r in rows)
    assert any(r.type in HOT_TYPES[1:] and r.audio and r.item_id for r in rows)
    assert any(r.type is not None and r.type.endswith("transcript.delta") for r in rows)


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_fast_paths_give_the_typed_paths_state(name: str) -> None:
    """Each recording folds to the same state with the fast paths as with every row parsed
    and handled by type, from FrameRecords and from FrameColumns."""
    records = list(RECORDINGS[name])
    typed = fold(INITIAL, typed_only(records))
    assert fold(INITIAL, records) == typed
    assert fold(INITIAL, FrameColumns.from_records(records)) == typed


@FAST
@given(records=streams(), data=st.data())
def test_fast_paths_give_the_typed_paths_state_in_any_order(
    records: list[FrameRecord], data: st.DataObject
) -> None:
    """Rows in any order, or a log cut at the front, fold with the fast paths to the state
    the typed path gives, in any split. One known difference is left out: the typed path
    also takes the protocol from a GA-only event name when no session event said it, and
    the fast paths do not look at names."""
    typed = attrs.evolve(fold(INITIAL, typed_only(records)), protocol=None)
    cut = data.draw(st.integers(0, len(records)))
    head, tail = records[:cut], FrameColumns.from_records(records[cut:])
    assert attrs.evolve(fold(fold(INITIAL, head), tail), protocol=None) == typed
