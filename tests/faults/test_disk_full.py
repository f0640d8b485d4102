"""A full disk stops the recorder loudly and loses nothing it forwarded (issue 15, defects 2
and 3): the log lives on a real 8 MiB tmpfs that fills up mid-session.

The contract (docs/recorder.md, "When the disk fills"): a frame is forwarded only once the
writer holds it; when the log can take no more, both sides are closed with a reason that
starts `disk full:`, stderr says so at once, new sessions get 503, the recorder exits 2 when
stopped, readers still list the log, and after space is freed `rtrec repair` recovers every
frame that was forwarded.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from rtrec.store.journal import pending_journal
from rtrec.store.log import reserve_path
from rtrec.store.reader import open_log_reader
from rtrec.transport.ws import Closed, HandshakeRejected, connect
from tests.faults.kit import (
    one_line_error,
    recorder_process,
    rtrec,
    small_tmpfs,
    upstream_server,
)
from tests.test_journal import kill_after_journal_commits

PAD = "x" * 20_000


async def _echo(received: list[int], request: WebSocketRequest) -> None:
    """Echo every message back; note the number of each one that arrived."""
    ws = await request.accept()
    try:
        while True:
            message = await ws.get_message()
            received.append(orjson.loads(message)["n"])
            await ws.send_message(message)
    except ConnectionClosed:
        pass


async def _fill(url: str, echoed: list[int]) -> Closed:
    """Send numbered 20 KB events as fast as the recorder takes them, reading the echoes,
    until the recorder closes the session; return how it closed."""
    ws = await connect(f"{url}/realtime?model=m", max_size=None)
    closed: list[Closed] = []

    async def read() -> None:
        try:
            while True:
                echoed.append(orjson.loads(await ws.receive())["n"])
        except Closed as exc:
            closed.append(exc)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            n = 0
            try:
                while not closed:
                    await ws.send(
                        orjson.dumps(
                            {"type": "conversation.item.create", "n": n, "pad": PAD}
                        ).decode()
                    )
                    n += 1
                    await trio.lowlevel.checkpoint()
            except Closed:
                pass
    finally:
        await ws.close()  # receiving the close frame leaves the socket to us
    return closed[0]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: its size and modification time."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def _logged(db: Path) -> tuple[set[int], set[int], list[dict[str, object]]]:
    with open_log_reader(db) as log:
        rows = log.rows(
            "SELECT direction, payload FROM events WHERE type = 'conversation.item.create'"
        )
        sessions = log.rows("SELECT status, close_code, close_reason, closed_by FROM sessions")
    numbers: dict[str, set[int]] = {"client": set(), "server": set()}
    for row in rows:
        numbers[str(row["direction"])].add(orjson.loads(str(row["payload"]))["n"])
    return numbers["client"], numbers["server"], sessions


async def test_a_full_disk_stops_recording_and_repair_recovers_every_forwarded_frame(
    tmp_path: Path,
) -> None:
    """Fill an 8 MiB tmpfs with one session: every frame either side got through the
    recorder is in the log after `rtrec repair`, the close says `disk full:` first, stderr
    said it before the stop, new sessions get 503, and the exit status is 2."""
    disk = tmp_path / "disk"
    with small_tmpfs(disk, "8m"):
        db = disk / "log.duckdb"
        err = tmp_path / "recorder.log"
        to_upstream: list[int] = []
        to_client: list[int] = []
        with trio.fail_after(120):
            async with (
                upstream_server(lambda r: _echo(to_upstream, r)) as upstream,
                recorder_process(db, upstream, err, "--no-index", "--disk-reserve", "1MiB") as (
                    process,
                    url,
                ),
            ):
                closed = await _fill(url, to_client)
                # stderr says so at once, while the recorder still runs
                # (another process writes that file: poll it, within fail_after)
                while b"recording stopped: disk full" not in err.read_bytes():  # noqa: ASYNC110
                    await trio.sleep(0.05)
                assert process.returncode is None
                with pytest.raises(HandshakeRejected) as refused:
                    await connect(f"{url}/realtime?model=m", max_size=None)
                # readers list the full log without writing to it
                listed = await trio.to_thread.run_sync(lambda: rtrec("sessions", "--db", str(db)))
                process.send_signal(signal.SIGINT)
                await process.wait()
        assert closed.code == 1011
        assert closed.reason.startswith("disk full: "), closed.reason
        assert len(closed.reason.encode()) <= 123
        assert refused.value.status == 503
        assert process.returncode == 2  # trouble: README "Every command"
        assert "Traceback" not in err.read_text(), err.read_text()
        assert listed.returncode == 0 or one_line_error(listed), listed.stderr
        # a writer cannot work on the full disk: one line, no traceback
        full = rtrec("repair", "--db", str(db))
        if full.returncode != 0:
            assert one_line_error(full).startswith("Error: disk full: ")
        await trio.run_process(["mount", "-o", "remount,size=256m", str(disk)])
        repaired = rtrec("repair", "--db", str(db))
        assert repaired.returncode == 0, repaired.stderr
        client_logged, server_logged, sessions = _logged(db)
    print(
        f"\nfull disk: client->upstream forwarded {len(to_upstream)} logged "
        f"{len(client_logged)}; upstream->client forwarded {len(to_client)} logged "
        f"{len(server_logged)}"
    )
    assert to_upstream  # the session did relay before the disk filled
    assert set(to_upstream) <= client_logged
    assert set(to_client) <= server_logged
    (session,) = sessions
    assert session["status"] == "failed"
    assert str(session["close_reason"]).startswith("disk full: ")


def test_readers_and_repair_on_a_full_disk_print_one_line(tmp_path: Path) -> None:
    """A killed recorder's log, its frames still in the journal, on a disk with no byte
    left: `rtrec sessions` and `rtrec sql` list them and write nothing at all; `rtrec repair`
    either manages in the space DuckDB's files already hold or says `disk full:` in one
    line, and succeeds once space is freed."""
    disk = tmp_path / "disk"
    with small_tmpfs(disk, "100m"):  # the child writer sets 64 MiB aside
        db = disk / "log.duckdb"
        session_id, committed = kill_after_journal_commits(db, 30)
        assert pending_journal(db)
        # the killed writer's reserve would give repair its room: take that away too
        reserve_path(db).unlink()
        for block, name in (("64k", "filler"), ("4k", "filler2")):
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={disk / name}", f"bs={block}"],
                capture_output=True,
                check=False,
            )
        assert shutil.disk_usage(disk).free == 0
        before = _files(disk)
        listed = rtrec("sessions", "--db", str(db))
        assert listed.returncode == 0, listed.stderr
        assert session_id[:8] in listed.stdout
        queried = rtrec(
            "sql", "SELECT count(*) AS n FROM events", "--db", str(db), "--format", "csv"
        )
        assert queried.returncode == 0, queried.stderr
        assert queried.stdout.split() == ["n", str(committed)]
        assert _files(disk) == before  # the readers wrote nothing
        full = rtrec("repair", "--db", str(db))
        if full.returncode != 0:
            assert one_line_error(full).startswith("Error: disk full: "), full.stderr
        (disk / "filler").unlink()
        (disk / "filler2").unlink()
        repaired = rtrec("repair", "--db", str(db))
        assert repaired.returncode == 0, repaired.stderr
        assert not pending_journal(db)
        again = rtrec("sql", "SELECT count(*) AS n FROM events", "--db", str(db), "--format", "csv")
        assert again.stdout.split() == ["n", str(committed)]
