"""``open_recorder``: a recorder in-process, as one async context manager.

The one way rtrec runs a recorder: the log writer, the simulator (for ``upstream="sim"``),
an optional server in between, and the recording proxy, in one trio block that hands back
the URL to give clients. ``rtrec record``, ``rtrec demo``, the driver, the record modes and
the tests all use it; ``rtrec`` exports it (docs/api.md).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import attrs
import trio

from rtrec.recorder.proxy import DEFAULT_UPSTREAM, ProxyOptions, Recorder
from rtrec.schemas.storage import LogMessage
from rtrec.store.log import DEFAULT_DB
from rtrec.store.sink import LogSink, TappedSink
from rtrec.store.writer import (
    DEFAULT_DISK_RESERVE,
    LogWriter,
    SessionClosedHook,
    open_log_writer,
)
from rtrec.transport.tls import TlsServer

__all__ = ["Interpose", "RunningRecorder", "open_recorder"]

#: Starts a server between the recorder and its upstream: called with the recorder's
#: nursery and the upstream's URL, it returns the URL the recorder connects to instead.
Interpose: TypeAlias = Callable[[trio.Nursery, str], Awaitable[str]]


@attrs.frozen(eq=False)
class RunningRecorder:
    """A recorder started by ``open_recorder``, for the duration of its block."""

    #: The base URL to give clients (``ws://127.0.0.1:PORT/v1``); the OpenAI SDK takes it
    #: as ``websocket_base_url``.
    url: str
    #: What the recorder forwards to: the upstream's URL (the simulator's, for ``sim``), or
    #: the interposed server's.
    upstream: str
    #: The log the sessions are recorded in.
    db: Path
    recorder: Recorder
    writer: LogWriter

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed to the log (readable by
        ``open_log_reader`` in this process, or by ``rtrec`` commands in others)."""
        await self.writer.flush()

    async def close_sessions(
        self, code: int = 1001, reason: str = "rtrec is shutting down"
    ) -> None:
        """Close every session cleanly (close frames both ways, closes logged) and refuse new
        ones; returns once all have ended. Leaving the block does this too."""
        await self.recorder.close_sessions(code, reason)


@asynccontextmanager
async def open_recorder(
    upstream: str = DEFAULT_UPSTREAM,
    *,
    db: Path | str = DEFAULT_DB,
    audio_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    options: ProxyOptions | None = None,
    simulator: Mapping[str, Any] | None = None,
    interpose: Interpose | None = None,
    on_session_closed: SessionClosedHook | None = None,
    tap: Callable[[LogMessage], None] | None = None,
    disk_reserve: int = DEFAULT_DISK_RESERVE,
    tls: TlsServer | None = None,
) -> AsyncIterator[RunningRecorder]:
    """Record every session clients open on the yielded URL, until the block ends.

    Leaving the block closes the sessions still open (close frames both ways), stops the
    servers and commits the log; a crash of the process loses at most the writer's last
    commit interval. Process-wide settings are left alone: see ``rtrec.tune_process``.

    Args:
        upstream: the Realtime server's base URL (``wss://api.openai.com/v1``), or ``"sim"``
            for the built-in simulator, started for the block.
        db: the DuckDB log (created when missing); one process writes it at a time.
        audio_dir: where FLAC files go (default: the log's, else ``<db stem>.audio``).
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one.
        options: how the proxy relays and records (message size, redaction, tags, ...);
            its ``upstream`` is replaced by the one above.
        simulator: with ``"sim"``, keywords for ``serve_simulator`` (``scenario``,
            ``pace``, ``seed``).
        interpose: starts a server between the recorder and the upstream (the record modes
            put a playback server there); see ``Interpose``.
        on_session_closed: called for each session once its close is committed, in a
            worker thread beside the writer's (``open_log_writer``): pass
            ``rtrec.index_session`` to index sessions as ``rtrec record`` does (items,
            turns, figures: docs/sql.md).
        tap: shown every message the recorder logs, once the writer has it (which
            sessions opened, which closed); it must not block.
        disk_reserve: disk space set aside beside the log, and the most the writer holds
            unwritten (``open_log_writer``; docs/recorder.md, "When the disk fills").
        tls: listen with TLS, for ``wss://`` clients (``rtrec.transport.tls.load_tls``).

    Raises:
        LogInUse, NotAnRtrecLog, LogTooNew: the log cannot be opened for writing.
        OSError: the address cannot be bound.
        ValueError: ``simulator`` without ``upstream="sim"``.
    """
    if simulator is not None and upstream != "sim":
        raise ValueError(f"simulator options apply to upstream 'sim', not {upstream!r}")
    db = Path(db)
    async with open_log_writer(
        db, audio_dir, on_session_closed=on_session_closed, disk_reserve=disk_reserve
    ) as writer:
        sink: LogSink = writer if tap is None else TappedSink(writer, tap)
        try:
            async with trio.open_nursery() as nursery:
                target = upstream
                if upstream == "sim":
                    from rtrec.simulator import serve_simulator  # only a simulated upstream

                    target = await nursery.start(
                        functools.partial(serve_simulator, **(simulator or {}))
                    )
                if interpose is not None:
                    target = await interpose(nursery, target)
                recorder = Recorder(sink, attrs.evolve(options or ProxyOptions(), upstream=target))
                url = await nursery.start(functools.partial(recorder.serve, host, port, tls=tls))
                try:
                    yield RunningRecorder(url, target, db, recorder, writer)
                finally:
                    with trio.CancelScope(shield=True):
                        await recorder.close_sessions()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps what the caller's block raised: give it back as raised.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
