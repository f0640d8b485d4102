"""The storage schema of the event log: records and the DuckDB DDL, in one module.

Every ``CREATE`` lives here (STYLE.md principle 6). ``SCHEMA_VERSION`` is stored in the
``meta`` table; later changes come as chained migrations (``MIGRATIONS[n]`` upgrades a log
from version ``n`` to ``n + 1``), and a log of every old version must keep loading.

The records are what the recorder's capture core produces for each frame and what the log
writer appends; replay reads the same records back. Payloads are VARCHAR, not DuckDB's JSON
type: a JSON column rejects a whole batch when one frame is invalid, and the log keeps
invalid frames too (stored raw, with ``parse_error``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

import attrs

from rtrec.schemas.enums import AudioEncoding

__all__ = [
    "DDL",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AudioChunk",
    "AudioSpan",
    "Direction",
    "FrameKind",
    "FrameRecord",
    "LogMessage",
    "SessionClose",
    "SessionRecord",
    "SessionStatus",
    "Stream",
]

SCHEMA_VERSION: Final = 1


class Direction(enum.StrEnum):
    """Who sent a frame: the client, the server, or the recorder itself (lifecycle marks)."""

    CLIENT = "client"
    SERVER = "server"
    RECORDER = "recorder"


class FrameKind(enum.StrEnum):
    """What kind of WebSocket message a row holds."""

    TEXT = "text"
    BINARY = "binary"
    #: a recorder lifecycle mark (handshake, close, error); its payload is JSON written by rtrec
    MARK = "mark"


class Stream(enum.StrEnum):
    """An audio stream of a session: what the client appended, or what the server sent."""

    INPUT = "input"
    OUTPUT = "output"


class SessionStatus(enum.StrEnum):
    """Lifecycle of a session row."""

    OPEN = "open"
    CLOSED = "closed"
    #: the recorder died while the session was open (set on the next open of the log)
    INTERRUPTED = "interrupted"
    #: the upstream refused the handshake
    REJECTED = "rejected"
    #: recording failed (disk, encoder); the session was closed on purpose
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class AudioSpan:
    """Where the audio of one frame went in the FLAC archive.

    ``cut_at`` is the character offset in the row's ``payload`` where the base64 string was
    cut out (between its quotes). It is ``None`` when the exact base64 text could not be
    rebuilt from the samples (non-canonical base64, an odd byte count, a µ-law code that
    shares its linear value with another): then the string stays inline in the payload,
    and the samples are still archived.
    """

    stream: Stream
    offset: int  # first sample of this frame's audio in the stream
    samples: int
    encoding: AudioEncoding
    sample_rate: int
    cut_at: int | None


@attrs.frozen(kw_only=True)
class FrameRecord:
    """One row of ``events``: one WebSocket message (or a recorder mark) of a session."""

    session_id: str
    seq: int  # one total order per session across both directions, as the proxy saw them
    direction: Direction
    t_ns: int  # monotonic nanoseconds since the session started
    wall_ns: int  # wall clock, nanoseconds since the Unix epoch
    kind: FrameKind
    wire_size: int  # bytes of the message on the wire (UTF-8 length for text)
    payload: str | None  # text with the audio cut out (see AudioSpan); None for binary
    payload_bin: bytes | None = None  # binary messages, byte for byte
    type: str | None = None
    event_id: str | None = None
    item_id: str | None = None
    response_id: str | None = None
    parse_error: str | None = None
    audio: AudioSpan | None = None


@attrs.frozen(kw_only=True)
class SessionRecord:
    """One row of ``sessions`` as the recorder opens it; closing fills the rest."""

    session_id: str  # UUIDv7 text: sortable by start time
    started_wall_ns: int
    upstream_url: str  # without secrets
    request_path: str  # path and query as the client asked, secrets redacted
    model: str | None
    protocol: str  # "ga" | "beta"
    request_headers: str  # JSON object, redacted
    subprotocol: str | None
    tags: str  # JSON object of --tag key=value
    rtrec_version: str


@attrs.frozen(kw_only=True)
class AudioChunk:
    """Decoded audio of one frame, for the archive: 16-bit little-endian mono PCM.

    It follows its ``FrameRecord`` on the writer's channel; its samples start at that
    record's ``audio.offset`` in the file of (session, stream, sample_rate).
    """

    session_id: str
    stream: Stream
    sample_rate: int
    pcm: bytes


@attrs.frozen(kw_only=True)
class SessionClose:
    """The end of a session: how it ended and who ended it."""

    session_id: str
    ended_wall_ns: int
    status: SessionStatus
    close_code: int | None
    close_reason: str | None
    closed_by: Direction | None


#: What the recorder sends its log writer, in order, over one channel.
LogMessage = SessionRecord | FrameRecord | AudioChunk | SessionClose

DDL: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    upstream_url VARCHAR NOT NULL,
    request_path VARCHAR NOT NULL,
    model VARCHAR,
    protocol VARCHAR NOT NULL,
    request_headers VARCHAR NOT NULL,
    subprotocol VARCHAR,
    status VARCHAR NOT NULL,
    close_code INTEGER,
    close_reason VARCHAR,
    closed_by VARCHAR,
    tags VARCHAR NOT NULL,
    rtrec_version VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    session_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    direction VARCHAR NOT NULL,
    t_ns BIGINT NOT NULL,
    wall_time TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,
    wire_size BIGINT NOT NULL,
    payload VARCHAR,
    payload_bin BLOB,
    type VARCHAR,
    event_id VARCHAR,
    item_id VARCHAR,
    response_id VARCHAR,
    parse_error VARCHAR,
    audio_stream VARCHAR,
    audio_offset BIGINT,
    audio_samples BIGINT,
    audio_encoding VARCHAR,
    audio_rate INTEGER,
    audio_cut_at INTEGER,
    PRIMARY KEY (session_id, seq)
);

-- One FLAC per (session, stream, sample rate): a session that switches between PCM16
-- (24 kHz) and G.711 (8 kHz) gets a second file rather than resampled, lossy audio.
CREATE TABLE IF NOT EXISTS audio_streams (
    session_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    sample_rate INTEGER NOT NULL,
    path VARCHAR NOT NULL,
    frames BIGINT NOT NULL,
    sha256 VARCHAR,
    PRIMARY KEY (session_id, stream, sample_rate)
);
"""

#: ``MIGRATIONS[n]`` is the SQL that upgrades a log from schema version ``n`` to ``n + 1``.
MIGRATIONS: Final[dict[int, str | Callable[..., None]]] = {}
