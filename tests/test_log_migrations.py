"""Logs written by old rtrec versions open, migrate and read back whole.

tests/data/old_logs/ holds a log of every old storage schema version, written by the rtrec
of that version (its README says how). Opening one for writing must migrate it through the
chained ``MIGRATIONS`` to the shape a new log has, and keep every frame and all audio.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from rtrec.replay import rebuild
from rtrec.replay.index import index_log
from rtrec.schemas.storage import SCHEMA_VERSION
from rtrec.store.log import open_log
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    read_streams,
    rebuild_frame,
)

OLD_LOGS = Path(__file__).parent / "data" / "old_logs"
SESSION = "01a20a90-26ea-71d2-a287-857c23553eb7"
#: Every frame of SESSION rebuilt from log + FLAC (length-prefixed, sha256), as the old
#: rtrec that wrote the files computed it (README.md).
FRAMES_DIGEST = "8b1026cb9e8945a408cf3f6addc662cc49d59fdf1561b3fb262d309f39d56d84"
VERSIONS = [1, 2, 3, 4]


def test_every_old_version_has_a_stored_log() -> None:
    """A log file is stored for each schema version before the current one."""
    assert list(range(1, SCHEMA_VERSION)) == VERSIONS
    for version in VERSIONS:
        assert (OLD_LOGS / f"v{version}.duckdb.gz").is_file()


def old_log(version: int, where: Path) -> Path:
    """The stored log of ``version``, unpacked into ``where`` with its audio archive."""
    db = where / f"v{version}.duckdb"
    with gzip.open(OLD_LOGS / f"v{version}.duckdb.gz") as packed, db.open("wb") as out:
        shutil.copyfileobj(packed, out)
    shutil.copytree(OLD_LOGS / "audio", where / f"v{version}.audio")
    return db


def shape(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Every table's and view's columns with their types."""
    return sorted(
        con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main'"
        ).fetchall()
    )


def frames_digest(db: Path) -> tuple[int, str]:
    """How many frames SESSION has, and the digest of all of them rebuilt byte for byte."""
    digest = hashlib.sha256()
    with open_log_reader(db) as log:
        streams = read_streams(log, SESSION)
        frames = list(read_frames(log, SESSION))
    with LogAudio(streams) as audio:
        for frame in frames:
            message = rebuild_frame(frame, audio)
            data = message.encode() if isinstance(message, str) else message
            digest.update(len(data).to_bytes(8, "big") + data)
    return len(frames), digest.hexdigest()


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_log_migrates_to_the_shape_of_a_new_one(version: int, tmp_path: Path) -> None:
    """Opened for writing, a log of an old version says it was migrated from that version,
    is at the current version, and has the tables, views and column types of a new log."""
    con, report = open_log(old_log(version, tmp_path))
    try:
        migrated = shape(con)
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()
    new, _ = open_log(tmp_path / "new.duckdb")
    try:
        assert migrated == shape(new)
    finally:
        new.close()
    assert report.migrated_from == version
    assert report.interrupted == ()
    assert meta["schema_version"] == str(SCHEMA_VERSION)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_logs_session_reads_back_whole(version: int, tmp_path: Path) -> None:
    """Before and after migration the session lists as closed, and every frame rebuilds from
    the log and the FLAC archive to the bytes the old rtrec rebuilt; the conversation folds."""
    db = old_log(version, tmp_path)
    assert frames_digest(db) == (167, FRAMES_DIGEST)  # read as it is, not migrated
    open_log(db)[0].close()
    assert frames_digest(db) == (167, FRAMES_DIGEST)
    (session,) = read_sessions(db)
    assert (session.session_id, session.status, session.protocol) == (SESSION, "closed", "beta")
    state = rebuild(read_frames(db, SESSION)).state
    assert [r.status for r in state.responses.values()] == ["completed", "completed"]


@pytest.mark.parametrize("version", [2, 3, 4])
def test_an_indexed_session_keeps_its_turns_and_summary(version: int, tmp_path: Path) -> None:
    """A log whose session was indexed (from version 2) ends with that session's turns and
    summary materialised: migration 2 fills them, migration 3 adds the summary up again
    (one turn per response, one summary row with the session's counts), and the ``turns``
    view serves them."""
    con, _ = open_log(old_log(version, tmp_path))
    try:
        indexed = con.execute(
            "SELECT turn, response_id FROM indexed_turns WHERE session_id = ? ORDER BY turn",
            [SESSION],
        ).fetchall()
        responses = con.execute(
            "SELECT response_id FROM events WHERE session_id = ? AND type = 'response.created' "
            "ORDER BY seq",
            [SESSION],
        ).fetchall()
        summary = con.execute(
            "SELECT session_id, events, responses, function_calls FROM indexed_summary"
        ).fetchall()
        view = con.execute("SELECT turn, response_id FROM turns ORDER BY turn").fetchall()
    finally:
        con.close()
    assert [(turn, rid) for turn, rid in indexed] == [
        (n, rid) for n, (rid,) in enumerate(responses, start=1)
    ]
    assert len(indexed) == 2
    assert summary == [(SESSION, 167, 2, 1)]
    assert view == indexed


def test_a_migrated_version_1_log_indexes(tmp_path: Path) -> None:
    """A version 1 log had nothing to index; once migrated, ``rtrec index`` indexes its
    session (five items) and the turns come from the materialised table."""
    db = old_log(1, tmp_path)
    open_log(db)[0].close()
    assert index_log(db) == {SESSION: 5}
    with open_log_reader(db) as log:
        assert len(log.rows("SELECT * FROM indexed_turns")) == 2
