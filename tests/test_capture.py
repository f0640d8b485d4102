"""The capture core turns every frame into a record that, with its audio, rebuilds the frame
byte for byte; audio goes to the right stream, format and offset; secrets never stay."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrec.recorder.capture import SessionCapture
from rtrec.recorder.redact import PathRedactor
from rtrec.schemas import g711
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import AudioChunk, Direction, FrameKind, FrameRecord, Stream

CLIENT, SERVER = Direction.CLIENT, Direction.SERVER


def rebuild(record: FrameRecord, chunk: AudioChunk | None) -> str | bytes:
    """What the log plus the FLAC give back (the FLAC holds exactly chunk.pcm)."""
    if record.kind is FrameKind.BINARY:
        assert record.payload_bin is not None
        return record.payload_bin
    assert record.payload is not None
    span = record.audio
    if span is None or span.cut_at is None:
        return record.payload
    assert chunk is not None
    samples = np.frombuffer(chunk.pcm, dtype=np.int16)
    if span.encoding is AudioEncoding.PCM16:
        raw = samples.astype("<i2").tobytes()
    elif span.encoding is AudioEncoding.G711_ULAW:
        raw = g711.ulaw_encode(samples)
    else:
        raw = g711.alaw_encode(samples)
    b64 = base64.b64encode(raw).decode()
    return record.payload[: span.cut_at] + b64 + record.payload[span.cut_at :]


def feed(
    cap: SessionCapture, direction: Direction, message: str | bytes
) -> tuple[FrameRecord, AudioChunk | None]:
    record, chunk = cap.frame(direction, message, t_ns=1000, wall_ns=2000)
    assert rebuild(record, chunk) == message
    return record, chunk


def pcm(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(-3000, 3000, n).astype("<i2").tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_sdk_style_append_is_cut_by_position() -> None:
    """The SDK's json.dumps spacing is handled by the fast path; the payload keeps no audio."""
    cap = SessionCapture("s1")
    audio = b64(pcm(2400))
    frame = json.dumps({"type": "input_audio_buffer.append", "audio": audio, "event_id": "e1"})
    record, chunk = feed(cap, CLIENT, frame)
    assert record.payload == json.dumps(
        {"type": "input_audio_buffer.append", "audio": "", "event_id": "e1"}
    )
    assert record.type == "input_audio_buffer.append"
    assert record.event_id == "e1"
    assert record.audio is not None
    assert record.audio.stream is Stream.INPUT
    assert (record.audio.offset, record.audio.samples, record.audio.sample_rate) == (0, 2400, 24000)
    assert chunk is not None
    assert chunk.pcm == base64.b64decode(audio)
    assert record.wire_size == len(frame)


def test_offsets_accumulate_per_stream() -> None:
    """Each stream's sample offsets continue where the previous chunk ended."""
    cap = SessionCapture("s1")
    offsets = []
    for i in range(3):
        rec, _ = feed(
            cap,
            CLIENT,
            json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm(100 + i))}),
        )
        offsets.append((rec.audio.offset, rec.audio.samples))  # type: ignore[union-attr]
    delta = orjson.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_1",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": b64(pcm(480)),
        }
    ).decode()
    rec, _ = feed(cap, SERVER, delta)
    assert offsets == [(0, 100), (100, 101), (201, 102)]
    assert rec.audio is not None
    assert (rec.audio.stream, rec.audio.offset, rec.audio.samples) == (Stream.OUTPUT, 0, 480)
    assert (rec.item_id, rec.response_id) == ("item_1", "resp_1")


@pytest.mark.parametrize(
    "audio",
    [
        "AAECAw",  # missing padding
        "AAECAx==",  # non-zero padding bits
        b64(b"\x01\x02\x03"),  # odd byte count for PCM16
    ],
)
def test_non_canonical_audio_stays_inline_but_is_archived(audio: str) -> None:
    """When the samples cannot give back the exact base64, it stays in the payload."""
    cap = SessionCapture("s1")
    record, chunk = feed(
        cap, CLIENT, json.dumps({"type": "input_audio_buffer.append", "audio": audio})
    )
    assert record.audio is not None
    assert record.audio.cut_at is None
    assert audio in (record.payload or "")
    assert chunk is not None


def test_invalid_base64_is_kept_and_flagged() -> None:
    """Audio that is not base64 is kept inline, not archived, and the row says why."""
    cap = SessionCapture("s1")
    record, chunk = feed(cap, CLIENT, '{"type":"input_audio_buffer.append","audio":"***"}')
    assert chunk is None
    assert record.audio is None
    assert record.parse_error is not None
    assert "base64" in record.parse_error


def test_ulaw_session_decodes_at_8khz_and_keeps_negative_zero_inline() -> None:
    """After session.update to audio/pcmu, appends are G.711 at 8 kHz; a 0x7F byte (µ-law's
    second zero) cannot be rebuilt from samples, so that frame keeps its base64."""
    cap = SessionCapture("s1")
    feed(
        cap,
        CLIENT,
        json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcmu"}}},
                },
            }
        ),
    )
    clean = bytes([0x00, 0x80, 0xFF, 0x10] * 20)
    rec, chunk = feed(
        cap, CLIENT, json.dumps({"type": "input_audio_buffer.append", "audio": b64(clean)})
    )
    assert rec.audio is not None
    assert (rec.audio.encoding, rec.audio.sample_rate, rec.audio.samples) == (
        AudioEncoding.G711_ULAW,
        8000,
        80,
    )
    assert rec.audio.cut_at is not None
    assert chunk is not None
    assert np.frombuffer(chunk.pcm, np.int16).tolist()[:3] == [-32124, 32124, 0]
    rec2, _ = feed(
        cap, CLIENT, json.dumps({"type": "input_audio_buffer.append", "audio": b64(b"\x7f\xff")})
    )
    assert rec2.audio is not None
    assert rec2.audio.cut_at is None
    assert rec2.audio.offset == 80


def test_per_response_output_format_applies_to_its_deltas() -> None:
    """response.created with an A-law format makes that response's deltas A-law at 8 kHz,
    while other responses keep the session's PCM16."""
    cap = SessionCapture("s1")
    created = {
        "type": "response.created",
        "event_id": "e1",
        "response": {"id": "resp_a", "audio": {"output": {"format": {"type": "audio/pcma"}}}},
    }
    feed(cap, SERVER, json.dumps(created))

    def delta(resp: str, data: bytes) -> str:
        return json.dumps(
            {
                "type": "response.output_audio.delta",
                "event_id": "e",
                "response_id": resp,
                "item_id": "i",
                "output_index": 0,
                "content_index": 0,
                "delta": b64(data),
            }
        )

    rec_a, _ = feed(cap, SERVER, delta("resp_a", bytes(range(256))))
    rec_b, _ = feed(cap, SERVER, delta("resp_b", pcm(10)))
    assert rec_a.audio is not None
    assert rec_b.audio is not None
    assert (rec_a.audio.encoding, rec_a.audio.sample_rate, rec_a.audio.offset) == (
        AudioEncoding.G711_ALAW,
        8000,
        0,
    )
    assert (rec_b.audio.encoding, rec_b.audio.sample_rate, rec_b.audio.offset) == (
        AudioEncoding.PCM16,
        24000,
        0,
    )


def test_beta_session_formats_are_tracked() -> None:
    """A beta session.updated with output_audio_format g711_ulaw switches beta deltas."""
    cap = SessionCapture("s1")
    feed(
        cap,
        SERVER,
        json.dumps(
            {
                "type": "session.updated",
                "event_id": "e",
                "session": {"object": "realtime.session", "output_audio_format": "g711_ulaw"},
            }
        ),
    )
    rec, _ = feed(
        cap,
        SERVER,
        json.dumps(
            {
                "type": "response.audio.delta",
                "event_id": "e",
                "response_id": "r",
                "item_id": "i",
                "output_index": 0,
                "content_index": 0,
                "delta": b64(b"\x00\x80"),
            }
        ),
    )
    assert rec.audio is not None
    assert rec.audio.encoding is AudioEncoding.G711_ULAW


def test_item_create_with_input_audio_takes_the_slow_path() -> None:
    """Audio inside conversation.item.create content is found by value and cut out."""
    cap = SessionCapture("s1")
    audio = b64(pcm(300))
    frame = json.dumps(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": audio}],
            },
        }
    )
    rec, _ = feed(cap, CLIENT, frame)
    assert rec.audio is not None
    assert rec.audio.cut_at is not None
    assert audio not in (rec.payload or "")
    assert rec.audio.samples == 300


def test_escaped_slashes_keep_audio_inline() -> None:
    r"""JSON may escape '/' as '\/'; then the text is not the base64, so nothing is cut."""
    cap = SessionCapture("s1")
    raw = bytes([0xFF, 0xFF, 0xFF, 0xFE] * 10)
    audio = b64(raw)
    assert "/" in audio
    frame = '{"type":"input_audio_buffer.append","audio":"' + audio.replace("/", "\\/") + '"}'
    rec, chunk = feed(cap, CLIENT, frame)
    assert rec.audio is not None
    assert rec.audio.cut_at is None
    assert chunk is not None
    assert chunk.pcm == raw


def test_invalid_json_and_binary_frames_are_stored_raw() -> None:
    """Nothing is dropped: invalid JSON keeps its text and a parse error; binary its bytes."""
    cap = SessionCapture("s1")
    rec, _ = feed(cap, CLIENT, '{"type": "input_audio_buffer.append", "audio": "AAAA"')
    assert rec.parse_error is not None
    assert rec.parse_error.startswith("invalid JSON")
    rec, _ = feed(cap, SERVER, "[1, 2]")
    assert rec.parse_error == "not a JSON object: list"
    rec, _ = feed(cap, SERVER, b"\x00\x01binary")
    assert rec.kind is FrameKind.BINARY
    assert rec.wire_size == 8
    rec, _ = feed(cap, CLIENT, '{"type":"x","text":"héllo ✓"}')
    assert rec.wire_size == len('{"type":"x","text":"héllo ✓"}'.encode())


def test_seq_is_one_order_across_directions_and_marks() -> None:
    """seq counts client, server and recorder records in one sequence."""
    cap = SessionCapture("s1")
    a, _ = feed(cap, CLIENT, '{"type":"response.create"}')
    m = cap.mark("rtrec.note", {"detail": 1}, 5, 6)
    b, _ = feed(cap, SERVER, '{"type":"response.created","event_id":"e","response":{"id":"r"}}')
    assert [a.seq, m.seq, b.seq] == [0, 1, 2]
    assert m.direction is Direction.RECORDER
    assert m.kind is FrameKind.MARK
    assert b.response_id == "r"


def test_secrets_are_redacted_from_payloads() -> None:
    """Keys and client secrets never reach a record, with or without audio in the frame."""
    cap = SessionCapture("s1")
    secret_session = json.dumps(
        {
            "type": "session.created",
            "event_id": "e",
            "session": {"client_secret": {"value": "ek_68af0123abcd", "expires_at": 1}},
        }
    )
    rec, _ = cap.frame(SERVER, secret_session, 0, 0)
    assert "ek_68af0123abcd" not in (rec.payload or "")
    assert "[REDACTED]" in (rec.payload or "")
    audio = b64(pcm(50))
    frame = json.dumps(
        {"type": "input_audio_buffer.append", "event_id": "sk-proj-abcdef123456", "audio": audio}
    )
    rec, chunk = cap.frame(CLIENT, frame, 0, 0)
    assert "sk-proj-abcdef123456" not in (rec.payload or "")
    assert rec.audio is not None
    assert rec.audio.cut_at is not None
    rebuilt = rebuild(rec, chunk)
    assert isinstance(rebuilt, str)
    assert json.loads(rebuilt)["audio"] == audio


def test_user_redaction_paths() -> None:
    """--redact paths replace matching values; other frames are untouched."""
    cap = SessionCapture("s1", redact_paths=PathRedactor(["$.session.instructions"]))
    rec, _ = cap.frame(
        CLIENT,
        json.dumps(
            {
                "type": "session.update",
                "session": {"type": "realtime", "instructions": "secret plan"},
            }
        ),
        0,
        0,
    )
    assert "secret plan" not in (rec.payload or "")
    other = '{"type": "response.create"}'
    rec, _ = cap.frame(CLIENT, other, 0, 0)
    assert rec.payload == other


def test_no_audio_mode_keeps_frames_whole() -> None:
    """--no-audio records events without archiving audio (frames stay whole)."""
    cap = SessionCapture("s1", record_audio=False)
    frame = json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm(10))})
    rec, chunk = feed(cap, CLIENT, frame)
    assert chunk is None
    assert rec.audio is None


encodings = st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma"])


@settings(max_examples=200, deadline=None)
@given(
    fmt=encodings,
    audio=st.binary(max_size=64),
    spaced=st.booleans(),
    extra=st.dictionaries(st.sampled_from(["event_id", "obfuscation", "x"]), st.text(max_size=5)),
    key_first=st.booleans(),
)
def test_any_audio_frame_rebuilds_exactly(
    fmt: str, audio: bytes, spaced: bool, extra: dict[str, str], key_first: bool
) -> None:
    """Whatever the format, bytes, spacing and field order, record + audio == frame."""
    cap = SessionCapture("s1")
    cap.frame(
        SERVER,
        json.dumps(
            {
                "type": "session.updated",
                "event_id": "e",
                "session": {"type": "realtime", "audio": {"input": {"format": {"type": fmt}}}},
            }
        ),
        0,
        0,
    )
    body = (
        {"audio": b64(audio), "type": "input_audio_buffer.append"}
        if key_first
        else {
            "type": "input_audio_buffer.append",
            "audio": b64(audio),
        }
    )
    body.update(extra)
    frame = json.dumps(body) if spaced else json.dumps(body, separators=(",", ":"))
    feed(cap, CLIENT, frame)
