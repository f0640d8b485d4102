"""Other local users can read nothing and plant nothing (issue 15, defects 8 and 9).

Files rtrec creates hold conversations: 0600, folders 0700 (``--group-readable``: 0640 and
0750). Readers talk only to a control socket served by their own user (``SO_PEERCRED``), and
a `$TMPDIR/rtrec-<uid>` pre-created by someone else is named as the problem. The other user
is real (created with useradd; these tests need root) and acts through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pybase64
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from rtrec.store.control import control_socket_path
from rtrec.store.log import open_log
from rtrec.transport.ws import connect
from tests.faults.kit import one_line_error, other_user, recorder_process, rtrec, upstream_server


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's own tmp folders are 0700 to all but root)."""
    folder = Path(tempfile.mkdtemp(prefix="rtrec-faults-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _echo(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            await ws.send_message(await ws.get_message())
    except ConnectionClosed:
        pass


async def _record_one_session(db: Path, log_file: Path, *global_options: str) -> set[Path]:
    """Record a session with input audio; the files that exist while the recorder runs."""
    async with (
        upstream_server(_echo) as upstream,
        recorder_process(db, upstream, log_file, "--no-index", global_options=global_options) as (
            process,
            url,
        ),
    ):
        ws = await connect(f"{url}/realtime?model=m", max_size=None)
        audio = pybase64.b64encode(bytes(48000)).decode()
        for _ in range(3):
            await ws.send(
                orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()
            )
            await ws.receive()
        await ws.close()
        live = {p for p in db.parent.rglob("*")}
        process.send_signal(signal.SIGINT)
        await process.wait()
        assert process.returncode == 0, log_file.read_text()
    return live


def _modes(root: Path) -> dict[Path, int]:
    return {
        p: stat.S_IMODE(p.lstat().st_mode)
        for p in root.rglob("*")
        if not stat.S_ISSOCK(p.lstat().st_mode)
    }


@pytest.mark.parametrize(
    ("options", "file_mode", "dir_mode"),
    [((), 0o600, 0o700), (("--group-readable",), 0o640, 0o750)],
)
async def test_files_rtrec_creates_are_private(
    shared_dir: Path, options: tuple[str, ...], file_mode: int, dir_mode: int
) -> None:
    """The log, its .wal, the FLACs and their folders, a bundle and a Parquet export are
    0600 / 0700 under an ordinary umask of 022 (0640 / 0750 with --group-readable), and
    another user can read none of them."""
    logs = shared_dir / "logs"
    logs.mkdir()
    logs.chmod(0o755)
    db = logs / "log.duckdb"
    old = os.umask(0o022)
    try:
        with trio.fail_after(60):
            live = await _record_one_session(db, shared_dir / "recorder.log", *options)
        sessions = rtrec(
            *options, "sql", "SELECT session_id FROM sessions", "--db", str(db), "--format", "csv"
        )
        session_id = sessions.stdout.split()[1]
        for args in (
            ("export", session_id, "--db", str(db), "--out", str(logs / "bundle")),
            ("export-parquet", str(logs / "parquet"), "--db", str(db)),
        ):
            done = rtrec(*options, *args)
            assert done.returncode == 0, done.stderr
    finally:
        os.umask(old)
    assert any(p.name.endswith(".wal") for p in live)  # seen while recording
    modes = _modes(logs)
    names = {p.name for p in modes}
    assert {"log.duckdb", "input.flac", "events.jsonl", "session.json"} <= names
    assert any(p.suffix == ".parquet" for p in modes)
    for path, mode in modes.items():
        expected = dir_mode if path.is_dir() else file_mode
        assert mode == expected, f"{path}: {oct(mode)}, not {oct(expected)}"
    flac = next(p for p in modes if p.name == "input.flac")
    for target in (db, flac, logs / "bundle" / "events.jsonl"):
        assert not _other_user_can_read(target)


def _other_user_can_read(path: Path) -> bool:
    read = subprocess.run(
        ["runuser", "-u", other_user(), "--", "cat", str(path)], capture_output=True, check=False
    )
    assert read.returncode == 0 or b"Permission denied" in read.stderr, read.stderr
    return read.returncode == 0


_FAKE_SERVER = """
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        body = json.dumps({"ok": True, "pid": 1}).encode()
        c.sendall(struct.pack(">I", len(body)) + body)
    except OSError:
        pass  # the reader hung up: it refused us
    c.close()
"""


def test_a_socket_planted_by_another_user_is_refused(shared_dir: Path) -> None:
    """Another user puts a socket where readers look for the log's recorder (a shared,
    sticky folder): `rtrec sessions` and `rtrec sql` refuse it in one line naming its uid,
    and never send it a query."""
    user = other_user()
    shared_dir.chmod(0o1777)  # like /tmp: anyone may create files, only in their own name
    db = shared_dir / "log.duckdb"
    con, _ = open_log(db)
    con.close()
    sock = control_socket_path(db)
    # the other user's process itself (not under runuser), so that killing it ends it
    server = subprocess.Popen(
        ["/usr/bin/python3", "-c", _FAKE_SERVER, str(sock)],
        stdout=subprocess.PIPE,
        text=True,
        user=user,
        group=user,
        extra_groups=[],
        cwd="/",
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        uid = int(subprocess.check_output(["id", "-u", user]))
        for args in (("sessions",), ("sql", "SELECT 1")):
            error = one_line_error(rtrec(*args, "--db", str(db)))
            assert f"served by uid {uid}" in error
            assert "refusing" in error
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def test_a_foreign_socket_folder_in_tmpdir_is_named(shared_dir: Path) -> None:
    """A `$TMPDIR/rtrec-<uid>` created by another user (where the socket of a log with a
    long path goes): `rtrec record` stops at once with one line naming that folder and its
    owner, not a misleading "cannot listen"."""
    user = other_user()
    tmpdir = shared_dir / "tmp"
    tmpdir.mkdir(mode=0o1777)
    tmpdir.chmod(0o1777)
    planted = tmpdir / f"rtrec-{os.getuid()}"
    planted.mkdir()
    shutil.chown(planted, user=user)
    deep = shared_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    db = deep / "log.duckdb"
    assert control_socket_path(db).parent != deep  # too long to sit beside the log
    result = rtrec(
        "record",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "sim",
        "--db",
        str(db),
        env={"TMPDIR": str(tmpdir)},
    )
    error = one_line_error(result)
    assert str(planted) in error
    assert "belongs to uid" in error
    assert "cannot listen" not in error
