"""The chained migrations of the log's storage schema, frozen as they shipped.

``MIGRATIONS[n]`` upgrades a log from schema version ``n`` to ``n + 1`` (``src/rtrec/store/log.py``
runs them in order, then creates the current views, which hold no data). Each is the
literal SQL its version shipped with, written out in full rather than built from today's
DDL and queries (``storage.py``): a change to a table, a view or the ``turns`` query must
never change what an old log's migration does. A new schema version adds its step here as
another literal; tests/test_log_migrations.py migrates a stored log of every old version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = ["MIGRATIONS"]

# 1 -> 2: the items table (rtrec index), its bookkeeping, and the prices table.
_V1_TO_V2: Final = """
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
"""

# 2 -> 3: indexed_turns and indexed_summary, filled for the sessions indexed so far with the
# turns and summary queries of version 3 (over the indexed sessions' events only).
_V2_TO_V3: Final = """
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
INSERT INTO indexed_turns BY NAME SELECT * FROM (
WITH created AS (
    SELECT session_id, seq, t_ns,
        coalesce(response_id, json_extract_string(payload, '$.response.id')) AS response_id,
        row_number() OVER w AS turn,
        coalesce(lag(seq) OVER w, -1) AS prev_seq
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE type = 'response.created' AND direction = 'server'
    WINDOW w AS (PARTITION BY session_id ORDER BY seq)
),
user_side AS (
    SELECT session_id, seq, t_ns, type,
        TRY_CAST(CASE WHEN type = 'input_audio_buffer.speech_stopped'
                      THEN json_extract_string(payload, '$.audio_end_ms') END AS BIGINT)
            AS audio_end_ms
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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
        FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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
);
INSERT INTO indexed_summary BY NAME SELECT * FROM (WITH responses AS (

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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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

),
function_calls AS (

WITH calls AS (
    SELECT session_id, seq, t_ns, response_id, item_id,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.name',
                                      '$.item.arguments', '$.item.status']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE type = 'response.output_item.done' AND direction = 'server'
),
outputs AS (
    SELECT session_id, t_ns, seq,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.output']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE type = 'conversation.item.create' AND direction = 'client'
),
answers AS (
    SELECT session_id, f[2] AS call_id, min(t_ns) AS t_ns, arg_min(f[3], seq) AS output,
        count(*) AS outputs
    FROM outputs WHERE f[1] = 'function_call_output'
    GROUP BY ALL
)
SELECT c.session_id, c.f[2] AS call_id, c.f[3] AS name, c.f[4] AS arguments,
    coalesce(json_valid(c.f[4]), false) AS arguments_valid, c.f[5] AS status,
    c.response_id, c.item_id, c.seq, c.t_ns / 1e6 AS called_ms,
    a.t_ns / 1e6 AS output_ms, a.output, coalesce(a.outputs, 0) AS outputs,
    (a.t_ns - c.t_ns) / 1e6 AS tool_ms
FROM calls c LEFT JOIN answers a ON a.session_id = c.session_id AND a.call_id = c.f[2]
WHERE c.f[1] = 'function_call'

),
errors AS (

SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time, 'server' AS source,
    f[1] AS error_type, f[2] AS code, f[3] AS message, f[4] AS param, f[5] AS caused_by
FROM (
    SELECT *, json_extract_string(payload, ['$.error.type', '$.error.code', '$.error.message',
                                            '$.error.param', '$.error.event_id']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'error' AND direction = 'server'
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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'response.done' AND direction = 'server'
)
WHERE f[1] = 'failed'
UNION ALL
SELECT session_id, seq, t_ns / 1e6, wall_time, 'recording', 'invalid_frame', NULL, parse_error,
    NULL, NULL
FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE parse_error IS NOT NULL

),
interruptions AS (

WITH marks AS (
    SELECT session_id, seq, t_ns, wall_time, type, direction, item_id,
        sum(CASE WHEN type = 'response.created' THEN 1
                 WHEN type = 'response.done' THEN -1 ELSE 0 END)
            OVER (PARTITION BY session_id ORDER BY seq) AS active,
        last_value(CASE WHEN type = 'response.created' THEN coalesce(
                            response_id, json_extract_string(payload, '$.response.id'))
                        END IGNORE NULLS)
            OVER (PARTITION BY session_id ORDER BY seq) AS last_response
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE (direction = 'server' AND type IN ('response.created', 'response.done',
                                             'input_audio_buffer.speech_started'))
       OR (direction = 'client' AND type IN ('response.cancel', 'conversation.item.truncate'))
)
SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    CASE type WHEN 'input_audio_buffer.speech_started' THEN 'barge_in'
              WHEN 'response.cancel' THEN 'cancel' ELSE 'truncate' END AS kind,
    last_response AS response_id, item_id
FROM marks
WHERE (type = 'input_audio_buffer.speech_started' AND active > 0)
   OR (type = 'response.cancel' AND active > 0)
   OR type = 'conversation.item.truncate'

),
rate_limits AS (

SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    json_extract_string(r, '$.name') AS name,
    TRY_CAST(json_extract_string(r, '$.limit') AS BIGINT) AS "limit",
    TRY_CAST(json_extract_string(r, '$.remaining') AS BIGINT) AS remaining,
    TRY_CAST(json_extract_string(r, '$.reset_seconds') AS DOUBLE) AS reset_seconds
FROM (
    SELECT *, unnest(json_extract(payload, '$.rate_limits[*]')) AS r
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'rate_limits.updated' AND direction = 'server'
)

),
ev AS (
    SELECT session_id, count(*) AS events, max(wall_time) AS last_wall,
        count(*) FILTER (type = 'response.created' AND direction = 'server') AS turns,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'output'), 0)
            AS assistant_audio_s,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'input'), 0)
            AS input_audio_s
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events GROUP BY session_id
),
speech AS (
    SELECT session_id, sum(greatest(stop_ms - start_ms, 0)) / 1000.0 AS user_speech_s
    FROM (
        SELECT session_id, item_id,
            min(TRY_CAST(json_extract_string(payload, '$.audio_start_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_started') AS start_ms,
            max(TRY_CAST(json_extract_string(payload, '$.audio_end_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_stopped') AS stop_ms
        FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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
        count(*) FILTER (output_ms IS NULL) AS unanswered_calls
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
);
"""

# 3 -> 4: the summary counts MCP calls as function calls, and server-initiated truncations:
# the figures of the sessions indexed so far are added up again with version 4's query.
_V3_TO_V4: Final = """DELETE FROM indexed_summary;
INSERT INTO indexed_summary BY NAME SELECT * FROM (WITH responses AS (

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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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

),
function_calls AS (

WITH calls AS (
    SELECT session_id, seq, t_ns, response_id,
        coalesce(item_id, json_extract_string(payload, '$.item.id')) AS item_id,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.name',
                                      '$.item.arguments', '$.item.status',
                                      '$.item.server_label', '$.item.output',
                                      '$.item.error.type']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE type = 'response.output_item.done' AND direction = 'server'
),
outputs AS (
    SELECT session_id, t_ns, seq,
        json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.output']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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

),
errors AS (

SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time, 'server' AS source,
    f[1] AS error_type, f[2] AS code, f[3] AS message, f[4] AS param, f[5] AS caused_by
FROM (
    SELECT *, json_extract_string(payload, ['$.error.type', '$.error.code', '$.error.message',
                                            '$.error.param', '$.error.event_id']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'error' AND direction = 'server'
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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'response.done' AND direction = 'server'
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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'response.output_item.done' AND direction = 'server'
)
WHERE f[1] = 'mcp_call' AND f[2] IS NOT NULL
UNION ALL
SELECT session_id, seq, t_ns / 1e6, wall_time, 'mcp', 'mcp_list_tools_failed', NULL,
    'listing the tools of an MCP server failed', NULL, item_id
FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'mcp_list_tools.failed' AND direction = 'server'
UNION ALL
-- a failed input transcription (PROTOCOL.md §6.5: not an ``error`` event); caused_by is the
-- user item
SELECT session_id, seq, t_ns / 1e6, wall_time, 'transcription', f[1], f[2],
    coalesce(f[3], 'input audio transcription failed'), f[4], item_id
FROM (
    SELECT *, json_extract_string(payload, ['$.error.type', '$.error.code', '$.error.message',
                                            '$.error.param']) AS f
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
    WHERE type = 'conversation.item.input_audio_transcription.failed' AND direction = 'server'
)
UNION ALL
SELECT session_id, seq, t_ns / 1e6, wall_time, 'recording', 'invalid_frame', NULL, parse_error,
    NULL, NULL
FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE parse_error IS NOT NULL

),
interruptions AS (

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
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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

),
rate_limits AS (

SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    json_extract_string(r, '$.name') AS name,
    TRY_CAST(json_extract_string(r, '$.limit') AS BIGINT) AS "limit",
    TRY_CAST(json_extract_string(r, '$.remaining') AS BIGINT) AS remaining,
    TRY_CAST(json_extract_string(r, '$.reset_seconds') AS DOUBLE) AS reset_seconds
FROM (
    SELECT *, unnest(json_extract(payload, '$.rate_limits[*]')) AS r
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events WHERE type = 'rate_limits.updated' AND direction = 'server'
)

),
playback AS (

SELECT session_id, seq, t_ns / 1e6 AS t_ms, wall_time,
    coalesce(response_id, json_extract_string(payload, '$.response_id')) AS response_id,
    replace(type, 'output_audio_buffer.', '') AS event
FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
-- a prefix filter: the scan skips other events' payloads (an IN list would read them all)
WHERE starts_with(type, 'output_audio_buffer.') AND direction = 'server'
  AND type IN ('output_audio_buffer.started', 'output_audio_buffer.stopped',
               'output_audio_buffer.cleared')

),
ev AS (
    SELECT session_id, count(*) AS events, max(wall_time) AS last_wall,
        count(*) FILTER (type = 'response.created' AND direction = 'server') AS turns,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'output'), 0)
            AS assistant_audio_s,
        coalesce(sum(audio_samples / audio_rate) FILTER (audio_stream = 'input'), 0)
            AS input_audio_s
    FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events GROUP BY session_id
),
speech AS (
    SELECT session_id, sum(greatest(stop_ms - start_ms, 0)) / 1000.0 AS user_speech_s
    FROM (
        SELECT session_id, item_id,
            min(TRY_CAST(json_extract_string(payload, '$.audio_start_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_started') AS start_ms,
            max(TRY_CAST(json_extract_string(payload, '$.audio_end_ms') AS BIGINT))
                FILTER (type = 'input_audio_buffer.speech_stopped') AS stop_ms
        FROM (SELECT * FROM events WHERE session_id IN (SELECT session_id FROM indexed)) AS events
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
);
"""

# 4 -> 5: time prices, for models billed by the second (GPT-Live), with their defaults; and
# the model of GPT-Live sessions, which the URL does not name, from their session events.
_V4_TO_V5: Final = """
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

UPDATE sessions SET model = m.model
FROM (
    SELECT session_id, coalesce(
        arg_max(json_extract_string(payload, '$.session.model'), seq)
            FILTER (type = 'session.started' AND direction = 'server'),
        arg_min(json_extract_string(payload, '$.session.model'), seq)
            FILTER (type = 'session.start' AND direction = 'client')) AS model
    FROM events WHERE type IN ('session.start', 'session.started')
    GROUP BY session_id
) m
WHERE sessions.session_id = m.session_id AND sessions.protocol = 'live'
  AND sessions.model IS NULL AND m.model IS NOT NULL;
"""

#: ``MIGRATIONS[n]`` is the SQL (or a function of the connection) that upgrades a log from
#: schema version ``n`` to ``n + 1``.
MIGRATIONS: Final[dict[int, str | Callable[..., None]]] = {
    1: _V1_TO_V2,
    2: _V2_TO_V3,
    3: _V3_TO_V4,
    4: _V4_TO_V5,
}
