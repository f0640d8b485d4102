"""Load generator for ``bench_recorder.py``: a Realtime-like upstream and N paced voice sessions.

One asyncio process plays both peers of every session, so that one clock stamps sends and
receives (``time.monotonic_ns`` is CLOCK_MONOTONIC, system-wide on Linux anyway):

- the upstream: a ``websockets`` server that answers each session with ``session.created``
  and ``response.created``, then every 100 ms a ``response.output_audio.delta`` (100 ms of
  24 kHz PCM16, 6.4 KB of base64) and two ``response.output_audio_transcript.delta`` s
  (with GA's ``obfuscation``), the second 50 ms after the first;
- the clients: N ``websockets`` clients that send ``session.update``, then every 100 ms an
  ``input_audio_buffer.append`` of the same size.

That is 40 events/s per session, in the wire shapes of tests/data/wire_examples.jsonl. The
audio is real speech (src/rtrec/fixtures/audio/*.flac) cut into 100 ms chunks, so a recorder
compresses what it would compress in production.

Every ``event_id`` carries (session, seq, send time in ns). The receiver rebuilds the exact
message it expects for that (session, seq, time) and compares it whole: a frame that is
lost, duplicated, reordered or altered by a byte is reported, never averaged away. One-way
latency = receive time - send time, for sends inside the measurement window.

Talks to ``bench_recorder.py`` over stdio:

- prints ``UPSTREAM <ws url>`` once its server listens;
- reads ``GO <target base url> <relay pid>`` (pid 0: no relay) and runs: ramp-up and
  warm-up, the measurement window (the relay's CPU time and RSS are sampled from /proc at
  its edges, RSS also once a second), then stop, drain and close;
- prints ``RESULT <json>`` and exits.

    python bench/relay_loadgen.py --sessions 50 --warmup 2 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pybase64
import soundfile
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FIXTURES: Final = Path(__file__).resolve().parent.parent / "src" / "rtrec" / "fixtures" / "audio"
RATE: Final = 24_000
CHUNK_SAMPLES: Final = RATE // 10  # 100 ms
TICK: Final = 0.1
MAX_SIZE: Final = 16 * 2**20
EVENT_ID: Final = '"event_id":"'
#: Sessions open over this long at most, so that N handshakes do not land at once.
MAX_RAMP: Final = 1.0
MAX_PROBLEMS_KEPT: Final = 10


def load_chunks() -> list[str]:
    """The fixture speech as base64 100 ms PCM16 chunks (the tail that is shorter is dropped)."""
    chunks: list[str] = []
    for path in sorted(FIXTURES.glob("*.flac")):
        samples, rate = soundfile.read(path, dtype="int16")
        if rate != RATE:
            raise SystemExit(f"{path}: {rate} Hz, expected {RATE}")
        pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
        step = CHUNK_SAMPLES * 2
        chunks += [
            pybase64.b64encode(pcm[i : i + step]).decode()
            for i in range(0, len(pcm) - step + 1, step)
        ]
    if not chunks:
        raise SystemExit(f"no FLAC fixtures in {FIXTURES}")
    return chunks


# the fixtures' own words, as the transcript deltas of a real response would carry them
SENTENCE: Final = (
    "What is the weather like in Paris today? Hello! Can you hear me? Tell me a short joke "
    "about computers. Wait, stop. Actually, never mind."
)
WORDS: Final = SENTENCE.split()
OBFUSCATION: Final = ("k2Jd8", "Qm", "x0bF", "hT3", "pZ9wV", "a")


class Messages:
    """Builds every message of a session from (session, seq, send time): sender and
    receiver call the same function, so the receiver knows each message byte for byte."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks

    def client(self, i: int, k: int, t: int) -> str:
        """The client's k-th message of session i, sent at t."""
        eid = f"evt_{i}_{k}_{t}"
        if k == 0:
            return (
                '{"type":"session.update","event_id":"' + eid + '","session":{"type":"realtime",'
                '"output_modalities":["audio"],"instructions":"You are a helpful assistant.",'
                '"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},'
                '"turn_detection":{"type":"server_vad"}},'
                '"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}}}}'
            )
        audio = self.chunks[(i + k) % len(self.chunks)]
        return (
            '{"type":"input_audio_buffer.append","event_id":"' + eid + '","audio":"' + audio + '"}'
        )

    def server(self, i: int, k: int, t: int) -> str:
        """The upstream's k-th message of session i, sent at t."""
        eid = f"event_{i}_{k}_{t}"
        ids = f'"response_id":"resp_Bench{i:016d}","item_id":"item_Bench{i:016d}"'
        if k == 0:
            return (
                '{"type":"session.created","event_id":"' + eid + '","session":{"type":"realtime",'
                f'"object":"realtime.session","id":"sess_Bench{i:016d}","model":"gpt-realtime",'
                '"output_modalities":["audio"],"instructions":"You are a helpful assistant.",'
                '"tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null,'
                '"truncation":"auto","prompt":null,"expires_at":1767233035,'
                '"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},'
                '"transcription":null,"noise_reduction":null,'
                '"turn_detection":{"type":"server_vad","threshold":0.5}},'
                '"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin",'
                '"speed":1.0}},"include":null}}'
            )
        if k == 1:
            return (
                '{"type":"response.created","event_id":"' + eid + '","response":{'
                f'"object":"realtime.response","id":"resp_Bench{i:016d}","status":"in_progress",'
                '"status_details":null,"output":[],'
                f'"conversation_id":"conv_Bench{i:016d}","output_modalities":["audio"],'
                '"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm",'
                '"rate":24000},"voice":"marin"}},"usage":null,"metadata":null}}'
            )
        n = k - 2
        if n % 3 == 0:
            audio = self.chunks[(i + n // 3 + len(self.chunks) // 2) % len(self.chunks)]
            return (
                '{"type":"response.output_audio.delta","event_id":"' + eid + '",' + ids + ","
                '"output_index":0,"content_index":0,"delta":"' + audio + '"}'
            )
        word = WORDS[n % len(WORDS)]
        obfuscation = OBFUSCATION[n % len(OBFUSCATION)]
        return (
            '{"type":"response.output_audio_transcript.delta","event_id":"' + eid + '",' + ids + ","
            '"output_index":0,"content_index":0,"delta":" ' + word + '",'
            '"obfuscation":"' + obfuscation + '"}'
        )


class Flow:
    """One direction of one session: what was sent, what arrived, and the checks."""

    def __init__(self, session: int, build: Callable[[int, int, int], str]) -> None:
        self.session = session
        self.build = build
        self.sent = 0
        self.received = 0
        self.sending_done = False
        self.drained = asyncio.Event()

    def finish_sending(self) -> None:
        """No more sends; ``drained`` is set once everything sent has arrived."""
        self.sending_done = True
        if self.received >= self.sent:
            self.drained.set()


class Run:
    """Counters, latency samples and problems of one run (both directions, all sessions)."""

    def __init__(self) -> None:
        self.window = (0, 0)
        self.latency: dict[str, list[int]] = {"client": [], "server": []}
        self.sent_at: list[int] = []  # send times of the samples, both directions in order
        self.lat: list[int] = []  # ... and their latencies
        self.frames_in_window = 0
        self.problems = 0
        self.problem_notes: list[str] = []

    def problem(self, note: str) -> None:
        """Count a correctness problem, keeping the first few descriptions."""
        self.problems += 1
        if len(self.problem_notes) < MAX_PROBLEMS_KEPT:
            self.problem_notes.append(note)

    def receive(self, flow: Flow, direction: str, message: str | bytes) -> None:
        """Check one arrived message against the one its sender built; sample its latency."""
        now = time.monotonic_ns()
        k = flow.received
        flow.received += 1
        if flow.sending_done and flow.received >= flow.sent:
            flow.drained.set()
        if not isinstance(message, str):
            self.problem(f"session {flow.session} {direction} #{k}: binary frame")
            return
        try:
            start = message.index(EVENT_ID) + len(EVENT_ID)
            _, i, seq, sent_at = message[start : message.index('"', start)].split("_")
            session, seq_n, t = int(i), int(seq), int(sent_at)
        except ValueError:
            self.problem(f"session {flow.session} {direction} #{k}: no bench event_id")
            return
        if session != flow.session or seq_n != k:
            self.problem(
                f"session {flow.session} {direction}: expected #{k}, got session {session} #{seq_n}"
            )
            return
        if message != flow.build(session, k, t):
            self.problem(f"session {flow.session} {direction} #{k}: altered in transit")
            return
        if self.window[0] <= t < self.window[1]:
            self.latency[direction].append(now - t)
            self.sent_at.append(t)
            self.lat.append(now - t)
            self.frames_in_window += 1


class Session:
    """Both flows of one session."""

    def __init__(self, i: int, messages: Messages) -> None:
        self.i = i
        self.up = Flow(i, messages.client)  # client -> server
        self.down = Flow(i, messages.server)  # server -> client


async def sleep_until(deadline_ns: int) -> None:
    """Sleep until a monotonic_ns deadline (no-op if it has passed)."""
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def paced_sends(
    ws: ClientConnection | ServerConnection,
    flow: Flow,
    offsets: tuple[float, ...],
    stop_ns: int,
) -> None:
    """Send the flow's next messages: at every 100 ms tick, one per offset (seconds after the
    tick), until ``stop_ns``. The schedule is absolute, so a late send does not shift the rest."""
    tick = time.monotonic_ns()
    try:
        while tick < stop_ns:
            for offset in offsets:
                await sleep_until(tick + int(offset * 1e9))
                t = time.monotonic_ns()
                await ws.send(flow.build(flow.session, flow.sent, t))
                flow.sent += 1
            tick += int(TICK * 1e9)
    finally:
        flow.finish_sending()


class LoadGenerator:
    """The upstream server and the sessions of one run."""

    def __init__(self, sessions: int, warmup: float, duration: float, drain: float) -> None:
        self.messages = Messages(load_chunks())
        self.sessions = [Session(i, self.messages) for i in range(sessions)]
        self.warmup = warmup
        self.duration = duration
        self.drain = drain
        self.run = Run()
        self.stop_ns = 0
        self.connected = 0
        self.handlers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ upstream

    async def upstream(self, ws: ServerConnection) -> None:
        """One session, server side: greet, then stream paced audio and transcript deltas."""
        path = ws.request.path if ws.request is not None else ""
        try:
            session = self.sessions[int(path.rsplit("bench_session=", 1)[1])]
        except (IndexError, ValueError):
            await ws.close(1008, f"bench: unknown path {path}")
            return
        flow = session.down
        for _ in range(2):  # session.created, response.created
            await ws.send(flow.build(session.i, flow.sent, time.monotonic_ns()))
            flow.sent += 1
        sender = asyncio.create_task(paced_sends(ws, flow, (0.0, 0.0, 0.05), self.stop_ns))
        try:
            async for message in ws:
                self.run.receive(session.up, "client", message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    # ------------------------------------------------------------------ clients

    async def client(self, session: Session, url: str, start_ns: int) -> None:
        """One session, client side: connect, stream paced appends, drain, close."""
        await sleep_until(start_ns)
        try:
            ws = await connect(
                url,
                compression=None,  # the Realtime SDK sends none (PROTOCOL.md §1)
                max_size=MAX_SIZE,
                proxy=None,
                open_timeout=30,
                additional_headers={"Authorization": "Bearer sk-bench-not-a-real-key"},
            )
        except (OSError, TimeoutError, ConnectionClosed, ValueError) as exc:
            self.run.problem(f"session {session.i}: connect failed: {type(exc).__name__}: {exc}")
            session.up.finish_sending()
            session.down.finish_sending()
            return
        self.connected += 1
        flow = session.up
        await ws.send(flow.build(session.i, 0, time.monotonic_ns()))  # session.update
        flow.sent = 1

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    self.run.receive(session.down, "server", message)

        reader = asyncio.create_task(read())
        try:
            await paced_sends(ws, flow, (0.0,), self.stop_ns)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.drain + max(0.0, self._left())):
                    await session.up.drained.wait()
                    await session.down.drained.wait()
        except ConnectionClosed as exc:
            self.run.problem(f"session {session.i}: closed early: {exc}")
        finally:
            await ws.close(1000, "bench done")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _left(self) -> float:
        return (self.stop_ns - time.monotonic_ns()) / 1e9

    # ------------------------------------------------------------------ the run

    async def main(self, sock: socket.socket, target: str, relay_pid: int) -> dict[str, Any]:
        """Run the sessions against ``target`` and return the result."""
        async with serve(
            self.upstream, sock=sock, compression=None, max_size=MAX_SIZE, ping_interval=None
        ):
            go = time.monotonic_ns()
            window_start = go + int(self.warmup * 1e9)
            self.stop_ns = window_start + int(self.duration * 1e9)
            self.run.window = (window_start, self.stop_ns)
            ramp = min(MAX_RAMP, self.warmup / 2)
            n = len(self.sessions)
            rss_idle = rss_of(relay_pid)
            monitor = asyncio.create_task(self.monitor(relay_pid))
            await asyncio.gather(
                *(
                    self.client(
                        s,
                        f"{target}/realtime?model=gpt-realtime&bench_session={s.i}",
                        go + int(ramp * 1e9 * s.i / n),
                    )
                    for s in self.sessions
                )
            )
            edges = await monitor
        sent = sum(s.up.sent + s.down.sent for s in self.sessions)
        received = sum(s.up.received + s.down.received for s in self.sessions)
        for s in self.sessions:
            for name, flow in (("client", s.up), ("server", s.down)):
                if flow.received != flow.sent:
                    self.run.problem(
                        f"session {s.i} {name}: {flow.sent} sent, {flow.received} arrived"
                    )
        lat = self.run.latency
        both = lat["client"] + lat["server"]
        return {
            "sessions": n,
            "connected": self.connected,
            "duration": self.duration,
            "frames_in_window": self.run.frames_in_window,
            "sent_total": sent,
            "received_total": received,
            "problems": self.run.problems,
            "problem_notes": self.run.problem_notes,
            "latency_us": percentiles(both),
            "latency_client_us": percentiles(lat["client"]),
            "latency_server_us": percentiles(lat["server"]),
            "p99_by_second_us": self.p99_by_second(),
            "rss_idle": rss_idle,
            **edges,
        }

    def p99_by_second(self) -> list[float]:
        """p99 latency (us) of the frames sent in each second of the window: shows stalls."""
        if not self.run.lat:
            return []
        second = (np.asarray(self.run.sent_at) - self.run.window[0]) // 1_000_000_000
        lat = np.asarray(self.run.lat, dtype=np.float64) / 1e3
        return [
            round(float(np.percentile(lat[second == s], 99)), 1)
            for s in range(int(second.max()) + 1)
            if (second == s).any()
        ]

    async def monitor(self, relay_pid: int) -> dict[str, Any]:
        """Sample the relay's and our own CPU time at the window's edges, and RSS every second."""
        start, stop = self.run.window
        await sleep_until(start)
        cpu0, own0, busy0 = cpu_of(relay_pid), own_cpu(), machine_busy()
        rss_warm = rss_of(relay_pid)
        samples: list[tuple[float, int]] = [(0.0, rss_warm)]
        second = start
        while (second := second + 1_000_000_000) < stop:
            await sleep_until(second)
            samples.append(((second - start) / 1e9, rss_of(relay_pid)))
        await sleep_until(stop)
        elapsed = (time.monotonic_ns() - start) / 1e9
        cpu1, own1, busy1 = cpu_of(relay_pid), own_cpu(), machine_busy()
        rss_end = rss_of(relay_pid)
        samples.append((elapsed, rss_end))
        return {
            "window_s": elapsed,
            "relay_cpu_s": cpu1 - cpu0,
            "loadgen_cpu_s": own1 - own0,
            # everything else the machine ran meanwhile (other processes): noise to report
            "other_cpu_s": max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (own1 - own0)),
            "rss_warm": rss_warm,
            "rss_end": rss_end,
            "rss_samples": samples,
        }


def percentiles(values: list[int]) -> dict[str, float]:
    """p50/p90/p99/max of nanosecond samples, in microseconds."""
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": len(values), "p50": p50, "p90": p90, "p99": p99, "max": float(a.max())}


_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used; 0 for pid 0."""
    if not pid:
        return 0.0
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def rss_of(pid: int) -> int:
    """Resident set size of a process in bytes; 0 for pid 0."""
    if not pid:
        return 0
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: all but idle, iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICKS  # guest time is in user already


def own_cpu() -> float:
    """This process's CPU seconds, user + system."""
    t = os.times()
    return t.user + t.system


def main() -> None:
    """Run as bench_recorder.py's load generator (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    args = parser.parse_args()

    generator = LoadGenerator(args.sessions, args.warmup, args.duration, args.drain)
    # Bound before the relay starts, so that its upstream address is known and fixed.
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    print(f"UPSTREAM ws://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 3 or line[0] != "GO":
        raise SystemExit(f"expected 'GO <url> <pid>' on stdin, got {line!r}")
    result = asyncio.run(generator.main(sock, line[1], int(line[2])))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
