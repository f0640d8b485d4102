"""What recording costs: rtrec's proxy against a bare relay and mitmdump, on voice traffic.

Each relay runs in a process of its own between a load generator and a Realtime-like
upstream (bench/relay_loadgen.py: N sessions, each 100 ms of 24 kHz PCM16 both ways every
100 ms plus two transcript deltas, 40 events/s per session, real speech, exact wire shapes).
Relays (bench/relay_servers.py):

- ``direct``: no relay; the latency baseline.
- ``bare``: a bare trio-websocket relay, tuned (16 MiB messages, a 4-message queue,
  64 KiB reads), recording nothing: the floor for a Python relay.
- ``rtrec``: ``rtrec record``'s proxy writing a real log (DuckDB file + FLAC) in a temp dir.
- ``rtrec-discard``: the same proxy with a sink that counts and discards (no disk): the
  relay + capture cost without the log writer's.
- ``mitmdump``: mitmproxy 11.0.2 in reverse-proxy mode writing a flow file, installed in
  its own venv (bench/.venv-mitmproxy) on first use; skipped, saying why, if that fails.

How to read this:

- frames/s: WebSocket messages relayed per second in the measurement window, both ways.
- CPU us/frame: the relay process's CPU time (user + system, all threads, from /proc)
  over the window, divided by the frames it relayed. "x bare" is that over the bare
  relay's. Target: rtrec <= 1.3x bare (mitmdump measured by the issue: about 2.2x).
- p50/p99 added: one-way latency through the relay minus the direct run's (same sessions,
  no relay), per percentile, in ms. Latency is stamped by the sender (monotonic ns in the
  event_id) and taken by the receiver, who also checks every frame byte for byte.
- RSS: the relay's resident memory before any session, after warm-up and at the end;
  "per session" is (RSS - idle) / sessions. The memory run is longer and fits a line
  through the per-second samples of its second half: growth per session per minute
  should be ~0 (mitmdump keeps every message of a session in memory until it ends).
- max sessions: the sweep raises the session count until rtrec's p99 added latency passes
  10 ms (target: >= 75 in one process).
- check: frames lost or altered (must be 0); for rtrec, also frames in the log vs sent.

The machine has 2 cores: the load generator shares them with the relay, and the tables show
its CPU share, because once the two together need more than 2 cores every latency rises.

    python bench/bench_recorder.py                      # everything, a few minutes
    python bench/bench_recorder.py --nice -10 --repeat 3   # a shared machine (as root)
    python bench/bench_recorder.py --sessions 1,50 --no-sweep --relays direct,bare,rtrec
    python bench/bench_recorder.py --py-spy /tmp/rtrec.spy    # + where rtrec's time goes
    python bench/bench_recorder.py --profile /tmp/rtrec.prof  # the same with cProfile

--py-spy needs py-spy on PATH or beside this Python (pip install py-spy); it is not a
dependency of rtrec. Results and analysis: docs/bench_recorder.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from rich.console import Console
from rich.table import Table

BENCH: Final = Path(__file__).resolve().parent
MITMPROXY: Final = "mitmproxy==11.0.2"
RELAYS: Final = ("direct", "bare", "rtrec", "rtrec-discard", "mitmdump")
TARGET_RATIO: Final = 1.3
TARGET_P99_MS: Final = 10.0
TARGET_SESSIONS: Final = 75


class BenchError(RuntimeError):
    """A benchmark process failed or did not answer in time."""


class _Lines:
    """Reads the lines a child process prints, with a deadline (no thread, no blocking)."""

    def __init__(self, proc: subprocess.Popen[bytes], what: str, stderr: Path) -> None:
        assert proc.stdout is not None
        self.proc, self.what, self.stderr = proc, what, stderr
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next line starting with ``prefix``; other lines are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix + " "):
                    return text[len(prefix) + 1 :]
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.what}: no {prefix} line within {timeout:.0f} s")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    code = self.proc.wait()
                    raise BenchError(
                        f"{self.what} exited with {code} before printing {prefix}:\n"
                        + _tail(self.stderr)
                    )
                self.buffer += chunk


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Trial:
    """One run of the load generator through one relay."""

    relay: str
    sessions: int
    load: dict[str, Any]
    done: dict[str, Any] = field(default_factory=dict)
    stored_bytes: int = 0

    @property
    def fps(self) -> float:
        """Frames relayed per second in the measurement window."""
        return float(self.load["frames_in_window"]) / float(self.load["window_s"])

    @property
    def us_per_frame(self) -> float:
        """Relay CPU microseconds per frame relayed."""
        frames = self.load["frames_in_window"]
        return 1e6 * float(self.load["relay_cpu_s"]) / frames if frames else float("nan")

    def latency_ms(self, which: str) -> float:
        """A latency percentile (p50, p99, ...) in ms."""
        return float(self.load["latency_us"].get(which, float("nan"))) / 1e3

    @property
    def intact(self) -> bool:
        """Every frame arrived, unaltered, and (for rtrec) every frame is in the log."""
        load = self.load
        ok = load["problems"] == 0 and load["connected"] == load["sessions"]
        if "frames" in self.done and self.relay != "bare":
            ok = ok and self.done["frames"] == load["sent_total"]
        return bool(ok)


def _python() -> str:
    return sys.executable


def _spawn(
    argv: list[str], what: str, workdir: Path, nice: int = 0
) -> tuple[subprocess.Popen[bytes], _Lines]:
    stderr = workdir / f"{what}.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=BENCH.parent,
            # set in the child before it runs: threads it starts (DuckDB's) inherit it
            preexec_fn=(lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)) if nice else None,
        )
    return proc, _Lines(proc, what, stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    # mitmdump prints nothing when ready under -q: poll its port (bench setup only).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} not listening on {port} after {timeout:.0f} s")


def _close(proc: subprocess.Popen[bytes], stdin: IO[bytes] | None = None) -> None:
    for stream in (proc.stdin, proc.stdout, stdin):
        if stream is not None and not stream.closed:
            stream.close()


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_trial(
    relay: str,
    sessions: int,
    *,
    warmup: float,
    duration: float,
    mitmdump: Path | None = None,
    profile: Path | None = None,
    py_spy: Path | None = None,
    relay_args: tuple[str, ...] = (),
    nice: int = 0,
) -> Trial:
    """Run the load generator through one relay and return what it measured.

    Raises:
        BenchError: a process failed or did not answer in time.
    """
    with tempfile.TemporaryDirectory(prefix=f"rtrec-bench-{relay}-") as tmp:
        workdir = Path(tmp)
        load, lines = _spawn(
            [
                _python(),
                str(BENCH / "relay_loadgen.py"),
                f"--sessions={sessions}",
                f"--warmup={warmup}",
                f"--duration={duration}",
            ],
            "load generator",
            workdir,
            nice,
        )
        relay_proc: subprocess.Popen[bytes] | None = None
        try:
            upstream = lines.expect("UPSTREAM", 60)
            relay_proc, target = _start_relay(
                relay, upstream, workdir, mitmdump, profile, relay_args, nice
            )
            assert load.stdin is not None
            load.stdin.write(f"GO {target} {relay_proc.pid if relay_proc else 0}\n".encode())
            load.stdin.flush()
            if py_spy is not None and relay_proc is not None:
                _py_spy(relay_proc.pid, py_spy, warmup, duration, workdir)
            result = json.loads(lines.expect("RESULT", warmup + duration + 120))
            _stop(load)
            trial = Trial(relay, sessions, result)
            if relay_proc is not None:
                trial.done = _finish_relay(relay, relay_proc, workdir)
                stored = workdir / ("flows" if relay == "mitmdump" else "log")
                trial.stored_bytes = _dir_size(stored) if stored.exists() else 0
            return trial
        finally:
            for proc in (relay_proc, load):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc is not None:
                    _close(proc)


def _start_relay(
    relay: str,
    upstream: str,
    workdir: Path,
    mitmdump: Path | None,
    profile: Path | None,
    relay_args: tuple[str, ...],
    nice: int,
) -> tuple[subprocess.Popen[bytes] | None, str]:
    if relay == "direct":
        return None, upstream
    if relay == "mitmdump":
        if mitmdump is None:
            raise BenchError("mitmdump is not installed")
        port = _free_port()
        up = upstream.split("://", 1)[1].split("/", 1)[0]
        proc, _ = _spawn(
            [
                str(mitmdump),
                "--mode",
                f"reverse:http://{up}",
                "--listen-host",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workdir / "flows"),
                "-q",
                "--set",
                f"confdir={mitmdump.parent.parent / 'confdir'}",
            ],
            "mitmdump",
            workdir,
            nice,
        )
        _wait_listening(port, proc, "mitmdump", 60)
        return proc, f"ws://127.0.0.1:{port}/v1"
    argv = [_python(), str(BENCH / "relay_servers.py"), relay, "--upstream", upstream]
    if relay == "rtrec":
        argv += ["--log-dir", str(workdir / "log")]
    if profile is not None:
        argv += ["--profile", str(profile)]
    if relay.startswith("rtrec"):
        argv += relay_args
    proc, lines = _spawn(argv, f"relay {relay}", workdir, nice)
    try:
        return proc, lines.expect("READY", 60)
    except BaseException:
        proc.kill()
        proc.wait()
        _close(proc)
        raise


def _py_spy(pid: int, output: Path, warmup: float, duration: float, workdir: Path) -> None:
    """Sample the relay with py-spy over the measurement window (collapsed stacks)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    time.sleep(warmup)  # the window starts after the warm-up
    spy, _ = _spawn(
        [exe, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "250",
         "--format", "raw", "--nolineno", "--output", str(output)],
        "py-spy",
        workdir,
    )  # fmt: skip
    _stop(spy, duration + 30)
    _close(spy)
    if not output.exists():
        raise BenchError("py-spy wrote nothing:\n" + _tail(workdir / "py-spy.stderr"))


def _finish_relay(relay: str, proc: subprocess.Popen[bytes], workdir: Path) -> dict[str, Any]:
    """Stop a relay cleanly and return its DONE report ({} for mitmdump)."""
    if relay == "mitmdump":
        proc.send_signal(signal.SIGINT)
        _stop(proc)
        return {}
    assert proc.stdin is not None
    lines = _Lines(proc, f"relay {relay}", workdir / f"relay {relay}.stderr")
    proc.stdin.close()  # the relay's stop signal
    done: dict[str, Any] = json.loads(lines.expect("DONE", 120))
    _stop(proc)
    return done


# ---------------------------------------------------------------------- mitmproxy


def ensure_mitmdump(venv: Path, console: Console) -> Path | None:
    """mitmdump from the benchmark's own venv, installing it there on first use."""
    exe = venv / "bin" / "mitmdump"
    if exe.exists():
        return exe
    console.print(f"installing {MITMPROXY} into {venv} (once) ...")
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", MITMPROXY],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            console.print(
                f"[yellow]mitmdump skipped: `{' '.join(step)}` failed:[/yellow]\n"
                + "\n".join(done.stderr.splitlines()[-5:])
            )
            shutil.rmtree(venv, ignore_errors=True)
            return None
    return exe if exe.exists() else None


# ---------------------------------------------------------------------- tables


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def _ms(x: float) -> str:
    return f"{x:,.2f}"


def _check(trial: Trial) -> str:
    load = trial.load
    if trial.intact:
        note = f"{load['received_total']:,} intact"
        if trial.relay == "rtrec":
            note += ", all in the log"
        return f"[green]{note}[/green]"
    lost = load["sent_total"] - load["received_total"]
    parts = [f"{load['problems']} problems", f"{lost} lost"]
    if "frames" in trial.done:
        parts.append(f"{trial.done['frames']:,}/{load['sent_total']:,} logged")
    notes = "; ".join(load["problem_notes"][:2])
    return f"[red]{', '.join(parts)}[/red] {notes}"


def session_table(trials: list[Trial], cores: int) -> Table:
    """One table for one session count: a row per relay."""
    by = {t.relay: t for t in trials}
    direct, bare = by.get("direct"), by.get("bare")
    n = trials[0].sessions
    table = Table(title=f"{n} concurrent voice session{'s' if n > 1 else ''}, {n * 40} events/s")
    for column in (
        "relay",
        "frames/s",
        "CPU us/frame",
        "x bare",
        "relay CPU",
        "load gen CPU",
        "others CPU",
        "p50 added ms",
        "p99 added ms",
        "RSS MiB idle/warm/end",
        "stored MiB",
        "check",
    ):
        table.add_column(
            column,
            justify="left" if column in ("relay", "check") else "right",
            no_wrap=column == "relay",
            min_width=13 if column == "relay" else None,
        )
    for t in trials:
        if t.relay == "direct":
            cpu = ratio = relay_cpu = rss = "-"
            p50 = f"({_ms(t.latency_ms('p50'))} raw)"
            p99 = f"({_ms(t.latency_ms('p99'))} raw)"
        else:
            cpu = f"{t.us_per_frame:,.1f}"
            ratio = f"{t.us_per_frame / bare.us_per_frame:.2f}x" if bare else "-"
            relay_cpu = f"{100 * t.load['relay_cpu_s'] / t.load['window_s']:.0f}%"
            p50 = _ms(t.latency_ms("p50") - direct.latency_ms("p50")) if direct else "-"
            p99 = _ms(t.latency_ms("p99") - direct.latency_ms("p99")) if direct else "-"
            rss = "/".join(f"{t.load[k] / 2**20:.0f}" for k in ("rss_idle", "rss_warm", "rss_end"))
        load_cpu = f"{100 * t.load['loadgen_cpu_s'] / t.load['window_s']:.0f}%"
        label = t.relay
        table.add_row(
            label,
            f"{t.fps:,.0f}",
            cpu,
            ratio,
            relay_cpu,
            load_cpu,
            f"{100 * _other(t):.0f}%",
            p50,
            p99,
            rss,
            _mib(t.stored_bytes) if t.stored_bytes else "-",
            _check(t),
        )
    table.caption = (
        f"rtrec: the proxy writing a DuckDB log + FLAC; rtrec-discard: the same proxy with a "
        f"sink that counts and stores nothing. {cores} cores shared by the load generator, "
        "the relay and any other process (others CPU); CPU % is of one core."
    )
    return table


def memory_rows(trial: Trial) -> tuple[str, ...]:
    """A memory table row: RSS per session after warm-up and at the end, and its growth."""
    load, n = trial.load, trial.sessions
    samples = [(float(t), float(rss)) for t, rss in load["rss_samples"]]
    # Least-squares slope of RSS over the second half of the window, bytes per second: the
    # first half still has the allocator's warm-up (arenas, buffers reaching their size).
    samples = [(t, rss) for t, rss in samples if t >= samples[-1][0] / 2]
    mt = sum(t for t, _ in samples) / len(samples)
    mr = sum(r for _, r in samples) / len(samples)
    var = sum((t - mt) ** 2 for t, _ in samples)
    slope = sum((t - mt) * (r - mr) for t, r in samples) / var if var else 0.0
    idle = load["rss_idle"]
    return (
        trial.relay,
        str(n),
        f"{load['window_s']:.0f}",
        _mib(idle),
        f"{(load['rss_warm'] - idle) / n / 1024:,.0f}",
        f"{(load['rss_end'] - idle) / n / 1024:,.0f}",
        f"{slope * 60 / n / 1024:,.1f}",
        _check(trial),
    )


# ---------------------------------------------------------------------- main


_MEDIAN_KEYS: Final = (
    "frames_in_window",
    "window_s",
    "loadgen_cpu_s",
    "other_cpu_s",
    "rss_idle",
    "rss_warm",
    "rss_end",
)


def merge(runs: list[Trial]) -> Trial:
    """One trial from repeats: the median of each figure, every correctness problem kept."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    load: dict[str, Any] = {k: statistics.median(r.load[k] for r in runs) for k in _MEDIAN_KEYS}
    us = statistics.median(r.us_per_frame for r in runs)
    load["relay_cpu_s"] = us * load["frames_in_window"] / 1e6
    load["latency_us"] = {
        p: statistics.median(r.load["latency_us"].get(p, float("nan")) for r in runs)
        for p in ("p50", "p90", "p99", "max")
    }
    for k in ("sessions", "duration", "rss_samples"):
        load[k] = first.load[k]
    load["connected"] = min(r.load["connected"] for r in runs)
    for k in ("problems", "sent_total", "received_total"):
        load[k] = sum(r.load[k] for r in runs)
    load["problem_notes"] = [note for r in runs for note in r.load["problem_notes"]]
    load["runs"] = [r.load for r in runs]
    done = dict(first.done)
    if all("frames" in r.done for r in runs):
        done["frames"] = sum(r.done["frames"] for r in runs)
    stored = int(statistics.median(r.stored_bytes for r in runs))
    return Trial(first.relay, first.sessions, load, done, stored)


def _machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: all but idle, iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_cores: float, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until the machine, without us, is busy on at most
    ``max_cores`` cores over a second; returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        before = _machine_busy()
        time.sleep(1.0)
        busy = _machine_busy() - before
        if busy <= max_cores or time.monotonic() >= deadline:
            return busy


def _other(trial: Trial) -> float:
    """Cores other processes used during the trial's window (noise)."""
    return float(trial.load["other_cpu_s"]) / float(trial.load["window_s"])


def _parse_counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--relays", default=",".join(RELAYS), help="comma-separated, of: %(default)s"
    )
    parser.add_argument("--sessions", default="1,50", help="session counts to compare relays at")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    parser.add_argument("--no-sweep", action="store_true", help="skip the max-sessions sweep")
    parser.add_argument("--sweep", default="75,100,125,150,175,200,250,300,350,400")
    parser.add_argument("--sweep-relay", default="rtrec", help="the relay the sweep measures")
    parser.add_argument("--memory-seconds", type=float, default=30.0, help="0: no memory run")
    parser.add_argument("--memory-sessions", type=int, default=50)
    parser.add_argument("--memory-relays", default="rtrec,bare,mitmdump")
    parser.add_argument("--mitmproxy-venv", type=Path, default=BENCH / ".venv-mitmproxy")
    parser.add_argument("--profile", type=Path, help="also profile a relay (cProfile) into FILE")
    parser.add_argument(
        "--py-spy", type=Path, help="also sample a relay with py-spy into FILE (collapsed stacks)"
    )
    parser.add_argument("--profile-relay", default="rtrec", help="the relay profiled")
    parser.add_argument("--profile-sessions", type=int, default=75)
    parser.add_argument("--json", type=Path, help="write every raw result here")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the relays and the load generator at this priority; a negative value "
        "(root only) keeps other work on a shared machine from skewing the figures",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="run the rtrec relays with this sys.setswitchinterval (ms; default: what "
        "`rtrec record` sets, 1; Python's own default is 5)",
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.25,
        help="repeat a run if other processes used more than this many cores meanwhile",
    )
    parser.add_argument("--retries", type=int, default=1, help="repeats of a noisy run, at most")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per relay and session count, interleaved; the tables show medians",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for other processes to use at "
        "most --max-other cores",
    )
    args = parser.parse_args()

    console = Console(width=max(Console().width, 160))  # the tables are wide; wrap less
    if args.nice < 0 and os.geteuid() != 0:
        parser.error(f"--nice {args.nice}: a negative priority needs root")
    cores = os.cpu_count() or 1
    relays = [r.strip() for r in args.relays.split(",") if r.strip()]
    unknown = set(relays) - set(RELAYS)
    if unknown:
        parser.error(f"unknown relays {sorted(unknown)}; choose from {', '.join(RELAYS)}")
    mitmdump = None
    wants_mitm = "mitmdump" in relays or "mitmdump" in args.memory_relays
    if wants_mitm:
        mitmdump = ensure_mitmdump(args.mitmproxy_venv, console)
        if mitmdump is None:
            relays = [r for r in relays if r != "mitmdump"]
    if "direct" not in relays:
        relays.insert(0, "direct")  # added latency needs the baseline
    raw: dict[str, Any] = {"cores": cores, "tables": {}, "sweep": [], "memory": []}
    relay_args: tuple[str, ...] = ()
    if args.switch_interval is not None:
        relay_args = ("--switch-interval", str(args.switch_interval))

    def trial(relay: str, n: int, duration: float = args.duration) -> Trial:
        # The machine may be shared: a run during which other processes took more than
        # --max-other of a core is repeated, and the quietest run is kept.
        runs: list[Trial] = []
        for _ in range(1 + args.retries):
            again = f" (again: {_other(runs[-1]):.0%} of a core went to others)" if runs else ""
            with console.status(f"waiting up to {args.quiet_wait:.0f} s for a quiet machine"):
                wait_quiet(args.max_other, args.quiet_wait)
            with console.status(f"{relay}: {n} sessions, {args.warmup + duration:.0f} s{again}"):
                runs.append(
                    run_trial(
                        relay,
                        n,
                        warmup=args.warmup,
                        duration=duration,
                        mitmdump=mitmdump,
                        relay_args=relay_args,
                        nice=args.nice,
                    )
                )
            if _other(runs[-1]) <= args.max_other:
                break
        return min(runs, key=_other)

    def interleaved(names: list[str], n: int) -> list[Trial]:
        # Repeats go round-robin over the relays, so that a change in the machine's load
        # hits every relay alike; each figure is then the median over the repeats.
        runs: dict[str, list[Trial]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                runs[name].append(trial(name, n))
        return [merge(runs[name]) for name in names]

    tables: dict[int, list[Trial]] = {}
    for n in _parse_counts(args.sessions):
        trials = tables[n] = interleaved(relays, n)
        raw["tables"][n] = [t.__dict__ for t in trials]
        console.print(session_table(trials, cores))

    if not args.no_sweep:
        sweep = Table(title=f"max sessions: {args.sweep_relay}, p99 added latency <= 10 ms")
        for column in ("sessions", "frames/s", "relay CPU", "load gen CPU", "others CPU",
                       "p50 added ms", "p99 added ms", "check"):  # fmt: skip
            sweep.add_column(column, justify="left" if column == "check" else "right")

        def point(n: int) -> tuple[bool, float]:
            direct, t = interleaved(["direct", args.sweep_relay], n)
            raw["sweep"].append([direct.__dict__, t.__dict__])
            p50 = t.latency_ms("p50") - direct.latency_ms("p50")
            p99 = t.latency_ms("p99") - direct.latency_ms("p99")
            ok = p99 <= TARGET_P99_MS and t.intact
            sweep.add_row(
                str(n),
                f"{t.fps:,.0f}",
                f"{100 * t.load['relay_cpu_s'] / t.load['window_s']:.0f}%",
                f"{100 * t.load['loadgen_cpu_s'] / t.load['window_s']:.0f}%",
                f"{100 * _other(t):.0f}%",
                _ms(p50),
                ("[green]" if ok else "[red]") + _ms(p99),
                _check(t),
            )
            return ok, p99

        # Counts the relay tables already passed at count as held.
        held = 0
        for n, trials in tables.items():
            by = {t.relay: t for t in trials}
            t, base = by.get(args.sweep_relay), by["direct"]
            if t and t.intact and t.latency_ms("p99") - base.latency_ms("p99") <= TARGET_P99_MS:
                held = max(held, n)
        first_miss: tuple[int, float] | None = None
        for n in (n for n in _parse_counts(args.sweep) if n > held):
            ok, p99 = point(n)
            if not ok:
                first_miss = (n, p99)
                break
            held = n
        # Between the last count held and the first missed, narrow down in steps of 5.
        while first_miss is not None and first_miss[0] - held > 5:
            n = max(held + 5, (held + first_miss[0]) // 2 // 5 * 5)  # a multiple of 5
            ok, p99 = point(n)
            if ok:
                held = n
            else:
                first_miss = (n, p99)
        console.print(sweep)
        verdict = "meets" if held >= TARGET_SESSIONS else "MISSES"
        miss = (
            f"; at {first_miss[0]}: p99 added {first_miss[1]:.1f} ms"
            if first_miss
            else "; no miss up to the sweep's largest count"
        )
        at_least = "" if first_miss else "at least "
        console.print(
            f"[b]{args.sweep_relay} holds {at_least}{held} concurrent voice sessions in one "
            "process with "
            f"p99 added latency <= {TARGET_P99_MS:.0f} ms{miss}[/b] "
            f"({verdict} the target of >= {TARGET_SESSIONS})"
        )

    if args.memory_seconds > 0:
        table = Table(title=f"memory over a {args.memory_seconds:.0f} s run")
        for column in ("relay", "sessions", "seconds", "RSS idle MiB", "KiB/session warm",
                       "KiB/session end", "growth KiB/session/min, 2nd half", "check"):  # fmt: skip
            table.add_column(column, justify="left" if column in ("relay", "check") else "right")
        for relay in [r.strip() for r in args.memory_relays.split(",") if r.strip()]:
            if relay == "mitmdump" and mitmdump is None:
                continue
            t = trial(relay, args.memory_sessions, args.memory_seconds)
            raw["memory"].append(t.__dict__)
            table.add_row(*memory_rows(t))
        console.print(table)

    for kind, path in (("cProfile", args.profile), ("py-spy", args.py_spy)):
        if path is None:
            continue
        with console.status(f"{kind}: {args.profile_relay}, {args.profile_sessions} sessions"):
            t = run_trial(
                args.profile_relay,
                args.profile_sessions,
                warmup=args.warmup,
                duration=args.duration,
                profile=path.resolve() if kind == "cProfile" else None,
                py_spy=path.resolve() if kind == "py-spy" else None,
                relay_args=relay_args,
                nice=args.nice,
            )
        raw[kind] = t.__dict__
        if kind == "cProfile":
            print_profile(console, path, t)
        else:
            print_py_spy(console, path, t)

    if args.json is not None:
        args.json.write_text(json.dumps(raw, indent=1))


def print_profile(console: Console, path: Path, trial: Trial, top: int = 25) -> None:
    """The functions a relay spends its own time in, per frame relayed over the whole run
    (cProfile's own overhead inflates the absolute figures; the shares are what matter)."""
    stats = pstats.Stats(str(path))
    frames = trial.load["sent_total"]
    total = stats.total_tt  # type: ignore[attr-defined]
    table = Table(
        title=f"where {trial.relay}'s time goes (cProfile, {trial.sessions} sessions, whole run: "
        f"{total / frames * 1e6:.1f} us/frame profiled, "
        f"{trial.us_per_frame:.1f} us/frame measured in the window)"
    )
    for column in ("function", "calls/frame", "own us/frame", "own %", "cumulative us/frame"):
        table.add_column(column, justify="left" if column == "function" else "right")
    entries = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )
    for (filename, line, name), (_, calls, tottime, cumtime, _) in entries[:top]:
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        table.add_row(
            f"{name} ({where})",
            f"{calls / frames:.2f}",
            f"{tottime / frames * 1e6:.2f}",
            f"{100 * tottime / total:.1f}",
            f"{cumtime / frames * 1e6:.2f}",
        )
    console.print(table)


#: Innermost frames that are waits, not work (trio's I/O wait; its idle worker threads).
_WAITS: Final = ("EpollIOManager.get_events", "WorkerThread._work")


def print_py_spy(console: Console, path: Path, trial: Trial, top: int = 30) -> None:
    """Where a relay's CPU time goes over the window, from py-spy's collapsed stacks: own
    time per function (the innermost frame) and time under each module of rtrec."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    total = waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].startswith(_WAITS):
            # waiting in epoll_wait or for a job: py-spy counts these as running; left out
            waiting += n
            continue
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for name in {f for f in frames if "rtrec" in f or "/recorder/" in f}:
            under[name] = under.get(name, 0) + n
    frames_relayed = trial.load["frames_in_window"]
    us_per_sample = 1e6 / 250  # --rate 250

    def per_frame(samples: int) -> str:
        return f"{samples * us_per_sample / frames_relayed:.2f}"

    table = Table(
        title=f"where {trial.relay}'s CPU goes (py-spy, {trial.sessions} sessions, "
        f"{total * us_per_sample / frames_relayed:.1f} us/frame sampled, "
        f"{trial.us_per_frame:.1f} us/frame measured)",
        caption=f"left out: {per_frame(waiting)} us/frame sampled waiting in epoll_wait or "
        "in an idle worker thread (py-spy counts those waits as running)",
    )
    for column in ("function (own time)", "us/frame", "share"):
        table.add_column(column, justify="left" if column.startswith("function") else "right")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        table.add_row(name, per_frame(n), f"{100 * n / total:.1f}%")
    console.print(table)
    inclusive = Table(title="... and including what they call (rtrec's own functions)")
    for column in ("function (inclusive)", "us/frame", "share"):
        inclusive.add_column(column, justify="left" if column.startswith("function") else "right")
    for name, n in sorted(under.items(), key=lambda kv: -kv[1])[:top]:
        inclusive.add_row(name, per_frame(n), f"{100 * n / total:.1f}%")
    console.print(inclusive)


if __name__ == "__main__":
    main()
