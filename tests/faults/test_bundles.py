"""Bundles say when they were changed, and importing twice is harmless (issue 15, defect
12); a drive checks its audio before it connects. Real DuckDB logs, real bundle folders, the
real `rtrec` commands."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
import trio

from rtrec.store.bundle import export_session
from rtrec.store.reader import read_streams
from tests.faults.kit import rtrec
from tests.logdata import voice_session
from tests.test_sql_views import write


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, str]:
    """A log with one voice session, and that session exported as a bundle."""
    script = voice_session(chunks=6)
    db = tmp_path / "log.duckdb"
    trio.run(write, db, script)
    bundle = tmp_path / "bundles" / "x"
    export_session(db, script.session_id, bundle)
    return db, bundle, script.session_id


def test_the_manifest_carries_the_event_count_and_digest(exported: tuple[Path, Path, str]) -> None:
    """session.json holds how many lines events.jsonl has and its SHA-256."""
    _, bundle, _ = exported
    manifest = orjson.loads((bundle / "session.json").read_bytes())
    lines = (bundle / "events.jsonl").read_bytes().splitlines()
    assert manifest["events"]["count"] == len(lines) > 10
    assert len(manifest["events"]["sha256"]) == 64


def test_a_bundle_cut_at_a_line_boundary_is_refused(
    exported: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """events.jsonl missing its last lines (a clean cut, every line still valid): import
    and replay refuse it in one line, and nothing is imported."""
    _, bundle, _ = exported
    events = bundle / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join(lines[:-5]))
    other = tmp_path / "other.duckdb"
    result = rtrec("import", str(bundle), "--db", str(other))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert "cut short" in error, error
    assert f"holds {len(lines) - 5} events" in error
    replayed = rtrec("replay", str(bundle))
    assert replayed.returncode != 0
    assert "cut short" in replayed.stderr
    assert "Traceback" not in replayed.stderr
    assert not other.exists()  # checked before the log was even opened


def test_importing_the_same_bundle_again_is_a_no_op(
    exported: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """The README's `rtrec import bundles/x bundles/`: the second mention of the same bundle
    says "already imported" and the command exits 0; so does a second run."""
    _, bundle, session_id = exported
    other = tmp_path / "other.duckdb"
    first = rtrec("import", str(bundle), str(bundle.parent), "--db", str(other))
    assert first.returncode == 0, first.stderr
    assert f"imported {session_id}" in first.stdout
    assert f"already imported {session_id}" in first.stdout
    again = rtrec("import", str(bundle), "--db", str(other))
    assert again.returncode == 0, again.stderr
    assert f"already imported {session_id}" in again.stdout
    counted = rtrec(
        "sql", "SELECT count(*) AS n FROM events", "--db", str(other), "--format", "csv"
    )
    assert counted.stdout.split() == [
        "n",
        str(len((bundle / "events.jsonl").read_bytes().splitlines())),
    ]


def test_a_different_bundle_with_the_same_id_names_both(
    exported: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """A consistent bundle (digest matching) whose events differ from the session with its
    id already in the log: an error naming the bundle and the log, exit 1."""
    db, bundle, session_id = exported
    changed = tmp_path / "changed"
    shutil.copytree(bundle, changed)
    events = changed / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    last = orjson.loads(lines[-1])
    last["t_ns"] += 1  # the same frame, a nanosecond later: another recording
    lines[-1] = orjson.dumps(last) + b"\n"
    data = b"".join(lines)
    events.write_bytes(data)
    manifest = orjson.loads((changed / "session.json").read_bytes())
    manifest["events"]["sha256"] = hashlib.sha256(data).hexdigest()
    (changed / "session.json").write_bytes(orjson.dumps(manifest))
    result = rtrec("import", str(changed), "--db", str(db))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert str(changed) in error
    assert str(db) in error
    assert session_id in error


def test_drive_checks_the_audio_before_connecting(
    exported: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """A logged session whose input FLAC is gone: `rtrec replay --drive sim` says which
    audio is missing and records nothing (no junk session in the log)."""
    db, _, session_id = exported
    for stream in read_streams(db, session_id):
        stream.path.unlink()
    result = rtrec("replay", session_id, "--drive", "sim", "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert "nothing was driven" in result.stderr
    assert "Traceback" not in result.stderr
    counted = rtrec("sql", "SELECT count(*) AS n FROM sessions", "--db", str(db), "--format", "csv")
    assert counted.stdout.split() == ["n", "1"]
