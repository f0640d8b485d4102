"""The sans-IO capture core: one WebSocket message in, the records to store out.

``SessionCapture.frame(direction, message, t_ns, wall_ns)`` never touches a socket or a
file. It returns the ``FrameRecord`` for the log and, for audio events, the ``AudioChunk``
of decoded PCM16 for the FLAC archive. The proxy forwards the message itself, unchanged,
before or whatever this returns.

Audio is cut out of the payload by position (STYLE.md principle 4; the per-frame budget in
issue 4): for the two hot events, ``input_audio_buffer.append`` and
``response.output_audio.delta`` (beta ``response.audio.delta``), the base64 string is
located with a regex, cut, and only the small remainder is parsed; the parse then confirms
the cut was the top-level field. Everything else, and anything unusual (escaped
characters, other formatting), takes the slow path: parse the whole frame. Either way the
base64 is decoded once, and it is cut only when encoding the decoded samples gives back the
exact text, so that the log plus the FLAC rebuild the frame byte for byte.

The audio format in force is tracked from the session configuration (client
``session.update`` for input, as the server applies it in order; server ``session.created``
/ ``session.updated``) and from each ``response.created`` (per-response output format).
"""

from __future__ import annotations

import binascii
import re
from typing import Any, Final

import attrs
import orjson
import pybase64

from rtrec import g711
from rtrec.recorder.redact import PathRedactor, contains_secret_marker, redact_text
from rtrec.schemas.enums import AudioEncoding, BetaAudioFormat
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    Stream,
)

__all__ = ["SessionCapture", "encoding_from_config"]

#: The events whose audio travels in a top-level field, and that field.
_FAST_AUDIO_KEY: Final = {
    "input_audio_buffer.append": "audio",
    "response.output_audio.delta": "delta",
    "response.audio.delta": "delta",
}
_TYPE_RE: Final = re.compile(r'"type"\s*:\s*"([^"\\]*)"')
_KEY_RE: Final = {
    "audio": re.compile(r'"audio"\s*:\s*"'),
    "delta": re.compile(r'"delta"\s*:\s*"'),
}
_GA_FORMATS: Final = {
    "audio/pcm": AudioEncoding.PCM16,
    "audio/pcmu": AudioEncoding.G711_ULAW,
    "audio/pcma": AudioEncoding.G711_ALAW,
}


def encoding_from_config(value: Any) -> AudioEncoding | None:
    """The encoding a GA format object (``{"type": "audio/pcmu"}``) or a beta format string
    (``"g711_ulaw"``) names; None when absent or unknown."""
    if isinstance(value, dict):
        return _GA_FORMATS.get(value.get("type"))  # type: ignore[arg-type]
    if isinstance(value, str) and value in BetaAudioFormat.__members__.values():
        return BetaAudioFormat(value).encoding
    return None


@attrs.define
class _Decoded:
    pcm: bytes  # 16-bit little-endian samples
    samples: int
    exact: bool  # encoding the samples gives back the base64 text


def _decode_audio(b64: str, encoding: AudioEncoding) -> _Decoded | None:
    """Decode a base64 audio string once; None if it is not base64 at all."""
    try:
        raw = pybase64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        try:  # unpadded base64 still carries samples; it just is not canonical
            raw = pybase64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    canonical = pybase64.b64encode(raw) == b64.encode("ascii", "replace")
    if encoding is AudioEncoding.PCM16:
        odd = len(raw) % 2
        pcm = raw[: len(raw) - odd] if odd else raw
        return _Decoded(pcm, len(pcm) // 2, canonical and not odd)
    if encoding is AudioEncoding.G711_ULAW:
        samples = g711.ulaw_decode(raw)
        # 0x7F (µ-law's negative zero) decodes like 0xFF and would come back as 0xFF.
        return _Decoded(samples.tobytes(), len(raw), canonical and 0x7F not in raw)
    samples = g711.alaw_decode(raw)
    return _Decoded(samples.tobytes(), len(raw), canonical)


class SessionCapture:
    """Turns the messages of one session into log records (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        *,
        record_audio: bool = True,
        redact_paths: PathRedactor | None = None,
    ) -> None:
        self.session_id = session_id
        self.record_audio = record_audio
        self._redact_paths = redact_paths or PathRedactor([])
        self._seq = 0
        self.input_encoding = AudioEncoding.PCM16
        self.output_encoding = AudioEncoding.PCM16
        self._response_encoding: dict[str, AudioEncoding] = {}
        self._offsets: dict[tuple[Stream, int], int] = {}

    # ------------------------------------------------------------------ records

    def next_seq(self) -> int:
        """Allocate the next ``seq`` of this session's single total order."""
        seq = self._seq
        self._seq += 1
        return seq

    def mark(self, name: str, detail: dict[str, Any], t_ns: int, wall_ns: int) -> FrameRecord:
        """A recorder lifecycle mark (``rtrec.handshake``, ``rtrec.close``, ...) for the log."""
        payload = orjson.dumps({"type": name, **detail}).decode()
        return FrameRecord(
            session_id=self.session_id,
            seq=self.next_seq(),
            direction=Direction.RECORDER,
            t_ns=t_ns,
            wall_ns=wall_ns,
            kind=FrameKind.MARK,
            wire_size=0,
            payload=redact_text(payload),
            type=name,
        )

    def frame(
        self, direction: Direction, message: str | bytes, t_ns: int, wall_ns: int
    ) -> tuple[FrameRecord, AudioChunk | None]:
        """Records for one WebSocket message as it crossed the proxy."""
        seq = self.next_seq()
        if isinstance(message, bytes):
            return (
                FrameRecord(
                    session_id=self.session_id,
                    seq=seq,
                    direction=direction,
                    t_ns=t_ns,
                    wall_ns=wall_ns,
                    kind=FrameKind.BINARY,
                    wire_size=len(message),
                    payload=None,
                    payload_bin=message,
                ),
                None,
            )
        wire_size = len(message) if message.isascii() else len(message.encode("utf-8"))
        fields = self._fast_path(message) if self.record_audio else None
        if fields is None:
            fields = self._slow_path(direction, message)
        (payload, obj, parse_error, b64, cut_at) = fields

        record_type = event_id = item_id = response_id = None
        if obj is not None:
            record_type = _str(obj.get("type"))
            event_id = _str(obj.get("event_id"))
            item_id = _str(obj.get("item_id")) or _nested_id(obj.get("item"))
            response_id = _str(obj.get("response_id")) or _nested_id(obj.get("response"))
            self._track_format(direction, record_type, obj)

        span = chunk = None
        decoded = None
        if b64 is not None and record_type is not None:
            stream, encoding = self._stream_and_encoding(direction, response_id)
            decoded = _decode_audio(b64, encoding)
            if decoded is None and parse_error is None:
                parse_error = "audio: not valid base64; kept inline, not archived"
        if cut_at is not None and (decoded is None or not decoded.exact):
            # keep the exact base64 inline: the samples alone cannot give it back
            payload, cut_at = payload[:cut_at] + b64 + payload[cut_at:], None  # type: ignore[operator]
        if contains_secret_marker(payload) or self._redact_paths:
            payload, cut_at = self._redact(payload, cut_at, b64)
        if decoded is not None:
            rate = encoding.sample_rate
            offset = self._offsets.get((stream, rate), 0)
            self._offsets[(stream, rate)] = offset + decoded.samples
            span = AudioSpan(
                stream=stream,
                offset=offset,
                samples=decoded.samples,
                encoding=encoding,
                sample_rate=rate,
                cut_at=cut_at,
            )
            chunk = AudioChunk(
                session_id=self.session_id, stream=stream, sample_rate=rate, pcm=decoded.pcm
            )
        return (
            FrameRecord(
                session_id=self.session_id,
                seq=seq,
                direction=direction,
                t_ns=t_ns,
                wall_ns=wall_ns,
                kind=FrameKind.TEXT,
                wire_size=wire_size,
                payload=payload,
                type=record_type,
                event_id=event_id,
                item_id=item_id,
                response_id=response_id,
                parse_error=parse_error,
                audio=span,
            ),
            chunk,
        )

    # ------------------------------------------------------------------ paths

    _Fields = tuple[str, dict[str, Any] | None, str | None, str | None, int | None]

    def _fast_path(self, text: str) -> _Fields | None:
        """Cut the audio of a hot audio event by position; None to take the slow path."""
        m = _TYPE_RE.search(text)
        if m is None:
            return None
        key = _FAST_AUDIO_KEY.get(m.group(1))
        if key is None:
            return None
        k = _KEY_RE[key].search(text)
        if k is None:
            return None
        start = k.end()
        end = text.find('"', start)
        if end < 0:
            return None
        b64 = text[start:end]
        if "\\" in b64:
            return None
        rest = text[:start] + text[end:]
        try:
            obj = orjson.loads(rest)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or obj.get("type") != m.group(1) or obj.get(key) != "":
            return None
        return rest, obj, None, b64, start

    def _slow_path(self, direction: Direction, text: str) -> _Fields:
        """Parse the whole frame; find its audio, if any, by value."""
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return text, None, f"invalid JSON: {exc}", None, None
        if not isinstance(obj, dict):
            return text, None, f"not a JSON object: {type(obj).__name__}", None, None
        if not self.record_audio:
            return text, obj, None, None, None
        b64 = _audio_value(obj)
        if b64 is None:
            return text, obj, None, None, None
        needle = f'"{b64}"'
        at = text.find(needle)
        if at < 0 or text.find(needle, at + 1) >= 0:
            # escaped or repeated: the position is ambiguous, so nothing is cut
            return text, obj, None, b64, None
        return text[: at + 1] + text[at + 1 + len(b64) :], obj, None, b64, at + 1

    # ------------------------------------------------------------------ audio

    def _stream_and_encoding(
        self, direction: Direction, response_id: str | None
    ) -> tuple[Stream, AudioEncoding]:
        if direction is Direction.CLIENT:
            return Stream.INPUT, self.input_encoding
        encoding = self._response_encoding.get(response_id or "", self.output_encoding)
        return Stream.OUTPUT, encoding

    def _track_format(
        self, direction: Direction, event_type: str | None, obj: dict[str, Any]
    ) -> None:
        if event_type in (
            "session.update",
            "session.created",
            "session.updated",
            "transcription_session.update",
            "transcription_session.updated",
        ):
            session = obj.get("session")
            if not isinstance(session, dict):
                return
            audio = _dict(session.get("audio"))
            inp, out = _dict(audio.get("input")), _dict(audio.get("output"))
            enc_in = encoding_from_config(inp.get("format")) or encoding_from_config(
                session.get("input_audio_format")
            )
            enc_out = encoding_from_config(out.get("format")) or encoding_from_config(
                session.get("output_audio_format")
            )
            if enc_in is not None:
                self.input_encoding = enc_in
            if enc_out is not None:
                self.output_encoding = enc_out
        elif event_type == "response.created" and direction is Direction.SERVER:
            response = obj.get("response")
            if not isinstance(response, dict) or not isinstance(response.get("id"), str):
                return
            fmt = _dict(_dict(response.get("audio")).get("output")).get("format")
            enc = encoding_from_config(fmt) or encoding_from_config(
                response.get("output_audio_format")
            )
            if enc is not None:
                self._response_encoding[response["id"]] = enc

    # ------------------------------------------------------------------ redaction

    def _redact(self, payload: str, cut_at: int | None, b64: str | None) -> tuple[str, int | None]:
        """Redact secrets (and user paths) from a payload; returns it and the new cut."""
        if contains_secret_marker(payload):
            if cut_at is None:
                payload = redact_text(payload)
            else:  # redact around the cut, so that the cut stays in place
                head = redact_text(payload[:cut_at])
                payload, cut_at = head + redact_text(payload[cut_at:]), len(head)
        if self._redact_paths:
            whole = payload if cut_at is None else payload[:cut_at] + (b64 or "") + payload[cut_at:]
            redacted = self._redact_paths.apply(whole)
            if redacted != whole:
                return redacted, None  # re-serialised: the audio stays inline
        return payload, cut_at


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _nested_id(value: Any) -> str | None:
    return _str(value.get("id")) if isinstance(value, dict) else None


def _audio_value(obj: dict[str, Any]) -> str | None:
    """The base64 audio string an event carries, by the protocol's rules (PROTOCOL.md §5)."""
    event_type = obj.get("type")
    key = _FAST_AUDIO_KEY.get(event_type)  # type: ignore[arg-type]
    if key is not None:
        value = obj.get(key)
        return value if isinstance(value, str) and value else None
    if event_type in ("conversation.item.create", "conversation.item.retrieved"):
        item = obj.get("item")
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("audio"), str) and part["audio"]:
                    return str(part["audio"])
    return None
