"""`rtrec show`: the summary from the views, the reducer's transcript, and the turn table."""

from __future__ import annotations

from pathlib import Path

import trio
from click.testing import CliRunner

from rtrec.cli import cli
from tests.test_sql_views import Conversation, write


def test_show_prints_summary_transcript_and_latencies(tmp_path: Path) -> None:
    """Cost, counts, each response's transcript line and the headline latency are printed."""
    c = Conversation()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, c.s)
    done = CliRunner().invoke(cli, ["show", c.s.session_id[:8], "--db", str(db), "--wide"])
    assert done.exit_code == 0, done.output
    out = done.output
    assert f"session {c.s.session_id}" in out
    assert "$0.0163" in out  # the cost test_sql_views derives by hand, rounded
    assert "response resp_1 completed" in out
    assert "response resp_3 cancelled" in out
    assert "call get_weather" in out
    rows = [line for line in out.splitlines() if line.split()[:2] == ["1", "resp_1"]]
    (row,) = rows
    cells = row.split()
    # turn, response, speech end, created, first audio, first text, done, the two latencies
    assert len(cells) == 9
    assert cells[0] == "1"
    assert cells[7] == f"{c.ms('audio1') - c.ms('stop1'):,.0f}"


def test_show_names_a_missing_session(tmp_path: Path) -> None:
    """An unknown id is a one-line error."""
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db)
    done = CliRunner().invoke(cli, ["show", "nope", "--db", str(db)])
    assert done.exit_code == 2
    assert "no session 'nope'" in done.output
