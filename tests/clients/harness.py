"""The conformance suite's harness: rtrec's own commands, and the clients as processes.

Everything runs as a user would run it: `rtrec record --upstream sim` and
`rtrec playback BUNDLE --serve 127.0.0.1:0` with default options, each a process of its own
(the bundle is exported with `rtrec export`'s function); a client is a process too
(tests/clients/clientrun.py says what it prints). A run *completes* when the client
finished its conversation and the playback server's report for that connection names
nothing wrong.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from rtrec.store.bundle import export_session
from rtrec.store.reader import read_sessions

HERE = Path(__file__).parent
SCENARIO = HERE / "conformance.toml"
#: How long a server may take to print its URL, a client to finish all its runs.
START_TIMEOUT = 30.0
RUNS_TIMEOUT = 240.0
#: Words of the playback report (``SessionReport.render``, and the line that stands for
#: repeated failures) that say a connection went wrong. A report's first line may say
#: "incomplete" and still be clean: recorded server frames after the client's last event go
#: unsent when the client leaves, as it may.
TROUBLE = (
    "mismatch",
    "never sent",
    "after the recording's last",
    "could not",
    "failed the same way",
)


def rtrec(*args: str) -> list[str]:
    """The command line of an rtrec command, run by this interpreter's rtrec."""
    return [sys.executable, "-m", "rtrec", *args]


class Server:
    """An rtrec server process: its URL (first stdout line) and its stderr lines as they come."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        url: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: url.put(self._stdout_line()), daemon=True).start()
        try:
            self.url = url.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{argv} printed no URL: {''.join(self.stderr)}") from None
        if not self.url.startswith(("ws://", "wss://")):
            self.stop()
            raise RuntimeError(f"{argv} printed {self.url!r}: {''.join(self.stderr)}")

    def _stdout_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            status = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self._reader.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return status


@contextmanager
def serving(argv: Sequence[str]) -> Iterator[Server]:
    server = Server(argv)
    try:
        yield server
    finally:
        server.stop()


@attrs.frozen
class Client:
    """A conformance client: how to start it (BASE_URL AUDIO_DIR RUNS follow ``argv``, then
    ``extra``) and the protocol it speaks."""

    name: str
    argv: tuple[str, ...]
    protocol: str
    extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def run(self, url: str, audio: Path, runs: int) -> list[dict[str, object]]:
        """Run the conversation ``runs`` times; one result per run, in order."""
        argv = [*self.argv, url, str(audio), str(runs), *self.extra]
        env = {**os.environ, **dict(self.env)}
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=RUNS_TIMEOUT, env=env, check=False
        )
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if len(results) != runs:
            tail = done.stderr[-3000:]
            raise RuntimeError(f"{self.name} exited {done.returncode} after {results}: {tail}")
        return results


@attrs.frozen
class Run:
    """One connection of a client to a playback server, and how it went."""

    client_ok: bool
    client_error: str
    report: str

    @property
    def completed(self) -> bool:
        return self.client_ok and self.report != "" and not self.trouble

    @property
    def trouble(self) -> bool:
        return any(word in self.report for word in TROUBLE)

    def describe(self) -> str:
        if self.completed:
            return "completed"
        client = "client ok" if self.client_ok else f"client failed: {self.client_error}"
        return f"{client}; server report: {self.report or '(none)'}"


def record(client: Client, audio: Path, work: Path) -> Path:
    """Record one conversation of ``client`` with `rtrec record --upstream sim` (the simulator
    at its realtime pace, playing tests/clients/conformance.toml) and export it as
    `rtrec export` does; the bundle's directory."""
    db, bundle = work / "log.duckdb", work / "bundle"
    argv = rtrec("record", "--upstream", "sim", "--scenario", str(SCENARIO), "--db", str(db))
    with serving([*argv, "--listen", "127.0.0.1:0"]) as recorder:
        (result,) = client.run(recorder.url, audio, 1)
        assert result["ok"], f"{client.name} against the recorder: {result}"
    assert recorder.process.returncode == 0, "".join(recorder.stderr)
    (session,) = read_sessions(db)
    export_session(db, session.session_id, bundle)
    return bundle


def play(bundle: Path, client: Client, audio: Path, runs: int, *pace: str) -> list[Run]:
    """Serve ``bundle`` with `rtrec playback` (default options, plus ``pace``) and run
    ``client`` ``runs`` times against it, one connection after the other."""
    argv = rtrec("playback", str(bundle), "--serve", "127.0.0.1:0", *pace)
    with serving(argv) as server:
        results = client.run(server.url, audio, runs)
        reports = _reports(server, runs)
    return [
        Run(bool(r["ok"]), str(r.get("error", "")), report)
        for r, report in zip(results, reports, strict=True)
    ]


def _reports(server: Server, count: int, timeout: float = 10.0) -> list[str]:
    """The reports of connections 1..``count`` on the server's stderr, "" for one that never
    came. A report starts with "playback of ID (connection N):" (without "(connection N)"
    before playback served many connections, the order says which). The server may still be
    checking a client that has left, so this waits up to ``timeout`` for them; a report is
    written at once, so once the last one has started a quiet moment ends it."""
    blocks: dict[int, list[str]] = {}
    current: list[str] | None = None
    deadline = time.monotonic() + timeout
    while True:
        wait = deadline - time.monotonic()
        if len(blocks) >= count:
            wait = min(wait, 0.3)
        try:
            line = server.lines.get(timeout=max(0.0, wait))
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith("playback of "):
            number = re.match(r"playback of \S+ \(connection (\d+)\)", line)
            current = blocks.setdefault(int(number[1]) if number else len(blocks) + 1, [])
        if current is not None:
            current.append(line)
    return ["".join(blocks.get(n, [])).strip() for n in range(1, count + 1)]
