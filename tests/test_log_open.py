"""Opening a log: creation, version checks, chained migrations and clear errors."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from rtrec.schemas.storage import SCHEMA_VERSION
from rtrec.store import log


def test_a_new_log_gets_the_tables_and_a_version(tmp_path):
    """An absent file becomes an rtrec log with the current schema version and audio dir."""
    con, report = log.open_log(tmp_path / "rtrec.duckdb", version="9.9")
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        tables = {t for (t,) in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()
    assert report.created
    assert report.migrated_from is None
    assert meta == {
        "schema_version": str(SCHEMA_VERSION),
        "created_by": "rtrec 9.9",
        "audio_dir": "rtrec.audio",
    }
    assert {"meta", "sessions", "events", "audio_streams"} <= tables
    assert report.audio_dir == tmp_path / "rtrec.audio"


def test_reopening_keeps_the_recorded_audio_dir(tmp_path):
    """A log opened without an audio dir uses the one recorded when it was created."""
    db = tmp_path / "x.duckdb"
    con, _ = log.open_log(db, tmp_path / "elsewhere")
    con.close()
    con, report = log.open_log(db)
    con.close()
    assert not report.created
    assert report.audio_dir == tmp_path / "elsewhere"


def test_a_file_that_is_not_duckdb_is_refused(tmp_path):
    """A text file named like a log gives NotAnRtrecLog, naming the file."""
    path = tmp_path / "notes.duckdb"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(log.NotAnRtrecLog, match=r"notes\.duckdb"):
        log.open_log(path)


def test_a_foreign_duckdb_database_is_refused(tmp_path):
    """A DuckDB database with other tables is not mistaken for a log."""
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE things (a INTEGER)")
    con.close()
    with pytest.raises(log.NotAnRtrecLog, match="not an rtrec log"):
        log.open_log(path)


def test_a_newer_log_is_refused(tmp_path):
    """A log from a newer rtrec says which versions disagree and what to do."""
    path = tmp_path / "new.duckdb"
    con, _ = log.open_log(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(log.LogTooNew, match=r"schema version 99, newer than .*upgrade rtrec"):
        log.open_log(path)


def test_migrations_run_in_a_chain(tmp_path, monkeypatch):
    """A log at version 1 opened by a version-3 rtrec runs 1->2 and 2->3, in order."""
    path = tmp_path / "old.duckdb"
    con, _ = log.open_log(path)
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()

    def two_to_three(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("UPDATE sessions SET note = 'migrated'")
        con.execute("INSERT INTO meta VALUES ('step', '3')")

    monkeypatch.setattr(log, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(
        log, "MIGRATIONS", {1: "ALTER TABLE sessions ADD COLUMN note VARCHAR", 2: two_to_three}
    )
    con, report = log.open_log(path)
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        columns = [
            c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE sessions)").fetchall()
        ]
    finally:
        con.close()
    assert report.migrated_from == 1
    assert meta["schema_version"] == "3"
    assert meta["step"] == "3"
    assert "note" in columns


def test_a_held_log_names_the_holder(tmp_path):
    """A second writer gets LogInUse with the holder's pid, not DuckDB's raw lock error."""
    path = tmp_path / "held.duckdb"
    log.open_log(path)[0].close()
    code = (
        f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
        "sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == "ok\n"
        with pytest.raises(log.LogInUse, match=rf"pid {holder.pid}.*stop the recorder"):
            log.connect(path, lock_wait=0.05)
        holder.stdin.close()
        holder.wait(timeout=30)


def test_reading_a_missing_log_says_so(tmp_path):
    """A read-only open of a path with no file raises LogNotFound (a FileNotFoundError)."""
    with pytest.raises(FileNotFoundError, match="no rtrec log at"):
        log.connect(tmp_path / "nope.duckdb", read_only=True)
