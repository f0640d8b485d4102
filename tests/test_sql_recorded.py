"""The views over a real recording: the official SDK talks to the simulator through the
recorder (GA and beta), and every figure the views give is derived again, in Python, from
the frames read back from the log."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtrec.replay.index import index_log
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.storage import Direction, FrameRecord, Stream
from rtrec.simulator import WEATHER_TOOL
from rtrec.store.reader import open_log_reader, read_frames, read_streams

from .test_record_sdk import VAD, Tap, run_sdk, serve_recording

AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
TRANSCRIPT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta")


async def conversation(sdk: Tap) -> None:
    """Two spoken turns, the second calling get_weather, and the answer to the call."""
    ga = sdk.protocol == "ga"
    session: dict[str, Any] = (
        {"type": "realtime", "tools": [WEATHER_TOOL], "audio": {"input": {"turn_detection": VAD}}}
        if ga
        else {"tools": [WEATHER_TOOL], "turn_detection": VAD}
    )
    await sdk.conn.session.update(session=session)
    await sdk.until("session.updated")
    await sdk.say("hello")
    await sdk.until("response.done")
    await sdk.say("weather")
    done = await sdk.until("response.done")
    call = done["response"]["output"][-1]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"c":14}'}
    await sdk.conn.conversation.item.create(item=output)
    await sdk.conn.response.create()
    await sdk.until("response.done")


def event(frame: FrameRecord) -> dict[str, Any]:
    """A frame's JSON (the audio string is empty: it was cut out)."""
    assert frame.payload is not None
    return dict(orjson.loads(frame.payload))


def turns_by_hand(frames: list[FrameRecord]) -> list[dict[str, Any]]:
    """Per response: the latest speech_stopped before it (since the previous response), and
    its first output audio delta."""
    turns: list[dict[str, Any]] = []
    stopped: float | None = None
    for f in frames:
        if f.direction is not Direction.SERVER:
            continue
        if f.type == "input_audio_buffer.speech_stopped":
            stopped = f.t_ns / 1e6
        elif f.type == "response.created":
            rid = event(f)["response"]["id"]
            turns.append({"response_id": rid, "speech_end_ms": stopped, "first_audio_ms": None})
            stopped = None
        elif f.type in AUDIO_DELTAS:
            turn = next(t for t in turns if t["response_id"] == f.response_id)
            if turn["first_audio_ms"] is None:
                turn["first_audio_ms"] = f.t_ns / 1e6
    return turns


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_views_agree_with_the_recorded_frames(protocol: str, tmp_path: Path) -> None:
    """turns, session_summary's tokens and audio, function_calls and rate_limits match what
    the recorded frames say."""
    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        run_sdk(server.url, protocol, conversation)

    assert sum(index_log(db).values()) > 0
    with open_log_reader(db) as log:
        (summary,) = log.rows("SELECT * FROM session_summary")
        items = log.rows("SELECT * FROM items ORDER BY position")
        sid = summary["session_id"]
        frames = list(read_frames(log, sid))
        turns = log.rows(
            "SELECT response_id, speech_end_ms, speech_end_sent_ms, first_audio_ms, "
            "speech_end_to_first_audio_ms FROM turns ORDER BY turn"
        )
        calls = log.rows("SELECT name, arguments_valid, output, tool_ms FROM function_calls")
        limits = log.rows("SELECT count(*) AS n FROM rate_limits")
        streams = {s.stream: s.frames for s in read_streams(log, sid)}

    expected = turns_by_hand(frames)
    assert len(turns) == len(expected) == 3
    for got, want in zip(turns, expected, strict=True):
        assert got["response_id"] == want["response_id"]
        assert got["speech_end_ms"] == want["speech_end_ms"]
        assert got["first_audio_ms"] == want["first_audio_ms"]
        if want["speech_end_ms"] is not None and want["first_audio_ms"] is not None:
            latency = want["first_audio_ms"] - want["speech_end_ms"]
            assert got["speech_end_to_first_audio_ms"] == pytest.approx(latency)
    assert expected[0]["speech_end_ms"] is not None  # VAD ended turn 1
    for got in turns[:2]:  # the client sent the end of speech before VAD said it ended
        assert got["speech_end_sent_ms"] is not None
        assert got["speech_end_sent_ms"] <= got["speech_end_ms"]
    assert expected[2]["speech_end_ms"] is None  # turn 3 came from response.create

    usages = [
        event(f)["response"]["usage"]
        for f in frames
        if f.type == "response.done" and f.direction is Direction.SERVER
    ]
    assert summary["turns"] == 3
    assert summary["input_tokens"] == sum(u["input_tokens"] for u in usages)
    assert summary["output_tokens"] == sum(u["output_tokens"] for u in usages)
    assert summary["output_audio_tokens"] == sum(
        u["output_token_details"]["audio_tokens"] for u in usages
    )
    assert summary["input_audio_tokens"] == sum(
        u["input_token_details"]["audio_tokens"] for u in usages
    )
    assert summary["cost_usd"] > 0
    assert summary["assistant_speech_s"] == pytest.approx(streams[Stream.OUTPUT] / 24000)
    assert summary["input_audio_s"] == pytest.approx(streams[Stream.INPUT] / 24000)
    assert summary["function_calls"] == 1
    assert summary["errors"] == 0

    (call,) = calls
    assert call["name"] == "get_weather"
    assert call["arguments_valid"] is True
    assert call["output"] == '{"c":14}'
    assert call["tool_ms"] > 0
    assert limits[0]["n"] == sum(
        len(event(f)["rate_limits"]) for f in frames if f.type == "rate_limits.updated"
    )

    # items, rebuilt by the reducer: in conversation order, with what each one said
    assert [i["position"] for i in items] == list(range(len(items)))
    kinds = [(i["type"], i["role"]) for i in items]
    assert kinds.count(("message", "user")) == 2
    assert kinds.count(("function_call", None)) == 1
    assert kinds.count(("function_call_output", None)) == 1
    deltas: dict[str, str] = {}
    for f in frames:
        if f.type in TRANSCRIPT_DELTAS:
            assert f.item_id is not None
            deltas[f.item_id] = deltas.get(f.item_id, "") + event(f)["delta"]
    spoken = [i for i in items if i["role"] == "assistant" and i["audio_s"] > 0]
    assert spoken
    for i in spoken:
        assert i["transcript"] == deltas[i["item_id"]]
    output_audio = sum(i["audio_s"] for i in items if i["role"] == "assistant")
    assert output_audio == pytest.approx(streams[Stream.OUTPUT] / 24000)
    (fc,) = [i for i in items if i["type"] == "function_call"]
    assert fc["name"] == "get_weather"
    (fo,) = [i for i in items if i["type"] == "function_call_output"]
    assert (fo["call_id"], fo["output"]) == (fc["call_id"], '{"c":14}')
