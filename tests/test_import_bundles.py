"""`rtrec import` of many bundles: a directory of bundles goes in with a progress bar, each
session indexed at import; a broken bundle is named with its problem, the others still go
in, and the exit status says something failed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.index import index_log
from rtrec.store.bundle import export_session, import_bundles
from rtrec.store.reader import open_log_reader
from tests.test_sql_materialise import materialised
from tests.test_sql_views import Conversation, write


def exported(tmp_path: Path, count: int) -> tuple[list[str], Path]:
    """``count`` scripted conversations recorded and exported as bundles under one folder."""
    conversations = [Conversation() for _ in range(count)]
    db = tmp_path / "source.duckdb"
    trio.run(write, db, *(c.s for c in conversations))
    folder = tmp_path / "bundles"
    for n, c in enumerate(conversations):
        export_session(db, c.s.session_id, folder / f"b{n}")
    return [c.s.session_id for c in conversations], folder


def test_a_folder_of_bundles_with_a_broken_one(tmp_path: Path) -> None:
    """Two good bundles of three are imported and indexed; the broken one is named with its
    file and problem; the summary counts both and the exit status is 1."""
    ids, folder = exported(tmp_path, 3)
    flac = folder / "b1" / "input.flac"
    flac.write_bytes(flac.read_bytes()[:-10])
    db = tmp_path / "imported.duckdb"
    done = CliRunner().invoke(cli, ["import", str(folder), "--db", str(db)])
    assert done.exit_code == 2
    assert f"{flac} does not match its checksum" in done.output
    assert f"imported {ids[0]} into {db}" in done.output
    assert f"imported {ids[2]} into {db}" in done.output
    assert "2 of 3 bundles imported, 1 failed" in done.output
    with open_log_reader(db) as log:
        present = log.rows("SELECT session_id FROM sessions ORDER BY session_id")
    assert present == [{"session_id": i} for i in sorted([ids[0], ids[2]])]
    # indexed at import: the same rows as indexing again from scratch
    indexed = materialised(db)
    assert [r["session_id"] for r in indexed["indexed"]] == sorted([ids[0], ids[2]])
    assert len(indexed["turns"]) == 6
    assert len(indexed["items"]) == 10
    index_log(db, redo=True)
    assert materialised(db) == indexed


def test_bundles_and_folders_mix_and_a_second_run_names_what_is_there(tmp_path: Path) -> None:
    """A bundle and a folder of bundles go in together; importing them again changes nothing,
    says each session is already imported, and succeeds."""
    ids, folder = exported(tmp_path, 3)
    single = tmp_path / "single"
    (folder / "b2").rename(single)
    db = tmp_path / "imported.duckdb"
    runner = CliRunner()
    done = runner.invoke(cli, ["import", str(single), str(folder), "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "3 of 3 bundles imported" in done.output
    again = runner.invoke(cli, ["import", str(single), str(folder), "--db", str(db)])
    assert again.exit_code == 0, again.output
    for session_id in ids:
        assert f"already imported {session_id}" in again.output
    assert "0 of 3 bundles imported, 3 already there" in again.output


def test_a_folder_without_bundles_is_named(tmp_path: Path) -> None:
    """A folder that holds no bundle is reported as not a bundle, and no log is created."""
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "imported.duckdb"
    done = CliRunner().invoke(cli, ["import", str(empty), "--db", str(db)])
    assert done.exit_code == 2
    assert f"{empty} is not a bundle: it has no session.json" in done.output
    assert not db.exists()


def test_a_failing_index_keeps_the_import(tmp_path: Path) -> None:
    """When indexing an imported session fails, the session stays imported, the failure is
    reported with it, and `rtrec index` indexes it later."""
    ids, folder = exported(tmp_path, 2)
    db = tmp_path / "imported.duckdb"

    def broken(con: duckdb.DuckDBPyConnection, session_id: str) -> None:
        raise RuntimeError("no index today")

    results = import_bundles(db, [folder / "b0", folder / "b1"], on_imported=broken)
    assert [(r.session_id, r.error, r.hook_error) for r in results] == [
        (ids[0], None, "RuntimeError: no index today"),
        (ids[1], None, "RuntimeError: no index today"),
    ]
    assert materialised(db)["indexed"] == []
    assert sorted(index_log(db)) == sorted(ids)
