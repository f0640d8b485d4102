"""The sans-IO capture core: one WebSocket message in, the records to store out.

``SessionCapture.frame(direction, message, t_ns, wall_ns)`` never touches a socket or a
file. It returns the ``FrameRecord`` for the log and, for audio events, the ``AudioChunk``
of decoded PCM16 for the FLAC archive. The proxy forwards the message itself, unchanged,
before or whatever this returns.

Which events carry audio, in which field, stream and format, is the session's dialect's
knowledge (rtrec.schemas.dialects: Realtime GA and beta, GPT-Live primary, fork and
sideband). Audio is cut out of the payload by position (STYLE.md principle 4; the
per-frame budget in issue 4): for the hot events that carry audio in a top-level field
(``input_audio_buffer.append``, ``response.output_audio.delta``, GPT-Live's
``session.input_audio.append`` and ``session.output_audio.delta``), the base64 string is
located with a regex, cut, and only the small remainder is parsed; the parse then confirms
the cut was the top-level field. Everything else, and anything unusual (escaped
characters, other formatting), takes the slow path: parse the whole frame. Either way the
base64 is decoded once, and it is cut only when encoding the decoded samples gives back the
exact text, so that the log plus the FLAC rebuild the frame byte for byte.

The audio format in force is tracked from the session configuration events the dialect
names (Realtime: client ``session.update`` for input, as the server applies it in order;
server ``session.created`` / ``session.updated``; GPT-Live: ``session.start`` and
``session.started``) and, in Realtime, from each ``response.created`` (per-response output
format). Events with a format of their own (GPT-Live's fixture, sideband reflections) keep it.
"""

from __future__ import annotations

import binascii
import re
from typing import Any, Final

import attrs
import orjson
import pybase64

from rtrec.recorder.redact import PathRedactor, contains_secret_marker, redact_text
from rtrec.schemas import g711
from rtrec.schemas.dialects import REALTIME_GA, AudioFormat, Dialect
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import (
    AudioChunk,
    AudioSpan,
    Direction,
    FrameKind,
    FrameRecord,
    Stream,
)

__all__ = ["SessionCapture"]

_TYPE_RE: Final = re.compile(r'"type"\s*:\s*"([^"\\]*)"')


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
    # 0x7F (µ-law's negative zero) decodes like 0xFF and would come back as 0xFF.
    exact = canonical and not (encoding is AudioEncoding.G711_ULAW and 0x7F in raw)
    return _Decoded(g711.decode(raw, encoding).tobytes(), len(raw), exact)


class SessionCapture:
    """Turns the messages of one session into log records (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        *,
        dialect: Dialect = REALTIME_GA,
        record_audio: bool = True,
        redact_paths: PathRedactor | None = None,
    ) -> None:
        self.session_id = session_id
        self.dialect = dialect
        self.record_audio = record_audio
        self._redact_paths = redact_paths or PathRedactor([])
        self._seq = 0
        self.input_format = self.output_format = dialect.default_format
        self._response_format: dict[str, AudioFormat] = {}
        self._offsets: dict[tuple[Stream, int], int] = {}
        # the opening of each audio event's field (`"delta": "`), for the fast path
        self._key_re = {
            event: re.compile(rf'"{re.escape(field.key)}"\s*:\s*"')
            for event, field in dialect.audio.items()
        }

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

    def invalid_text(
        self, direction: Direction, data: bytes, t_ns: int, wall_ns: int
    ) -> FrameRecord:
        """The record of a text message that is not UTF-8: its bytes, kept raw."""
        return FrameRecord(
            session_id=self.session_id,
            seq=self.next_seq(),
            direction=direction,
            t_ns=t_ns,
            wall_ns=wall_ns,
            kind=FrameKind.TEXT,
            wire_size=len(data),
            payload=None,
            payload_bin=data,
            parse_error="invalid UTF-8 in a text message: kept raw in payload_bin, not forwarded",
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
            stream, fmt = self._stream_and_format(direction, record_type, response_id)
            encoding = fmt.encoding
            decoded = _decode_audio(b64, encoding)
            if decoded is None and parse_error is None:
                parse_error = "audio: not valid base64; kept inline, not archived"
        if cut_at is not None and (decoded is None or not decoded.exact):
            # keep the exact base64 inline: the samples alone cannot give it back
            payload, cut_at = payload[:cut_at] + b64 + payload[cut_at:], None  # type: ignore[operator]
        if contains_secret_marker(payload) or self._redact_paths:
            payload, cut_at = self._redact(payload, cut_at, b64)
        if decoded is not None:
            rate = fmt.rate
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
        event = m.group(1)
        key_re = self._key_re.get(event)
        if key_re is None:
            return None
        k = key_re.search(text)
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
        key = self.dialect.audio[event].key
        if not isinstance(obj, dict) or obj.get("type") != event or obj.get(key) != "":
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
        b64 = self.dialect.audio_value(obj)
        if b64 is None:
            return text, obj, None, None, None
        needle = f'"{b64}"'
        at = text.find(needle)
        if at < 0 or text.find(needle, at + 1) >= 0:
            # escaped or repeated: the position is ambiguous, so nothing is cut
            return text, obj, None, b64, None
        return text[: at + 1] + text[at + 1 + len(b64) :], obj, None, b64, at + 1

    # ------------------------------------------------------------------ audio

    def _stream_and_format(
        self, direction: Direction, event_type: str, response_id: str | None
    ) -> tuple[Stream, AudioFormat]:
        stream = self.dialect.stream_for(event_type, direction)
        field = self.dialect.audio.get(event_type)
        if field is not None and field.fixed is not None:
            return stream, field.fixed
        if stream is Stream.INPUT:
            return stream, self.input_format
        return stream, self._response_format.get(response_id or "", self.output_format)

    def _track_format(
        self, direction: Direction, event_type: str | None, obj: dict[str, Any]
    ) -> None:
        if event_type in self.dialect.config_events:
            session = obj.get("session")
            if not isinstance(session, dict):
                return
            fmt_in, fmt_out = self.dialect.formats_of(session)
            if fmt_in is not None:
                self.input_format = fmt_in
            if fmt_out is not None:
                self.output_format = fmt_out
        elif (
            event_type == "response.created"
            and direction is Direction.SERVER
            and self.dialect.response_format_of is not None
        ):
            response = obj.get("response")
            if not isinstance(response, dict) or not isinstance(response.get("id"), str):
                return
            fmt = self.dialect.response_format_of(response)
            if fmt is not None:
                self._response_format[response["id"]] = fmt

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
