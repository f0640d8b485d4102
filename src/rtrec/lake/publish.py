"""Publishing: the local queue into the lake, in batches, exactly once.

A batch is a few queued sessions (``batch_size``, default 50) committed together: their FLACs
are copied to the lake's storage first (to fixed locations, so copying again is harmless),
then each of ``LAKE_TABLES`` gets one Iceberg append holding the batch's rows, ``sessions``
last. Batching is what keeps many recorders from fighting over the catalog: at one commit
per table per batch rather than per session, the catalog sees 50 times fewer commits
(docs/fleet.md has the measurements).

Exactly once, across crashes: every append carries the batch id in its snapshot summary
(``rtrec.batch``), and the batch id is written in the queue before the first commit
(``PublishQueue.start_batch``). A publisher that was killed resumes its open batches first,
skipping each table whose history already holds a snapshot of that batch. A session is
published once its ``sessions`` row is committed; the lake's views show other tables' rows
only for published sessions, so a half-published batch is invisible until it is finished.
Sessions already in the lake are dropped from a new batch (``rtrec publish`` of a session
that the recorder published), so the only way to register one twice would be two
publishers of one log at once, which the queue's lock prevents.

A commit that loses a race with another recorder (``CommitFailedException``) is retried
after a short random wait, and counted (``Published.conflicts``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import trio

from rtrec.lake.catalog import Lake, LakeError, connect_lake, sessions_filter
from rtrec.lake.config import LakeConfig
from rtrec.lake.queue import (
    LAKE_TABLES,
    PublishQueue,
    audio_paths,
    publication_states,
    with_paths,
)
from rtrec.schemas.errors import RtrecError
from rtrec.store.reader import open_log_reader, read_sessions

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = [
    "BATCH_PROPERTY",
    "Published",
    "commit_batch",
    "publish_queue",
    "registered_sessions",
    "serve_publisher",
]

_log = logging.getLogger(__name__)

#: The snapshot-summary key that names the batch an append belongs to.
BATCH_PROPERTY: Final = "rtrec.batch"

#: Retries of one commit that keeps losing races, and the random wait before each (s).
_COMMIT_TRIES: Final = 30
_RETRY_WAIT: Final = (0.02, 0.2)


@attrs.frozen
class Published:
    """One batch committed: its sessions, the commit races it lost, and how long it took."""

    batch_id: str
    sessions: tuple[str, ...]
    conflicts: int
    seconds: float
    resumed: bool = False


def registered_sessions(lake: Lake, session_ids: Sequence[str]) -> set[str]:
    """Which of these sessions the lake has (their ``sessions`` row is committed)."""
    table = lake.table("sessions")
    if table is None or not session_ids:
        return set()
    wanted = sessions_filter(session_ids)
    found = table.scan(row_filter=wanted, selected_fields=("session_id",)).to_arrow()
    return {str(s) for s in found.column("session_id").to_pylist()}


def publish_queue(
    lake: Lake,
    queue: PublishQueue,
    *,
    batch_size: int = 50,
    on_committed: Callable[[str, str], None] | None = None,
) -> list[Published]:
    """Publish everything in ``queue``: first the batches a killed publisher left, then
    new batches of up to ``batch_size`` sessions.

    Args:
        on_committed: called with (batch id, table) after each table of a batch is in the
            lake (progress; a test stops there to play a crash).

    Returns:
        The batches published; none when another process holds the queue.

    Raises:
        LakeError: the catalog or storage failed (the queue keeps what is not published).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    done: list[Published] = []
    with queue.held() as mine:
        if not mine:
            return done
        for batch_id, sessions in queue.open_batches():
            done.append(_publish_batch(lake, queue, batch_id, sessions, on_committed, True))
        while pending := queue.sessions()[:batch_size]:
            already = registered_sessions(lake, pending)
            queue.note(sorted(already), "published")
            for session_id in already:
                queue.remove(session_id)
            fresh = [s for s in pending if s not in already and _audio_there(queue, s)]
            if fresh:
                batch_id = queue.start_batch(fresh)
                done.append(_publish_batch(lake, queue, batch_id, fresh, on_committed, False))
    return done


def _audio_there(queue: PublishQueue, session_id: str) -> bool:
    """Whether a queued session's FLACs are still there; if not, it is given up on (it
    would fail its batch on every try and hold up the queue behind it)."""
    audio = queue.read([session_id], "audio_streams")
    for _, stream, _, path in [] if audio is None else audio_paths(audio):
        if not os.path.exists(path):
            queue.give_up(session_id, f"its {stream} audio {path} is gone")
            _log.warning(
                "session %s cannot be published: its %s audio %s is gone; it stays in the "
                "local log",
                session_id,
                stream,
                path,
            )
            return False
    return True


def _publish_batch(
    lake: Lake,
    queue: PublishQueue,
    batch_id: str,
    sessions: Sequence[str],
    on_committed: Callable[[str, str], None] | None,
    resumed: bool,
) -> Published:
    started = time.perf_counter()
    if not all((queue.folder / s).is_dir() for s in sessions):
        # sessions are removed from the queue only after every table has the batch
        queue.finish_batch(batch_id, sessions)
        return Published(batch_id, tuple(sessions), 0, time.perf_counter() - started, resumed)
    audio = queue.read(sessions, "audio_streams")
    rows = {t: queue.read(sessions, t) for t in LAKE_TABLES if t != "audio_streams"}
    rows["audio_streams"] = None if audio is None else _upload_audio(lake, audio)
    conflicts = commit_batch(lake, batch_id, rows, on_committed, resumed=resumed)
    queue.finish_batch(batch_id, sessions)
    return Published(batch_id, tuple(sessions), conflicts, time.perf_counter() - started, resumed)


def commit_batch(
    lake: Lake,
    batch_id: str,
    rows: Mapping[str, pa.Table | None],
    on_committed: Callable[[str, str], None] | None = None,
    *,
    resumed: bool = False,
) -> int:
    """Append each table's rows of a batch, in ``LAKE_TABLES`` order, each exactly once.

    A table whose history has a snapshot of ``batch_id`` is skipped, so calling this again
    with the same batch id after a crash finishes the batch. ``rows`` maps a table to its
    rows (None or missing: none); audio_streams' paths must already be lake locations.

    Returns:
        The commit races lost (each was retried).

    Raises:
        LakeError: a commit kept failing.
    """
    conflicts = 0
    for table in LAKE_TABLES:
        data = rows.get(table)
        if data is not None and data.num_rows:
            conflicts += _append_once(lake, table, data, batch_id, resumed)
        if on_committed is not None:
            on_committed(batch_id, table)
    return conflicts


def _upload_audio(lake: Lake, audio: pa.Table) -> pa.Table:
    """Copy the staged FLACs into the lake; audio_streams with their lake locations."""
    locations = []
    for session_id, stream, _, path in audio_paths(audio):
        location = lake.audio_location(session_id, os.path.basename(path))
        try:
            with (
                open(path, "rb") as source,
                lake.io.new_output(location).create(overwrite=True) as target,
            ):
                shutil.copyfileobj(source, target, 1 << 20)
        except FileNotFoundError:
            raise LakeError(
                f"session {session_id}: its {stream} audio {path} is gone, so it cannot be "
                "published; restore the file or remove the session from the queue"
            ) from None
        locations.append(location)
    return with_paths(audio, locations)


def _has_batch(table: Table, batch_id: str) -> bool:
    return any(
        s.summary is not None and s.summary.additional_properties.get(BATCH_PROPERTY) == batch_id
        for s in table.snapshots()
    )


def _holds_any(table: Table, session_ids: Sequence[str]) -> bool:
    scan = table.scan(
        row_filter=sessions_filter(session_ids), selected_fields=("session_id",), limit=1
    )
    return bool(scan.to_arrow().num_rows)


def _append_once(lake: Lake, name: str, rows: pa.Table, batch_id: str, resumed: bool) -> int:
    """Append ``rows`` to table ``name`` unless the batch is there; returns races lost."""
    from pyiceberg.exceptions import CommitFailedException

    conflicts = 0
    session_ids = [str(s) for s in pc.unique(rows.column("session_id")).to_pylist()]
    for _ in range(_COMMIT_TRIES):
        table = lake.table(name) or lake.create_table(name, rows.schema)
        if _has_batch(table, batch_id) or (resumed and _holds_any(table, session_ids)):
            return conflicts
        try:
            missing = set(rows.schema.names) - {f.name for f in table.schema().fields}
            if missing:
                # a newer rtrec added columns: old rows read them as NULL (docs/fleet.md)
                with table.update_schema() as update:
                    update.union_by_name(rows.schema)
                continue
            table.append(rows, snapshot_properties={BATCH_PROPERTY: batch_id})
            return conflicts
        except CommitFailedException:
            conflicts += 1
            time.sleep(random.uniform(*_RETRY_WAIT))
    raise LakeError(
        f"the catalog refused {_COMMIT_TRIES} commits to {name} in a row (too many recorders "
        "committing at once?); the batch stays queued"
    )


def stage_missed(queue: PublishQueue, before_ns: int) -> list[str]:
    """Stage the sessions a killed recorder closed but never queued; returns their ids.

    A recorder stages a session once its close is committed: a SIGKILL between the two (or
    before the close was committed: the next writer marks such a session interrupted)
    leaves a finished session that no queue entry or ledger line names. These are the
    sessions started since the log began publishing (``PublishQueue.since``) and before
    this recorder started (``before_ns``: later ones are its own to stage), not open, and
    unknown to the ledger. Staging one the lake already holds is harmless: the publisher
    skips what the catalog has.
    """
    since = queue.since()
    if since is None:
        return []
    known = publication_states(queue.db_path)
    with open_log_reader(queue.db_path) as log:
        missed = [
            s.session_id
            for s in read_sessions(log)
            if since <= s.started_ns < before_ns
            and s.status != "open"
            and s.session_id not in known
        ]
        for session_id in missed:
            queue.stage(log.query, session_id)
    return missed


async def serve_publisher(
    config: LakeConfig,
    db_path: Path,
    *,
    interval: float = 1.0,
    batch_size: int = 50,
    queue_limit: int | None = None,
    started_ns: int | None = None,
) -> None:
    """Publish a recorder's queue to the lake until cancelled.

    Every ``interval`` seconds, the queue is published in a worker thread; the proxy never
    waits for it. When the lake fails, one line is logged and the wait doubles (up to a
    minute) while the queue, bounded, keeps the sessions; it catches up once the lake is
    back. With ``started_ns`` (when this recorder began queueing), sessions an earlier
    recorder closed but was killed before queueing are staged first (``stage_missed``).
    """
    queue = PublishQueue(db_path) if queue_limit is None else PublishQueue(db_path, queue_limit)
    wait = interval
    lake: Lake | None = None
    try:
        while True:
            try:
                if started_ns is not None:
                    missed = await trio.to_thread.run_sync(
                        stage_missed, queue, started_ns, abandon_on_cancel=True
                    )
                    if missed:
                        _log.info("queued %d sessions a killed recorder had not", len(missed))
                    started_ns = None
                # Abandoned when cancelled: Ctrl-C never waits for a slow lake, and a publish
                # cut short anywhere is finished by the next start (see the module docstring).
                if lake is None:
                    lake = await trio.to_thread.run_sync(
                        connect_lake, config, abandon_on_cancel=True
                    )
                batches = await trio.to_thread.run_sync(
                    functools.partial(_publish_and_note, lake, queue, batch_size),
                    abandon_on_cancel=True,
                )
                for b in batches:
                    _log.info(
                        "published %d sessions to the lake in %.2f s (%d commit races)",
                        len(b.sessions),
                        b.seconds,
                        b.conflicts,
                    )
                wait = interval
            except Exception as exc:
                # The lake must never stop the recorder: say what failed, keep the queue,
                # and show why in `rtrec sessions`.
                with contextlib.suppress(OSError):  # a full disk is the log's to report
                    queue.attempted(_one_line(exc))
                _log.warning(
                    "publishing to the lake (%s) failed: %s; %d sessions queued, retrying "
                    "in %.0f s",
                    config.describe(),
                    _one_line(exc),
                    len(queue.sessions()),
                    wait * 2,
                )
                wait = min(wait * 2, 60.0)
                if lake is not None:
                    lake.close()
                lake = None
            await trio.sleep(wait)
    finally:
        if lake is not None:
            lake.close()


def _publish_and_note(lake: Lake, queue: PublishQueue, batch_size: int) -> list[Published]:
    batches = publish_queue(lake, queue, batch_size=batch_size)
    queue.attempted(None)
    return batches


def _one_line(exc: BaseException) -> str:
    """The first line of an error; the type's name too unless rtrec wrote the message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, RtrecError) and first else f"{type(exc).__name__}: {first}"
