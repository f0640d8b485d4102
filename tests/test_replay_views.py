"""The views of a rebuilt state: transcript text, canonical JSON, golden files, diffs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from rtrec.replay import (
    ConversationState,
    GoldenStatus,
    MemoryAudio,
    canonical_json,
    canonical_state,
    check_golden,
    diff_conversations,
    rebuild,
    transcript,
)
from rtrec.replay.testing import Frame, Recording, record_events
from rtrec.schemas.storage import Stream

from .replay_scenarios import SCENARIOS
from .replay_streams import Wire


def recorded(name: str, protocol: str = "ga", **kw: Any) -> tuple[ConversationState, Recording]:
    rec = record_events(SCENARIOS[name](Wire(protocol)), **kw)
    return rebuild(rec.records).state, rec


def _rename(value: Any, suffix: str) -> Any:
    if isinstance(value, dict):
        return {k: _rename(v, suffix) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, suffix) for v in value]
    if isinstance(value, str):
        for prefix in ("item_", "resp_", "call_", "event_", "evt_", "sess_"):
            if value.startswith(prefix):
                return f"{prefix}{suffix}{value[len(prefix) :]}"
    return value


def renamed(frames: list[Frame], suffix: str) -> list[Frame]:
    """The same frames with every generated id (items, responses, calls, events, session)
    changed, as a second recording of the same conversation would have them."""
    out = []
    for frame in frames:
        assert isinstance(frame.event, dict)
        out.append(Frame(_rename(frame.event, suffix), frame.direction, frame.kind, frame.t_ms))
    return out


# --------------------------------------------------------------------------- transcript


def test_transcript_shows_speakers_calls_outputs_tokens_and_errors() -> None:
    """The transcript lists who said what when, the call with its arguments and output,
    each response's status and tokens, and the error with the client event behind it."""
    state, _ = recorded("text_and_call", step_ms=100)
    assert transcript(state).splitlines() == [
        "session sess_1 · GA · gpt-realtime",
        '  0.20s  user      "Weather in Paris?"',
        '  0.60s  assistant call get_weather({"city":"Paris"}) [call_abc]',
        "                   response resp_1 completed · tokens in 0, out 0 · first delta +0.300s"
        " · done +0.800s",
        '  1.60s  tool      [call_abc] → {"temp":21}',
        '  2.00s  assistant "21 degrees and sunny."',
        "                   response resp_2 completed · tokens in 0, out 0 · first delta +0.400s"
        " · done +1.000s",
        '  3.10s  error     invalid_request_error response_cancel_not_active: "There is no active'
        ' response." ← response.cancel (seq 30)',
    ]


def test_transcript_marks_audio_truncation_and_interruption() -> None:
    """A barge-in shows the heard audio out of the generated, the truncation point, the
    generated transcript, and the interruption; user audio shows its duration."""
    state, _ = recorded("barge_in")
    text = transcript(state)
    assert "[audio 1.00s] (no transcript)" in text
    assert (
        '[audio 0.42s of 1.00s] ✂ truncated at 420 ms (generated: "Paris is lovely in") '
        "(incomplete) ⚡ interrupted (turn_detected)"
    ) in text
    assert '[audio 0.80s] "Wait, stop."' in text
    assert "response resp_2 cancelled (client_cancelled)" in text


def test_transcript_lists_what_is_outside_the_conversation() -> None:
    """Detached and deleted items, unknown event types, ignored frames and anomalies are
    listed after the conversation, so nothing the log holds is silently dropped."""
    w = Wire("ga")
    from rtrec.replay.testing import binary, server

    state = rebuild(
        record_events(
            [
                w.session_created(),
                *w.user_item(w.user_text("U1", "keep"), None),
                *w.user_item(w.user_text("U2", "drop"), "U1"),
                w.deleted("U2"),
                w.transcript_delta("R9", "A9", "orphaned words"),
                server({"type": "brand.new", "event_id": "x"}),
                binary(b"\x00"),
            ]
        ).records
    ).state
    text = transcript(state)
    assert 'not in the conversation:\n    0.01s  assistant [audio 0.00s] "orphaned words"' in text
    assert 'deleted:\n    0.00s  user      "drop"' in text
    assert "unknown event types: brand.new ×1" in text
    assert "frames: 1 binary" in text
    assert "  seq 6: item_not_seen: transcript delta for A9" in text
    assert "response R9 unfinished · no usage" in text


# --------------------------------------------------------------------------- canonical JSON


def test_canonical_json_is_sorted_indented_and_stable() -> None:
    """Sorted keys, two-space indent, a final newline, and the same text on every run."""
    state, rec = recorded("voice")
    text = canonical_json(state, audio=rec.audio)
    assert text.endswith("}\n")
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    again, rec2 = recorded("voice")
    assert canonical_json(again, audio=rec2.audio) == text
    assert doc["format"] == "rtrec.replay/1"


def test_canonical_audio_is_duration_and_checksum_of_the_samples() -> None:
    """Audio appears as duration, sample count, rate and the sha256 of the PCM16 samples it
    refers to, never as base64; the checksum covers only the heard part when truncated."""
    state, rec = recorded("barge_in")
    doc = canonical_state(state, audio=rec.audio)
    assistant = doc["items"][1]["content"][0]
    heard = state.items["item_A1"].parts[0].heard_audio
    pcm = b"".join(rec.audio.samples(r.stream, r.sample_rate, r.offset, r.samples) for r in heard)
    assert assistant["audio"] == {
        "duration_s": 0.42,
        "samples": 10080,
        "sample_rate": 24000,
        "sha256": hashlib.sha256(pcm).hexdigest(),
        "refs": [["output", 24000, 0, 10080]],
    }
    assert assistant["transcript"] == ""
    assert assistant["truncated"]["audio_end_ms"] == 420
    assert assistant["truncated"]["generated_transcript"] == "Paris is lovely in"
    assert assistant["truncated"]["generated_audio"]["samples"] == 24000
    assert "AAAA" not in canonical_json(state, audio=rec.audio)


def test_stable_ids_replace_generated_ids_with_ordinals() -> None:
    """stable_ids: item#n, resp#n, call#n, event#n, session#n in reading order; times, seqs,
    archive offsets and server event ids left out."""
    state, rec = recorded("text_and_call")
    doc = canonical_state(state, stable_ids=True, audio=rec.audio)
    assert [i["id"] for i in doc["items"]] == ["item#1", "item#2", "item#3", "item#4"]
    assert doc["items"][1]["call_id"] == doc["items"][2]["call_id"] == "call#1"
    assert [r["id"] for r in doc["responses"]] == ["resp#1", "resp#2"]
    assert doc["responses"][1]["output"] == ["item#4"]
    assert doc["errors"][0]["client_event_id"] == "event#1"
    assert doc["session"]["id"] == "session#1"
    assert "expires_at" not in doc["session"]
    text = canonical_json(state, stable_ids=True, audio=rec.audio)
    for volatile in ('"t":', '"seq":', '"times":', '"refs":', "item_", "resp_", "call_abc"):
        assert volatile not in text


def test_two_recordings_of_one_conversation_give_the_same_stable_json() -> None:
    """Different generated ids and different timing, same conversation: byte-equal stable
    canonical JSON (what keeps golden files from churning)."""
    frames = SCENARIOS["voice"](Wire("ga"))
    first = record_events(frames, step_ms=1)
    second = record_events(renamed(frames, "x9"), step_ms=7)
    a = canonical_json(rebuild(first.records).state, stable_ids=True, audio=first.audio)
    b = canonical_json(rebuild(second.records).state, stable_ids=True, audio=second.audio)
    assert a == b
    assert canonical_json(rebuild(first.records).state) != canonical_json(
        rebuild(second.records).state
    )


def test_canonical_state_without_audio_source_has_no_checksums() -> None:
    """Without an AudioSource the audio summary has duration and samples only."""
    state, _ = recorded("voice")
    audio = canonical_state(state)["items"][0]["content"][0]["audio"]
    assert set(audio) == {"duration_s", "samples", "sample_rate", "refs"}


def test_missing_samples_are_a_lookup_error_naming_them() -> None:
    """An audio source without the samples a state refers to fails loudly, naming them."""
    state, _ = recorded("voice")
    with pytest.raises(LookupError, match=r"samples 7200\.\.38400 of input at 24000 Hz"):
        canonical_state(state, audio=MemoryAudio())


def test_memory_audio_rejects_half_samples() -> None:
    """PCM16 needs whole samples."""
    with pytest.raises(ValueError, match="even number of bytes"):
        MemoryAudio().append(Stream.INPUT, 24000, b"\x00")


# --------------------------------------------------------------------------- golden files


def test_golden_file_round_trip_and_a_changed_conversation_fails(tmp_path: Path) -> None:
    """A missing golden fails; update writes it; the same conversation then passes; a
    conversation with one changed word fails with a unified diff showing that word."""
    path = tmp_path / "golden" / "voice.json"
    state, rec = recorded("voice")
    text = canonical_json(state, stable_ids=True, audio=rec.audio)

    missing = check_golden(text, path)
    assert (missing.status, missing.ok) == (GoldenStatus.MISSING, False)
    assert "(missing)" in missing.diff

    written = check_golden(text, path, update=True)
    assert (written.status, written.ok) == (GoldenStatus.WRITTEN, True)
    assert path.read_text() == text
    assert check_golden(text, path).status is GoldenStatus.EQUAL

    frames = [
        Frame(
            json.loads(json.dumps(f.event).replace("sunny", "rainy")), f.direction, f.kind, f.t_ms
        )
        for f in SCENARIOS["voice"](Wire("ga"))
    ]
    changed = record_events(frames)
    other = canonical_json(rebuild(changed.records).state, stable_ids=True, audio=changed.audio)
    result = check_golden(other, path)
    assert (result.status, result.ok) == (GoldenStatus.DIFFERENT, False)
    assert '-          "transcript": "It is sunny in Paris today.",' in result.diff
    assert '+          "transcript": "It is rainy in Paris today.",' in result.diff
    assert result.diff.startswith(f"--- {path} (golden)\n+++ rebuilt\n")

    assert check_golden(other, path, update=True).status is GoldenStatus.WRITTEN
    assert check_golden(other, path).ok


# --------------------------------------------------------------------------- diff


def test_diff_of_equal_conversations_is_empty() -> None:
    """Two recordings of one conversation with different ids and timing do not differ."""
    frames = SCENARIOS["text_and_call"](Wire("ga"))
    a = rebuild(record_events(frames).records).state
    b = rebuild(record_events(renamed(frames, "q"), step_ms=3).records).state
    diff = diff_conversations(a, b)
    assert diff.equal
    assert diff.report() == "A and B: the conversations are equal\n"


def test_diff_reports_changed_texts_calls_statuses_and_extra_items() -> None:
    """A changed answer, changed call arguments, a changed response status and an extra item
    are each reported, with both values, in a readable report."""
    w = Wire("ga")
    frames = SCENARIOS["text_and_call"](w)
    a = rebuild(record_events(frames).records).state
    changed = [
        Frame(
            json.loads(
                json.dumps(f.event).replace("21 degrees", "19 degrees").replace("Paris", "Lyon")
            ),
            f.direction,
            f.kind,
            f.t_ms,
        )
        for f in frames
    ]
    extra = [*w.user_item(w.user_text("item_U9", "Thanks"), "item_A1")]
    b = rebuild(record_events([*changed, *extra]).records).state
    diff = diff_conversations(a, b)
    got = {(c.where, c.what): (c.a, c.b) for c in diff.changes}
    assert got[("item 1 (user message)", "content[0].text")] == (
        "'Weather in Paris?'",
        "'Weather in Lyon?'",
    )
    assert got[("item 2 (function_call get_weather)", "arguments")] == (
        """'{"city":"Paris"}'""",
        """'{"city":"Lyon"}'""",
    )
    assert got[("item 4 (assistant message)", "content[0].text")] == (
        "'21 degrees and sunny.'",
        "'19 degrees and sunny.'",
    )
    assert got[("item 5 of B", "item")] == (None, "user message 'Thanks'")
    report = diff.report("recorded", "replayed")
    assert report.startswith("recorded and replayed differ in 4 places:\n")
    assert "  item 5 of B: only in replayed: user message 'Thanks'\n" in report


def test_diff_reports_response_status_and_truncation() -> None:
    """A response cancelled in one run and completed in the other, and a truncation present
    in only one, are differences."""
    cut, _ = recorded("barge_in")
    w = Wire("ga")
    frames = [f for f in SCENARIOS["barge_in"](w) if "truncat" not in json.dumps(f.event)]
    whole = rebuild(record_events(frames).records).state
    diff = diff_conversations(cut, whole)
    whats = {c.what for c in diff.changes}
    assert "content[0].truncated" in whats
    assert "content[0].transcript" in whats
