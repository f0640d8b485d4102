"""Build log rows from event dicts, as the recorder stores them, so tests read like streams.

    rec = record_events([
        server({"type": "session.created", ...}),
        client({"type": "input_audio_buffer.append", "audio": pcm16_b64(2400)}),
        ...
    ])
    state = fold(INITIAL, rec.records)

Each frame becomes a ``FrameRecord``: ``seq`` counts from 0 as the recorder's does,
``t_ns`` advances by ``step_ms`` unless a frame gives its own time, and audio is cut out of
the payload the way the storage contract describes (the JSON keeps ``""`` where the base64
was, ``AudioSpan.cut_at`` is the offset between those quotes) and decoded into a
``MemoryAudio`` laid out like the archive (one PCM16 buffer per stream and rate). Audio
formats follow the server's session events (GA ``audio.input/output.format``, beta
``input_audio_format``/``output_audio_format``); per-response format overrides are not
followed. A plain dict is sent by the client if its type is a client event type, else by the
server.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import numpy as np
import orjson

from rtrec.replay._audio import MemoryAudio
from rtrec.schemas import g711
from rtrec.schemas.dialects import REALTIME_GA
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.events import CLIENT_EVENTS
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

__all__ = [
    "Frame",
    "Recording",
    "binary",
    "client",
    "mark",
    "pcm16_b64",
    "record_events",
    "server",
    "tone",
]

#: The rows are Realtime's (GA and beta share where audio travels and how formats are named).
_DIALECT: Final = REALTIME_GA
_CLIENT_TYPES: Final = frozenset(str(attrs.fields_dict(c)["type"].default) for c in CLIENT_EVENTS)
_PLACEHOLDER: Final = "\x00rtrec-audio-cut\x00"
_WALL_START_NS: Final = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: fixed, for stable rows


@attrs.frozen
class Frame:
    """One frame to record: an event (or raw bytes for a binary frame, or a recorder mark)."""

    event: Mapping[str, Any] | bytes
    direction: Direction | None = None
    kind: FrameKind = FrameKind.TEXT
    t_ms: float | None = None


def client(event: Mapping[str, Any], *, t_ms: float | None = None) -> Frame:
    """A frame the client sent."""
    return Frame(event, Direction.CLIENT, t_ms=t_ms)


def server(event: Mapping[str, Any], *, t_ms: float | None = None) -> Frame:
    """A frame the server sent."""
    return Frame(event, Direction.SERVER, t_ms=t_ms)


def mark(
    mark_type: str, body: Mapping[str, Any] | None = None, *, t_ms: float | None = None
) -> Frame:
    """A recorder lifecycle mark (direction ``recorder``, kind ``mark``)."""
    return Frame({"type": mark_type, **(body or {})}, Direction.RECORDER, FrameKind.MARK, t_ms)


def binary(
    data: bytes, *, direction: Direction = Direction.CLIENT, t_ms: float | None = None
) -> Frame:
    """A binary WebSocket message (the protocol uses none; the log keeps them anyway)."""
    return Frame(data, direction, FrameKind.BINARY, t_ms)


def tone(samples: int, *, seed: int = 0) -> bytes:
    """``samples`` samples of deterministic non-silent PCM16 (a different tone per seed)."""
    t = np.arange(samples, dtype=np.float64)
    wave = np.sin(2 * math.pi * (220 + 37 * seed) * t / 24000) * (8000 + seed)
    return wave.astype("<i2").tobytes()


def pcm16_b64(samples: int, *, seed: int = 0) -> str:
    """Base64 of ``tone(samples, seed=seed)``: what a client appends or a server streams."""
    return base64.b64encode(tone(samples, seed=seed)).decode()


@attrs.frozen
class Recording:
    """The rows of a recorded session and the audio they point at."""

    records: tuple[FrameRecord, ...]
    audio: MemoryAudio


def _replaced(obj: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, list):
        assert isinstance(head, int)
        return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(obj)]
    return {k: _replaced(v, rest, value) if k == head else v for k, v in obj.items()}


def _session_formats(
    session: Any, current: tuple[AudioEncoding, AudioEncoding]
) -> tuple[AudioEncoding, AudioEncoding]:
    if not isinstance(session, dict):
        return current
    found = _DIALECT.formats_of(session)
    return tuple(  # type: ignore[return-value]
        fmt.encoding if fmt is not None else was for fmt, was in zip(found, current, strict=True)
    )


def record_events(
    frames: Iterable[Frame | Mapping[str, Any]],
    *,
    session_id: str = "test-session",
    step_ms: float = 1.0,
    first_seq: int = 0,
) -> Recording:
    """Turn frames into the rows a recorder would log, with their audio.

    Args:
        frames: ``Frame`` objects (see ``client``, ``server``, ``mark``, ``binary``), or plain
            event dicts whose direction follows from their type.
        session_id: the rows' session id.
        step_ms: time between frames that do not give their own ``t_ms``.
        first_seq: the first row's ``seq``.

    Raises:
        ValueError: an event's audio is not valid base64 or not whole PCM16 samples.
    """
    audio = MemoryAudio()
    records: list[FrameRecord] = []
    formats = (AudioEncoding.PCM16, AudioEncoding.PCM16)
    t_ms = -step_ms
    for seq, frame in enumerate(frames, start=first_seq):
        if not isinstance(frame, Frame):
            kind = frame.get("type")
            frame = Frame(frame, Direction.CLIENT if kind in _CLIENT_TYPES else Direction.SERVER)
        t_ms = frame.t_ms if frame.t_ms is not None else t_ms + step_ms
        t_ns = round(t_ms * 1_000_000)
        common: dict[str, Any] = {
            "session_id": session_id,
            "seq": seq,
            "direction": frame.direction,
            "t_ns": t_ns,
            "wall_ns": _WALL_START_NS + t_ns,
            "kind": frame.kind,
        }
        if isinstance(frame.event, bytes):
            records.append(
                FrameRecord(
                    **common, wire_size=len(frame.event), payload=None, payload_bin=frame.event
                )
            )
            continue
        event = dict(frame.event)
        text = orjson.dumps(event).decode()
        if frame.direction == Direction.SERVER and event.get("type") in _DIALECT.config_events:
            formats = _session_formats(event.get("session"), formats)
        span = None
        payload = text
        path = _DIALECT.audio_path(event) if frame.kind == FrameKind.TEXT else None
        b64 = _DIALECT.audio_value(event) if path is not None else None
        if path is not None and b64 is not None and frame.direction is not None:
            stream = _DIALECT.stream_for(str(event["type"]), frame.direction)
            encoding = formats[0] if stream is Stream.INPUT else formats[1]
            pcm = g711.decode_base64(b64, encoding).astype("<i2").tobytes()
            offset = audio.append(stream, encoding.sample_rate, pcm)
            marked = orjson.dumps(_replaced(event, path, _PLACEHOLDER)).decode()
            placeholder = orjson.dumps(_PLACEHOLDER).decode()[1:-1]
            cut_at = marked.index(placeholder)
            payload = marked.replace(placeholder, "", 1)
            span = AudioSpan(
                stream=stream,
                offset=offset,
                samples=len(pcm) // 2,
                encoding=encoding,
                sample_rate=encoding.sample_rate,
                cut_at=cut_at,
            )
        item = event.get("item")
        response = event.get("response")
        records.append(
            FrameRecord(
                **common,
                wire_size=len(text.encode()),
                payload=payload,
                type=_opt_str(event.get("type")),
                event_id=_opt_str(event.get("event_id")),
                item_id=_opt_str(event.get("item_id"))
                or (_opt_str(item.get("id")) if isinstance(item, dict) else None),
                response_id=_opt_str(event.get("response_id"))
                or (_opt_str(response.get("id")) if isinstance(response, dict) else None),
                audio=span,
            )
        )
    return Recording(records=tuple(records), audio=audio)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
