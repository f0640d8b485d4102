"""The views of GPT-Live sessions: SQL (`live_sessions`, `live_delegations`, `live_calls`,
`live_replies`, `live_mutes`, and `session_summary` beside Realtime sessions), `rtrec show`,
`rtrec report`, `rtrec diff` and `rtrec replay --at`, on real recordings: the official SDK's
`client.live.connect()` through `rtrec record`'s proxy against `rtrec sim` (a client
delegation with a mute, and a Responses delegation with a function call), in one log with an
imported Realtime session. The log is recorded once per module (about ten seconds)."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.index import index_log
from rtrec.replay.live import fold_live, live_at
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.storage import Direction
from rtrec.store.bundle import export_session, import_bundle
from rtrec.store.log import open_log
from rtrec.store.parquet import export_parquet, open_parquet
from rtrec.store.reader import open_log_reader, read_frames, read_sessions

from .browser import chromium, needs_chromium
from .logdata import SessionScript
from .simkit import silence
from .test_log_migrations import old_log
from .test_sim_live import Conversation, serve, weather_call
from .test_sql_cli import QUERIES
from .test_sql_views import write

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sessions"
RESPONSES = {"type": "responses", "responses": {"model": "gpt-5.2"}}


async def _mute_a_while(conn: Any, talk: Conversation) -> None:
    """Mute the input for a second of streamed silence, then unmute."""
    await conn.session.input_audio.mute()
    await talk.until("session.input_audio.muted")
    await talk.pump(silence(1000))
    await conn.session.input_audio.unmute()
    await talk.until("session.input_audio.unmuted")
    await talk.pump(silence(500))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One log: a client-delegated Live session (gpt-live-1), a Responses-delegated one
    (gpt-live-1.1), both recorded through the proxy, and a Realtime bundle imported."""
    where = tmp_path_factory.mktemp("live_views")
    db = where / "log.duckdb"

    async def both(url: str) -> list[Conversation]:
        return [
            await weather_call(url, before_close=_mute_a_while),
            await weather_call(url, RESPONSES, model="gpt-live-1.1", before_close=_mute_a_while),
        ]

    with run_in_thread(functools.partial(serve, record_to=db), timeout=60) as rec:
        talks = asyncio.run(asyncio.wait_for(both(rec.url), 120))
    # not indexed yet (`rtrec record --no-index`): the summary reads the model from the events
    unindexed = {r["session_id"]: r["model"] for r in sql(db, "SELECT * FROM session_summary")}
    index_log(db)  # as `rtrec record` does when each session closes
    import_bundle(db, FIXTURES / "function_call")
    with open_log_reader(db) as log:
        sessions = read_sessions(log)
    live = [s.session_id for s in sessions if s.protocol == "live"]
    realtime = [s.session_id for s in sessions if s.protocol != "live"]
    assert len(live) == 2
    assert len(realtime) == 1
    return {
        "db": db,
        "client": live[0],
        "responses": live[1],
        "realtime": realtime[0],
        "talks": talks,
        "where": where,
        "unindexed": unindexed,
    }


def sql(db: Path, query: str, *params: Any) -> list[dict[str, Any]]:
    with open_log_reader(db) as log:
        return log.rows(query, list(params))


def test_sessions_have_their_model_and_summary_beside_realtime(recorded: dict[str, Any]) -> None:
    """Indexing fills a Live session's `sessions.model` from its events, and
    `session_summary` lists Live sessions beside Realtime ones with protocol, model,
    duration, status, close reason, billed seconds and a cost from the time prices."""
    db = recorded["db"]
    models = {s.session_id: s.model for s in read_sessions(db)}
    assert models[recorded["client"]] == "gpt-live-1"
    assert models[recorded["responses"]] == "gpt-live-1.1"
    assert recorded["unindexed"] == {
        recorded["client"]: "gpt-live-1",
        recorded["responses"]: "gpt-live-1.1",
    }
    rows = {
        r["session_id"]: r
        for r in sql(
            db,
            "SELECT session_id, protocol, model, status, close_reason, duration_s, billed_s, "
            "priced_as, cost_usd, user_speech_s, assistant_speech_s FROM session_summary",
        )
    }
    live = rows[recorded["client"]]
    assert (live["protocol"], live["model"], live["status"]) == ("live", "gpt-live-1", "closed")
    assert live["close_reason"] == "close_requested"
    assert live["duration_s"] > 0
    talk = recorded["talks"][0]
    closed = talk.of("session.closed")[0]
    assert live["billed_s"] == closed["usage"]["seconds"]
    assert live["priced_as"] == "gpt-live-1"
    assert live["cost_usd"] == pytest.approx(closed["usage"]["seconds"] * 0.05 / 60)
    # speech is what the transcripts cover, not the continuous output audio
    assert 0 < live["user_speech_s"] < 5
    assert 0 < live["assistant_speech_s"] < 8
    assert rows[recorded["responses"]]["priced_as"] == "gpt-live-1.1"
    listed = CliRunner().invoke(
        cli,
        [
            "sql",
            "--db",
            str(db),
            "--format",
            "csv",
            "SELECT protocol, model, status, close_reason FROM session_summary ORDER BY started_at",
        ],
    )
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "protocol,model,status,close_reason",
        "ga,gpt-realtime,closed,",
        "live,gpt-live-1,closed,close_requested",
        "live,gpt-live-1.1,closed,close_requested",
    ]
    realtime = rows[recorded["realtime"]]
    assert realtime["protocol"] == "ga"
    assert realtime["billed_s"] is None
    assert realtime["priced_as"] == "gpt-realtime"


def test_delegations_answer_latency_and_the_backend_call(recorded: dict[str, Any]) -> None:
    """`live_delegations` has one row per delegation with its target and the time from
    `session.delegation.created` to its answer: the client's commentary, or the backend's
    last completed response; `live_calls` has the backend's function call with the client's
    output and how long the tool took."""
    db = recorded["db"]
    rows = {
        r["session_id"]: r
        for r in sql(db, "SELECT * FROM live_delegations ORDER BY session_id, seq")
    }
    client, responses = rows[recorded["client"]], rows[recorded["responses"]]
    created = recorded["talks"][0].of("session.delegation.created")[0]
    assert client["delegation_id"] == created["delegation"]["id"]
    assert client["offset_ms"] == created["offset_ms"]
    assert (client["target"], client["answers"], client["calls"]) == ("client", 1, 0)
    assert client["latency_ms"] == pytest.approx(client["answered_ms"] - client["created_ms"])
    assert client["latency_ms"] > 0
    assert (responses["target"], responses["status"], responses["calls"]) == (
        "responses",
        "completed",
        1,
    )
    assert responses["responses"] == 2  # the call, then the answer after the output
    assert responses["backend_output_tokens"] > 0
    assert responses["latency_ms"] > 0
    (call,) = sql(db, "SELECT * FROM live_calls")
    assert call["session_id"] == recorded["responses"]
    assert (call["name"], call["output"], call["outputs"]) == ("get_weather", '{"c":14}', 1)
    assert call["delegation_id"] == responses["delegation_id"]
    assert call["tool_ms"] == pytest.approx(call["output_ms"] - call["called_ms"])


def test_replies_measure_end_of_speech_to_first_output_audio(recorded: dict[str, Any]) -> None:
    """`live_replies` has one row per user utterance: where it ended on the session
    timeline, its transcript, and where the assistant's reply started after it."""
    db = recorded["db"]
    (reply,) = sql(db, "SELECT * FROM live_replies WHERE session_id = ?", recorded["client"])
    talk = recorded["talks"][0]
    user = talk.of("session.input_transcript.delta")
    said = talk.of("session.output_transcript.delta")
    assert reply["transcript"] == "".join(e["delta"] for e in user)
    assert (reply["speech_start_ms"], reply["speech_end_ms"]) == (
        user[0]["start_ms"],
        user[-1]["end_ms"],
    )
    first = min(e["start_ms"] for e in said if e["start_ms"] >= user[-1]["end_ms"])
    assert reply["reply_start_ms"] == first
    assert reply["speech_end_to_first_audio_ms"] == first - user[-1]["end_ms"]


def test_mutes_are_intervals_between_the_acks(recorded: dict[str, Any]) -> None:
    """`live_mutes` pairs each muted ack with the unmuted ack that ends it."""
    (mute,) = sql(
        recorded["db"], "SELECT * FROM live_mutes WHERE session_id = ?", recorded["client"]
    )
    assert mute["unmuted_seq"] > mute["muted_seq"]
    assert mute["muted_for_ms"] == pytest.approx(mute["unmuted_ms"] - mute["muted_ms"])
    assert mute["muted_for_ms"] > 0


def test_migrating_a_version_4_log_fills_live_models_and_adds_time_prices(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    """A log of schema 4 holding a Live session recorded before models were filled (copied
    into the stored v4 log with `model` NULL) gets its model and the time prices when it
    is opened for writing."""
    db = old_log(4, tmp_path)
    con = duckdb.connect(str(db))
    try:
        con.execute(f"ATTACH '{recorded['db']}' AS src (READ_ONLY)")
        con.execute(
            "INSERT INTO sessions SELECT * REPLACE (NULL AS model) FROM src.sessions "
            "WHERE session_id = ?",
            [recorded["client"]],
        )
        con.execute(
            "INSERT INTO events SELECT * FROM src.events WHERE session_id = ?",
            [recorded["client"]],
        )
    finally:
        con.close()
    open_log(db)[0].close()
    models = {s.session_id: s.model for s in read_sessions(db)}
    assert models[recorded["client"]] == "gpt-live-1"
    prices = sql(db, "SELECT model, usd_per_minute FROM time_prices ORDER BY model")
    assert prices == [
        {"model": "gpt-live-1", "usd_per_minute": 0.05},
        {"model": "gpt-live-1.1", "usd_per_minute": 0.05},
    ]


def test_the_live_views_answer_the_same_over_parquet(recorded: dict[str, Any]) -> None:
    """A Parquet export of the log answers the Live views and the summary as the log does."""
    out = recorded["where"] / "lake"
    export_parquet(recorded["db"], out)
    con = open_parquet(out)
    try:
        for query in [
            *(q for k, q in QUERIES.items() if k.startswith("live_")),
            QUERIES["session_summary"],
        ]:
            assert con.execute(query).fetchall() == [
                tuple(r.values()) for r in sql(recorded["db"], query)
            ], query
    finally:
        con.close()


def test_show_prints_a_live_session(recorded: dict[str, Any]) -> None:
    """`rtrec show` on a Live session prints its facts (model, protocol, close reason,
    billed seconds, cost), both speakers in time order, the delegation with its latency and
    the backend's call with its output, and the reply latency: no "PROTOCOL UNKNOWN"."""
    db, sid = recorded["db"], recorded["responses"]
    shown = CliRunner().invoke(cli, ["show", sid[:13], "--db", str(db)], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "UNKNOWN" not in out
    billed = recorded["talks"][1].of("session.closed")[0]["usage"]["seconds"]
    for fact in ("gpt-live-1.1", "close_requested", f"{billed:.1f} s", f"${billed / 1200:.4f}"):
        assert fact in out
    user = out.index("user: What is the weather like in Paris today?")
    assistant = out.index("assistant: Let me check that for you.")
    assert user < assistant
    assert "delegation dlg_" in out
    assert "to responses calls get_weather(" in out
    assert 'call get_weather({"city":"Paris","unit":"celsius"}) → {"c":14} in ' in out
    (row,) = sql(db, "SELECT latency_ms FROM live_delegations WHERE session_id = ?", sid)
    assert f"{row['latency_ms']:,.0f}" in out.split("delegations (ms)")[1]
    assert "replies (ms on the session timeline)" in out


@needs_chromium
def test_the_report_draws_a_live_session_in_a_browser(recorded: dict[str, Any]) -> None:
    """`rtrec report` on a Live session draws both speakers' bubbles, a latency marker per
    reply, a marker per delegation and backend call, and a row per event."""
    db, sid, where = recorded["db"], recorded["responses"], recorded["where"]
    page = where / "live.html"
    done = CliRunner().invoke(cli, ["report", sid, "--db", str(db), "-o", str(page)])
    assert done.exit_code == 0, done.output
    dom = chromium(where / "profile", "--dump-dom", page.as_uri()).stdout
    assert 'data-ready="yes"' in dom

    def count(css: str) -> int:
        return len(re.findall(rf'class="{re.escape(css)}"', dom))

    events = sql(db, "SELECT count(*) AS n FROM events WHERE session_id = ?", sid)[0]["n"]
    assert count("bubble user") == 1
    assert count("bubble assistant") == 1
    assert count("marker latency") == 1
    assert count("marker call") == 2  # the delegation and its function call
    assert count("event") == events
    assert "get_weather" in dom


def test_diff_compares_live_sessions(recorded: dict[str, Any]) -> None:
    """`rtrec diff` finds a Live session equal to its exported bundle, names what differs
    between the client- and Responses-delegated sessions (settings, speech, delegation),
    and refuses to compare a Live session with a Realtime one."""
    db, where = recorded["db"], recorded["where"]
    bundle = where / "bundle"
    if not bundle.exists():
        export_session(db, recorded["client"], bundle)
    runner = CliRunner()
    same = runner.invoke(cli, ["diff", recorded["client"], str(bundle), "--db", str(db)])
    assert same.exit_code == 0, same.output
    assert "the conversations are equal" in same.output
    other = runner.invoke(cli, ["diff", str(bundle), recorded["responses"], "--db", str(db)])
    assert other.exit_code == 1, other.output
    out = other.output
    assert "setting 3: differs" in out
    assert "delegation client" in out
    assert "delegation responses" in out
    assert """'Let me check that for you. Here is what the weather service says: {"c":14}'""" in out
    assert "to responses call get_weather(" in out
    mixed = runner.invoke(cli, ["diff", recorded["client"], recorded["realtime"], "--db", str(db)])
    assert mixed.exit_code == 2
    assert "is a GPT-Live session and" in mixed.output


def test_replay_at_shows_a_live_session_as_of_a_point(recorded: dict[str, Any]) -> None:
    """`rtrec replay --at` on a Live session shows its state as of a seq or a time: before
    the delegation the user has spoken and nothing was delegated; at the last seq it is the
    whole session; past the end is refused as for Realtime."""
    db, sid = recorded["db"], recorded["client"]
    frames = list(read_frames(db, sid))
    (created,) = [f for f in frames if f.type == "session.delegation.created"]
    runner = CliRunner()

    def at(point: str) -> Any:
        return runner.invoke(cli, ["replay", sid, "--db", str(db), "--at", point])

    before = at(str(created.seq - 1))
    assert before.exit_code == 0, before.output
    assert "user: What is the weather like in Paris today?" in before.output
    assert "delegation" not in before.output
    assert before.output.rstrip().endswith("not closed yet")
    by_time = at(f"{created.t_ns / 1e6:.6f}ms")
    assert by_time.exit_code == 0, by_time.output
    assert "to client" in by_time.output
    assert "commentary" not in by_time.output  # the answer came later
    whole = runner.invoke(cli, ["replay", sid, "--db", str(db), "--json"])
    last = runner.invoke(
        cli, ["replay", sid, "--db", str(db), "--json", "--at", str(frames[-1].seq)]
    )
    assert last.exit_code == 0
    assert last.output == whole.output
    past = at(str(frames[-1].seq + 1))
    assert past.exit_code == 2
    assert "past the session's last seq" in past.output
    assert live_at(frames, 0) == fold_live([])


def _scripted_live_session() -> SessionScript:
    """A Live session whose every edge the views must get right: a sideband repeat of a
    transcript fragment, an utterance the assistant never answered, WebRTC-style usage with
    paused seconds, a delegation never answered, a Responses event without a delegation id,
    a mute never lifted, and no `session.closed`."""
    s = SessionScript()
    s.messages[0] = attrs.evolve(
        s.messages[0], protocol="live", model=None, request_path="/v1/live/sessions"
    )
    client, server = Direction.CLIENT, Direction.SERVER

    def said(kind: str, event_id: str, text: str, start: int, end: int) -> None:
        s.event(
            server,
            {
                "type": f"session.{kind}_transcript.delta",
                "event_id": event_id,
                "delta": text,
                "start_ms": start,
                "end_ms": end,
            },
        )

    s.event(client, {"type": "session.start", "session": {"model": "gpt-live-1.1"}})
    s.event(
        server,
        {
            "type": "session.started",
            "event_id": "e0",
            "session": {"model": "gpt-live-1.1", "id": "live_1"},
        },
    )
    said("input", "u1", " hi", 0, 400)
    said("input", "u2", " there", 400, 900)
    said("input", "u2", " there", 400, 900)  # repeated by a sideband: counts once
    said("output", "a1", " Hello", 1200, 1500)
    said("input", "u3", " wait", 3000, 3500)
    said("input", "u4", " no", 3800, 4000)  # 300 ms later: the same utterance
    said("input", "u5", " bye", 5000, 5200)  # no reply between 4000 and 5000
    said("output", "a2", " Bye", 5300, 5600)
    s.event(
        server,
        {
            "type": "session.delegation.created",
            "event_id": "e1",
            "offset_ms": 900,
            "delegation": {"id": "d1", "target": "client", "type": "delegation"},
        },
    )
    s.event(
        server,
        {
            "type": "session.delegation.created",
            "event_id": "e2",
            "offset_ms": 950,
            "delegation": {
                "id": "d2",
                "target": "responses",
                "type": "delegation",
                "response_id": "r1",
            },
        },
    )
    s.event(
        server,
        {
            "type": "response.event",
            "event_id": "e3",  # no delegation_id
            "event": {
                "type": "response.completed",
                "response": {"id": "r1", "usage": {"input_tokens": 7, "output_tokens": 3}},
            },
        },
    )
    s.event(
        server,
        {
            "type": "session.usage.updated",
            "event_id": "e4",
            "usage": {"seconds": 30, "active_seconds": 20, "paused_seconds": 10},
            "context_window": {"usage_ratio": 0.5},
        },
    )
    s.event(server, {"type": "session.usage.updated", "event_id": "e5", "usage": {"seconds": 31}})
    s.event(
        server,
        {
            "type": "session.usage.updated",
            "event_id": "e6",
            "usage": {"seconds": 40, "active_seconds": 28, "paused_seconds": 12},
        },
    )
    s.event(server, {"type": "session.input_audio.muted", "event_id": "e7"})
    s.close()
    return s


def test_the_views_edge_cases_on_a_scripted_session(tmp_path: Path) -> None:
    """On a scripted Live session: a repeated fragment counts once, an unanswered
    utterance has no reply (the next one does), the latest cumulative usage counts with
    paused seconds at their own price, the context ratio is the latest one given, an
    unanswered delegation has no latency while a Responses one is found by its response
    id, a mute still on has no end, and a session without `session.closed` is
    `unconfirmed`."""
    s = _scripted_live_session()
    db = tmp_path / "log.duckdb"
    trio.run(write, db, s)
    sid = s.session_id
    replies = sql(db, "SELECT * FROM live_replies ORDER BY utterance")
    assert [
        (
            r["transcript"],
            r["speech_end_ms"],
            r["reply_start_ms"],
            r["speech_end_to_first_audio_ms"],
        )
        for r in replies
    ] == [(" hi there", 900, 1200, 300), (" wait no", 4000, None, None), (" bye", 5200, 5300, 100)]
    (live,) = sql(db, "SELECT * FROM live_sessions")
    assert (live["model"], live["billed_s"], live["active_s"], live["paused_s"]) == (
        "gpt-live-1.1",
        40,
        28,
        12,
    )
    assert live["context_ratio"] == 0.5
    assert live["user_speech_s"] == pytest.approx((400 + 500 + 500 + 200 + 200) / 1000)
    assert live["cost_usd"] == pytest.approx((28 * 0.05 + 12 * 0.02) / 60)
    assert (live["close_confirmed"], live["close_reason"]) == (False, None)
    (summary,) = sql(db, "SELECT * FROM session_summary")
    assert (summary["session_id"], summary["protocol"], summary["model"]) == (
        sid,
        "live",
        "gpt-live-1.1",
    )
    assert summary["close_reason"] == "unconfirmed"
    assert summary["cost_usd"] == pytest.approx(live["cost_usd"])
    d1, d2 = sql(db, "SELECT * FROM live_delegations ORDER BY seq")
    assert (d1["target"], d1["answered_ms"], d1["latency_ms"], d1["answers"]) == (
        "client",
        None,
        None,
        0,
    )
    assert (d2["status"], d2["backend_input_tokens"], d2["backend_output_tokens"]) == (
        "completed",
        7,
        3,
    )
    assert d2["latency_ms"] > 0
    (mute,) = sql(db, "SELECT * FROM live_mutes")
    assert (mute["unmuted_seq"], mute["muted_for_ms"]) == (None, None)
    shown = CliRunner().invoke(cli, ["show", sid, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "unconfirmed" in shown.output
    assert "unanswered" in shown.output
