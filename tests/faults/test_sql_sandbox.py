"""`rtrec sql` reads the log and nothing else, and answers bad input in one line (issue 15,
defect 11). Each case runs the real command on a real DuckDB log."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rtrec.schemas.storage import Direction
from tests.faults.kit import one_line_error, recorder_process, rtrec
from tests.logdata import SessionScript
from tests.test_sql_views import write


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with one short closed session, written by the real writer."""
    script = SessionScript()
    script.event(Direction.CLIENT, {"type": "session.update", "session": {"type": "realtime"}})
    script.event(Direction.SERVER, {"type": "session.updated", "event_id": "e1"})
    script.close()
    db = tmp_path_factory.mktemp("sql") / "log.duckdb"
    trio.run(write, db, script)
    return db


def test_a_plain_query_and_the_views_still_work(log: Path) -> None:
    """The lock-down leaves reading the log alone: tables and views answer."""
    result = rtrec("sql", "SELECT count(*) AS n FROM events", "--db", str(log), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["n", "2"]
    summary = rtrec("sql", "SELECT * FROM session_summary", "--db", str(log), "--format", "json")
    assert summary.returncode == 0, summary.stderr


def test_copy_to_a_file_is_refused(log: Path, tmp_path: Path) -> None:
    """`COPY events TO 'file'` writes nothing and says why, in one line."""
    target = tmp_path / "x.csv"
    error = one_line_error(rtrec("sql", f"COPY events TO '{target}'", "--db", str(log)))
    assert "disabled" in error.lower() or "permission" in error.lower(), error
    assert not target.exists()


@pytest.mark.parametrize(
    "query",
    [
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM 'https://example.invalid/x.parquet'",
        "ATTACH '/tmp/rtrec-other.duckdb' AS other",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ],
)
def test_no_extensions_files_network_or_settings(log: Path, query: str) -> None:
    """Extensions, other files, the network and the settings that guard them are refused,
    each with a one-line error."""
    error = one_line_error(rtrec("sql", query, "--db", str(log)))
    assert error.startswith("Error: "), error


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("SELECT 1; SELECT 2", "not 2"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ],
)
def test_bad_input_is_one_line(log: Path, query: str, needle: str) -> None:
    """An empty query, two statements, a syntax error or an unknown table: one line, exit 1,
    no traceback, naming the problem."""
    error = one_line_error(rtrec("sql", query, "--db", str(log)))
    assert needle in error, error


def test_a_parquet_export_is_queried_under_the_same_lock(log: Path, tmp_path: Path) -> None:
    """`--parquet` still reads the export's files, and still cannot write others."""
    out = tmp_path / "parquet"
    assert rtrec("export-parquet", str(out), "--db", str(log)).returncode == 0
    ok = rtrec("sql", "SELECT count(*) AS n FROM events", "--parquet", str(out), "--format", "csv")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["n", "2"]
    target = tmp_path / "y.csv"
    one_line_error(rtrec("sql", f"COPY events TO '{target}'", "--parquet", str(out)))
    assert not target.exists()


async def test_a_live_log_is_queried_under_the_same_rules(tmp_path: Path) -> None:
    """While `rtrec record` holds the log, queries go through its socket on its own
    connection: one that reads files or URLs is refused in one line, before it is sent;
    the log's tables, views, CTEs and range() still answer."""
    db = tmp_path / "log.duckdb"
    with trio.fail_after(180):  # five commands, each a fresh interpreter
        async with recorder_process(db, "sim", tmp_path / "recorder.log", "--no-index"):
            for query in (
                "SELECT * FROM read_csv('/etc/passwd')",
                "SELECT * FROM '/etc/passwd'",
                "SELECT * FROM 'https://example.invalid/x.parquet'",
                "SELECT * FROM read_text('/etc/hostname')",
            ):
                result = await trio.to_thread.run_sync(
                    lambda q=query: rtrec("sql", q, "--db", str(db))
                )
                error = one_line_error(result)
                assert "log" in error, error
            ok = await trio.to_thread.run_sync(
                lambda: rtrec(
                    "sql",
                    "WITH x AS (SELECT count(*) AS n FROM events) "
                    "SELECT n, r FROM x, range(2) AS t(r) ORDER BY r",
                    "--db",
                    str(db),
                    "--format",
                    "csv",
                )
            )
            assert ok.returncode == 0, ok.stderr
            assert ok.stdout.split() == ["n,r", "0,0", "0,1"]
