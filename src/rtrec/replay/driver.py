"""The driver: a recorded session's client side sent to a live or simulated server, and the
new exchange recorded as a new session of the log.

    plan, audio = load_plan(Path("fixtures/sessions/function_call"))   # or (log, session id)
    with audio:
        result = await drive_session(plan, audio, upstream=url, db=Path("rtrec.duckdb"))
    result.session_id        # the new session; ``rtrec diff`` compares it with the old one

Each recorded client frame is rebuilt byte for byte (audio read back from the FLAC archive
and re-encoded as the recording had it, PCM16 or G.711, in the recorded chunks), waits for
what the recording shows it depended on (``drive_plan.py``: milestones, server-chosen ids,
heard audio), has those ids rewritten to the ones the new server chose, and goes out at the
recorded pace: the recorded gap after the later of the previous client frame and the server
event that released it (scaled, or none at ``instant``). A wait that lasts longer than
``wait_timeout`` ends the drive with a message naming what was awaited.

A wait also ends when what it waits for can no longer come: the new conversation took
another shape (the model did not call the function). The server is then idle
(``Progress.pending``: no response in progress, no speech being heard, no VAD turn without
its response, no input transcription outstanding) and has been quiet, as has the driver,
for ``idle_grace`` seconds. The drive stops there (``DriveReport.stalled``) and the session
is closed as usual: a finding about the new server, not trouble.

Why through a ``Recorder``: the new session is recorded by the same proxy that records any
session (``rtrec record``), in-process on 127.0.0.1 in front of the upstream, writing to the
log through the one log writer. So the new session is exactly what recording a real client
would have given: seq order as the proxy saw it, audio in FLAC, headers and key redacted,
closes mirrored. Writing records from the driver itself would duplicate the capture rules
and could drift from them. The cost is one loopback hop.

WebSocket settings: the client side uses ``src/rtrec/transport/ws.py`` (the project's one socket
layer; reads of 64 KiB) with ``max_message_size`` 32 MiB, as the playback server and the
simulator (a 15 MiB append is 20 MiB of base64). There is no message queue: one reader task
drains the socket and only updates counters (``Progress``), so a server is never slowed
down by the driver.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs
import trio

from rtrec.recorder.open_recorder import open_recorder
from rtrec.recorder.proxy import ProxyOptions
from rtrec.replay.drive_plan import (
    ClientStep,
    DrivePlan,
    Progress,
    Wait,
    compile_plan,
    rewrite_ids,
)
from rtrec.replay.playback import Pace
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import FrameRecord, LogMessage, SessionRecord
from rtrec.store.bundle import read_bundle
from rtrec.store.reader import (
    AudioSource,
    LogAudio,
    read_frames,
    read_sessions,
    rebuild_frame,
    resolve_session,
)
from rtrec.transport.ws import Closed, HandshakeRejected, WebSocket, connect

__all__ = [
    "MAX_MESSAGE_SIZE",
    "DriveError",
    "DriveOptions",
    "DriveReport",
    "DriveResult",
    "DriveStalled",
    "DriveTimeout",
    "drive",
    "drive_session",
    "load_frames",
    "load_plan",
    "plan_for",
]

#: Largest message either way, as the playback server and the simulator allow.
MAX_MESSAGE_SIZE: Final = 32 * 2**20
#: The tag the new session carries: the id of the session it re-drives.
DRIVE_TAG: Final = "rtrec.drive_of"
#: Recorded client messages rebuilt ahead of sending (64 appends of 100 ms are ~0.8 MB).
REBUILD_AHEAD: Final = 64
_UNSENDABLE: Final = {1005: 1000, 1006: 1000, 1015: 1000}
_REDACTED: Final = "[REDACTED]"


class DriveError(RtrecError):
    """The drive could not go on; the message says what was awaited or what broke."""


class DriveTimeout(DriveError, TimeoutError):
    """A wait for the server lasted longer than ``wait_timeout``."""


class DriveStalled(DriveError):
    """What a step waits for can no longer come: the server went idle without it."""

    def __init__(self, awaited: str, grace: float) -> None:
        super().__init__(
            f"the server went idle ({grace:g} s quiet) while the driver waited for {awaited}"
        )
        self.awaited = awaited


@attrs.frozen(kw_only=True)
class DriveOptions:
    """How a recording is driven."""

    #: recorded gaps between client frames: 1.0 as recorded, 2.0 twice as fast, inf at once
    pace: Pace = Pace(1.0)  # noqa: RUF009 (Pace is frozen: one shared default is safe)
    #: the longest one wait for the server may last, seconds
    wait_timeout: float = 60.0
    #: how long an idle server (``Progress.pending`` None) and the driver must both have
    #: been quiet before a wait gives up on what can no longer come, seconds
    idle_grace: float = 2.0
    #: a model to ask for instead of the recorded one (the ``model`` query parameter)
    model: str | None = None
    max_message_size: int = MAX_MESSAGE_SIZE
    #: how long closing waits for the server's close frame
    close_linger: float = 2.0
    #: called with (client frames sent, frames to send) after each send: a progress bar
    on_sent: Callable[[int, int], None] | None = attrs.field(default=None, eq=False)


@attrs.define
class DriveReport:
    """What happened while driving."""

    #: recorded client frames sent
    sent: int = 0
    #: steps that had to wait for the server
    waited: int = 0
    #: ids rewritten in the frames sent (recorded -> new)
    rewritten: dict[str, str] = attrs.Factory(dict)
    #: why the drive stopped early (None: every recorded client frame went out)
    failure: str | None = None
    #: why the drive stopped when the server went idle without what a step waited for
    #: (None: it did not); ``unsent`` names the recorded client frames it left out
    stalled: str | None = None
    #: the recorded client frames not sent after a stall (``ClientStep.describe``)
    unsent: list[str] = attrs.Factory(list)
    #: how the connection closed: (code, reason, who) with who "client" or "server"
    close: tuple[int, str, str] | None = None
    #: things worth saying that did not stop the drive
    notes: list[str] = attrs.Factory(list)
    #: the new run's server side
    progress: Progress = attrs.Factory(Progress)

    @property
    def errors(self) -> list[Mapping[str, Any]]:
        """The ``error`` events the new server sent."""
        return self.progress.errors

    def not_sent(self) -> str | None:
        """One line saying which recorded client frames a stall left out and why (None:
        the drive did not stall)."""
        if self.stalled is None:
            return None
        if not self.unsent:
            return f"every recorded client frame was sent; then {self.stalled} before the close"
        n = len(self.unsent)
        frames = f"{n} recorded client frame{'s' if n > 1 else ''}"
        shown = ", ".join(self.unsent[:3]) + (", ..." if n > 3 else "")
        return f"not sent: {frames}, {shown}; {self.stalled}"


@attrs.frozen
class DriveResult:
    """A drive and the session it recorded (None if the recorder never opened one)."""

    session_id: str | None
    report: DriveReport


# ---------------------------------------------------------------- loading


def load_plan(source: Path | str, session: str | None = None) -> tuple[DrivePlan, LogAudio]:
    """A recorded session's plan and its audio archive (close it when done).

    Args:
        source: a bundle directory, or a log file.
        session: for a log, the session id or a unique prefix of it; None for a bundle.

    Raises:
        BundleError: ``source`` is not a sound bundle directory (and ``session`` is None).
        SessionNotFound: no single session of the log matches ``session``.
    """
    frames, row, audio = load_frames(source, session)
    return plan_for(frames, row), audio


def plan_for(frames: Sequence[FrameRecord], row: Mapping[str, Any]) -> DrivePlan:
    """The plan of a session's rows and its session row (``load_frames``)."""
    return compile_plan(
        frames,
        session_id=str(row["session_id"]),
        protocol=str(row["protocol"]),
        request_path=str(row["request_path"]),
        request_headers=str(row["request_headers"]),
        closed_by=row["closed_by"],
        close_code=row["close_code"],
        close_reason=row["close_reason"],
    )


def load_frames(
    source: Path | str, session: str | None = None
) -> tuple[tuple[FrameRecord, ...], dict[str, Any], LogAudio]:
    """A recorded session's rows, its session row (as ``session.json`` names the fields)
    and its audio archive, from a bundle directory or a log (see ``load_plan``)."""
    source = Path(source)
    if session is None:  # a bundle; read_bundle says what is wrong with anything else
        bundle = read_bundle(source)
        return bundle.frames, dict(bundle.session), LogAudio(bundle.streams)
    sid = resolve_session(source, session)
    (info,) = read_sessions(source, [sid])
    row = attrs.asdict(info)
    return tuple(read_frames(source, sid)), row, LogAudio.of_session(source, sid)


# ---------------------------------------------------------------- one drive


def session_url(base: str, request_path: str, model: str | None = None) -> str:
    """The URL to open for a recorded handshake's path under ``base`` (``ws://HOST/v1``):
    the recorded path and query, with redacted query values dropped and ``model``
    replaced when given."""
    parts = urlsplit(request_path)
    path = parts.path[len("/v1") :] if parts.path.startswith("/v1") else parts.path
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if _REDACTED not in v]
    if model is not None:
        query = [(k, v) for k, v in query if k != "model"] + [("model", model)]
    tail = f"?{urlencode(query)}" if query else ""
    return f"{base.rstrip('/')}{path}{tail}"


class _Run:
    """One drive over one open connection."""

    def __init__(
        self,
        plan: DrivePlan,
        ws: WebSocket,
        audio: AudioSource,
        options: DriveOptions,
        report: DriveReport,
    ) -> None:
        self.plan = plan
        self.ws = ws
        self.audio = audio
        self.options = options
        self.report = report
        self.progress = report.progress
        self.changed = trio.Event()
        self.closed: Closed | None = None
        self.t0 = trio.current_time()
        #: when the server last sent or the driver last sent (the idle grace runs from it)
        self.active = self.t0
        self.received = 0
        # the pace is anchored on the previous send's target time, so lateness never
        # accumulates along a run of appends (as in playback)
        self.anchor = self.t0
        self.anchor_t = plan.start_t

    # -- the server side

    async def read(self) -> None:
        """Drain the server's messages into ``progress`` until the connection closes."""
        try:
            while True:
                message = await self.ws.receive()
                self.received += 1
                self.active = trio.current_time()
                t = round((trio.current_time() - self.t0) * 1e9)
                self.progress.feed_message(message, t, self.received)
                self._wake()
        except Closed as closed:
            self.closed = closed
            self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- waiting and pacing

    def _unmet(self, waits: Sequence[Wait]) -> list[Wait]:
        return [w for w in waits if w.met_at(self.progress) is None]

    async def _wait(self, waits: Sequence[Wait], before: str) -> None:
        unmet = self._unmet(waits)
        if not unmet:
            return
        self.report.waited += 1
        timeout, grace = self.options.wait_timeout, self.options.idle_grace
        with trio.move_on_after(timeout):
            while unmet:
                if self.closed is not None:
                    raise DriveError(
                        f"the server closed the session ({self.closed.code} "
                        f"{self.closed.reason}".rstrip()
                        + f") while the driver waited for {unmet[0].describe()} "
                        f"before sending {before}"
                    )
                if self.progress.pending() is None:
                    # idle: only a server event can change that, and it wakes us
                    quiet_until = self.active + grace
                    if trio.current_time() >= quiet_until:
                        raise DriveStalled(unmet[0].describe(), grace)
                    with trio.move_on_at(quiet_until):
                        await self.changed.wait()
                else:
                    await self.changed.wait()
                unmet = self._unmet(waits)
            return
        more = f" (and {len(unmet) - 1} more)" if len(unmet) > 1 else ""
        raise DriveTimeout(
            f"waited {timeout:g} s for {unmet[0].describe()}{more} before sending {before}"
        )

    def _target(self, t_ns: int, waits: Sequence[Wait]) -> float:
        speed = self.options.pace.speed
        if math.isinf(speed):
            return trio.current_time()
        target = self.anchor + max(t_ns - self.anchor_t, 0) / 1e9 / speed
        # The server event that released this step is the latest one it waited for in the
        # recording; older ones are not anchors (a server that is faster between them than
        # the recorded one must not delay the client by the difference).
        latest = max(waits, key=lambda w: w.recorded_seq, default=None)
        met = None if latest is None else latest.met_at(self.progress)
        if latest is not None and met is not None:
            released = self.t0 + met / 1e9
            target = max(target, released + max(t_ns - latest.recorded_t, 0) / 1e9 / speed)
        return target

    async def _pace(self, t_ns: int, waits: Sequence[Wait]) -> None:
        target = self._target(t_ns, waits)
        await trio.sleep_until(target)
        self.anchor, self.anchor_t = target, t_ns

    # -- the client side

    async def _rebuild(self, steps: Sequence[ClientStep]) -> list[str | bytes]:
        """The recorded messages of ``steps``, audio read back from the archive in a worker
        thread (one thread hop for many appends: reading FLAC blocks)."""
        frames = [s.frame for s in steps]
        if not any(f.audio is not None and f.audio.samples for f in frames):
            return [rebuild_frame(f, self.audio) for f in frames]  # no file I/O
        return await trio.to_thread.run_sync(lambda: [rebuild_frame(f, self.audio) for f in frames])

    async def run(self) -> None:
        """Send every recorded client frame in turn, then close as the recording did."""
        steps = self.plan.steps
        ahead: deque[str | bytes] = deque()
        for index, step in enumerate(steps):
            # rebuilt before waiting, so that the send itself is on time
            if not ahead:
                ahead.extend(await self._rebuild(steps[index : index + REBUILD_AHEAD]))
            message = ahead.popleft()
            try:
                await self._wait(step.waits, step.describe())
            except DriveStalled:
                self.report.unsent = [s.describe() for s in steps[index:]]
                raise
            await self._pace(step.t_ns, step.waits)
            out = rewrite_ids(message, step.ids, self.progress)
            for old, kind, rank in step.ids:
                new = self.progress.id_at(kind, rank)
                if new is not None and new != old:
                    self.report.rewritten[old] = new
            try:
                await self.ws.send(out)
                self.active = trio.current_time()
            except Closed as closed:
                raise DriveError(
                    f"the server closed the session ({closed.code} {closed.reason}".rstrip()
                    + f") before {step.describe()} was sent"
                ) from None
            self.report.sent += 1
            if self.options.on_sent is not None:
                self.options.on_sent(self.report.sent, len(steps))
        end = self.plan.end
        await self._wait(end.waits, "the close")
        await self._pace(end.t_ns, end.waits)

    async def await_server_close(self) -> None:
        """When the recorded server closed the session: wait (up to ``wait_timeout``) for
        this one to close it too."""
        end = self.plan.end
        with trio.move_on_after(self.options.wait_timeout):
            while self.closed is None:
                await self.changed.wait()
        if self.closed is None:
            self.report.notes.append(
                f"the recorded server closed the session ({end.code} {end.reason}".rstrip()
                + f"); this one did not within {self.options.wait_timeout:g} s, so the "
                "driver closed it"
            )

    async def close(self) -> None:
        """Close as the recording ended: with the recorded code and reason when the client
        closed it (else 1000), after a failure with 1000 and the failure as the reason."""
        end, report = self.plan.end, self.report
        if self.closed is not None:
            report.close = (self.closed.code, self.closed.reason, "server")
            await self.ws.close(linger=self.options.close_linger)
            return
        if report.failure is not None or report.stalled is not None:
            code, reason = 1000, _fit(f"rtrec drive: {report.failure or report.stalled}")
        elif end.closed_by == "client" and end.code is not None:
            code, reason = _UNSENDABLE.get(end.code, end.code), end.reason
        else:
            code, reason = 1000, ""
        report.close = (code, reason, "client")
        await self.ws.close(code, reason, linger=self.options.close_linger)


def _fit(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


async def drive(
    plan: DrivePlan,
    url: str,
    audio: AudioSource,
    *,
    api_key: str,
    options: DriveOptions | None = None,
) -> DriveReport:
    """Drive ``plan`` against the server at ``url`` (a base URL, ``ws://HOST/v1``), in the
    recording's dialect (Realtime or GPT-Live: the recorded path is appended).

    Failures that end the drive early (a timeout, the server closing, a rejected handshake)
    are in ``report.failure``, never raised: what was sent until then still counts. A
    server that went idle without what a step waited for ends it too, in
    ``report.stalled`` and ``report.unsent``.

    Args:
        plan: from ``load_plan`` or ``compile_plan``.
        url: the server's base URL; the recorded path and query are appended.
        audio: the recording's audio archive (``LogAudio``).
        api_key: sent as ``Authorization: Bearer``; never written anywhere by the driver.
        options: pace, timeouts, model.
    """
    options = options or DriveOptions()
    report = DriveReport(progress=plan.progress())
    if options.model is not None and not plan.dialect.model_in_query:
        report.failure = (
            f"a {plan.dialect.name} session names its model in its first client event, not "
            "in the URL: DriveOptions.model applies to Realtime recordings"
        )
        return report
    headers = [*plan.headers, ("Authorization", f"Bearer {api_key}")]
    target = session_url(url, plan.request_path, options.model)
    try:
        with trio.fail_after(options.wait_timeout):
            ws = await connect(
                target,
                subprotocols=plan.subprotocols,
                headers=headers,
                max_size=options.max_message_size,
            )
    except HandshakeRejected as exc:
        body = exc.body.decode("utf-8", "replace").strip()
        report.failure = f"the server rejected the handshake: {exc.status} {exc.reason_phrase}"
        report.failure += f": {body[:500]}" if body else ""
        return report
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        report.failure = f"cannot connect to {url}: {type(exc).__name__}: {exc}"
        return report
    run = _Run(plan, ws, audio, options, report)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.read)
            try:
                await run.run()
            except DriveStalled as exc:
                report.stalled = str(exc)
            except DriveError as exc:
                report.failure = str(exc)
            if report.failure is None and report.stalled is None and plan.end.closed_by == "server":
                await run.await_server_close()
            # the reader stops here: close() reads the socket itself
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await run.close()
    return report


# ---------------------------------------------------------------- recording the drive


async def drive_session(
    plan: DrivePlan,
    audio: AudioSource,
    *,
    upstream: str,
    db: Path,
    api_key: str,
    options: DriveOptions | None = None,
    audio_dir: Path | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> DriveResult:
    """Drive ``plan`` against ``upstream`` through an in-process recorder writing to ``db``.

    The new session is tagged ``rtrec.drive_of=<the recorded session id>`` (and ``tags``).

    Args:
        plan: the recording to drive.
        audio: its audio archive.
        upstream: the Realtime server's base URL (``wss://api.openai.com/v1``, a simulator).
        db: the log to record into (created if missing; it must not be held by a running
            ``rtrec record``).
        api_key: the key for the upstream; the recorder redacts it before anything is written.
        options: pace, timeouts, model.
        audio_dir: where the new session's FLAC files go (default: the log's).
        tags: more tags for the new session.

    Raises:
        LogInUse, NotAnRtrecLog, LogTooNew: the log cannot be opened for writing.
    """
    options = options or DriveOptions()
    session_ids: list[str] = []

    def note_session(message: LogMessage) -> None:
        if isinstance(message, SessionRecord):
            session_ids.append(message.session_id)

    proxy = ProxyOptions(
        max_message_size=options.max_message_size,
        connect_timeout=options.wait_timeout,
        close_linger=options.close_linger,
        tags=((DRIVE_TAG, plan.session_id), *tags),
    )
    async with open_recorder(
        upstream, db=db, audio_dir=audio_dir, options=proxy, tap=note_session
    ) as recorder:
        report = await drive(plan, recorder.url, audio, api_key=api_key, options=options)
    return DriveResult(session_ids[0] if session_ids else None, report)
