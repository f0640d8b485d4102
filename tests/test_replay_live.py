"""The GPT-Live fold (src/rtrec/replay/live.py) on log rows, and `rtrec replay` on a recorded Live
session (through the proxy, exported as a bundle)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.live import fold_live, live_canonical, live_transcript, segments
from rtrec.replay.testing import client, record_events, server
from rtrec.replay.threaded import run_in_thread
from rtrec.store.bundle import export_session
from rtrec.store.reader import open_log_reader, read_sessions

from .livepeer import tone
from .test_record_live import b64, run_sdk, serve_recording

RESOURCE = {
    "id": "live_u1_x",
    "model": "gpt-live-1",
    "audio": {"format": {"type": "audio/pcm", "rate": 24000}},
    "expires_at": 1_900_000_000,
    "status": "active",
}


def delta(kind: str, event_id: str, text: str, start: int, end: int) -> Any:
    return server(
        {
            "type": f"session.{kind}_transcript.delta",
            "event_id": event_id,
            "delta": text,
            "start_ms": start,
            "end_ms": end,
        }
    )


def fold(*frames: Any) -> Any:
    return fold_live(record_events(frames).records)


def test_transcripts_interleave_on_the_timeline_and_repeats_are_dropped() -> None:
    state = fold(
        client({"type": "session.start", "session": {"model": "gpt-live-1"}}),
        server({"type": "session.started", "event_id": "e0", "session": RESOURCE}),
        delta("input", "e1", " what's", 0, 300),
        delta("output", "e2", " mm", 200, 250),  # a back-channel during the user's speech
        delta("input", "e3", " the time", 300, 700),
        delta("input", "e3", " the time", 300, 700),  # a sideband replay repeats it
        delta("output", "e4", " It's", 1500, 1700),
        delta("output", "e5", " noon.", 1700, 2000),
    )
    assert segments(state) == [
        ("user", 0, 700, " what's the time"),
        ("assistant", 200, 250, " mm"),
        ("assistant", 1500, 2000, " It's noon."),
    ]
    text = live_transcript(state)
    assert "[00:00.000] user: what's the time" in text
    assert text.index("user: what's") < text.index("assistant: mm") < text.index("It's noon.")
    assert "closed: without session.closed (not confirmed)" in text


def test_appends_are_placed_by_client_event_id_else_in_order() -> None:
    state = fold(
        client({"type": "session.thinking.append", "content": "a", "delegation_id": None}),
        client(
            {
                "type": "session.thinking.append",
                "content": "b",
                "delegation_id": None,
                "event_id": "c2",
            }
        ),
        client({"type": "session.commentary.append", "content": "c", "delegation_id": "d1"}),
        server(
            {
                "type": "session.thinking.appended",
                "event_id": "s1",
                "client_event_id": "c2",
                "start_ms": 900,
                "end_ms": 950,
            }
        ),
        server(
            {
                "type": "session.thinking.appended",
                "event_id": "s2",
                "start_ms": 1000,
                "end_ms": 1100,
            }
        ),
    )
    placed = {a.content: (a.start_ms, a.end_ms) for a in state.appends}
    assert placed == {"a": (1000, 1100), "b": (900, 950), "c": (None, None)}
    assert "[  not placed ] commentary: c" in live_transcript(state)


def test_a_delegation_gathers_its_responses_events_calls_and_usage() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    call = {"type": "function_call", "name": "get_weather", "call_id": "call_1", "arguments": "{}"}
    state = fold(
        server(
            {
                "type": "session.delegation.created",
                "event_id": "e1",
                "offset_ms": 1200,
                "delegation": {
                    "id": "dl_1",
                    "target": "responses",
                    "type": "delegation",
                    "response_id": "resp_1",
                },
            }
        ),
        server(
            {
                "type": "response.event",
                "event_id": "e2",
                "delegation_id": "dl_1",
                "event": {"type": "response.output_item.done", "item": call},
            }
        ),
        server(  # no delegation_id: found by the response id
            {
                "type": "response.event",
                "event_id": "e3",
                "event": {
                    "type": "response.completed",
                    "response": {"id": "resp_1", "status": "completed", "usage": usage},
                },
            }
        ),
        server({"type": "session.usage.updated", "event_id": "e4", "usage": {"seconds": 30}}),
        server(
            {
                "type": "session.usage.updated",
                "event_id": "e5",
                "usage": {"seconds": 61.5},
                "context_window": {"usage_ratio": 0.25},
            }
        ),
        server({"type": "session.input_audio.muted", "event_id": "e6"}),
        server({"type": "session.input_audio.unmuted", "event_id": "e7"}),
        server(
            {
                "type": "session.closed",
                "event_id": "e8",
                "reason": "close_requested",
                "session": RESOURCE,
                "usage": {"seconds": 62},
            }
        ),
    )
    (d,) = state.delegations.values()
    assert (d.id, d.target, d.offset_ms, d.status, d.usage) == (
        "dl_1",
        "responses",
        1200,
        "completed",
        usage,
    )
    assert d.calls == [{"name": "get_weather", "call_id": "call_1", "arguments": "{}"}]
    assert d.events == ["response.output_item.done", "response.completed"]
    assert state.usage == {"seconds": 62}  # cumulative: the last value, never a sum
    assert state.context_ratio == 0.25
    assert len(state.mutes) == 1
    assert state.mutes[0][1] is not None
    assert state.close_reason == "close_requested"
    text = live_transcript(state)
    assert "[00:01.200] delegation dl_1 to responses calls get_weather({}) [completed]" in text
    assert "usage: 62 s" in text
    canonical = live_canonical(state)
    assert canonical["delegations"][0]["calls"][0]["name"] == "get_weather"
    assert canonical["close_reason"] == "close_requested"


def test_rtrec_replay_shows_a_recorded_live_bundle(tmp_path: Path) -> None:
    async def script(client: Any) -> None:
        async with client.live.connect() as conn:
            await conn.session.start(session={"model": "gpt-live-1"})
            while orjson.loads(await conn.recv_bytes())["type"] != "session.started":
                pass
            await conn.session.input_audio.append(audio=b64(tone(9600).tobytes()))
            await conn.session.close()
            while orjson.loads(await conn.recv_bytes())["type"] != "session.closed":
                pass

    db, wire = tmp_path / "log.duckdb", []
    with run_in_thread(functools.partial(serve_recording, db, wire), timeout=30) as srv:
        run_sdk(srv.url, script)
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
    bundle = tmp_path / "bundle"
    export_session(db, session.session_id, bundle)

    runner = CliRunner()
    for ref in (str(bundle), session.session_id):
        shown = runner.invoke(cli, ["replay", ref, "--db", str(db)])
        assert shown.exit_code == 0, shown.output
        assert "GPT-Live session, model gpt-live-1" in shown.output
        assert "[00:00.000] user: hello hello" in shown.output
        assert "[00:00.000] assistant: hi hi" in shown.output
        assert "closed: close_requested" in shown.output
    as_json = runner.invoke(cli, ["replay", str(bundle), "--json"])
    assert as_json.exit_code == 0, as_json.output
    state = orjson.loads(as_json.output)
    assert state["audio_samples"] == {"input@24000": 9600, "output@24000": 9600}
    golden = tmp_path / "golden.json"
    runner.invoke(cli, ["replay", str(bundle), "--golden", str(golden), "--update"])
    again = runner.invoke(
        cli, ["replay", session.session_id, "--db", str(db), "--golden", str(golden)]
    )
    assert again.exit_code == 0, again.output
    at = runner.invoke(cli, ["replay", str(bundle), "--at", "1"])  # session.start, .started
    assert at.exit_code == 0, at.output
    assert "GPT-Live session, model gpt-live-1" in at.output
    assert "user:" not in at.output
    assert at.output.rstrip().endswith("not closed yet")
