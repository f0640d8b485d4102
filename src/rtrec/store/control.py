"""The control socket: a running writer answers read queries on the log it holds.

DuckDB lets one process open a database file read-write and then refuses every other
process, read-only openers included ("Could not set lock on file ... Conflicting lock is
held"). So while ``rtrec record`` runs, the writer listens on a Unix socket next to the log
(``rtrec.duckdb.sock``, mode 0600) and runs each read query on a cursor of its own
connection in a worker thread; ``src/rtrec/store/reader.py`` uses this socket when it exists and
the file otherwise. docs/log.md explains the choice and the alternatives.

Wire protocol (one request per connection):

- request: a 4-byte big-endian length, then a JSON object ``{"sql": str, "params": [...]}``;
- reply: a 4-byte length, then a JSON object, ``{"ok": true, "pid": ...}`` or
  ``{"ok": false, "error": "..."}``; after an ok, the result as an Arrow IPC stream until
  the server closes the connection.

Only one ``SELECT`` (or ``EXPLAIN``) statement per request: the socket gives other
processes what a read-only open would, nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Final

import duckdb
import orjson
import pyarrow as pa
import trio

from rtrec.schemas.errors import RtrecError, describe_error

__all__ = [
    "ControlUnavailable",
    "ForeignSocket",
    "QueryRefused",
    "ReadWouldDeadlock",
    "control_socket_path",
    "live_writer",
    "query_socket",
    "serve_control",
]

_HEADER: Final = struct.Struct(">I")
_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MAX_REQUEST: Final = 16 << 20
# Unix socket paths are limited to 108 bytes (sun_path) on Linux.
_MAX_SOCKET_PATH: Final = 100
_BATCH_ROWS: Final = 8192
_ALLOWED: Final = frozenset({"SELECT", "EXPLAIN"})


class ControlUnavailable(RtrecError):
    """No writer answers on the log's control socket (none running, or a stale socket)."""


class ForeignSocket(RtrecError):
    """The control socket (or its folder) belongs to another user: it is not trusted.

    Anyone may create a socket where a reader looks for one (a shared folder, a
    pre-created ``$TMPDIR/rtrec-<uid>``) and answer its queries with made-up rows, or
    learn what is asked; so a reader talks only to a writer running as its own user.
    """


class QueryRefused(RtrecError):
    """The writer refused or failed a query sent over its control socket."""


class ReadWouldDeadlock(RtrecError):
    """A blocking read was attempted from the trio loop of the process that writes the log.

    The writer answers on that same loop, so waiting for its reply would hang forever.
    """


def control_socket_path(db_path: Path) -> Path:
    """Where a writer of ``db_path`` listens: ``<db>.sock`` beside it when the path fits.

    Unix socket paths are short (108 bytes); for a log deep in a directory tree the socket
    goes to ``$TMPDIR/rtrec-<uid>/<hash of the log path>.sock`` instead, which readers
    compute the same way.
    """
    full = Path(os.path.abspath(db_path))
    beside = full.with_name(full.name + ".sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(os.fsencode(full)).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"rtrec-{os.getuid()}" / f"{digest}.sock"


async def _receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            raise EOFError("connection closed mid-request")
        data += chunk
    return bytes(data)


def _frame(obj: dict[str, Any]) -> bytes:
    body = orjson.dumps(obj)
    return _HEADER.pack(len(body)) + body


class _Query:
    """One query running on its own cursor; every method blocks (call from a thread)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> None:
        self._cursor = con.cursor()
        try:
            statements = self._cursor.extract_statements(sql)
            if len(statements) != 1:
                raise QueryRefused(f"send one statement per query, not {len(statements)}")
            kind = statements[0].type.name
            if kind not in _ALLOWED:
                raise QueryRefused(
                    f"the log is being recorded; its control socket answers read queries "
                    f"(SELECT, EXPLAIN) only, not {kind}"
                )
            self._reader = self._cursor.sql(sql, params=params or None).to_arrow_reader(_BATCH_ROWS)
        except BaseException:
            self._cursor.close()
            raise
        self._buffer = io.BytesIO()
        self._ipc = pa.ipc.new_stream(self._buffer, self._reader.schema)

    def _take(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def next_chunk(self) -> bytes | None:
        """The next piece of the Arrow IPC stream; None once the end marker went out."""
        if self._ipc is None:
            return None
        try:
            batch = self._reader.read_next_batch()
        except StopIteration:
            self._ipc.close()
            self._ipc = None
            return self._take()
        self._ipc.write_batch(batch)
        return self._take()

    def close(self) -> None:
        self._cursor.close()


async def _handle(
    stream: trio.SocketStream,
    con: duckdb.DuckDBPyConnection,
    limiter: trio.CapacityLimiter,
    before_query: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer one request. Nothing a reader does may reach the writer: every error of this
    connection ends here, as an error reply or a closed connection."""
    async with stream:
        try:
            await _answer(stream, con, limiter, before_query)
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            pass  # the reader went away (or only wanted the first rows)
        except Exception as exc:
            # A bug or an odd result type: tell the reader if we still can, then hang up.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(_frame({"ok": False, "error": describe_error(exc)}))


async def _answer(
    stream: trio.SocketStream,
    con: duckdb.DuckDBPyConnection,
    limiter: trio.CapacityLimiter,
    before_query: Callable[[], Awaitable[None]] | None,
) -> None:
    try:
        with trio.fail_after(30):
            (length,) = _HEADER.unpack(await _receive_exactly(stream, _HEADER.size))
            if length > _MAX_REQUEST:
                raise QueryRefused(f"request of {length} bytes is too large")
            request = orjson.loads(await _receive_exactly(stream, length))
        sql = request.get("sql") if isinstance(request, dict) else None
        params = request.get("params", []) if isinstance(request, dict) else None
        if not isinstance(sql, str) or not isinstance(params, list):
            raise QueryRefused('a request is {"sql": str, "params": list}')
        if before_query is not None:
            await before_query()
        query = await trio.to_thread.run_sync(_Query, con, sql, params, limiter=limiter)
    except (QueryRefused, duckdb.Error, orjson.JSONDecodeError, trio.TooSlowError) as exc:
        await stream.send_all(_frame({"ok": False, "error": str(exc)}))
        return
    try:
        await stream.send_all(_frame({"ok": True, "pid": os.getpid()}))
        while (
            chunk := await trio.to_thread.run_sync(query.next_chunk, limiter=limiter)
        ) is not None:
            await stream.send_all(chunk)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(query.close, limiter=limiter)


def _prepare(db_path: Path) -> Path:
    """The socket path for ``db_path``, its folder made private if it is the shared one."""
    path = control_socket_path(db_path)
    if path.parent != Path(os.path.abspath(db_path)).parent:
        _private_dir(path.parent)
    path.unlink(missing_ok=True)  # stale: we hold the log's write lock, so no writer is live
    return path


def _private_dir(folder: Path) -> None:
    """Create the shared-temp folder for sockets, or check that it is ours alone.

    Raises:
        ForeignSocket: it exists and belongs to another user (or is not a folder).
    """
    with contextlib.suppress(FileExistsError):  # not a folder: said below
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ForeignSocket(
            f"{folder} (where the control socket of a log with a long path goes) "
            + (
                "is not a folder"
                if not stat.S_ISDIR(info.st_mode)
                else f"belongs to uid {info.st_uid}"
            )
            + f", not to you (uid {os.getuid()}): someone else created it, and a socket "
            "there could be read or replaced by them; remove it, or set TMPDIR to a "
            "folder of your own"
        )
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)


async def serve_control(
    db_path: Path,
    con: duckdb.DuckDBPyConnection,
    *,
    max_queries: int = 2,
    before_query: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer read queries on ``db_path``'s control socket until cancelled.

    Only the process holding the log's DuckDB write lock may call this: holding it proves
    that any socket file already there is stale. ``task_status.started`` gets the socket path.

    Args:
        db_path: the log file.
        con: the writer's connection; each query runs on a cursor of it.
        max_queries: queries running at once (each takes a worker thread).
        before_query: awaited before each query runs (the writer's ``settle``: what it
            committed to its journal reaches DuckDB first).
    """
    path = _prepare(db_path)
    # Bind under a temporary name, restrict it, then move it into place: the socket is never
    # reachable by others, whatever the umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        sock.listen(64)
    except BaseException:
        sock.close()
        tmp.unlink(missing_ok=True)
        raise
    identity = path.stat().st_ino
    limiter = trio.CapacityLimiter(max_queries)
    try:
        async with trio.open_nursery() as nursery:
            # serve_listeners rides out accept() errors such as running out of file
            # descriptors, which must not stop the recording
            await nursery.start(
                trio.serve_listeners,
                partial(_handle, con=con, limiter=limiter, before_query=before_query),
                [trio.SocketListener(sock)],
            )
            task_status.started(path)
    finally:
        sock.close()
        try:
            if path.stat().st_ino == identity:
                path.unlink()
        except FileNotFoundError:
            pass


def live_writer(db_path: Path) -> int | None:
    """The pid of the writer serving ``db_path`` on its control socket, or None if none does.

    Raises:
        ForeignSocket: the socket is another user's.
    """
    try:
        with _request(db_path, "SELECT 1", ()) as (reply, _):
            pid = reply.get("pid")
            return pid if isinstance(pid, int) else None
    except (ControlUnavailable, QueryRefused, OSError):
        return None


@contextmanager
def _request(
    db_path: Path, sql: str, params: list[Any] | tuple[Any, ...]
) -> Iterator[tuple[dict[str, Any], BinaryIO]]:
    """Send one query; yields the reply header and the stream the result follows on."""
    path = control_socket_path(db_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlUnavailable(f"no recorder is serving {db_path} ({exc})") from exc
        _check_peer(sock, db_path, path)
        body = orjson.dumps({"sql": sql, "params": list(params)})
        sock.sendall(_HEADER.pack(len(body)) + body)
        with sock.makefile("rb") as f:
            head = f.read(_HEADER.size)
            if len(head) != _HEADER.size:
                raise QueryRefused(f"the recorder serving {db_path} closed the connection")
            (length,) = _HEADER.unpack(head)
            reply = orjson.loads(f.read(length))
            if not isinstance(reply, dict) or not reply.get("ok"):
                error = reply.get("error") if isinstance(reply, dict) else reply
                raise QueryRefused(str(error))
            yield reply, f
    finally:
        sock.close()


def _check_peer(sock: socket.socket, db_path: Path, path: Path) -> None:
    """Refuse a writer of another user, and one that is our own trio loop.

    The kernel tells who listens (``SO_PEERCRED``): a socket another user planted where we
    look is never sent a query (``ForeignSocket``). And a reader that blocks in the thread
    running trio stops that loop, and with it a writer in this process that would answer:
    the caller must read from a worker thread instead (``trio.to_thread.run_sync``).
    """
    pid, uid, _ = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    if uid != os.getuid():
        raise ForeignSocket(
            f"the control socket {path} of {db_path} is served by uid {uid} (pid {pid}), "
            f"not by you (uid {os.getuid()}); refusing to query it: a recorder of yours "
            "serves its logs as you. Remove the socket if nobody should be recording there"
        )
    if trio.lowlevel.in_trio_run() and pid == os.getpid():
        raise ReadWouldDeadlock(
            f"{db_path} is being recorded by this process's trio loop, and a blocking read "
            "from that loop would wait on itself; call the reader through "
            "trio.to_thread.run_sync"
        )


@contextmanager
def query_socket(
    db_path: Path, sql: str, params: list[Any] | tuple[Any, ...] = ()
) -> Iterator[pa.RecordBatchStreamReader]:
    """Run a read query through the control socket of the writer holding ``db_path``.

    Yields an Arrow stream reader over the result, which arrives while it is read.

    Raises:
        ControlUnavailable: no writer listens (no socket, or a stale one).
        QueryRefused: the writer refused the query or DuckDB rejected it.
    """
    with _request(db_path, sql, params) as (_, f), pa.ipc.open_stream(f) as reader:
        yield reader
