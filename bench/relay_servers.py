"""The relays ``bench_recorder.py`` measures, each run in a process of its own.

- ``rtrec``: the recording proxy (``rtrec.recorder.proxy.Recorder``) writing a real log, a
  DuckDB file and its FLAC directory, through the log writer.
- ``rtrec-discard``: the same proxy with a sink that counts what it is given and stores
  nothing, which isolates the relay + capture cost from the log writer's.
- ``bare``: a bare trio-websocket relay that forwards messages both ways and records
  nothing. It is tuned, not left at trio-websocket's defaults (1 MiB messages, a queue of 1
  message, 4 KiB reads): 16 MiB messages like rtrec, a queue of ``BARE_QUEUE`` messages and
  64 KiB reads like rtrec's.

Talks to ``bench_recorder.py`` over stdio: prints ``READY <base url>`` once it listens on
127.0.0.1, runs until its stdin closes, stops cleanly (close frames both ways, log
committed), then prints ``DONE <json>`` with what it recorded.

    python bench/relay_servers.py rtrec --upstream ws://127.0.0.1:PORT/v1 --log-dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import duckdb
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)

from rtrec.recorder.headers import HOP_BY_HOP
from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.schemas.storage import FrameKind, FrameRecord, LogMessage
from rtrec.store.sink import LogSink
from rtrec.store.writer import RELAY_SWITCH_INTERVAL, open_log_writer

MAX_MESSAGE: Final = 16 * 2**20
READ_BUFFER: Final = 64 * 2**10
#: Messages trio-websocket's reader task may queue per connection before it stops reading.
#: A server tick is a burst of up to 3 events; 4 lets a whole burst be read while the
#: forwarding task writes, and still bounds what a slow peer can pile up (4 x 16 MiB).
BARE_QUEUE: Final = 4


class DiscardSink:
    """A LogSink that counts messages by kind and stores nothing (bench only)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._failed = trio.Event()

    @property
    def failed(self) -> trio.Event:
        """Never set: discarding cannot fail."""
        return self._failed

    @property
    def failure(self) -> str | None:
        """Always None."""
        return None

    async def send(self, message: LogMessage) -> None:
        """Count ``message`` and drop it."""
        self.offer(message)

    def offer(self, *messages: LogMessage) -> bool:
        """Count ``messages`` and drop them."""
        for message in messages:
            if isinstance(message, FrameRecord):
                self.counts["marks" if message.kind is FrameKind.MARK else "frames"] += 1
            else:
                self.counts[type(message).__name__] += 1
        return True


async def stdin_closed() -> None:
    """Return once our stdin reaches end of file (the benchmark's stop signal)."""
    async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
        while await stdin.receive_some(4096):
            pass


@asynccontextmanager
async def open_sink(kind: str, log_dir: Path | None) -> AsyncIterator[tuple[LogSink, Any]]:
    """The sink of an rtrec relay, and a function that reports what it stored."""
    if kind == "rtrec-discard":
        sink = DiscardSink()
        yield sink, lambda: {"frames": sink.counts["frames"], "stored_bytes": 0}
        return
    if log_dir is None:
        raise SystemExit("relay 'rtrec' needs --log-dir")
    db = log_dir / "rtrec.duckdb"
    # As `rtrec record` runs it: the writer with its defaults, serving read queries too.
    async with open_log_writer(db, log_dir / "audio") as writer:
        yield writer, lambda: logged(db)


def logged(db: Path) -> dict[str, Any]:
    """What a closed log holds: frames (marks left out), sessions, archived audio."""
    with duckdb.connect(str(db), read_only=True) as con:
        frames, audio_frames, audio_cut = con.execute(
            "SELECT count(*), count(audio_offset), count(audio_cut_at) FROM events "
            "WHERE kind <> 'mark'"
        ).fetchone() or (0, 0, 0)
        sessions, closed = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'closed') FROM sessions"
        ).fetchone() or (0, 0)
        samples = con.execute("SELECT coalesce(sum(frames), 0) FROM audio_streams").fetchone()
    return {
        "frames": frames,
        "audio_frames": audio_frames,
        "audio_cut": audio_cut,  # audio frames whose base64 left the payload for the FLAC
        "sessions": sessions,
        "sessions_closed": closed,
        "flac_samples": samples[0] if samples else 0,
    }


async def run_rtrec(kind: str, upstream: str, log_dir: Path | None) -> dict[str, Any]:
    """Serve the recording proxy until stdin closes; returns what it recorded."""
    async with open_sink(kind, log_dir) as (sink, report):
        recorder = Recorder(sink, ProxyOptions(upstream=upstream))
        async with trio.open_nursery() as nursery:
            url = await nursery.start(recorder.serve, "127.0.0.1", 0)
            print(f"READY {url}", flush=True)
            await stdin_closed()
            await recorder.close_sessions()
            nursery.cancel_scope.cancel()
    result: dict[str, Any] = report()
    return result


async def run_bare(upstream: str) -> dict[str, Any]:
    """Serve the bare trio-websocket relay until stdin closes."""
    base = urlsplit(upstream)
    prefix = "/v1"  # the relay's own base path, as rtrec's
    relayed = Counter[str]()

    async def pump(
        src: WebSocketConnection, dst: WebSocketConnection, nursery: trio.Nursery
    ) -> None:
        try:
            while True:
                message = await src.get_message()
                await dst.send_message(message)
                relayed["frames"] += 1
        except ConnectionClosed as exc:
            # mirror the close on the other side, with the same code and reason
            code, reason = (exc.reason.code, exc.reason.reason) if exc.reason else (1000, None)
            with contextlib.suppress(ConnectionClosed):
                await dst.aclose(1000 if code in (1005, 1006, 1015) else code, reason)
        nursery.cancel_scope.cancel()

    async def handler(request: WebSocketRequest) -> None:
        path = request.path
        rest = path[len(prefix) :] if path.startswith(prefix) else path
        url = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{rest}"
        headers = [(k, v) for k, v in request.headers if k.decode().lower() not in HOP_BY_HOP]
        async with open_websocket_url(
            url,
            extra_headers=headers,
            max_message_size=MAX_MESSAGE,
            message_queue_size=BARE_QUEUE,
            receive_buffer_size=READ_BUFFER,
        ) as up:
            try:
                client = await request.accept(subprotocol=up.subprotocol)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump, client, up, nursery)
                    nursery.start_soon(pump, up, client, nursery)
            finally:
                # trio-websocket 0.12 leaks a client socket whose server closed first
                # (see src/rtrec/transport/ws.py); release it once the close is over.
                await trio.aclose_forcefully(up._stream)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                handler,
                "127.0.0.1",
                0,
                None,
                max_message_size=MAX_MESSAGE,
                message_queue_size=BARE_QUEUE,
                receive_buffer_size=READ_BUFFER,
                task_status=task_status,
            )
        )
        print(f"READY ws://127.0.0.1:{server.port}/v1", flush=True)
        await stdin_closed()
        nursery.cancel_scope.cancel()
    return {"frames": relayed["frames"], "stored_bytes": 0}


def main() -> None:
    """Run one relay (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["rtrec", "rtrec-discard", "bare"])
    parser.add_argument("--upstream", required=True, help="ws://HOST:PORT/v1 of the upstream")
    parser.add_argument("--log-dir", type=Path, help="where the rtrec relay writes its log")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the run here")
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval, ms: how long the log writer's thread may hold the GIL "
        "while the relay waits for it (default for the rtrec relays: what `rtrec record` "
        "sets, RELAY_SWITCH_INTERVAL; Python's own default: 5 ms)",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval / 1e3)
    elif args.kind.startswith("rtrec"):
        sys.setswitchinterval(RELAY_SWITCH_INTERVAL)  # as `rtrec record` runs

    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    run: Callable[[], Any]
    if args.kind == "bare":
        run = lambda: trio.run(run_bare, args.upstream)  # noqa: E731
    else:
        run = lambda: trio.run(run_rtrec, args.kind, args.upstream, args.log_dir)  # noqa: E731
    if args.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run)
        profiler.dump_stats(args.profile)
    else:
        result = run()
    print("DONE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
