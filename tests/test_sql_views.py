"""The analytical views, computed for a scripted session and compared with values derived by
hand from its events (times from the frames' own ``t_ns``, tokens and prices from the payloads
and the ``prices`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import trio

from rtrec.schemas.storage import TABLES, Direction, FrameRecord
from rtrec.store import log
from rtrec.store.reader import open_log_reader
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript, speech

SERVER, CLIENT = Direction.SERVER, Direction.CLIENT

USAGE = {
    # response: (input text, input audio, cached text, cached audio, output text, output audio)
    "resp_1": (20, 100, 0, 0, 10, 50),
    "resp_2": (100, 100, 64, 0, 30, 0),
    "resp_3": (80, 220, 64, 64, 5, 10),
}
# gpt-realtime's default prices, USD per million tokens (src/rtrec/schemas/storage.py PRICES)
GPT_REALTIME = {"text_in": 4.0, "text_cached": 0.4, "text_out": 16.0}
GPT_REALTIME |= {"audio_in": 32.0, "audio_cached": 0.4, "audio_out": 64.0}


def usage(response_id: str) -> dict[str, Any]:
    """A GA ``usage`` object for one of the scripted responses."""
    ti, ai, ct, ca, to, ao = USAGE[response_id]
    return {
        "total_tokens": ti + ai + to + ao,
        "input_tokens": ti + ai,
        "output_tokens": to + ao,
        "input_token_details": {
            "text_tokens": ti,
            "audio_tokens": ai,
            "image_tokens": 0,
            "cached_tokens": ct + ca,
            "cached_tokens_details": {"text_tokens": ct, "audio_tokens": ca, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": to, "audio_tokens": ao},
    }


def done(response_id: str, status: str = "completed") -> dict[str, Any]:
    """A ``response.done`` event."""
    return {
        "type": "response.done",
        "event_id": f"ev_done_{response_id}",
        "response": {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "usage": usage(response_id),
        },
    }


def created(response_id: str) -> dict[str, Any]:
    """A ``response.created`` event."""
    return {
        "type": "response.created",
        "event_id": f"ev_created_{response_id}",
        "response": {"id": response_id, "object": "realtime.response", "status": "in_progress"},
    }


def vad(kind: str, item_id: str, ms: int) -> dict[str, Any]:
    """``input_audio_buffer.speech_started`` / ``speech_stopped`` at ``ms`` of the input audio."""
    key = "audio_start_ms" if kind == "started" else "audio_end_ms"
    return {
        "type": f"input_audio_buffer.speech_{kind}",
        "event_id": f"ev_{kind}_{item_id}",
        "item_id": item_id,
        key: ms,
    }


def output_audio(s: SessionScript, response_id: str, samples: np.ndarray) -> FrameRecord:
    """One ``response.output_audio.delta`` of ``samples``."""
    return s.audio_event(
        SERVER,
        {
            "type": "response.output_audio.delta",
            "event_id": f"ev_delta_{response_id}_{s.seq}",
            "response_id": response_id,
            "item_id": f"item_{response_id}",
            "output_index": 0,
            "content_index": 0,
        },
        "delta",
        samples,
    )


class Conversation:
    """Three turns: a spoken answer, a function call, and an answer the user barges into."""

    def __init__(self) -> None:
        s = self.s = SessionScript()
        voice = speech("weather")
        self.t: dict[str, int] = {}

        def at(name: str, record: FrameRecord) -> None:
            self.t[name] = record.t_ns

        s.event(SERVER, {"type": "session.created", "event_id": "ev_1", "session": {}})
        for i in range(3):
            appended = s.audio_event(
                CLIENT,
                {"type": "input_audio_buffer.append", "event_id": f"evc_{i}"},
                "audio",
                voice[i * 4800 : (i + 1) * 4800],
            )
            at(f"append{i + 1}", appended)
        # turn 1
        at("start1", s.event(SERVER, vad("started", "item_u1", 100)))
        at("stop1", s.event(SERVER, vad("stopped", "item_u1", 500)))
        at("commit1", s.event(SERVER, {"type": "input_audio_buffer.committed", "item_id": "x"}))
        s.t_ns += 300_000_000  # the model thinks
        at("created1", s.event(SERVER, created("resp_1")))
        s.event(
            SERVER,
            {
                "type": "rate_limits.updated",
                "event_id": "ev_rl",
                "rate_limits": [
                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                    {"name": "tokens", "limit": 50000, "remaining": 49000, "reset_seconds": 1.2},
                ],
            },
        )
        at(
            "transcript1",
            s.event(
                SERVER,
                {
                    "type": "response.output_audio_transcript.delta",
                    "response_id": "resp_1",
                    "item_id": "item_resp_1",
                    "delta": "It is",
                },
            ),
        )
        s.t_ns += 100_000_000
        at("audio1", output_audio(s, "resp_1", voice[:2400]))
        output_audio(s, "resp_1", voice[2400:4800])
        at("done1", s.event(SERVER, done("resp_1")))
        # turn 2: a function call and its answer
        at("stop2", s.event(SERVER, vad("started", "item_u2", 900)))
        at("stop2", s.event(SERVER, vad("stopped", "item_u2", 1500)))
        s.event(SERVER, {"type": "input_audio_buffer.committed", "item_id": "item_u2"})
        at("created2", s.event(SERVER, created("resp_2")))
        at(
            "call",
            s.event(
                SERVER,
                {
                    "type": "response.output_item.done",
                    "response_id": "resp_2",
                    "output_index": 0,
                    "item": {
                        "id": "item_fc",
                        "type": "function_call",
                        "status": "completed",
                        "call_id": "call_1",
                        "name": "get_weather",
                        "arguments": '{"city": "Paris"}',
                    },
                },
            ),
        )
        s.event(SERVER, done("resp_2"))
        s.t_ns += 250_000_000  # the tool runs
        at(
            "output",
            s.event(
                CLIENT,
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": "call_1",
                        "output": '{"temp_c": 21}',
                    },
                },
            ),
        )
        # turn 3: created on request, interrupted by the user
        at("create3", s.event(CLIENT, {"type": "response.create", "event_id": "evc_rc"}))
        at("created3", s.event(SERVER, created("resp_3")))
        at("audio3", output_audio(s, "resp_3", voice[:4800]))
        at("barge", s.event(SERVER, vad("started", "item_u3", 2000)))
        at(
            "truncate",
            s.event(
                CLIENT,
                {
                    "type": "conversation.item.truncate",
                    "item_id": "item_resp_3",
                    "content_index": 0,
                    "audio_end_ms": 100,
                },
            ),
        )
        at("done3", s.event(SERVER, done("resp_3", "cancelled")))
        at(
            "error",
            s.event(
                SERVER,
                {
                    "type": "error",
                    "event_id": "ev_err",
                    "error": {
                        "type": "invalid_request_error",
                        "code": "unknown_parameter",
                        "message": "Unknown parameter: 'session.foo'.",
                        "param": "session.foo",
                        "event_id": "evc_bad",
                    },
                },
            ),
        )
        at("invalid", s.invalid(CLIENT, "{not json"))
        s.close()

    def ms(self, name: str) -> float:
        """The time of a named event, in ms since the session started."""
        return self.t[name] / 1e6


async def write(db: Path, *scripts: SessionScript) -> None:
    """Record scripted sessions into a log through the real writer."""
    async with open_log_writer(db) as writer:
        for script in scripts:
            for message in script.messages:
                await writer.send(message)


@pytest.fixture
def conversation(tmp_path: Path) -> tuple[Path, Conversation]:
    """A log holding the scripted conversation (written by the writer in its own trio run)."""
    c = Conversation()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, c.s)
    return db, c


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    """A query's rows through the reader (as `rtrec sql` runs it)."""
    with open_log_reader(db) as reader:
        return reader.rows(sql)


def test_turns_time_every_step_of_each_turn(conversation):
    """Each response is a turn with its user-speech, commit, output and done times and latencies."""
    db, c = conversation
    turns = rows(db, "SELECT * FROM turns ORDER BY turn")
    assert [t["response_id"] for t in turns] == ["resp_1", "resp_2", "resp_3"]
    one = turns[0]
    assert one["speech_start_ms"] == c.ms("start1")
    assert one["speech_end_ms"] == c.ms("stop1")
    assert one["speech_end_audio_ms"] == 500
    # sample 500 ms (12,000) of the input was in the third 200 ms append, sent at 80 ms
    assert one["speech_end_sent_ms"] == c.ms("append3")
    assert one["speech_sent_to_first_audio_ms"] == pytest.approx(c.ms("audio1") - c.ms("append3"))
    assert one["committed_ms"] == c.ms("commit1")
    assert one["response_created_ms"] == c.ms("created1")
    assert one["first_transcript_ms"] == c.ms("transcript1")
    assert one["first_audio_ms"] == c.ms("audio1")
    assert one["response_done_ms"] == c.ms("done1")
    assert one["speech_end_to_first_audio_ms"] == pytest.approx(c.ms("audio1") - c.ms("stop1"))
    # commit 20, think 300 + 20, rate limits 20, transcript 20, 100 + 20 to the first audio
    assert one["speech_end_to_first_audio_ms"] == pytest.approx(500)
    assert one["commit_to_created_ms"] == pytest.approx(c.ms("created1") - c.ms("commit1"))
    assert one["response_create_ms"] is None  # server VAD created it
    two = turns[1]
    assert two["speech_end_ms"] == c.ms("stop2")
    assert two["first_audio_ms"] is None  # a function call, no audio
    assert two["speech_end_sent_ms"] is None  # 1500 ms is past the 600 ms the client sent
    three = turns[2]
    assert three["speech_start_ms"] is None  # nobody spoke before it: created on request
    assert three["response_create_ms"] == c.ms("create3")
    assert three["create_to_first_audio_ms"] == pytest.approx(c.ms("audio3") - c.ms("create3"))
    assert three["created_to_first_audio_ms"] == pytest.approx(c.ms("audio3") - c.ms("created3"))
    assert three["response_ms"] == pytest.approx(c.ms("done3") - c.ms("created3"))


def test_session_summary_adds_up_the_events(conversation):
    """Duration, turns, speech seconds, tokens by kind, cost and counts match the events."""
    db, c = conversation
    (summary,) = rows(db, "SELECT * FROM session_summary")
    assert summary["session_id"] == c.s.session_id
    assert summary["duration_s"] == pytest.approx((c.s.t_ns + 1_000_000) / 1e9)
    assert summary["turns"] == 3
    assert summary["user_speech_s"] == pytest.approx(0.4 + 0.6)  # VAD spans; turn 3 unfinished
    assert summary["input_audio_s"] == pytest.approx(3 * 4800 / 24000)
    assert summary["assistant_speech_s"] == pytest.approx((2400 + 2400 + 4800) / 24000)
    totals = [sum(u[i] for u in USAGE.values()) for i in range(6)]
    ti, ai, ct, ca, to, ao = totals
    assert summary["input_text_tokens"] == ti
    assert summary["input_audio_tokens"] == ai
    assert summary["cached_text_tokens"] == ct
    assert summary["cached_audio_tokens"] == ca
    assert summary["cached_tokens"] == ct + ca
    assert summary["output_text_tokens"] == to
    assert summary["output_audio_tokens"] == ao
    assert summary["input_tokens"] == ti + ai
    assert summary["output_tokens"] == to + ao
    p = GPT_REALTIME
    cost = (
        (ti - ct) * p["text_in"]
        + ct * p["text_cached"]
        + (ai - ca) * p["audio_in"]
        + ca * p["audio_cached"]
        + to * p["text_out"]
        + ao * p["audio_out"]
    ) / 1e6
    assert summary["priced_as"] == "gpt-realtime"
    assert summary["cost_usd"] == pytest.approx(cost)
    assert summary["errors"] == 2  # the server's error and the invalid frame
    assert summary["interruptions"] == 1
    assert summary["truncations"] == 1
    assert summary["function_calls"] == 1
    assert summary["unanswered_calls"] == 0
    assert summary["responses"] == 3


async def test_prices_are_the_users_to_change(tmp_path):
    """A price changed with SQL changes the cost; a model with no price has no cost, not 0."""
    c = Conversation()
    db = tmp_path / "rtrec.duckdb"
    await write(db, c.s)
    con, _ = log.open_log(db)
    try:
        con.execute("UPDATE prices SET audio_output = 0 WHERE model = 'gpt-realtime'")
        before = con.execute("SELECT cost_usd FROM session_summary").fetchone()
        con.execute("UPDATE sessions SET model = 'someone-elses-model'")
        after = con.execute("SELECT priced_as, cost_usd FROM session_summary").fetchone()
    finally:
        con.close()
    ti, ai, ct, ca, to, _ao = (sum(u[i] for u in USAGE.values()) for i in range(6))
    p = GPT_REALTIME
    cost = (ti - ct) * p["text_in"] + ct * p["text_cached"] + (ai - ca) * p["audio_in"]
    cost += ca * p["audio_cached"] + to * p["text_out"]
    assert before is not None
    assert before[0] == pytest.approx(cost / 1e6)
    assert after == (None, None)


def test_function_calls_pair_each_call_with_its_output(conversation):
    """A call's name, arguments, and the client's output with the time the tool took."""
    db, c = conversation
    (call,) = rows(db, "SELECT * FROM function_calls")
    assert call["call_id"] == "call_1"
    assert call["name"] == "get_weather"
    assert call["arguments"] == '{"city": "Paris"}'
    assert call["arguments_valid"] is True
    assert call["response_id"] == "resp_2"
    assert call["output"] == '{"temp_c": 21}'
    assert call["called_ms"] == c.ms("call")
    assert call["tool_ms"] == pytest.approx(c.ms("output") - c.ms("call"))


def test_errors_list_server_errors_and_invalid_frames(conversation):
    """The server's error event (with the client event it blames) and the unparsable frame."""
    db, c = conversation
    errors = rows(db, "SELECT * FROM errors ORDER BY seq")
    assert [(e["source"], e["error_type"]) for e in errors] == [
        ("server", "invalid_request_error"),
        ("recording", "invalid_frame"),
    ]
    assert errors[0]["code"] == "unknown_parameter"
    assert errors[0]["param"] == "session.foo"
    assert errors[0]["caused_by"] == "evc_bad"
    assert errors[0]["t_ms"] == c.ms("error")
    assert errors[1]["t_ms"] == c.ms("invalid")


def test_interruptions_are_speech_during_a_response_and_truncations(conversation):
    """Speech that starts while resp_3 runs is a barge-in; the client's truncate is listed too.

    Speech between responses (turn 2's) is not an interruption.
    """
    db, c = conversation
    found = rows(db, "SELECT kind, response_id, item_id, t_ms FROM interruptions ORDER BY seq")
    assert found == [
        {"kind": "barge_in", "response_id": "resp_3", "item_id": "item_u3", "t_ms": c.ms("barge")},
        {
            "kind": "truncate",
            "response_id": "resp_3",
            "item_id": "item_resp_3",
            "t_ms": c.ms("truncate"),
        },
    ]


def test_rate_limits_one_row_per_limit(conversation):
    """Each entry of ``rate_limits.updated`` becomes a row."""
    db, _ = conversation
    found = rows(
        db, 'SELECT name, "limit", remaining, reset_seconds FROM rate_limits ORDER BY name'
    )
    assert found == [
        {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
        {"name": "tokens", "limit": 50000, "remaining": 49000, "reset_seconds": 1.2},
    ]


def test_a_version_1_log_gains_prices_and_views(tmp_path):
    """Opening a log made before the views (schema 1) migrates it: prices and views appear."""
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(TABLES)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    con, report = log.open_log(path)
    try:
        prices = con.execute("SELECT count(*) FROM prices").fetchone()
        summary = con.execute("SELECT count(*) FROM session_summary").fetchone()
    finally:
        con.close()
    assert report.migrated_from == 1
    assert prices is not None
    assert prices[0] >= 4
    assert summary == (0,)


def webrtc_session() -> SessionScript:
    """A session as a sideband connection of a WebRTC call logs it: the server truncates the
    interrupted reply on its own, one input transcription fails, one MCP call fails and one
    succeeds, and the client truncates a second reply itself (answered by ``truncated``)."""
    s = SessionScript()
    mcp = {"type": "mcp_call", "server_label": "docs", "name": "search", "arguments": "{}"}
    events: list[tuple[Direction, dict[str, Any]]] = [
        (SERVER, created("resp_1")),
        (SERVER, {"type": "output_audio_buffer.started", "response_id": "resp_1"}),
        (SERVER, vad("started", "item_u2", 4000)),
        (SERVER, {"type": "output_audio_buffer.cleared", "response_id": "resp_1"}),
        (SERVER, done("resp_1", "cancelled")),
        (
            SERVER,
            {
                "type": "conversation.item.truncated",
                "item_id": "item_a1",
                "content_index": 0,
                "audio_end_ms": 0,
            },
        ),
        (
            SERVER,
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": "item_u2",
                "content_index": 0,
                "error": {"type": "server_error", "code": "asr_down", "message": "ASR failed"},
            },
        ),
        (SERVER, created("resp_2")),
        (
            SERVER,
            {
                "type": "response.output_item.done",
                "response_id": "resp_2",
                "output_index": 0,
                "item": {**mcp, "id": "mcp_1", "output": "found it", "error": None},
            },
        ),
        (
            SERVER,
            {
                "type": "response.output_item.done",
                "response_id": "resp_2",
                "output_index": 1,
                "item": {
                    **mcp,
                    "id": "mcp_2",
                    "output": None,
                    "error": {"type": "tool_execution_error", "message": "timed out"},
                },
            },
        ),
        (SERVER, done("resp_2")),
        (
            CLIENT,
            {
                "type": "conversation.item.truncate",
                "item_id": "item_a3",
                "content_index": 0,
                "audio_end_ms": 100,
            },
        ),
        (
            SERVER,
            {
                "type": "conversation.item.truncated",
                "item_id": "item_a3",
                "content_index": 0,
                "audio_end_ms": 100,
            },
        ),
    ]
    for direction, event in events:
        s.event(direction, {"event_id": f"ev_{s.seq}", **event})
    s.close()
    return s


@pytest.fixture
def webrtc_log(tmp_path: Path) -> Path:
    """A log holding ``webrtc_session``."""
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, webrtc_session())
    return db


def test_mcp_calls_are_function_calls_of_kind_mcp(webrtc_log):
    """MCP calls are rows of ``function_calls`` with kind ``mcp``, their output or their
    failure from the item, and never count as unanswered."""
    calls = rows(webrtc_log, "SELECT * FROM function_calls ORDER BY seq")
    assert [(c["kind"], c["item_id"], c["status"], c["output"]) for c in calls] == [
        ("mcp", "mcp_1", "completed", "found it"),
        ("mcp", "mcp_2", "failed", None),
    ]
    assert calls[0]["server_label"] == "docs"
    assert calls[0]["output_ms"] == calls[0]["called_ms"]
    by_kind = rows(webrtc_log, "SELECT kind, count(*) AS n FROM function_calls GROUP BY kind")
    assert by_kind == [{"kind": "mcp", "n": 2}]
    (summary,) = rows(webrtc_log, "SELECT * FROM session_summary")
    assert (summary["function_calls"], summary["unanswered_calls"]) == (2, 0)


def test_failed_mcp_calls_and_transcriptions_are_errors(webrtc_log):
    """A failed input transcription and a failed MCP call are rows of ``errors``, each
    blaming its item."""
    errors = rows(webrtc_log, "SELECT * FROM errors ORDER BY seq")
    assert [
        (e["source"], e["error_type"], e["code"], e["message"], e["caused_by"]) for e in errors
    ] == [
        ("transcription", "server_error", "asr_down", "ASR failed", "item_u2"),
        ("mcp", "tool_execution_error", None, "timed out", "mcp_2"),
    ]
    (summary,) = rows(webrtc_log, "SELECT errors FROM session_summary")
    assert summary["errors"] == 2


def test_playback_lists_the_output_audio_buffer_events(webrtc_log):
    """WebRTC/SIP playout events are rows of ``playback``, each with its response."""
    found = rows(webrtc_log, "SELECT event, response_id FROM playback ORDER BY seq")
    assert found == [
        {"event": "started", "response_id": "resp_1"},
        {"event": "cleared", "response_id": "resp_1"},
    ]


def test_server_truncations_count_once_each(webrtc_log):
    """A truncation the server made on its own counts; a client truncate and the server's
    answer to it count once, as the client's."""
    found = rows(webrtc_log, "SELECT kind, item_id, truncated_by FROM interruptions ORDER BY seq")
    assert found == [
        {"kind": "barge_in", "item_id": "item_u2", "truncated_by": None},
        {"kind": "truncate", "item_id": "item_a1", "truncated_by": "server"},
        {"kind": "truncate", "item_id": "item_a3", "truncated_by": "client"},
    ]
    (summary,) = rows(webrtc_log, "SELECT interruptions, truncations FROM session_summary")
    assert summary == {"interruptions": 1, "truncations": 2}
