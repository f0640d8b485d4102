"""Test helper: sessions as the capture core turns them into log messages.

``SessionScript`` builds, for a scripted conversation, the exact WebSocket messages (``wire``)
and the ``LogMessage`` s the recorder would send its writer: FrameRecords whose payload is
the frame text with the base64 audio string cut out between its quotes (``cut_at`` = the
offset of that empty string's content), each audio frame followed by its AudioChunk of
decoded 16-bit PCM, with contiguous sample offsets per stream and rate.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import soundfile as sf

from rtrec.schemas import g711
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    LogMessage,
    SessionClose,
    SessionRecord,
    SessionStatus,
    Stream,
)

FIXTURES = Path(__file__).resolve().parent.parent / "src" / "rtrec" / "fixtures" / "audio"
_TOKEN = "@@RTREC_AUDIO@@"


def speech(name: str = "weather") -> np.ndarray:
    """A fixture recording: 24 kHz mono int16 speech."""
    data, rate = sf.read(str(FIXTURES / f"{name}.flac"), dtype="int16")
    assert rate == 24000
    return np.asarray(data, dtype=np.int16)


def new_session_id() -> str:
    """A sortable session id (UUIDv7-like: time-ordered hex)."""
    return str(uuid.uuid7()) if hasattr(uuid, "uuid7") else str(uuid.uuid4())


@attrs.define
class SessionScript:
    """Build one session's messages; ``wire[seq]`` is what was on the wire for each frame."""

    session_id: str = attrs.Factory(new_session_id)
    start_ns: int = 1_763_900_000_000_000_000
    messages: list[LogMessage] = attrs.Factory(list)
    wire: dict[int, str | bytes] = attrs.Factory(dict)
    seq: int = 0
    t_ns: int = 0
    ends: dict[tuple[Stream, int], int] = attrs.Factory(dict)
    audio: dict[tuple[Stream, int], list[np.ndarray]] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.messages.append(
            SessionRecord(
                session_id=self.session_id,
                started_wall_ns=self.start_ns,
                upstream_url="wss://api.openai.com/v1",
                request_path="/v1/realtime?model=gpt-realtime",
                model="gpt-realtime",
                protocol="ga",
                request_headers='{"authorization": "[redacted]"}',
                subprotocol=None,
                tags='{"test": "yes"}',
                rtrec_version="0.1.0",
            )
        )

    def _next(self, step_ms: int = 20) -> tuple[int, int, int]:
        seq, self.seq = self.seq, self.seq + 1
        self.t_ns += step_ms * 1_000_000
        # wall time at microsecond precision, like the log stores it
        return seq, self.t_ns, self.start_ns + self.t_ns

    def event(self, direction: Direction, event: dict[str, Any]) -> FrameRecord:
        """A text frame with a JSON event and no audio."""
        text = json.dumps(event)
        return self._text(direction, text, event, None)

    def audio_event(
        self,
        direction: Direction,
        event: dict[str, Any],
        key: str,
        samples: np.ndarray,
        encoding: AudioEncoding = AudioEncoding.PCM16,
        *,
        cut: bool = True,
    ) -> FrameRecord:
        """A text frame carrying ``samples`` base64-encoded in ``event[key]``.

        For G.711 the samples must be values the codec produces (decode some codes first).
        ``cut=False`` keeps the base64 inline (as the capture core does when it cannot
        promise an exact rebuild) while still archiving the samples.
        """
        stream = Stream.INPUT if direction is Direction.CLIENT else Stream.OUTPUT
        samples = np.asarray(samples, dtype=np.int16)
        if encoding is AudioEncoding.PCM16:
            raw = samples.astype("<i2").tobytes()
        elif encoding is AudioEncoding.G711_ULAW:
            raw = g711.ulaw_encode(samples)
        else:
            raw = g711.alaw_encode(samples)
        b64 = base64.b64encode(raw).decode("ascii")
        text = json.dumps({**event, key: _TOKEN})
        cut_at = text.index(_TOKEN)
        rate = encoding.sample_rate
        offset = self.ends.get((stream, rate), 0)
        self.ends[(stream, rate)] = offset + len(samples)
        self.audio.setdefault((stream, rate), []).append(samples)
        span = AudioSpan(
            stream=stream,
            offset=offset,
            samples=len(samples),
            encoding=encoding,
            sample_rate=rate,
            cut_at=cut_at if cut else None,
        )
        wire = text.replace(_TOKEN, b64)
        payload = text.replace(_TOKEN, "") if cut else wire
        record = self._text(direction, wire, event, span, payload=payload)
        self.messages.append(
            AudioChunk(
                session_id=self.session_id,
                stream=stream,
                sample_rate=rate,
                pcm=samples.astype("<i2").tobytes(),
            )
        )
        return record

    def _text(
        self,
        direction: Direction,
        wire: str,
        event: dict[str, Any] | None,
        span: AudioSpan | None,
        *,
        payload: str | None = None,
        parse_error: str | None = None,
    ) -> FrameRecord:
        seq, t_ns, wall_ns = self._next()
        record = FrameRecord(
            session_id=self.session_id,
            seq=seq,
            direction=direction,
            t_ns=t_ns,
            wall_ns=wall_ns,
            kind=FrameKind.TEXT,
            wire_size=len(wire.encode()),
            payload=wire if payload is None else payload,
            type=None if event is None else event.get("type"),
            event_id=None if event is None else event.get("event_id"),
            item_id=None if event is None else event.get("item_id"),
            response_id=None if event is None else event.get("response_id"),
            parse_error=parse_error,
            audio=span,
        )
        self.wire[seq] = wire
        self.messages.append(record)
        return record

    def invalid(self, direction: Direction, text: str) -> FrameRecord:
        """A text frame that is not JSON."""
        return self._text(direction, text, None, None, parse_error="invalid JSON")

    def binary(self, direction: Direction, data: bytes) -> FrameRecord:
        """A binary frame."""
        seq, t_ns, wall_ns = self._next()
        record = FrameRecord(
            session_id=self.session_id,
            seq=seq,
            direction=direction,
            t_ns=t_ns,
            wall_ns=wall_ns,
            kind=FrameKind.BINARY,
            wire_size=len(data),
            payload=None,
            payload_bin=data,
        )
        self.wire[seq] = data
        self.messages.append(record)
        return record

    def close(self, status: SessionStatus = SessionStatus.CLOSED) -> SessionClose:
        """The SessionClose at the end."""
        message = SessionClose(
            session_id=self.session_id,
            ended_wall_ns=self.start_ns + self.t_ns + 1_000_000,
            status=status,
            close_code=1000,
            close_reason="bye",
            closed_by=Direction.CLIENT,
        )
        self.messages.append(message)
        return message

    def frames(self) -> list[FrameRecord]:
        """The FrameRecords sent so far."""
        return [m for m in self.messages if isinstance(m, FrameRecord)]

    def samples(self, stream: Stream, rate: int = 24000) -> np.ndarray:
        """Every sample sent on one stream and rate, in order."""
        parts = self.audio.get((stream, rate), [])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def voice_session(
    *, chunks: int = 6, chunk_samples: int = 2400, with_g711: bool = False
) -> SessionScript:
    """A realistic little voice session: speech both ways, transcripts, odd frames, a close."""
    s = SessionScript()
    voice = np.resize(speech("weather"), chunks * chunk_samples)  # repeats when too short
    s.event(Direction.SERVER, {"type": "session.created", "event_id": "event_1", "session": {}})
    for i in range(chunks):
        piece = voice[i * chunk_samples : (i + 1) * chunk_samples]
        s.audio_event(
            Direction.CLIENT,
            {"type": "input_audio_buffer.append", "event_id": f"evt_c{i}"},
            "audio",
            piece,
        )
    s.event(Direction.CLIENT, {"type": "response.create", "event_id": "evt_rc"})
    reply = np.resize(speech("joke"), chunks * chunk_samples)
    for i in range(chunks):
        s.audio_event(
            Direction.SERVER,
            {
                "type": "response.output_audio.delta",
                "event_id": f"event_d{i}",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
            },
            "delta",
            reply[i * chunk_samples : (i + 1) * chunk_samples],
        )
        s.event(
            Direction.SERVER,
            {
                "type": "response.output_audio_transcript.delta",
                "event_id": f"event_t{i}",
                "response_id": "resp_1",
                "item_id": "item_1",
                "delta": f" wörd{i} ✓",
            },
        )
    if with_g711:
        codes = np.arange(256, dtype=np.uint8)
        codes = codes[codes != 0x7F]  # µ-law's negative zero is kept inline by the recorder
        s.audio_event(
            Direction.CLIENT,
            {"type": "input_audio_buffer.append", "event_id": "evt_ulaw"},
            "audio",
            g711.ulaw_decode(codes.tobytes()),
            AudioEncoding.G711_ULAW,
        )
        s.audio_event(
            Direction.SERVER,
            {"type": "response.output_audio.delta", "event_id": "event_alaw", "delta": ""},
            "delta",
            g711.alaw_decode(bytes(range(256))),
            AudioEncoding.G711_ALAW,
        )
    s.audio_event(
        Direction.CLIENT,
        {"type": "input_audio_buffer.append", "event_id": "evt_inline"},
        "audio",
        voice[:480],
        cut=False,
    )
    s.invalid(Direction.CLIENT, '{"type": "oops", not json')
    s.binary(Direction.SERVER, bytes(range(256)) * 3)
    s.event(Direction.SERVER, {"type": "response.done", "event_id": "event_done"})
    return s


_KILLED_CHILD = """
import sys, trio
sys.path.insert(0, {root!r})
from pathlib import Path
from rtrec.store.writer import open_log_writer
from tests.logdata import voice_session

async def main():
    s = voice_session(chunks=int(sys.argv[2]))
    half = len(s.messages) // 2
    if getattr(s.messages[half - 1], "audio", None) is not None:
        half += 1  # keep each frame with its AudioChunk
    async with open_log_writer(Path(sys.argv[1]), commit_interval=60) as w:
        for m in s.messages[:half]:
            await w.send(m)
        await w.flush()
        flushed = sum(1 for m in s.messages[:half] if type(m).__name__ == "FrameRecord")
        print(s.session_id, flushed, flush=True)
        for m in s.messages[half:]:
            await w.send(m)
        await trio.sleep_forever()

trio.run(main)
"""


def killed_recording(db: Path, chunks: int) -> tuple[str, int]:
    """Record ``voice_session(chunks=chunks)`` in a child process and SIGKILL it mid-session.

    The child flushes the first half of the messages, reports (session id, frames flushed),
    sends the rest without flushing and waits; then it is killed. Returns what it reported.
    """
    code = _KILLED_CHILD.format(root=str(Path(__file__).resolve().parent.parent))
    with subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(chunks)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert line, "the child died before flushing"
    session_id, flushed = line.split()
    return session_id, int(flushed)
