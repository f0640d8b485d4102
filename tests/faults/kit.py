"""Real peers for the fault-injection suite: `rtrec record` as a child process, a scripted
upstream WebSocket server on loopback, `rtrec` commands as subprocesses, a small tmpfs.

Rules (as in tests/test_proxy.py): real sockets on 127.0.0.1 port 0, every test capped by
``trio.fail_after``, and no sleep stands in for waiting on an event.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from trio_websocket import WebSocketRequest, serve_websocket

BIG = 16 * 2**20
Handler = Callable[[WebSocketRequest], Awaitable[None]]


@asynccontextmanager
async def upstream_server(handler: Handler) -> AsyncIterator[str]:
    """A real WebSocket server on loopback whose behaviour the test scripts; yields its URL."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                handler, "127.0.0.1", 0, None, max_message_size=2 * BIG, task_status=task_status
            )
        )
        yield f"ws://127.0.0.1:{server.port}/v1"
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def recorder_process(
    db: Path,
    upstream: str,
    log_file: Path,
    *options: str,
    env: dict[str, str] | None = None,
    global_options: tuple[str, ...] = (),
) -> AsyncIterator[tuple[trio.Process, str]]:
    """`python -m rtrec [GLOBAL_OPTIONS] record` on port 0; yields the process and its base
    URL (stdout line 1). The process is killed if the block leaves it running.
    """
    with log_file.open("wb") as err:
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "rtrec",
                *global_options,
                "record",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
                "--db",
                str(db),
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=None if env is None else {**os.environ, **env},
        )
        try:
            assert process.stdout is not None
            data = b""
            with trio.fail_after(30):
                while b"\n" not in data:
                    chunk = await process.stdout.receive_some(4096)
                    assert chunk, f"rtrec record exited: {log_file.read_text()}"
                    data += chunk
            url = data.split(b"\n", 1)[0].decode()
            assert url.startswith("ws://127.0.0.1:"), url
            yield process, url
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


def rtrec(
    *args: str, user: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rtrec ARGS`` to the end (as ``user`` with runuser, when given)."""
    command = [sys.executable, "-m", "rtrec", *args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command, checked to be one line and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (a full disk for real); skips unless root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the full-disk cases run in CI as root)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


OTHER_USER = "rtrecother"


def other_user() -> str:
    """A second, unprivileged local user (created once); skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("the other-user cases need root to create and become a second user")
    found = subprocess.run(["id", "-u", OTHER_USER], capture_output=True, check=False)
    if found.returncode != 0:
        created = subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        # another xdist worker may have created it meanwhile
        again = subprocess.run(["id", "-u", OTHER_USER], capture_output=True, check=False)
        if again.returncode != 0:
            pytest.skip(f"cannot create a second user: {created.stderr.strip()}")
    return OTHER_USER
