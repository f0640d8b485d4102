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
from typing import Final

import attrs

from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.migrations import MIGRATIONS

__all__ = [
    "DDL",
    "ITEMS",
    "MATERIALISED",
    "MIGRATIONS",
    "PRICES",
    "SCHEMA_VERSION",
    "SUMMARY_QUERY",
    "TABLES",
    "TURNS_QUERY",
    "VIEWS",
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
    "live_model_fill",
    "summary_query",
    "turns_query",
]

SCHEMA_VERSION: Final = 5


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

TABLES: Final = """
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

#: Conversation items as the replay reducer rebuilds them, written by ``rtrec index`` (never
#: by the recorder, which must not spend time on them). ``indexed`` says which sessions are
#: in ``items`` and how many events they had then, so a session that grew is indexed again.
ITEMS: Final = """
CREATE TABLE IF NOT EXISTS items (
    session_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    position INTEGER,
    type VARCHAR,
    role VARCHAR,
    status VARCHAR,
    origin VARCHAR,
    response_id VARCHAR,
    text VARCHAR,
    transcript VARCHAR,
    audio_s DOUBLE NOT NULL,
    heard_audio_s DOUBLE NOT NULL,
    truncated BOOLEAN NOT NULL,
    name VARCHAR,
    call_id VARCHAR,
    arguments VARCHAR,
    output VARCHAR,
    first_seq BIGINT NOT NULL,
    first_ms DOUBLE NOT NULL,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, item_id)
);

CREATE TABLE IF NOT EXISTS indexed (
    session_id VARCHAR PRIMARY KEY,
    events BIGINT NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL,
    rtrec_version VARCHAR NOT NULL
);
"""

#: Turns and per-session figures (docs/sql.md) of indexed sessions, written with ``items``
#: when a session is indexed (by the recorder when it closes, by ``rtrec import``, by
#: ``rtrec index``): the ``turns`` and ``session_summary`` views read them from here rather
#: than recompute them from every event of every session.
MATERIALISED: Final = """
CREATE TABLE IF NOT EXISTS indexed_turns (
    session_id VARCHAR NOT NULL,
    turn BIGINT NOT NULL,
    response_id VARCHAR,
    speech_start_ms DOUBLE,
    speech_end_ms DOUBLE,
    speech_end_audio_ms BIGINT,
    speech_end_sent_ms DOUBLE,
    committed_ms DOUBLE,
    response_create_ms DOUBLE,
    response_created_ms DOUBLE,
    first_audio_ms DOUBLE,
    first_transcript_ms DOUBLE,
    first_text_ms DOUBLE,
    response_done_ms DOUBLE,
    speech_end_to_first_audio_ms DOUBLE,
    speech_sent_to_first_audio_ms DOUBLE,
    created_to_first_audio_ms DOUBLE,
    create_to_first_audio_ms DOUBLE,
    speech_end_to_first_text_ms DOUBLE,
    commit_to_created_ms DOUBLE,
    response_ms DOUBLE,
    PRIMARY KEY (session_id, turn)
);

CREATE TABLE IF NOT EXISTS indexed_summary (
    session_id VARCHAR PRIMARY KEY,
    events BIGINT NOT NULL,
    last_wall TIMESTAMPTZ,
    turns BIGINT NOT NULL,
    user_speech_s DOUBLE NOT NULL,
    input_audio_s DOUBLE NOT NULL,
    assistant_speech_s DOUBLE NOT NULL,
    responses BIGINT NOT NULL,
    failed_responses BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    input_text_tokens BIGINT NOT NULL,
    input_audio_tokens BIGINT NOT NULL,
    input_image_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cached_text_tokens BIGINT NOT NULL,
    cached_audio_tokens BIGINT NOT NULL,
    output_text_tokens BIGINT NOT NULL,
    output_audio_tokens BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    interruptions BIGINT NOT NULL,
    truncations BIGINT NOT NULL,
    function_calls BIGINT NOT NULL,
    unanswered_calls BIGINT NOT NULL
);
"""

#: Token prices, USD per million tokens, matched to ``sessions.model`` by longest prefix, and
#: time prices (``time_prices``) for models billed by the second. Users change them with
#: plain SQL (``UPDATE prices ...``, ``INSERT INTO prices ...``); the token defaults are
#: OpenAI's published list prices as of ``as_of``, the time defaults are assumptions taken
#: from LIVE.md (docs/sql.md).
PRICES: Final = """
CREATE TABLE IF NOT EXISTS prices (
    model VARCHAR PRIMARY KEY,
    text_input DOUBLE NOT NULL,
    text_cached_input DOUBLE NOT NULL,
    text_output DOUBLE NOT NULL,
    audio_input DOUBLE NOT NULL,
    audio_cached_input DOUBLE NOT NULL,
    audio_output DOUBLE NOT NULL,
    as_of DATE NOT NULL,
    source VARCHAR NOT NULL
);

INSERT INTO prices VALUES
    ('gpt-realtime', 4.00, 0.40, 16.00, 32.00, 0.40, 64.00, DATE '2025-10-06',
     'https://openai.com/api/pricing/'),
    ('gpt-realtime-mini', 0.60, 0.06, 2.40, 10.00, 0.30, 20.00, DATE '2025-10-06',
     'https://openai.com/api/pricing/'),
    ('gpt-4o-realtime-preview', 5.00, 2.50, 20.00, 40.00, 2.50, 80.00, DATE '2025-10-06',
     'https://openai.com/api/pricing/'),
    ('gpt-4o-mini-realtime-preview', 0.60, 0.30, 2.40, 10.00, 0.30, 20.00, DATE '2025-10-06',
     'https://openai.com/api/pricing/')
ON CONFLICT DO NOTHING;

-- Models billed by session time rather than tokens (GPT-Live: LIVE.md §6), USD per minute,
-- billed by the second; paused_usd_per_minute is the rate of paused (standby) WebRTC time,
-- NULL when it is billed as active. Matched to the model like ``prices``.
CREATE TABLE IF NOT EXISTS time_prices (
    model VARCHAR PRIMARY KEY,
    usd_per_minute DOUBLE NOT NULL,
    paused_usd_per_minute DOUBLE,
    as_of DATE NOT NULL,
    source VARCHAR NOT NULL
);

INSERT INTO time_prices VALUES
    ('gpt-live-1', 0.05, NULL, DATE '2026-10-02',
     'assumed: LIVE.md section 6, a third party quoting the gpt-live-1 model page'),
    ('gpt-live-1.1', 0.05, 0.02, DATE '2026-11-20',
     'assumed: LIVE.md section 6, a pricing blog (paused rate); active rate as gpt-live-1')
ON CONFLICT DO NOTHING;
"""

# The analytical views (docs/sql.md). They are SQL over ``events`` and ``sessions`` only, so
# they answer for live sessions, imported ones and Parquet exports alike. JSON functions
# only ever see rows whose ``type`` was set, which the recorder sets only for frames that
# parsed as JSON objects. GA and beta event names are both understood. Response ids come
# from the ``response_id`` column, or from ``response.id`` in logs written without it.
_RESPONSES: Final = """
WITH done AS (
    SELECT session_id, seq, t_ns, wall_time,
        coalesce(response_id, json_extract_string(payload, '$.response.id')) AS response_id,
        json_extract_string(payload, [
            '$.response.status',
            '$.response.status_details.reason',
            '$.response.usage.input_tokens',
            '$.response.usage.output_tokens',
            '$.response.usage.input_token_details.text_tokens',
            '$.response.usage.input_token_details.audio_tokens',
            '$.response.usage.input_token_details.image_tokens',
            '$.response.usage.input_token_details.cached_tokens',
            '$.response.usage.input_token_details.cached_tokens_details.text_tokens',
            '$.response.usage.input_token_details.cached_tokens_details.audio_tokens',
            '$.response.usage.output_token_details.text_tokens',
            '$.response.usage.output_token_details.audio_tokens'
        ]) AS f
    FROM __EVENTS__
    WHERE type = 'response.done' AND direction = 'server'
)
SELECT session_id, response_id, seq, t_ns / 1e6 AS done_ms, wall_time,
    f[1] AS status, f[2] AS status_reason,
    coalesce(TRY_CAST(f[3] AS BIGINT), 0) AS input_tokens,
    coalesce(TRY_CAST(f[4] AS BIGINT), 0) AS output_tokens,
    coalesce(TRY_CAST(f[5] AS BIGINT), 0) AS input_text_tokens,
    coalesce(TRY_CAST(f[6] AS BIGINT), 0) AS input_audio_tokens,
    coalesce(TRY_CAST(f[7] AS BIGINT), 0) AS input_image_tokens,
    coalesce(TRY_CAST(f[8] AS BIGINT), 0) AS cached_tokens,
    coalesce(TRY_CAST(f[9] AS BIGINT), 0) AS cached_text_tokens,
    coalesce(TRY_CAST(f[10] AS BIGINT), 0) AS cached_audio_tokens,
    coalesce(TRY_CAST(f[11] AS BIGINT), 0) AS output_text_tokens,
    coalesce(TRY_CAST(f[12] AS BIGINT), 0) AS output_audio_tokens
FROM done
"""

# Function calls (answered by the client's function_call_output) and MCP calls (run by the
# service, whose item carries the output or the error; MCP items have no status, so it is
# derived from them: PROTOCOL.md §4.1).
_FUNCTION_CALLS: Final = """
WITH calls AS (
    SELECT session_id, seq, t_ns, response_id,
        coalesce(item_id, json_extract_string(payload, '$.item.id')) AS item_id,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.name',
                                      '$.item.arguments', '$.item.status',
                                      '$.item.server_label', '$.item.output',
                                      '$.item.error.type']) AS f
    FROM __EVENTS__
    WHERE type = 'response.output_item.done' AND direction = 'server'
),
outputs AS (
    SELECT session_id, t_ns, seq,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.output']) AS f
    FROM __EVENTS__
    WHERE type = 'conversation.item.create' AND direction = 'client'
),
answers AS (
    SELECT session_id, f[2] AS call_id, min(t_ns) AS t_ns, arg_min(f[3], seq) AS output,
        count(*) AS outputs
    FROM outputs WHERE f[1] = 'function_call_output'
    GROUP BY ALL
)
SELECT c.session_id, c.f[2] AS call_id, c.f[3] AS name, c.f[4] AS arguments,
    coalesce(json_valid(c.f[4]), false) AS arguments_valid,
    CASE WHEN c.f[1] = 'function_call' THEN c.f[5]
         WHEN c.f[8] IS NOT NULL THEN 'failed'
         WHEN c.f[7] IS NOT NULL THEN 'completed' ELSE 'incomplete' END AS status,
    c.response_id, c.item_id, c.seq, c.t_ns / 1e6 AS called_ms,
    CASE WHEN c.f[1] = 'function_call' THEN a.t_ns / 1e6
         WHEN c.f[7] IS NOT NULL OR c.f[8] IS NOT NULL THEN c.t_ns / 1e6 END AS output_ms,
    coalesce(a.output, c.f[7]) AS output,
    CASE WHEN c.f[1] = 'function_call' THEN coalesce(a.outputs, 0)
         ELSE (c.f[7] IS NOT NULL)::INTEGER END AS outputs,
    (a.t_ns - c.t_ns) / 1e6 AS tool_ms,
    CASE c.f[1] WHEN 'mcp_call' THEN 'mcp' ELSE 'function' END AS kind,
    c.f[6] AS server_label
FROM calls c LEFT JOIN answers a
  ON c.f[1] = 'function_call' AND a.session_id = c.session_id AND a.call_id = c.f[2]
WHERE c.f[1] IN ('function_call', 'mcp_call')
"""

_ERRORS: Final = """
SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time, 'server' AS source,
    f[1] AS error_type, f[2] AS code, f[3] AS message, f[4] AS param, f[5] AS caused_by
FROM (
    SELECT *, json_extract_string(payload, ['$.error.type', '$.error.code', '$.error.message',
                                            '$.error.param', '$.error.event_id']) AS f
    FROM __EVENTS__ WHERE type = 'error' AND direction = 'server'
)
UNION ALL
-- failed responses, read from their response.done alone: a join of ``responses`` back to
-- ``events`` for the error's code and message cost a probe of every event over Parquet
SELECT session_id, seq, t_ns / 1e6, wall_time, 'response', f[1], f[2],
    coalesce(f[3], 'response ' || f[1]), NULL,
    coalesce(response_id, json_extract_string(payload, '$.response.id'))
FROM (
    SELECT *, json_extract_string(payload, ['$.response.status',
                                            '$.response.status_details.error.code',
                                            '$.response.status_details.error.message']) AS f
    FROM __EVENTS__ WHERE type = 'response.done' AND direction = 'server'
)
WHERE f[1] = 'failed'
UNION ALL
-- an MCP call that failed (its item carries the error) or a listing of tools that failed;
-- caused_by is the item. (Each branch filters on one type: a scan filtered by IN reads
-- every payload, ten times slower over a large log.)
SELECT session_id, seq, t_ns / 1e6, wall_time, 'mcp', f[2], f[3], f[4], NULL,
    coalesce(item_id, f[5])
FROM (
    SELECT *, json_extract_string(payload, ['$.item.type', '$.item.error.type',
                                            '$.item.error.code', '$.item.error.message',
                                            '$.item.id']) AS f
    FROM __EVENTS__ WHERE type = 'response.output_item.done' AND direction = 'server'
)
WHERE f[1] = 'mcp_call' AND f[2] IS NOT NULL
UNION ALL
SELECT session_id, seq, t_ns / 1e6, wall_time, 'mcp', 'mcp_list_tools_failed', NULL,
    'listing the tools of an MCP server failed', NULL, item_id
FROM __EVENTS__ WHERE type = 'mcp_list_tools.failed' AND direction = 'server'
UNION ALL
-- a failed input transcription (PROTOCOL.md §6.5: not an ``error`` event); caused_by is the
-- user item
SELECT session_id, seq, t_ns / 1e6, wall_time, 'transcription', f[1], f[2],
    coalesce(f[3], 'input audio transcription failed'), f[4], item_id
FROM (
    SELECT *, json_extract_string(payload, ['$.error.type', '$.error.code', '$.error.message',
                                            '$.error.param']) AS f
    FROM __EVENTS__
    WHERE type = 'conversation.item.input_audio_transcription.failed' AND direction = 'server'
)
UNION ALL
SELECT session_id, seq, t_ns / 1e6, wall_time, 'recording', 'invalid_frame', NULL, parse_error,
    NULL, NULL
FROM __EVENTS__ WHERE parse_error IS NOT NULL
"""

# A truncation is the client's ``conversation.item.truncate``, or a
# ``conversation.item.truncated`` no client truncate of that item asked for: over WebRTC and
# SIP the server truncates on its own when the user barges in (PROTOCOL.md §9).
_INTERRUPTIONS: Final = """
WITH marks AS (
    SELECT session_id, seq, t_ns, wall_time, type, direction, item_id,
        sum(CASE WHEN type = 'response.created' THEN 1
                 WHEN type = 'response.done' THEN -1 ELSE 0 END)
            OVER (PARTITION BY session_id ORDER BY seq) AS active,
        last_value(CASE WHEN type = 'response.created' THEN coalesce(
                            response_id, json_extract_string(payload, '$.response.id'))
                        END IGNORE NULLS)
            OVER (PARTITION BY session_id ORDER BY seq) AS last_response,
        -- the items the client asked to truncate so far (few): the same window as above,
        -- where a partition by item would sort the events a second time
        list(item_id) FILTER (type = 'conversation.item.truncate')
            OVER (PARTITION BY session_id ORDER BY seq) AS asked
    FROM __EVENTS__
    WHERE (direction = 'server' AND type IN ('response.created', 'response.done',
                                             'input_audio_buffer.speech_started',
                                             'conversation.item.truncated'))
       OR (direction = 'client' AND type IN ('response.cancel', 'conversation.item.truncate'))
)
SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    CASE type WHEN 'input_audio_buffer.speech_started' THEN 'barge_in'
              WHEN 'response.cancel' THEN 'cancel' ELSE 'truncate' END AS kind,
    last_response AS response_id, item_id,
    CASE WHEN type LIKE 'conversation.item.truncate%' THEN direction END AS truncated_by
FROM marks
WHERE (type = 'input_audio_buffer.speech_started' AND active > 0)
   OR (type = 'response.cancel' AND active > 0)
   OR type = 'conversation.item.truncate'
   OR (type = 'conversation.item.truncated' AND NOT coalesce(list_contains(asked, item_id), false))
"""

_RATE_LIMITS: Final = """
SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    json_extract_string(r, '$.name') AS name,
    TRY_CAST(json_extract_string(r, '$.limit') AS BIGINT) AS "limit",
    TRY_CAST(json_extract_string(r, '$.remaining') AS BIGINT) AS remaining,
    TRY_CAST(json_extract_string(r, '$.reset_seconds') AS DOUBLE) AS reset_seconds
FROM (
    SELECT *, unnest(json_extract(payload, '$.rate_limits[*]')) AS r
    FROM __EVENTS__ WHERE type = 'rate_limits.updated' AND direction = 'server'
)
"""

# WebRTC/SIP playout of response audio, as sideband logs show it (PROTOCOL.md §3.1, §9).
_PLAYBACK: Final = """
SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    coalesce(response_id, json_extract_string(payload, '$.response_id')) AS response_id,
    replace(type, 'output_audio_buffer.', '') AS event
FROM __EVENTS__
-- a prefix filter: the scan skips other events' payloads (an IN list would read them all)
WHERE starts_with(type, 'output_audio_buffer.') AND direction = 'server'
  AND type IN ('output_audio_buffer.started', 'output_audio_buffer.stopped',
               'output_audio_buffer.cleared')
"""

# GPT-Live (LIVE.md; docs/sql.md "GPT-Live"). Its events carry no items, responses or turns:
# usage is cumulative seconds (the latest value counts, never a sum), speech is placed by
# the transcripts' start_ms/end_ms on the session timeline (ms from the session's start,
# driven by the input audio), and output audio is continuous, silence included, so where
# the assistant speaks comes from the output transcripts, not from the audio. Each scan
# that reads payloads filters on one type (or a prefix), as the views above do.

# One row per GPT-Live session (one with a session.start or session.started).
_LIVE_SESSIONS: Final = """
WITH marks AS (
    SELECT session_id, seq, t_ns, type, direction, payload
    FROM __EVENTS__
    WHERE starts_with(type, 'session.') AND type IN ('session.start', 'session.started',
                                                     'session.usage.updated', 'session.closed')
),
per AS (
    SELECT session_id,
        arg_min(payload, seq) FILTER (type = 'session.start' AND direction = 'client')
            AS start,
        arg_max(payload, seq) FILTER (type = 'session.started' AND direction = 'server')
            AS started,
        arg_max(payload, seq) FILTER (type IN ('session.usage.updated', 'session.closed')
                                      AND direction = 'server') AS usage,
        arg_max(payload, seq) FILTER (type = 'session.usage.updated' AND direction = 'server'
                                      AND payload LIKE '%"context_window"%') AS window,
        arg_max(payload, seq) FILTER (type = 'session.closed' AND direction = 'server')
            AS closed,
        max(t_ns) FILTER (type = 'session.closed' AND direction = 'server') AS closed_ns,
        count(*) FILTER (type = 'session.usage.updated' AND direction = 'server')
            AS usage_updates
    FROM marks
    GROUP BY session_id
    HAVING count(*) FILTER (type IN ('session.start', 'session.started')) > 0
),
audio AS (
    SELECT session_id,
        sum(audio_samples / audio_rate) FILTER (type = 'session.input_audio.append')
            AS input_audio_s,
        sum(audio_samples / audio_rate) FILTER (type = 'session.output_audio.delta')
            AS output_audio_s,
        sum(audio_samples / audio_rate) FILTER (type = 'session.output_audio.fixture.play')
            AS fixture_audio_s
    FROM __EVENTS__
    WHERE audio_samples > 0 AND starts_with(type, 'session.')
    GROUP BY session_id
),
spans AS (
    SELECT session_id, type, coalesce(event_id, seq::VARCHAR) AS fragment,
        greatest(TRY_CAST(f[2] AS BIGINT) - TRY_CAST(f[1] AS BIGINT), 0) AS span_ms
    FROM (
        SELECT *, json_extract_string(payload, ['$.start_ms', '$.end_ms']) AS f
        FROM __EVENTS__
        WHERE type = 'session.input_transcript.delta' AND direction = 'server'
        UNION ALL
        SELECT *, json_extract_string(payload, ['$.start_ms', '$.end_ms'])
        FROM __EVENTS__
        WHERE type = 'session.output_transcript.delta' AND direction = 'server'
    )
),
speech AS (  -- fragments repeated with one event_id (a sideband) count once
    SELECT session_id,
        sum(span_ms) FILTER (type = 'session.input_transcript.delta') / 1000 AS user_speech_s,
        sum(span_ms) FILTER (type = 'session.output_transcript.delta') / 1000
            AS assistant_speech_s
    FROM (SELECT DISTINCT ON (session_id, type, fragment) * FROM spans)
    GROUP BY session_id
),
figures AS (
    SELECT p.session_id,
        coalesce(json_extract_string(p.started, '$.session.model'),
                 json_extract_string(p.start, '$.session.model')) AS model,
        coalesce(a.input_audio_s, 0) AS input_audio_s,
        coalesce(a.output_audio_s, 0) AS output_audio_s,
        coalesce(a.fixture_audio_s, 0) AS fixture_audio_s,
        coalesce(sp.user_speech_s, 0) AS user_speech_s,
        coalesce(sp.assistant_speech_s, 0) AS assistant_speech_s,
        TRY_CAST(json_extract_string(p.usage, '$.usage.seconds') AS DOUBLE) AS billed_s,
        TRY_CAST(json_extract_string(p.usage, '$.usage.active_seconds') AS DOUBLE) AS active_s,
        TRY_CAST(json_extract_string(p.usage, '$.usage.paused_seconds') AS DOUBLE) AS paused_s,
        TRY_CAST(json_extract_string(p.window, '$.context_window.usage_ratio') AS DOUBLE)
            AS context_ratio,
        p.usage_updates,
        p.closed IS NOT NULL AS close_confirmed,
        json_extract_string(p.closed, '$.reason') AS close_reason,
        p.closed_ns / 1e6 AS closed_ms
    FROM per p LEFT JOIN audio a USING (session_id) LEFT JOIN speech sp USING (session_id)
),
price AS (
    SELECT f.session_id, t.*
    FROM figures f JOIN time_prices t ON starts_with(f.model, t.model)
    QUALIFY row_number() OVER (PARTITION BY f.session_id ORDER BY length(t.model) DESC) = 1
)
SELECT f.*, t.model AS priced_as,
    CASE WHEN f.active_s IS NOT NULL AND f.paused_s IS NOT NULL
         THEN f.active_s * t.usd_per_minute
              + f.paused_s * coalesce(t.paused_usd_per_minute, t.usd_per_minute)
         ELSE f.billed_s * t.usd_per_minute END / 60 AS cost_usd
FROM figures f LEFT JOIN price t USING (session_id)
"""

# Delegations and how long each took to answer: a client delegation is answered by the
# client's first session.commentary.append naming it, a Responses one by the backend's last
# response.completed (or failed, incomplete) in its nested events, a Decisions one by its
# decision.event. Nested events without a delegation_id are matched by their response id.
_LIVE_DELEGATIONS: Final = """
WITH created AS (
    SELECT session_id, seq, t_ns,
        json_extract_string(payload, ['$.delegation.id', '$.delegation.target',
                                      '$.delegation.response_id', '$.offset_ms']) AS f
    FROM __EVENTS__
    WHERE type = 'session.delegation.created' AND direction = 'server'
),
nested AS (
    SELECT n.session_id, n.seq, n.t_ns, coalesce(n.f[1], c.f[1]) AS delegation_id,
        n.f[2] AS event, n.f[4] AS item_type,
        TRY_CAST(n.f[5] AS BIGINT) AS input_tokens, TRY_CAST(n.f[6] AS BIGINT) AS output_tokens
    FROM (
        SELECT session_id, seq, t_ns,
            json_extract_string(payload, ['$.delegation_id', '$.event.type',
                                          '$.event.response.id', '$.event.item.type',
                                          '$.event.response.usage.input_tokens',
                                          '$.event.response.usage.output_tokens']) AS f
        FROM __EVENTS__
        WHERE type = 'response.event' AND direction = 'server'
    ) n
    LEFT JOIN created c ON n.f[1] IS NULL AND c.session_id = n.session_id AND c.f[3] = n.f[3]
),
backend AS (
    SELECT session_id, delegation_id,
        count(*) FILTER (event = 'response.created') AS responses,
        count(*) FILTER (event = 'response.output_item.done' AND item_type = 'function_call')
            AS calls,
        max(t_ns) FILTER (event IN ('response.completed', 'response.failed',
                                    'response.incomplete')) AS done_ns,
        arg_max(event, seq) FILTER (event IN ('response.completed', 'response.failed',
                                              'response.incomplete')) AS done,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM nested WHERE delegation_id IS NOT NULL
    GROUP BY ALL
),
commentary AS (
    SELECT session_id, json_extract_string(payload, '$.delegation_id') AS delegation_id,
        min(t_ns) AS t_ns, count(*) AS answers
    FROM __EVENTS__
    WHERE type = 'session.commentary.append' AND direction = 'client'
    GROUP BY ALL
),
decided AS (
    SELECT session_id, json_extract_string(payload, '$.delegation_id') AS delegation_id,
        min(t_ns) AS t_ns
    FROM __EVENTS__
    WHERE type = 'decision.event' AND direction = 'server'
    GROUP BY ALL
)
SELECT c.session_id, c.f[1] AS delegation_id, c.f[2] AS target, c.f[3] AS response_id,
    TRY_CAST(c.f[4] AS BIGINT) AS offset_ms, c.seq, c.t_ns / 1e6 AS created_ms,
    CASE c.f[2] WHEN 'client' THEN a.t_ns WHEN 'decisions' THEN d.t_ns ELSE b.done_ns END
        / 1e6 AS answered_ms,
    (CASE c.f[2] WHEN 'client' THEN a.t_ns WHEN 'decisions' THEN d.t_ns ELSE b.done_ns END
        - c.t_ns) / 1e6 AS latency_ms,
    coalesce(a.answers, 0) AS answers,
    coalesce(b.responses, 0) AS responses,
    coalesce(b.calls, 0) AS calls,
    replace(b.done, 'response.', '') AS status,
    b.input_tokens AS backend_input_tokens, b.output_tokens AS backend_output_tokens
FROM created c
LEFT JOIN commentary a ON a.session_id = c.session_id AND a.delegation_id = c.f[1]
LEFT JOIN backend b ON b.session_id = c.session_id AND b.delegation_id = c.f[1]
LEFT JOIN decided d ON d.session_id = c.session_id AND d.delegation_id = c.f[1]
"""

# Function calls a Responses backend made for a delegation (nested response.output_item.done)
# and the client's function_call_output (response.item.create) for each, by call_id.
_LIVE_CALLS: Final = """
WITH calls AS (
    SELECT session_id, seq, t_ns,
        json_extract_string(payload, ['$.delegation_id', '$.event.item.type',
                                      '$.event.item.call_id', '$.event.item.name',
                                      '$.event.item.arguments', '$.event.type']) AS f
    FROM __EVENTS__
    WHERE type = 'response.event' AND direction = 'server'
),
outputs AS (
    SELECT session_id, f[2] AS call_id, min(t_ns) AS t_ns, arg_min(f[3], seq) AS output,
        count(*) AS outputs
    FROM (
        SELECT session_id, seq, t_ns,
            json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.output'])
                AS f
        FROM __EVENTS__
        WHERE type = 'response.item.create' AND direction = 'client'
    )
    WHERE f[1] = 'function_call_output'
    GROUP BY ALL
)
SELECT c.session_id, c.f[1] AS delegation_id, c.f[3] AS call_id, c.f[4] AS name,
    c.f[5] AS arguments, c.seq, c.t_ns / 1e6 AS called_ms, o.t_ns / 1e6 AS output_ms,
    o.output, coalesce(o.outputs, 0) AS outputs, (o.t_ns - c.t_ns) / 1e6 AS tool_ms
FROM calls c
LEFT JOIN outputs o ON o.session_id = c.session_id AND o.call_id = c.f[3]
WHERE c.f[6] = 'response.output_item.done' AND c.f[2] = 'function_call'
"""

# When the user stopped speaking, and when the assistant started its reply, on the session
# timeline. The user's transcript fragments less than 500 ms apart form one utterance (the
# SDK grouper's min_turn_separation_ms, as rtrec.replay.live groups them); its reply is the
# first assistant fragment that starts at or after the utterance's end and before the
# user's next utterance. Fragments repeated with one event_id (a sideband) count once.
_LIVE_REPLIES: Final = """
WITH frags AS (
    SELECT session_id, seq, t_ns, 'user' AS speaker,
        json_extract_string(payload, ['$.start_ms', '$.end_ms', '$.delta']) AS f
    FROM __EVENTS__
    WHERE type = 'session.input_transcript.delta' AND direction = 'server'
    QUALIFY row_number() OVER (PARTITION BY session_id, coalesce(event_id, seq::VARCHAR)
                               ORDER BY seq) = 1
    UNION ALL
    SELECT session_id, seq, t_ns, 'assistant',
        json_extract_string(payload, ['$.start_ms', '$.end_ms', '$.delta'])
    FROM __EVENTS__
    WHERE type = 'session.output_transcript.delta' AND direction = 'server'
    QUALIFY row_number() OVER (PARTITION BY session_id, coalesce(event_id, seq::VARCHAR)
                               ORDER BY seq) = 1
),
timed AS (
    SELECT session_id, seq, t_ns, speaker, TRY_CAST(f[1] AS BIGINT) AS start_ms,
        TRY_CAST(f[2] AS BIGINT) AS end_ms, f[3] AS delta
    FROM frags
),
said AS (
    SELECT *,
        start_ms - max(end_ms) OVER (PARTITION BY session_id ORDER BY start_ms, seq
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            AS gap_ms
    FROM timed WHERE speaker = 'user' AND start_ms IS NOT NULL
),
numbered AS (
    SELECT *, sum(CASE WHEN gap_ms IS NULL OR gap_ms > 500 THEN 1 ELSE 0 END)
                  OVER (PARTITION BY session_id ORDER BY start_ms, seq)::BIGINT AS utterance
    FROM said
),
utterances AS (
    SELECT session_id, utterance, min(start_ms) AS start_ms, max(end_ms) AS end_ms,
        string_agg(delta, '' ORDER BY start_ms, seq) AS transcript,
        max(t_ns) AS transcribed_ns,
        lead(min(start_ms)) OVER (PARTITION BY session_id ORDER BY utterance) AS next_ms
    FROM numbered
    GROUP BY session_id, utterance
),
replies AS (
    SELECT session_id, start_ms, seq, t_ns FROM timed
    WHERE speaker = 'assistant' AND start_ms IS NOT NULL
)
SELECT u.session_id, u.utterance, u.start_ms AS speech_start_ms, u.end_ms AS speech_end_ms,
    u.transcript, u.transcribed_ns / 1e6 AS transcribed_at_ms,
    r.start_ms AS reply_start_ms, r.seq AS reply_seq, r.t_ns / 1e6 AS reply_at_ms,
    r.start_ms - u.end_ms AS speech_end_to_first_audio_ms
FROM utterances u
LEFT JOIN LATERAL (
    SELECT * FROM replies r
    WHERE r.session_id = u.session_id AND r.start_ms >= u.end_ms
      AND r.start_ms < coalesce(u.next_ms, 9223372036854775807)
    ORDER BY r.start_ms, r.seq LIMIT 1
) r ON true
"""

# Mute intervals: each session.input_audio.muted ack and the unmuted ack that ends it.
_LIVE_MUTES: Final = """
WITH marks AS (
    SELECT session_id, seq, t_ns, type,
        lead(type) OVER w AS next_type, lead(seq) OVER w AS next_seq,
        lead(t_ns) OVER w AS next_ns
    FROM __EVENTS__
    WHERE direction = 'server'
      AND type IN ('session.input_audio.muted', 'session.input_audio.unmuted')
    WINDOW w AS (PARTITION BY session_id ORDER BY seq)
)
SELECT session_id, seq AS muted_seq, t_ns / 1e6 AS muted_ms,
    CASE WHEN next_type = 'session.input_audio.unmuted' THEN next_seq END AS unmuted_seq,
    CASE WHEN next_type = 'session.input_audio.unmuted' THEN next_ns / 1e6 END AS unmuted_ms,
    CASE WHEN next_type = 'session.input_audio.unmuted' THEN (next_ns - t_ns) / 1e6 END
        AS muted_for_ms
FROM marks
WHERE type = 'session.input_audio.muted'
"""

#: The views above by name; ``_over`` fills in the events they read.
_EVENT_VIEWS: Final = {
    "responses": _RESPONSES,
    "function_calls": _FUNCTION_CALLS,
    "errors": _ERRORS,
    "interruptions": _INTERRUPTIONS,
    "rate_limits": _RATE_LIMITS,
    "playback": _PLAYBACK,
}

#: GPT-Live's views (not part of the indexed summary: ``session_summary`` joins
#: ``live_sessions`` at query time).
_LIVE_VIEWS: Final = {
    "live_sessions": _LIVE_SESSIONS,
    "live_delegations": _LIVE_DELEGATIONS,
    "live_calls": _LIVE_CALLS,
    "live_replies": _LIVE_REPLIES,
    "live_mutes": _LIVE_MUTES,
}


def _over(query: str, events: str) -> str:
    """``query`` reading ``events`` (a table name, or ``(SELECT ...) AS events``)."""
    return query.replace("__EVENTS__", events)


_BASE_VIEWS: Final = "".join(
    f"CREATE OR REPLACE VIEW {name} AS\n{_over(body, 'events')};\n"
    for name, body in (_EVENT_VIEWS | _LIVE_VIEWS).items()
)

#: The ``turns`` query (docs/sql.md): one row per ``response.created`` and what led to it,
#: from the events alone. ``turns_query`` fills in the relation it reads, so the one
#: definition serves ``rtrec index`` (one session's events, materialised into
#: ``indexed_turns``) and the ``turns`` view's fallback (sessions not indexed yet).
TURNS_QUERY: Final = """
WITH created AS (
    SELECT session_id, seq, t_ns,
        coalesce(response_id, json_extract_string(payload, '$.response.id')) AS response_id,
        row_number() OVER w AS turn,
        coalesce(lag(seq) OVER w, -1) AS prev_seq
    FROM __EVENTS__
    WHERE type = 'response.created' AND direction = 'server'
    WINDOW w AS (PARTITION BY session_id ORDER BY seq)
),
user_side AS (
    SELECT session_id, seq, t_ns, type,
        TRY_CAST(CASE WHEN type = 'input_audio_buffer.speech_stopped'
                      THEN json_extract_string(payload, '$.audio_end_ms') END AS BIGINT)
            AS audio_end_ms
    FROM __EVENTS__
    WHERE (direction = 'server' AND type IN ('input_audio_buffer.speech_started',
                                             'input_audio_buffer.speech_stopped',
                                             'input_audio_buffer.committed'))
       OR (direction = 'client' AND type = 'response.create')
),
before AS (
    SELECT c.session_id, c.seq,
        arg_max(u.t_ns, u.seq) FILTER (u.type = 'input_audio_buffer.speech_started') AS start_ns,
        arg_max(u.t_ns, u.seq) FILTER (u.type = 'input_audio_buffer.speech_stopped') AS end_ns,
        arg_max(u.audio_end_ms, u.seq) FILTER (u.type = 'input_audio_buffer.speech_stopped')
            AS end_audio_ms,
        arg_max(u.t_ns, u.seq) FILTER (u.type = 'input_audio_buffer.committed') AS commit_ns,
        arg_max(u.t_ns, u.seq) FILTER (u.type = 'response.create') AS create_ns
    FROM created c JOIN user_side u
      ON u.session_id = c.session_id AND u.seq > c.prev_seq AND u.seq < c.seq
    GROUP BY ALL
),
output AS (
    SELECT session_id, response_id,
        min(t_ns) FILTER (type IN ('response.output_audio.delta', 'response.audio.delta'))
            AS audio_ns,
        min(t_ns) FILTER (type IN ('response.output_audio_transcript.delta',
                                   'response.audio_transcript.delta')) AS transcript_ns,
        min(t_ns) FILTER (type IN ('response.output_text.delta', 'response.text.delta'))
            AS text_ns,
        min(t_ns) FILTER (type = 'response.done') AS done_ns
    FROM (
        SELECT session_id, t_ns, type,
            CASE WHEN type = 'response.done'
                 THEN coalesce(response_id, json_extract_string(payload, '$.response.id'))
                 ELSE response_id END AS response_id
        FROM __EVENTS__
        WHERE direction = 'server' AND type IN (
        'response.output_audio.delta', 'response.audio.delta',
        'response.output_audio_transcript.delta', 'response.audio_transcript.delta',
            'response.output_text.delta', 'response.text.delta', 'response.done')
    )
    WHERE response_id IS NOT NULL
    GROUP BY ALL
),
-- Where the input audio timeline (VAD's audio_end_ms) meets the session clock: the append
-- that carried the last sample of the user's speech, and when the client sent it.
input_audio AS (
    SELECT session_id, t_ns, audio_offset * 1000.0 / audio_rate AS start_ms,
        (audio_offset + audio_samples) * 1000.0 / audio_rate AS end_ms
    FROM __EVENTS__
    WHERE audio_stream = 'input' AND audio_samples > 0
),
sent AS (
    SELECT b.session_id, b.seq,
        CASE WHEN b.end_audio_ms <= i.end_ms THEN i.t_ns END AS sent_ns
    FROM before b ASOF JOIN input_audio i
      ON i.session_id = b.session_id AND b.end_audio_ms > i.start_ms
)
SELECT c.session_id, c.turn, c.response_id,
    b.start_ns / 1e6 AS speech_start_ms,
    b.end_ns / 1e6 AS speech_end_ms,
    b.end_audio_ms AS speech_end_audio_ms,
    se.sent_ns / 1e6 AS speech_end_sent_ms,
    b.commit_ns / 1e6 AS committed_ms,
    b.create_ns / 1e6 AS response_create_ms,
    c.t_ns / 1e6 AS response_created_ms,
    o.audio_ns / 1e6 AS first_audio_ms,
    o.transcript_ns / 1e6 AS first_transcript_ms,
    o.text_ns / 1e6 AS first_text_ms,
    o.done_ns / 1e6 AS response_done_ms,
    (o.audio_ns - b.end_ns) / 1e6 AS speech_end_to_first_audio_ms,
    (o.audio_ns - se.sent_ns) / 1e6 AS speech_sent_to_first_audio_ms,
    (o.audio_ns - c.t_ns) / 1e6 AS created_to_first_audio_ms,
    (o.audio_ns - b.create_ns) / 1e6 AS create_to_first_audio_ms,
    (coalesce(o.transcript_ns, o.text_ns) - b.end_ns) / 1e6 AS speech_end_to_first_text_ms,
    (c.t_ns - b.commit_ns) / 1e6 AS commit_to_created_ms,
    (o.done_ns - c.t_ns) / 1e6 AS response_ms
FROM created c
LEFT JOIN before b ON b.session_id = c.session_id AND b.seq = c.seq
LEFT JOIN sent se ON se.session_id = c.session_id AND se.seq = c.seq
LEFT JOIN output o ON o.session_id = c.session_id AND o.response_id = c.response_id
"""


def turns_query(events: str = "events") -> str:
    """The ``turns`` query over ``events``: a table name, or ``(SELECT ...) AS events``.

    The relation needs the ``events`` columns ``session_id``, ``seq``, ``direction``,
    ``t_ns``, ``type``, ``payload``, ``response_id`` and the ``audio_*`` ones.
    """
    return _over(TURNS_QUERY, events)


# Indexed sessions' turns come from ``indexed_turns``; every other session's (live ones,
# imported or older ones not indexed yet) are computed from its events. A session counts as
# indexed when it has rows in ``indexed_turns`` itself, not in ``indexed``: a Parquet
# export reads each table on its own, and a session indexed between the two reads must not
# lose its turns nor get them twice. A session without turns is computed every time, which
# costs nothing: it has no ``response.created``.
_TURNS_VIEW: Final = (
    "CREATE OR REPLACE VIEW turns AS\n"
    "SELECT * FROM indexed_turns\n"
    "UNION ALL BY NAME\n"
    "SELECT * FROM ("
    + turns_query(
        "(SELECT * FROM events WHERE session_id IN (\n"
        "    SELECT session_id FROM sessions ANTI JOIN indexed_turns USING (session_id)"
        ")) AS events"
    )
    + ");\n"
)

#: Per session, what ``session_summary`` adds up from its events (docs/sql.md), over
#: ``__EVENTS__``: with ``turns``, what indexing materialises (into ``indexed_summary``). The
#: views it counts from are inlined over the same events.
SUMMARY_QUERY: Final = (
    "WITH "
    + ",\n".join(f"{name} AS (\n{body}\n)" for name, body in _EVENT_VIEWS.items())
    + """,
ev AS (
    SELECT session_id, count(*) AS events, max(wall_time) AS last_wall,
        count(*) FILTER (type = 'response.created' AND direction = 'server') AS turns,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'output'), 0)
            AS assistant_audio_s,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'input'), 0)
            AS input_audio_s
    FROM __EVENTS__ GROUP BY session_id
),
speech AS (
    SELECT session_id, sum(greatest(stop_ms - start_ms, 0)) / 1000.0 AS user_speech_s
    FROM (
        SELECT session_id, item_id,
            min(TRY_CAST(json_extract_string(payload, '$.audio_start_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_started') AS start_ms,
            max(TRY_CAST(json_extract_string(payload, '$.audio_end_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_stopped') AS stop_ms
        FROM __EVENTS__
        WHERE direction = 'server' AND type IN ('input_audio_buffer.speech_started',
                                                'input_audio_buffer.speech_stopped')
        GROUP BY ALL
    )
    GROUP BY session_id
),
usage AS (
    SELECT session_id, count(*) AS responses,
        count(*) FILTER (status = 'failed') AS failed_responses,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(input_text_tokens) AS input_text_tokens,
        sum(input_audio_tokens) AS input_audio_tokens,
        sum(input_image_tokens) AS input_image_tokens,
        sum(cached_tokens) AS cached_tokens,
        sum(cached_text_tokens) AS cached_text_tokens,
        sum(cached_audio_tokens) AS cached_audio_tokens,
        sum(output_text_tokens) AS output_text_tokens,
        sum(output_audio_tokens) AS output_audio_tokens
    FROM responses GROUP BY session_id
),
err AS (SELECT session_id, count(*) AS errors FROM errors GROUP BY session_id),
intr AS (
    SELECT session_id, count(*) FILTER (kind <> 'truncate') AS interruptions,
        count(*) FILTER (kind = 'truncate') AS truncations
    FROM interruptions GROUP BY session_id
),
calls AS (
    SELECT session_id, count(*) AS function_calls,
        count(*) FILTER (kind = 'function' AND output_ms IS NULL) AS unanswered_calls
    FROM function_calls GROUP BY session_id
)
SELECT ev.session_id, ev.events, ev.last_wall, ev.turns,
    coalesce(sp.user_speech_s, 0) AS user_speech_s,
    ev.input_audio_s,
    ev.assistant_audio_s AS assistant_speech_s,
    coalesce(u.responses, 0) AS responses,
    coalesce(u.failed_responses, 0) AS failed_responses,
    coalesce(u.input_tokens, 0)::BIGINT AS input_tokens,
    coalesce(u.output_tokens, 0)::BIGINT AS output_tokens,
    coalesce(u.input_text_tokens, 0)::BIGINT AS input_text_tokens,
    coalesce(u.input_audio_tokens, 0)::BIGINT AS input_audio_tokens,
    coalesce(u.input_image_tokens, 0)::BIGINT AS input_image_tokens,
    coalesce(u.cached_tokens, 0)::BIGINT AS cached_tokens,
    coalesce(u.cached_text_tokens, 0)::BIGINT AS cached_text_tokens,
    coalesce(u.cached_audio_tokens, 0)::BIGINT AS cached_audio_tokens,
    coalesce(u.output_text_tokens, 0)::BIGINT AS output_text_tokens,
    coalesce(u.output_audio_tokens, 0)::BIGINT AS output_audio_tokens,
    coalesce(er.errors, 0) AS errors,
    coalesce(i.interruptions, 0) AS interruptions,
    coalesce(i.truncations, 0) AS truncations,
    coalesce(fc.function_calls, 0) AS function_calls,
    coalesce(fc.unanswered_calls, 0) AS unanswered_calls
FROM ev
LEFT JOIN speech sp USING (session_id)
LEFT JOIN usage u USING (session_id)
LEFT JOIN err er USING (session_id)
LEFT JOIN intr i USING (session_id)
LEFT JOIN calls fc USING (session_id)
"""
)


#: Fills ``sessions.model`` of the GPT-Live sessions in ``__EVENTS__``: their URL names no
#: model (LIVE.md §4.1), their ``session.started`` names the one that ran (else the
#: ``session.start`` the one asked for). Run when a session is indexed.
_LIVE_MODEL_FILL: Final = """
UPDATE sessions SET model = m.model
FROM (
    SELECT session_id, coalesce(
        arg_max(json_extract_string(payload, '$.session.model'), seq)
            FILTER (type = 'session.started' AND direction = 'server'),
        arg_min(json_extract_string(payload, '$.session.model'), seq)
            FILTER (type = 'session.start' AND direction = 'client')) AS model
    FROM __EVENTS__ WHERE type IN ('session.start', 'session.started')
    GROUP BY session_id
) m
WHERE sessions.session_id = m.session_id AND sessions.protocol = 'live'
  AND sessions.model IS NULL AND m.model IS NOT NULL
"""


def live_model_fill(events: str = "events") -> str:
    """The statement that fills GPT-Live sessions' ``model`` from ``events`` (as
    ``turns_query``)."""
    return _over(_LIVE_MODEL_FILL, events)


def summary_query(events: str = "events") -> str:
    """The per-session part of ``session_summary`` over ``events`` (as ``turns_query``)."""
    return _over(SUMMARY_QUERY, events)


# As for turns: indexed sessions' figures come from ``indexed_summary``, the others' are
# added up from their events; prices and the session row are joined at query time, so a
# changed price changes every session's cost.
_SUMMARY_VIEW: Final = (
    """
CREATE OR REPLACE VIEW session_summary AS
WITH stats AS (
    SELECT * FROM indexed_summary
    UNION ALL BY NAME
    SELECT * FROM ("""
    + summary_query(
        "(SELECT * FROM events WHERE session_id IN (\n"
        "    SELECT session_id FROM sessions ANTI JOIN indexed_summary USING (session_id)"
        ")) AS events"
    )
    + """)
),
price AS (
    SELECT s.session_id, p.*
    FROM sessions s JOIN prices p ON starts_with(s.model, p.model)
    QUALIFY row_number() OVER (PARTITION BY s.session_id ORDER BY length(p.model) DESC) = 1
)
SELECT s.session_id, s.started_at, s.ended_at, coalesce(s.model, lv.model) AS model,
    s.protocol, s.status,
    -- GPT-Live says why it ended (session.closed); Realtime's WebSocket close reason else
    CASE WHEN lv.session_id IS NULL THEN s.close_reason
         ELSE coalesce(lv.close_reason, 'unconfirmed') END AS close_reason,
    epoch_us(coalesce(s.ended_at, st.last_wall, s.started_at)) / 1e6
        - epoch_us(s.started_at) / 1e6 AS duration_s,
    coalesce(st.events, 0) AS events,
    coalesce(st.turns, 0) AS turns,
    -- GPT-Live has no VAD events, and its output audio runs on through silence: its
    -- speech is what its transcripts cover
    coalesce(lv.user_speech_s, st.user_speech_s, 0) AS user_speech_s,
    coalesce(st.input_audio_s, 0) AS input_audio_s,
    coalesce(lv.assistant_speech_s, st.assistant_speech_s, 0) AS assistant_speech_s,
    coalesce(st.responses, 0) AS responses,
    coalesce(st.failed_responses, 0) AS failed_responses,
    coalesce(st.input_tokens, 0) AS input_tokens,
    coalesce(st.output_tokens, 0) AS output_tokens,
    coalesce(st.input_text_tokens, 0) AS input_text_tokens,
    coalesce(st.input_audio_tokens, 0) AS input_audio_tokens,
    coalesce(st.input_image_tokens, 0) AS input_image_tokens,
    coalesce(st.cached_tokens, 0) AS cached_tokens,
    coalesce(st.cached_text_tokens, 0) AS cached_text_tokens,
    coalesce(st.cached_audio_tokens, 0) AS cached_audio_tokens,
    coalesce(st.output_text_tokens, 0) AS output_text_tokens,
    coalesce(st.output_audio_tokens, 0) AS output_audio_tokens,
    lv.billed_s,
    coalesce(p.model, lv.priced_as) AS priced_as,
    -- token prices for tokens, time prices for GPT-Live's billed seconds
    CASE WHEN p.model IS NOT NULL OR lv.priced_as IS NOT NULL THEN coalesce(lv.cost_usd, 0)
     + coalesce((
       (coalesce(st.input_text_tokens, 0) - coalesce(st.cached_text_tokens, 0)) * p.text_input
     + coalesce(st.cached_text_tokens, 0) * p.text_cached_input
     + (coalesce(st.input_audio_tokens, 0) - coalesce(st.cached_audio_tokens, 0))
        * p.audio_input
     + coalesce(st.cached_audio_tokens, 0) * p.audio_cached_input
     + coalesce(st.output_text_tokens, 0) * p.text_output
     + coalesce(st.output_audio_tokens, 0) * p.audio_output) / 1e6, 0) END AS cost_usd,
    coalesce(st.errors, 0) AS errors,
    coalesce(st.interruptions, 0) AS interruptions,
    coalesce(st.truncations, 0) AS truncations,
    coalesce(st.function_calls, 0) AS function_calls,
    coalesce(st.unanswered_calls, 0) AS unanswered_calls
FROM sessions s
LEFT JOIN stats st USING (session_id)
LEFT JOIN price p USING (session_id)
LEFT JOIN live_sessions lv USING (session_id);
"""
)

#: Every view; ``open_log`` recreates them on each open for writing (they hold no data).
VIEWS: Final = _BASE_VIEWS + _TURNS_VIEW + _SUMMARY_VIEW

#: Everything a new log gets.
DDL: Final = TABLES + ITEMS + MATERIALISED + PRICES + VIEWS
