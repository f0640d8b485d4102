"""The test helper that turns event dicts into log rows keeps the storage contract."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from rtrec.replay.testing import binary, client, mark, pcm16_b64, record_events, server, tone
from rtrec.schemas import g711
from rtrec.schemas.storage import Direction, FrameKind, Stream


def test_audio_is_cut_out_where_cut_at_says_and_archived() -> None:
    """The payload keeps "" where the base64 was; putting it back at cut_at gives the frame's
    JSON again; the samples land in the stream at the span's offset."""
    first, second = pcm16_b64(480, seed=1), pcm16_b64(240, seed=2)
    rec = record_events(
        [
            client({"type": "input_audio_buffer.append", "event_id": "a1", "audio": first}),
            client({"type": "input_audio_buffer.append", "audio": second}),
            server(
                {
                    "type": "response.output_audio.delta",
                    "event_id": "e1",
                    "response_id": "R",
                    "item_id": "A",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": second,
                }
            ),
        ]
    )
    for row, audio in zip(rec.records, (first, second, second), strict=True):
        span = row.audio
        assert span is not None
        assert span.cut_at is not None
        assert row.payload is not None
        assert row.payload[span.cut_at - 1 : span.cut_at + 1] == '""'
        whole = row.payload[: span.cut_at] + audio + row.payload[span.cut_at :]
        assert json.loads(whole) == json.loads(orjson.dumps(json.loads(whole)))
        assert row.wire_size == len(whole.encode())
        pcm = rec.audio.samples(span.stream, span.sample_rate, span.offset, span.samples)
        assert pcm == base64.b64decode(audio)
    spans = [r.audio for r in rec.records]
    assert [(s.stream, s.offset, s.samples) for s in spans if s] == [
        (Stream.INPUT, 0, 480),
        (Stream.INPUT, 480, 240),
        (Stream.OUTPUT, 0, 240),
    ]
    assert (rec.records[2].item_id, rec.records[2].response_id) == ("A", "R")


def test_g711_audio_is_decoded_at_8_khz_after_a_session_update() -> None:
    """After a session.updated choosing G.711, audio is decoded to PCM16 at 8 kHz."""
    codes = bytes(range(0, 256, 2))
    rec = record_events(
        [
            server(
                {
                    "type": "session.updated",
                    "event_id": "e",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"format": {"type": "audio/pcmu"}}},
                    },
                }
            ),
            client(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(codes).decode()}
            ),
        ]
    )
    span = rec.records[1].audio
    assert span is not None
    assert (span.sample_rate, span.samples) == (8000, 128)
    got = rec.audio.samples(Stream.INPUT, 8000, 0, 128)
    assert got == g711.ulaw_decode(codes).astype("<i2").tobytes()


def test_directions_kinds_times_and_seqs() -> None:
    """Plain dicts take their direction from their type; marks and binary frames keep their
    kind; times advance by step_ms unless a frame gives its own; seqs count from first_seq."""
    rec = record_events(
        [
            {"type": "response.create"},
            {"type": "response.created", "event_id": "e", "response": {"id": "R"}},
            mark("close", {"code": 1000}),
            binary(b"\x01", t_ms=50),
            {"type": "whatever.new"},
        ],
        step_ms=10,
        first_seq=7,
    )
    rows = rec.records
    assert [r.direction for r in rows] == [
        Direction.CLIENT,
        Direction.SERVER,
        Direction.RECORDER,
        Direction.CLIENT,
        Direction.SERVER,
    ]
    assert [r.kind for r in rows][2:4] == [FrameKind.MARK, FrameKind.BINARY]
    assert [r.t_ns // 1_000_000 for r in rows] == [0, 10, 20, 50, 60]
    assert [r.seq for r in rows] == [7, 8, 9, 10, 11]
    assert rows[3].payload_bin == b"\x01"
    assert rows[1].response_id == "R"


def test_invalid_audio_is_refused_with_a_clear_error() -> None:
    """Audio that is not base64, or not whole PCM16 samples, is a ValueError."""
    with pytest.raises(ValueError, match="not valid base64"):
        record_events([{"type": "input_audio_buffer.append", "audio": "!!!"}])
    with pytest.raises(ValueError, match="even number of bytes"):
        record_events([{"type": "input_audio_buffer.append", "audio": "AA=="}])


def test_tone_is_deterministic_and_not_silent() -> None:
    """The synthetic tone is the same every time, differs by seed, and is not silence."""
    assert tone(100, seed=1) == tone(100, seed=1) != tone(100, seed=2)
    assert any(tone(100))
