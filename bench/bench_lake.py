"""The lake (docs/fleet.md): publishing from several recorders at once, and queries over it.

Needs Debian's PostgreSQL and the ``rtrec[lake]`` and test extras (moto's S3 server); it
starts a throw-away cluster and an S3 server on 127.0.0.1 (tests/lakekit.py) and removes
them at the end.

1. Publishing. ``--recorders`` processes (default 4) each own a local queue holding
   ``--per-recorder`` sessions (copies of one recorded demo conversation through the
   simulator, each with a new id: 360 events, two FLACs), and all publish at once to one lake
   (S3 files, PostgreSQL catalog), as ``rtrec record --lake`` does, with ``publish_queue``.
   For each batch size in ``--batch-sizes``: sessions published per second (all recorders
   together), the time a batch takes from its first upload to its last commit (p50, p99: the
   publish latency a session sees once its batch starts), and the catalog commit races lost
   (each retried).
2. Queries. bench/bench_sql.py's synthetic log of ``--sessions`` sessions (default 10,000,
   ``--turns`` 10 turns of 100 events: 10 M events) is indexed, then loaded into the lake in
   batches of ``--load-batch`` sessions through the publisher's commit path; bench_sql's
   queries (the README's example views) are timed, best and median of ``--repeat``, on the
   local log and on the lake, after ``open_lake_sql`` (whose time is shown).

    python bench/bench_lake.py [--recorders 4] [--per-recorder 100] [--batch-sizes 1,10,50]
        [--sessions 10000] [--turns 10] [--load-batch 1000] [--repeat 3] [--skip-queries]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import attrs
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import trio
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_sql  # noqa: E402  (bench/ is not a package)

from rtrec.cli.demo import run_demo  # noqa: E402
from rtrec.lake.catalog import open_lake  # noqa: E402
from rtrec.lake.config import LakeConfig  # noqa: E402
from rtrec.lake.publish import commit_batch, publish_queue  # noqa: E402
from rtrec.lake.query import open_lake_sql  # noqa: E402
from rtrec.lake.queue import LAKE_TABLES, PublishQueue, normalise  # noqa: E402
from rtrec.replay.index import index_log  # noqa: E402
from rtrec.store.parquet import PARQUET_TABLES  # noqa: E402
from rtrec.store.reader import open_log_reader  # noqa: E402
from tests.lakekit import S3, create_database, running_postgres, running_s3  # noqa: E402


def uuid7() -> str:
    """A time-ordered id like the recorder's (sorts by creation)."""
    ms = time.time_ns() // 1_000_000
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (
        (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


def template(folder: Path) -> Path:
    """One demo conversation recorded through the simulator and staged: its queue entry."""
    db = folder / "template.duckdb"
    session_id = trio.run(run_demo, db, "fast")
    queue = PublishQueue(db)
    with open_log_reader(db) as log:
        queue.stage(log.query, session_id)
    return queue.folder / session_id


def fill_queue(entry: Path, db: Path, sessions: int) -> None:
    """Put ``sessions`` copies of the staged ``entry`` (new ids) into ``db``'s queue."""
    queue = PublishQueue(db)
    queue.folder.mkdir(mode=0o700, exist_ok=True)
    tables = {t: pq.read_table(entry / f"{t}.parquet") for t in LAKE_TABLES}
    for _ in range(sessions):
        session_id = uuid7()
        target = queue.folder / session_id
        target.mkdir(mode=0o700)
        for name, rows in tables.items():
            ids = pa.array([session_id] * rows.num_rows, pa.string())
            copy = rows.set_column(rows.schema.get_field_index("session_id"), "session_id", ids)
            pq.write_table(copy, target / f"{name}.parquet")


def recorder(config: LakeConfig, db: str, batch_size: int, start_at: float, out) -> None:
    """One publishing recorder (a process): publish its whole queue, report each batch."""
    try:
        with open_lake(config) as lake:
            time.sleep(max(0.0, start_at - time.time()))
            batches = publish_queue(lake, PublishQueue(Path(db)), batch_size=batch_size)
        out.put([(b.seconds, len(b.sessions), b.conflicts) for b in batches])
    except BaseException as exc:
        out.put(exc)  # the parent waits for one answer per recorder
        raise


def publishing(args, config: LakeConfig, folder: Path, console: Console) -> Table:
    entry = template(folder)
    table = Table(
        title=f"{args.recorders} recorders publishing {args.per_recorder} sessions each "
        f"to one lake (S3 + PostgreSQL catalog), {os.cpu_count()} CPUs"
    )
    for name in (
        "batch size",
        "sessions/s",
        "batch p50 (s)",
        "batch p99 (s)",
        "commits",
        "races lost",
    ):
        table.add_column(name, justify="right")
    context = multiprocessing.get_context("spawn")
    for batch_size in args.batch_sizes:
        dbs = []
        for n in range(args.recorders):
            db = folder / f"b{batch_size}-r{n}.duckdb"
            fill_queue(entry, db, args.per_recorder)
            dbs.append(db)
        out = context.Queue()
        start_at = time.time() + 3.0  # every process connected and waiting
        processes = [
            context.Process(target=recorder, args=(config, str(db), batch_size, start_at, out))
            for db in dbs
        ]
        for p in processes:
            p.start()
        results = [out.get() for _ in processes]
        for result in results:
            if isinstance(result, BaseException):
                raise SystemExit(f"a recorder failed: {result!r}")
        finished = time.time()
        for p in processes:
            p.join()
        batches = [b for r in results for b in r]
        seconds = sorted(b[0] for b in batches)
        published = sum(b[1] for b in batches)
        p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
        row = (
            str(batch_size),
            f"{published / (finished - start_at):.1f}",
            f"{statistics.median(seconds):.2f}",
            f"{p99:.2f}",
            f"{len(batches) * len(LAKE_TABLES):,}",
            f"{sum(b[2] for b in batches):,}",
        )
        table.add_row(*row)
        console.print(f"{published} sessions published: " + " | ".join(row))
    return table


def load_lake(config: LakeConfig, db: Path, batch: int) -> tuple[float, int]:
    """Copy the log's sessions into the lake, ``batch`` sessions per commit; (s, commits)."""
    con = duckdb.connect(str(db), read_only=True)
    start = time.perf_counter()
    commits = 0
    try:
        ids = [r[0] for r in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()]
        with open_lake(config) as lake:
            for at in range(0, len(ids), batch):
                chunk = ids[at : at + batch]
                con.execute("CREATE OR REPLACE TEMP TABLE chunk AS SELECT unnest(?) AS id", [chunk])
                where = "WHERE s.session_id IN (SELECT id FROM chunk)"
                rows = {
                    t: normalise(con.sql(PARQUET_TABLES[t].format(where=where)).to_arrow_table())
                    for t in LAKE_TABLES
                }
                commit_batch(lake, uuid.uuid4().hex, rows)
                commits += 1
    finally:
        con.close()
    return time.perf_counter() - start, commits


def queries(args, config: LakeConfig, folder: Path, console: Console) -> Table:
    db = folder / "log.duckdb"
    took = bench_sql.build(db, args.sessions, args.turns)
    console.print(f"built {db.name}: {args.sessions:,} sessions in {took:.1f} s")
    start = time.perf_counter()
    index_log(db)
    console.print(f"indexed in {time.perf_counter() - start:.1f} s")
    took, commits = load_lake(config, db, args.load_batch)
    console.print(f"loaded into the lake in {took:.1f} s ({commits} batches)")
    table = Table(
        title=f"{args.sessions:,} sessions of {args.turns} turns: local log vs lake "
        f"(files in {args.query_data})"
    )
    for name in ("query", "over", "rows", "best (s)", "median (s)"):
        table.add_column(name, justify="left" if name in ("query", "over") else "right")
    con = duckdb.connect(str(db), read_only=True)
    try:
        bench_sql.time_queries(con, args.repeat, table, "log")
    finally:
        con.close()
    with open_lake(config) as lake:
        start = time.perf_counter()
        con = open_lake_sql(lake)
        opened = time.perf_counter() - start
        tables = [lake.table(t) for t in LAKE_TABLES]
        files = sum(len(list(t.scan().plan_files())) for t in tables if t is not None)
        try:
            bench_sql.time_queries(con, args.repeat, table, "lake")
        finally:
            con.close()
    console.print(f"open_lake_sql: {opened:.2f} s (plans {files} data files)")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recorders", type=int, default=4)
    parser.add_argument("--per-recorder", type=int, default=100)
    parser.add_argument(
        "--batch-sizes", type=lambda v: [int(x) for x in v.split(",")], default=[1, 10, 50]
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--load-batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-publishing", action="store_true")
    parser.add_argument(
        "--query-data",
        choices=("s3", "folder"),
        default="s3",
        help="where the queried lake's files are (s3: moto's server; folder: local disk)",
    )
    args = parser.parse_args()
    console = Console()
    os.environ.update(S3.env)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_postgres() as pg,
        running_s3() as s3,
    ):
        folder = Path(tmp)
        tables = []
        for part, run in (("publish", publishing), ("queries", queries)):
            if getattr(args, f"skip_{'publishing' if part == 'publish' else 'queries'}"):
                continue
            s3.create_bucket(f"bench-{part}")
            config = LakeConfig(
                catalog=create_database(pg, f"bench_{part}"),
                data=f"s3://bench-{part}/lake",
                s3_endpoint=s3.endpoint,
            )
            if part == "queries" and args.query_data == "folder":
                config = attrs.evolve(config, data=str(folder / "lake"), s3_endpoint=None)
            tables.append(run(args, config, folder, console))
            console.print(tables[-1])
        for table in tables[:-1]:  # all together at the end
            console.print(table)


if __name__ == "__main__":
    main()
