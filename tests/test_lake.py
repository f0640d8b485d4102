"""The lake (issue 18): recorders publish closed sessions to Iceberg tables in a catalog on a
real PostgreSQL, with files in a real S3-compatible server (moto's, on 127.0.0.1).

Rules: PostgreSQL and the S3 server are started once per test process (``tests/lakekit.py``)
and each test gets its own database and bucket, so tests run in parallel; recorders are real
``python -m rtrec record`` processes fed by rtrec's own WebSocket client through the
simulator; nothing waits on the clock except for a condition, under ``fail_after``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.cli.demo import converse, fixture, run_demo
from rtrec.lake.catalog import open_lake
from rtrec.lake.config import LakeConfig, LakeConfigError, load_lake_config
from rtrec.lake.maintenance import compact, expire
from rtrec.lake.publish import BATCH_PROPERTY, publish_queue
from rtrec.lake.query import checkout_session, open_lake_sql
from rtrec.lake.queue import (
    LAKE_TABLES,
    PublishQueue,
    audio_paths,
    publication_states,
    queue_dir,
)
from rtrec.simulator import Pace, load_scenario, serve_simulator
from rtrec.store.reader import open_log_reader, read_frames, read_sessions

from .faults.kit import recorder_process
from .lakekit import S3, Postgres, create_database, running_postgres, running_s3

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    with running_s3() as server:
        yield server


@pytest.fixture
def lake_file(postgres: Postgres, s3: S3, tmp_path: Path, monkeypatch) -> Path:
    """A lake of its own (database + bucket) on the shared servers; the AWS keys in the env."""
    name = f"lake{os.getpid()}x{next(_names)}"
    url = create_database(postgres, name)
    s3.create_bucket(name)
    for key, value in S3.env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "lake.toml"
    path.write_text(
        f'catalog = "{url}"\ndata = "s3://{name}/fleet"\ns3_endpoint = "{s3.endpoint}"\n'
    )
    return path


def rtrec(*args: str) -> Result:
    """Run an rtrec command in this process (the recorders are the separate processes)."""
    return CliRunner().invoke(cli, list(args))


def lake_ids(lake_file: Path) -> list[str]:
    """Every published session id, in order."""
    with open_lake(load_lake_config(lake_file)) as lake, open_lake_sql(lake) as con:
        rows = con.sql("SELECT session_id FROM sessions ORDER BY session_id").fetchall()
    return [str(r[0]) for r in rows]


def local_ids(db: Path) -> list[str]:
    with open_log_reader(db) as log:
        return [s.session_id for s in read_sessions(log)]


async def wait_for(condition) -> None:
    """Poll ``condition`` (blocking: run in a thread) until true; the caller's fail_after
    caps the wait. What it waits on is another process's work, which has no event to await."""
    while not await trio.to_thread.run_sync(condition):  # noqa: ASYNC110 (see above)
        await trio.sleep(0.05)


async def test_two_recorders_publish_to_one_lake_and_each_session_replays(lake_file, tmp_path):
    """Two recorder processes with their own logs publish to one lake: `rtrec sql --lake`
    counts the sessions of both, and `rtrec replay SESSION --lake` rebuilds one of each
    exactly as replaying it from its own log does."""
    with fixture("scenarios", "demo.toml") as path:
        scenario = load_scenario(path)
    dbs = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(
                functools.partial(serve_simulator, scenario=scenario, pace=Pace.FAST)
            )
            async with (
                recorder_process(dbs[0], sim, tmp_path / "a.log", "--lake", str(lake_file)) as a,
                recorder_process(dbs[1], sim, tmp_path / "b.log", "--lake", str(lake_file)) as b,
            ):
                for _, url in (a, b, a, b):
                    await converse(url)
                await wait_for(lambda: len(lake_ids(lake_file)) == 4)
                for process, _ in (a, b):
                    process.send_signal(signal.SIGINT)
                    assert await process.wait() == 0
            nursery.cancel_scope.cancel()
    ids = {db: local_ids(db) for db in dbs}
    assert [len(v) for v in ids.values()] == [2, 2]
    assert lake_ids(lake_file) == sorted(ids[dbs[0]] + ids[dbs[1]])
    counted = rtrec(
        "sql",
        "--lake",
        str(lake_file),
        "--format",
        "csv",
        "SELECT count(*) AS n, sum(events) AS events FROM session_summary",
    )
    local_events = sum(s.events for db in dbs for s in read_sessions(db))
    assert counted.stdout.split()[1:] == [f"4,{local_events}"]
    for db in dbs:
        session = ids[db][0]
        from_lake = rtrec("replay", session[:30], "--lake", str(lake_file))
        from_log = rtrec("replay", session, "--db", str(db))
        assert from_lake.exit_code == 0, from_lake.stderr
        assert from_lake.stdout == from_log.stdout
        assert "[audio" in from_lake.stdout  # the FLACs came back from the bucket
    assert not queue_dir(dbs[0]).exists() or PublishQueue(dbs[0]).sessions() == []


class Crash(BaseException):
    """Stands for a SIGKILL: nothing after the point it is raised at runs."""


def demo_log(db: Path, sessions: int) -> list[str]:
    """A log with ``sessions`` demo conversations recorded through the simulator."""
    return [trio.run(run_demo, db, "fast") for _ in range(sessions)]


def staged(db: Path) -> PublishQueue:
    queue = PublishQueue(db)
    with open_log_reader(db) as log:
        for session_id in local_ids(db):
            assert queue.stage(log.query, session_id)
    return queue


@pytest.mark.parametrize("crash_after", ["events", "indexed", "sessions"])
def test_a_publisher_killed_mid_batch_publishes_it_exactly_once_on_restart(
    lake_file, tmp_path, crash_after
):
    """Stopped right after one table of a batch is committed, the next publisher finishes
    that batch under the same id: every table holds each session's rows exactly once, and
    the views showed none of a session until its sessions row was in."""
    db = tmp_path / "log.duckdb"
    sessions = demo_log(db, 2)
    queue = staged(db)
    config = load_lake_config(lake_file)

    def crash(batch_id: str, table: str) -> None:
        if table == crash_after:
            raise Crash

    with open_lake(config) as lake:
        with pytest.raises(Crash):
            publish_queue(lake, queue, on_committed=crash)
        [(batch_id, batch)] = queue.open_batches()
        assert batch == sorted(sessions)
        with open_lake_sql(lake) as con:
            [(visible,)] = con.sql("SELECT count(*) FROM events").fetchall()
        with open_log_reader(db) as log:
            [total] = log.rows("SELECT count(*) AS n FROM events")
        assert visible == (total["n"] if crash_after == "sessions" else 0)
    with open_lake(config) as lake:
        [again] = publish_queue(lake, queue)
        assert (again.batch_id, again.resumed) == (batch_id, True)
        assert queue.open_batches() == []
        assert queue.sessions() == []
        with open_lake_sql(lake) as con:
            for table in LAKE_TABLES:
                per_session = con.sql(
                    f"SELECT count(*) FROM lake_{table} GROUP BY session_id"
                ).fetchall()
                local = {}
                with open_log_reader(db) as log:
                    local = log.rows(f"SELECT count(*) AS n FROM {table} GROUP BY session_id")
                assert sorted(r[0] for r in per_session) == sorted(r["n"] for r in local), table
        for table in LAKE_TABLES:
            committed = [
                s
                for s in lake.table(table).snapshots()
                if s.summary.additional_properties.get(BATCH_PROPERTY) == batch_id
            ]
            assert len(committed) == 1, table


async def test_a_recorder_sigkilled_mid_publish_registers_each_session_once(lake_file, tmp_path):
    """SIGKILL `rtrec record --lake` while its batch is being committed, start it again on
    the same log: the lake ends with each session registered exactly once."""
    db = tmp_path / "log.duckdb"
    with fixture("scenarios", "demo.toml") as path:
        scenario = load_scenario(path)
    batches = queue_dir(db) / "batches"
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(
                functools.partial(serve_simulator, scenario=scenario, pace=Pace.FAST)
            )
            options = ("--lake", str(lake_file))
            async with recorder_process(db, sim, tmp_path / "1.log", *options) as (process, url):
                await converse(url)
                await converse(url)
                await wait_for(lambda: any(batches.glob("*.json")))
                process.kill()
                await process.wait()
            # killed while its batch was open: the batch file is only there mid-publish
            assert list(batches.glob("*.json"))
            async with recorder_process(db, sim, tmp_path / "2.log", *options) as (process, _):
                await wait_for(lambda: not list(batches.glob("*.json")))
                await wait_for(lambda: PublishQueue(db).sessions() == [])
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
            nursery.cancel_scope.cancel()
    assert lake_ids(lake_file) == local_ids(db)
    counts = rtrec(
        "sql", "--lake", str(lake_file), "--format", "csv", "SELECT count(*) FROM lake_events"
    )
    with open_log_reader(db) as log:
        [local] = log.rows("SELECT count(*) AS n FROM events")
    assert counts.stdout.split()[1:] == [str(local["n"])]


async def test_sessions_closed_but_never_queued_are_published_by_the_next_start(
    lake_file, tmp_path
):
    """A recorder killed after committing a session's close but before staging it leaves a
    finished session no queue entry names: the next `rtrec record --lake` on the log
    publishes it (and only what started since the log began publishing)."""
    db = tmp_path / "log.duckdb"
    [before] = await trio.to_thread.run_sync(demo_log, db, 1)  # before the lake: not ours
    await trio.sleep(0.01)
    PublishQueue(db).begin()  # the killed recorder had begun publishing this log
    missed = await trio.to_thread.run_sync(demo_log, db, 2)  # closed, then killed: not queued
    assert PublishQueue(db).sessions() == []
    with fixture("scenarios", "demo.toml") as path:
        scenario = load_scenario(path)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(
                functools.partial(serve_simulator, scenario=scenario, pace=Pace.FAST)
            )
            options = ("--lake", str(lake_file))
            async with recorder_process(db, sim, tmp_path / "r.log", *options) as (process, _):
                await wait_for(lambda: len(lake_ids(lake_file)) == len(missed))
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
            nursery.cancel_scope.cancel()
    assert lake_ids(lake_file) == sorted(missed)
    assert before not in lake_ids(lake_file)
    states = publication_states(db)
    assert {sid: states[sid].state for sid in missed} == dict.fromkeys(missed, "published")


def test_publish_skips_what_the_lake_has_and_sql_reads_nothing_else(lake_file, tmp_path):
    """`rtrec publish` publishes a log's closed sessions once (again: nothing new), and a
    lake query cannot read files of the machine."""
    db = tmp_path / "log.duckdb"
    sessions = demo_log(db, 2)
    first = rtrec("publish", "--db", str(db), "--lake", str(lake_file))
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("published 2 sessions in 1 batch")
    again = rtrec("publish", sessions[0][:30], "--db", str(db), "--lake", str(lake_file))
    assert again.stdout.startswith("published 0 sessions")
    assert "1 already in the lake" in again.stdout
    assert lake_ids(lake_file) == sorted(sessions)
    escape = rtrec("sql", "--lake", str(lake_file), f"SELECT * FROM read_csv('{db}')")
    assert escape.exit_code == 2  # trouble, as every rtrec command says it
    assert "disabled by configuration" in escape.stderr


def test_a_folder_lake_and_the_env_variable(postgres, tmp_path, monkeypatch):
    """`data` may be a folder (relative to the lake file), and RTREC_LAKE names the file
    when `--lake` comes alone; `rtrec show SESSION --lake` reads it."""
    db = tmp_path / "log.duckdb"
    [session] = demo_log(db, 1)
    url = create_database(postgres, f"folder{os.getpid()}x{next(_names)}")
    (tmp_path / "lake.toml").write_text(f'catalog = "{url}"\ndata = "shared"\n')
    monkeypatch.setenv("RTREC_LAKE", str(tmp_path / "lake.toml"))
    done = rtrec("publish", "--db", str(db))
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "shared" / "audio" / session).is_dir()
    assert oct((tmp_path / "shared").stat().st_mode & 0o777) == "0o700"
    counted = rtrec("sql", "--lake", "--format", "csv", "SELECT count(*) FROM events")
    assert counted.stdout.split()[1:] == [str(sum(s.events for s in read_sessions(db)))]
    # `--lake` alone takes no value when the query follows it
    escape = rtrec("sql", f"SELECT * FROM read_csv('{tmp_path / 'lake.toml'}')", "--lake")
    assert "disabled by configuration" in escape.stderr
    shown = rtrec("show", session, "--lake")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == rtrec("show", session, "--db", str(db)).stdout


def test_checkout_names_a_session_the_lake_lacks(lake_file, tmp_path):
    """Replaying an id the lake does not have is one line naming it."""
    done = rtrec("replay", "0123abcd", "--lake", str(lake_file))
    assert done.exit_code == 2
    assert "no session '0123abcd' in the lake" in done.stderr
    assert "Traceback" not in done.stderr
    with open_lake(load_lake_config(lake_file)) as lake, pytest.raises(LookupError):
        checkout_session(lake, "0123abcd", tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('catalog = "postgresql://u:hunter2@h:5432/db"\ndata = "/x"', "holds a password"),
        ('catalog = "mysql://u@h/db"\ndata = "/x"', "must be a postgresql://"),
        ('catalog = "postgresql://u@h:5432/db"', "'data' is missing"),
        ('catalog = "postgresql://u@h:5432/db"\ndata = "/x"\nkey = 1', "unknown key 'key'"),
        ('catalog = "postgresql://u@h:5432/db"\ndata = "gs://b/x"', "a folder or s3://"),
        ("catalog = ", "is not TOML"),
    ],
)
def test_a_bad_lake_file_is_one_clear_line(tmp_path, text, message):
    """Secrets, wrong schemes, missing or unknown keys are refused with a reason."""
    path = tmp_path / "lake.toml"
    path.write_text(text)
    with pytest.raises(LakeConfigError, match=message):
        load_lake_config(path)


def test_a_lake_file_reads_relative_folders_and_s3(tmp_path, monkeypatch):
    """A relative folder is taken from the lake file's folder; s3 keeps endpoint and region."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    path = tmp_path / "lake.toml"
    path.write_text('catalog = "postgresql://u@h:5432/db"\ndata = "lake"')
    assert load_lake_config(path).data == str(tmp_path / "lake")
    path.write_text(
        'catalog = "postgresql://u@h:5432/db"\ndata = "s3://b/p/"\ns3_endpoint = "http://e"'
    )
    assert load_lake_config(path) == LakeConfig(
        catalog="postgresql://u@h:5432/db", data="s3://b/p", s3_endpoint="http://e"
    )
    monkeypatch.delenv("RTREC_LAKE", raising=False)
    with pytest.raises(LakeConfigError, match="RTREC_LAKE"):
        load_lake_config(None)


def per_session_counts(lake, table: str) -> list[int]:
    with open_lake_sql(lake) as con:
        rows = con.sql(f"SELECT count(*) FROM lake_{table} GROUP BY session_id ORDER BY 1")
        return [r[0] for r in rows.fetchall()]


def test_compaction_forgetting_and_a_batch_resumed_after_its_snapshot_expired(lake_file, tmp_path):
    """Batches of one session leave a file each: `compact` leaves one per table with the
    same rows; a killed batch whose snapshot was expired meanwhile is still finished once;
    `rtrec lake forget` removes a session's rows and FLACs everywhere."""
    db = tmp_path / "log.duckdb"
    sessions = sorted(demo_log(db, 3))
    config = load_lake_config(lake_file)
    with open_lake(config) as lake:
        publish_queue(lake, staged(db), batch_size=1)
        files = {t: len(list(lake.table(t).scan().plan_files())) for t in LAKE_TABLES}
        assert files == dict.fromkeys(LAKE_TABLES, 3)
        before = {t: per_session_counts(lake, t) for t in LAKE_TABLES}
        done = compact(lake, min_files=2)
        assert {(c.table, c.files_before, c.files_after) for c in done} == {
            (t, 3, 1) for t in LAKE_TABLES
        }
        assert {t: per_session_counts(lake, t) for t in LAKE_TABLES} == before

    second = tmp_path / "second.duckdb"
    [late] = demo_log(second, 1)

    def crash(batch_id: str, table: str) -> None:
        if table == "items":
            raise Crash

    queue = staged(second)
    with open_lake(config) as lake:
        with pytest.raises(Crash):
            publish_queue(lake, queue, on_committed=crash)
        compact(lake, min_files=2)  # new snapshots on top of the batch's ...
        assert expire(lake, dt.timedelta(0)) > 0  # ... which then expire
        [again] = publish_queue(lake, queue)
        assert again.resumed
        assert per_session_counts(lake, "events") == sorted(
            [*before["events"], sum(1 for _ in read_frames(second, late))]
        )

    audio = {
        r["path"]
        for r in rtrec_rows(lake_file, "SELECT path FROM audio_streams")
        if sessions[0] in r["path"]
    }
    assert len(audio) == 2
    done = rtrec("lake", "forget", sessions[0], "--lake", str(lake_file))
    assert done.exit_code == 0, done.output
    with open_lake(config) as lake:
        assert sessions[0] not in lake_ids(lake_file)
        with open_lake_sql(lake) as con:
            for table in LAKE_TABLES:
                [(n,)] = con.sql(
                    f"SELECT count(*) FROM lake_{table} WHERE session_id = ?",
                    params=[sessions[0]],
                ).fetchall()
                assert n == 0, table
        for location in audio:
            assert not lake.io.new_input(location).exists()
    assert len(lake_ids(lake_file)) == 3


def rtrec_rows(lake_file: Path, sql: str) -> list[dict]:
    with open_lake(load_lake_config(lake_file)) as lake, open_lake_sql(lake) as con:
        return con.sql(sql).to_arrow_table().to_pylist()


async def test_a_lake_outage_queues_sessions_and_publish_catches_up(postgres, s3, tmp_path):
    """With the catalog's database missing, the recorder still records and closes every
    session, says once why publishing failed, and `rtrec sessions` shows them queued, failed
    with that reason; once the database exists, `rtrec publish` publishes them exactly once
    and `rtrec sessions` shows them published."""
    name = f"outage{os.getpid()}x{next(_names)}"
    lake_file = tmp_path / "lake.toml"
    lake_file.write_text(f'catalog = "{postgres.url(name)}"\ndata = "{tmp_path / "lake"}"\n')
    db = tmp_path / "log.duckdb"
    with fixture("scenarios", "demo.toml") as path:
        scenario = load_scenario(path)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(
                functools.partial(serve_simulator, scenario=scenario, pace=Pace.FAST)
            )
            log_file = tmp_path / "record.log"
            async with recorder_process(db, sim, log_file, "--lake", str(lake_file)) as (p, url):
                await converse(url)
                await converse(url)
                await wait_for(lambda: len(PublishQueue(db).sessions()) == 2)
                await wait_for(lambda: "publishing to the lake" in log_file.read_text())
                listed = rtrec("sessions", "--db", str(db))
                as_json = rtrec("sessions", "--db", str(db), "--format", "json")
                p.send_signal(signal.SIGINT)
                assert await p.wait() == 0
            nursery.cancel_scope.cancel()
    assert "2 sessions queued for the lake" in listed.output
    header, _, *rows = listed.output.splitlines()[1:5]
    at = header.index(" lake ") + 1  # the column after status
    assert header[:at].split()[-1] == "status"
    assert [row[at:].split()[0] for row in rows] == ["failed"] * 2
    [reason] = [line for line in listed.output.splitlines() if "failed to publish" in line]
    assert reason.startswith("2 failed to publish: cannot reach the lake's catalog")
    assert reason.endswith(f'database "{name}" does not exist (retrying)')
    records = orjson.loads(as_json.stdout)
    assert [r["lake"] for r in records] == ["failed", "failed"]
    assert all(f'database "{name}" does not exist' in r["lake_error"] for r in records)
    warning = [line for line in log_file.read_text().splitlines() if "publishing" in line]
    assert f'database "{name}" does not exist' in warning[0]
    assert [s.status for s in read_sessions(db)] == ["closed", "closed"]
    create_database(postgres, name)
    done = rtrec("publish", "--db", str(db), "--lake", str(lake_file))
    assert done.exit_code == 0, done.output
    assert lake_ids(lake_file) == local_ids(db)
    assert PublishQueue(db).sessions() == []
    after = orjson.loads(rtrec("sessions", "--db", str(db), "--format", "json").stdout)
    assert [(r["lake"], r["lake_error"]) for r in after] == [("published", None)] * 2
    assert "0 sessions queued for the lake" in rtrec("sessions", "--db", str(db)).output


def test_sessions_show_what_was_published_and_what_was_given_up(lake_file, tmp_path):
    """A session past the queue's bound and one whose FLAC is gone are not published, and
    `rtrec sessions` says why for each while the others show published; the session whose
    audio is gone does not hold up the rest, and `rtrec publish` names it and exits 2."""
    db = tmp_path / "log.duckdb"
    sessions = demo_log(db, 3)
    queue = PublishQueue(db, limit=2)
    with open_log_reader(db) as log:
        assert [queue.stage(log.query, sid) for sid in sessions] == [True, True, False]
    [gone] = [
        path
        for _, stream, _, path in audio_paths(queue.read([sessions[1]], "audio_streams"))
        if stream == "input"
    ]
    Path(gone).unlink()
    with open_lake(load_lake_config(lake_file)) as lake:
        [batch] = publish_queue(lake, queue)
    assert batch.sessions == (sessions[0],)
    assert queue.sessions() == []
    listed = rtrec("sessions", "--db", str(db), "--format", "json")
    states = {r["session_id"]: (r["lake"], r["lake_error"]) for r in orjson.loads(listed.stdout)}
    assert states == {
        sessions[0]: ("published", None),
        sessions[1]: ("failed", f"its input audio {gone} is gone"),
        sessions[2]: ("failed", "the queue was full (2 sessions)"),
    }
    table = rtrec("sessions", "--db", str(db)).output
    assert "1 failed to publish: the queue was full (2 sessions) (`rtrec publish" in table
    assert "0 sessions queued for the lake" in table
    done = rtrec("publish", "--db", str(db), "--lake", str(lake_file))
    assert done.exit_code == 2
    assert done.stdout.startswith("published 1 session in 1 batch")  # the one past the bound
    assert done.stderr.strip().endswith(
        f"session {sessions[1]} not published: its input audio {gone} is gone "
        "(it stays in the local log)"
    )
    assert lake_ids(lake_file) == [sessions[0], sessions[2]]


def test_export_reads_sessions_from_the_lake(lake_file, tmp_path):
    """`rtrec export SESSION --lake` writes the same bundle as exporting it from the log it
    was recorded in (audio fetched from the bucket); several sessions and --all work too."""
    db = tmp_path / "log.duckdb"
    sessions = demo_log(db, 2)
    assert rtrec("publish", "--db", str(db), "--lake", str(lake_file)).exit_code == 0
    out = tmp_path / "lake1"
    from_lake = rtrec("export", sessions[1][:30], "--lake", str(lake_file), "--out", str(out))
    assert from_lake.exit_code == 0, from_lake.stderr
    from_log = rtrec("export", sessions[1], "--db", str(db), "--out", str(tmp_path / "log1"))
    assert from_log.exit_code == 0, from_log.stderr
    assert bundle_files(out) == bundle_files(tmp_path / "log1")
    assert {"input.flac", "output.flac"} <= set(bundle_files(out))
    every = rtrec("export", "--all", "--lake", str(lake_file), "--out", str(tmp_path / "all"))
    assert every.exit_code == 0, every.stderr
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(sessions)
    missing = rtrec("export", "0123abcd", "--lake", str(lake_file), "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2
    assert "no session '0123abcd' in the lake" in missing.stderr


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_all_from_an_empty_lake_is_one_line(lake_file, tmp_path):
    """`rtrec export --all --lake` on a lake nothing was published to says so, exit 2."""
    done = rtrec("export", "--all", "--lake", str(lake_file), "--out", str(tmp_path / "x"))
    assert done.exit_code == 2, done.output
    assert "no session is published in the lake" in done.stderr
    assert not (tmp_path / "x").exists()
