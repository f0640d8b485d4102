"""`rtrec sql` in every format, on a live log from another process, and the Parquet export:
the same queries over the export give the same answers as over the log."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import attrs
import duckdb
import pytest
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.index import index_log
from rtrec.schemas.storage import TABLES, FrameRecord, LogMessage, SessionClose, SessionRecord
from rtrec.store.parquet import PARQUET_TABLES, export_parquet, open_parquet
from rtrec.store.reader import open_log_reader
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript
from tests.test_sql_views import Conversation, write

DAY = 86_400 * 10**9

# Every view and table, in an order that makes the result comparable.
QUERIES = {
    "session_summary": "SELECT * FROM session_summary ORDER BY session_id",
    "turns": "SELECT * FROM turns ORDER BY session_id, turn",
    "responses": "SELECT * FROM responses ORDER BY session_id, seq",
    "function_calls": "SELECT * FROM function_calls ORDER BY session_id, seq",
    "errors": "SELECT * FROM errors ORDER BY session_id, seq, source",
    "interruptions": "SELECT * FROM interruptions ORDER BY session_id, seq",
    "rate_limits": "SELECT * FROM rate_limits ORDER BY session_id, seq, name",
    "playback": "SELECT * FROM playback ORDER BY session_id, seq",
    "events": "SELECT * FROM events ORDER BY session_id, seq",
    "sessions": "SELECT * FROM sessions ORDER BY session_id",
    "audio_streams": "SELECT * FROM audio_streams ORDER BY session_id, stream, sample_rate",
    "items": "SELECT * FROM items ORDER BY session_id, first_seq",
    "indexed_turns": "SELECT * FROM indexed_turns ORDER BY session_id, turn",
    "indexed_summary": "SELECT * FROM indexed_summary ORDER BY session_id",
    "indexed": "SELECT * FROM indexed ORDER BY session_id",
    "prices": "SELECT * FROM prices ORDER BY model",
    "time_prices": "SELECT * FROM time_prices ORDER BY model",
    "live_sessions": "SELECT * FROM live_sessions ORDER BY session_id",
    "live_delegations": "SELECT * FROM live_delegations ORDER BY session_id, seq",
    "live_calls": "SELECT * FROM live_calls ORDER BY session_id, seq",
    "live_replies": "SELECT * FROM live_replies ORDER BY session_id, utterance",
    "live_mutes": "SELECT * FROM live_mutes ORDER BY session_id, muted_seq",
}


def conversation_on(day: int) -> Conversation:
    """The scripted conversation, its wall clock moved ``day`` days later."""
    c = Conversation()
    shift = day * DAY
    moved: list[LogMessage] = []
    for m in c.s.messages:
        if isinstance(m, SessionRecord):
            m = attrs.evolve(m, started_wall_ns=m.started_wall_ns + shift)
        elif isinstance(m, FrameRecord):
            m = attrs.evolve(m, wall_ns=m.wall_ns + shift)
        elif isinstance(m, SessionClose):
            m = attrs.evolve(m, ended_wall_ns=m.ended_wall_ns + shift)
        moved.append(m)
    c.s.messages = moved
    return c


@pytest.fixture
def log_of_two_days(tmp_path: Path) -> tuple[Path, list[Conversation]]:
    """A log with two sessions on one day and one on the next."""
    conversations = [conversation_on(0), conversation_on(0), conversation_on(1)]
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, *(c.s for c in conversations))
    index_log(db)
    return db, conversations


def test_the_same_queries_over_parquet_give_the_same_answers(log_of_two_days, tmp_path):
    """Every view and table read from the Parquet export equals the same query on the log."""
    db, _ = log_of_two_days
    out = tmp_path / "lake"
    report = export_parquet(db, out)
    assert report.rows["sessions"] == 3
    assert report.days == ("2025-11-23", "2025-11-24")
    assert sorted(p.name for p in (out / "events").iterdir()) == [
        "day=2025-11-23",
        "day=2025-11-24",
    ]
    con = open_parquet(out)
    try:
        with open_log_reader(db) as log:
            for name, sql in QUERIES.items():
                expected = log.query(sql)
                got = con.sql(sql).to_arrow_table()
                assert got.num_rows == expected.num_rows, name
                assert got.to_pylist() == expected.to_pylist(), name
    finally:
        con.close()


def test_since_exports_later_sessions_and_a_day_exported_again_is_replaced(
    log_of_two_days, tmp_path
):
    """--since keeps sessions from that day on; re-exporting a day does not duplicate it."""
    db, conversations = log_of_two_days
    out = tmp_path / "lake"
    runner = CliRunner()
    done = runner.invoke(
        cli, ["export-parquet", str(out), "--db", str(db), "--since", "2025-11-24"]
    )
    assert done.exit_code == 0, done.output
    assert "1 sessions" in done.output
    ids = duckdb.sql(
        f"SELECT session_id FROM read_parquet('{out}/sessions/**/*.parquet')"
    ).fetchall()
    assert ids == [(conversations[2].s.session_id,)]
    for _ in range(2):
        export_parquet(db, out)
    con = open_parquet(out)
    try:
        count = con.execute("SELECT count(*) FROM sessions").fetchone()
        events = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    assert count == (3,)
    assert events == (sum(len(c.s.frames()) for c in conversations),)


def test_an_empty_log_exports_and_queries(tmp_path):
    """A log with no sessions gives an export whose views answer with no rows."""
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db)
    out = tmp_path / "lake"
    export_parquet(db, out)
    con = open_parquet(out)
    try:
        assert con.execute("SELECT count(*) FROM session_summary").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM prices").fetchone() == (4,)
    finally:
        con.close()


def test_a_folder_that_is_no_export_is_named(tmp_path):
    """`rtrec sql --parquet` on a folder without sessions says what is missing."""
    done = CliRunner().invoke(cli, ["sql", "--parquet", str(tmp_path), "SELECT 1"])
    assert done.exit_code == 2
    assert "not an rtrec Parquet export: it has no sessions folder" in done.output


def test_formats_print_the_same_rows(log_of_two_days):
    """csv, json, markdown and table carry the same values; NULL is empty or null."""
    db, conversations = log_of_two_days
    sql = (
        "SELECT turn, response_id, speech_end_to_first_audio_ms AS latency "
        f"FROM turns WHERE session_id = '{conversations[0].s.session_id}' ORDER BY turn"
    )
    runner = CliRunner()

    def run(fmt: str) -> str:
        done = runner.invoke(cli, ["sql", "--db", str(db), "--format", fmt, sql])
        assert done.exit_code == 0, done.output
        return done.output

    assert list(csv.reader(io.StringIO(run("csv")))) == [
        ["turn", "response_id", "latency"],
        ["1", "resp_1", "500.0"],
        ["2", "resp_2", ""],
        ["3", "resp_3", ""],
    ]
    assert json.loads(run("json")) == [
        {"turn": 1, "response_id": "resp_1", "latency": 500.0},
        {"turn": 2, "response_id": "resp_2", "latency": None},
        {"turn": 3, "response_id": "resp_3", "latency": None},
    ]
    assert run("markdown").splitlines() == [
        "| turn | response_id | latency |",
        "|---:|---|---:|",
        "| 1 | resp_1 | 500.0 |",
        "| 2 | resp_2 |  |",
        "| 3 | resp_3 |  |",
    ]
    table = run("table")
    assert re.search(r"^ +1  resp_1 +500$", table, re.M), table


def test_a_bad_query_is_a_clear_error(log_of_two_days):
    """DuckDB's message reaches the user, with exit status 1 and no traceback."""
    db, _ = log_of_two_days
    done = CliRunner().invoke(cli, ["sql", "--db", str(db), "SELECT nope FROM session_summary"])
    assert done.exit_code == 2
    assert "nope" in done.output
    assert "Traceback" not in done.output


async def test_sql_runs_while_a_recorder_holds_the_log(tmp_path):
    """Another process's `rtrec sql` answers from the live writer; writes are refused."""
    db = tmp_path / "rtrec.duckdb"
    c = Conversation()
    live = SessionScript()  # a session still open
    with trio.fail_after(60):
        async with open_log_writer(db, commit_interval=60) as writer:
            for m in c.s.messages + live.messages:
                await writer.send(m)
            await writer.flush()
            query = "SELECT session_id, status, turns FROM session_summary ORDER BY status"
            done = await run_cli("sql", "--db", str(db), "--format", "json", query)
            refused = await run_cli("sql", "--db", str(db), "DELETE FROM events")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == [
        {"session_id": c.s.session_id, "status": "closed", "turns": 3},
        {"session_id": live.session_id, "status": "open", "turns": 0},
    ]
    assert refused.returncode == 2
    assert b"read queries (SELECT, EXPLAIN) only, not DELETE" in refused.stderr


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m rtrec ARGS` in a fresh interpreter."""
    return await trio.run_process(
        [sys.executable, "-m", "rtrec", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def test_every_exported_table_is_queried():
    """QUERIES covers every table the export writes (so the round trip checks them all)."""
    assert set(PARQUET_TABLES) <= set(QUERIES)


def test_an_old_log_is_pointed_to_repair(tmp_path):
    """A version-1 log has no views; `rtrec sql` says so and names the command that upgrades it."""
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(TABLES)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    runner = CliRunner()
    done = runner.invoke(cli, ["sql", "--db", str(db), "SELECT * FROM session_summary"])
    assert done.exit_code == 2
    assert "schema version 1" in done.output
    assert "rtrec repair" in done.output
    assert runner.invoke(cli, ["repair", "--db", str(db)]).exit_code == 0
    done = runner.invoke(
        cli,
        ["sql", "--db", str(db), "--format", "csv", "SELECT count(*) AS n FROM session_summary"],
    )
    assert done.output.splitlines() == ["n", "0"]
