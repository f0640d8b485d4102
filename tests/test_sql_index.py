"""`rtrec index`: which sessions it indexes, and that it leaves a live log alone."""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.index import index_log
from rtrec.store.reader import open_log_reader
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript
from tests.test_sql_views import Conversation, write


def test_closed_sessions_are_indexed_once_and_again_on_request(tmp_path: Path) -> None:
    """Every finished session is indexed (one with no events gives no items); a second run
    skips them; --all redoes them."""
    closed, cut_off = Conversation(), SessionScript()  # the writer ends cut_off on exit
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, closed.s, cut_off)
    assert index_log(db) == {closed.s.session_id: 5, cut_off.session_id: 0}
    assert index_log(db) == {}
    runner = CliRunner()
    done = runner.invoke(cli, ["index", "--db", str(db), "--all"])
    assert done.exit_code == 0, done.output
    assert "indexed 2 sessions, 5 items" in done.output
    with open_log_reader(db) as log:
        rows = log.rows("SELECT item_id, name, audio_s FROM items ORDER BY first_seq")
    assert [r["item_id"] for r in rows] == [
        "x",
        "item_resp_1",
        "item_u2",
        "item_fc",
        "item_resp_3",
    ]
    assert rows[3]["name"] == "get_weather"
    assert rows[1]["audio_s"] == 0.2


async def test_a_recorded_log_is_not_indexed_under_the_recorder(tmp_path: Path) -> None:
    """While a writer holds the log, `rtrec index` says to stop it, and changes nothing."""
    db = tmp_path / "rtrec.duckdb"
    c = Conversation()
    with trio.fail_after(60):
        async with open_log_writer(db) as writer:
            for m in c.s.messages:
                await writer.send(m)
            await writer.flush()
            done = await trio.run_process(
                [sys.executable, "-m", "rtrec", "index", "--db", str(db)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 2
    assert b"being recorded by `rtrec record`" in done.stderr
    with open_log_reader(db) as log:
        assert log.rows("SELECT count(*) AS n FROM items") == [{"n": 0}]
