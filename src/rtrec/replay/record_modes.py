"""Record modes for playback, with vcrpy's and pytest-recording's semantics, adapted to
WebSocket sessions: a "request" is a client event, an "episode" is a session, and the
"cassette" is a bundle, which holds exactly one session.

=============  ==================================================================
mode           what a connection gets, and what happens to the bundle
=============  ==================================================================
none           playback only; a missing bundle is an error (the CI default)
once           playback when the bundle exists; else every session is recorded
               from the upstream and written as the bundle
new_episodes   playback while the client matches the recording; where it leaves it,
               the live upstream answers (``episodes.py``), and the session as the
               client had it (recorded part + new exchange) replaces the bundle;
               a session that never left the recording changes nothing; a missing
               bundle is recorded as in ``once``
all            never plays back: every session is recorded from the upstream and
               replaces the bundle once it has ended (the old bundle stays until then)
rewrite        as ``all``
=============  ==================================================================

``all`` differs from vcrpy's (which keeps the old interactions in the cassette, unplayed,
and appends), because a bundle holds one session: keeping the old one beside the new one is
not possible, so the new one replaces it, and only once it has been recorded whole.
pytest-recording's ``rewrite`` deletes the cassette before the test; this one does not
(issue #21): a recording that fails would then have cost the good bundle, and the next run
in ``none`` would have nothing to play. So ``rewrite`` is ``all``, kept for the users who
know the name.

**A failed session is never a recording** (``session_problem``): a bundle is written only
from a session that completed its handshake and then closed normally: 1000, 1001 or no
status from the client, 1000 from the upstream, or the recorder's 1001 when the server
stops (the test, or ``rtrec replay --serve``, ended with the client still connected). A
handshake the upstream refused (401), an unreachable upstream, an upstream that closed with
1011, a client that vanished without a close frame (1006) or a recording that failed leave
the old bundle, if any, as it was, and ``write_bundle`` raises ``NotARecording`` naming the
cause.

Recording is the recorder's (``src/rtrec/recorder/proxy.py``): the client's URL is always a
``Recorder`` writing to a log, in front of either the upstream (``sim`` starts the
simulator) or, for new_episodes, the playback server whose fallthrough is that upstream. So
the log holds the session exactly as the client saw it, secrets redacted, and the bundle
is exported from it (``src/rtrec/store/bundle.py``). Replacing a bundle touches only its own files
(``session.json``, ``events.jsonl``, the FLACs it lists): a ``golden.json`` or a README
beside them stays.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import functools
import math
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
import trio

from rtrec.recorder.open_recorder import open_recorder
from rtrec.recorder.proxy import DEFAULT_UPSTREAM, ProxyOptions
from rtrec.recorder.redact import redact_path
from rtrec.replay import MemoryAudio, Replay, rebuild
from rtrec.replay.episodes import LiveUpstream
from rtrec.replay.playback import (
    PlaybackOptions,
    PlaybackReports,
    Recording,
    Send,
    load_recording,
    serve_playback,
)
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import Direction, LogMessage, SessionClose, SessionStatus, Stream
from rtrec.store.bundle import BUNDLE_FORMAT, BundleError, export_session, read_bundle
from rtrec.store.reader import LogAudio, read_sessions
from rtrec.store.writer import LogWriter
from rtrec.transport.tls import TlsServer

__all__ = [
    "DEFAULT_UPSTREAM",
    "Action",
    "BundleLocked",
    "BundleMissing",
    "Episodes",
    "NotARecording",
    "NotSeedable",
    "RecordMode",
    "bundle_lock",
    "choose",
    "describe_server",
    "is_bundle",
    "load_episodes",
    "prepare",
    "remove_bundle",
    "serve_record_mode",
    "session_problem",
    "temporary_log",
    "write_bundle",
]

_BUNDLE_FILES: Final = ("session.json", "events.jsonl")


class RecordMode(enum.StrEnum):
    """When a session is recorded rather than played back (module docstring)."""

    NONE = "none"
    ONCE = "once"
    NEW_EPISODES = "new_episodes"
    ALL = "all"
    REWRITE = "rewrite"

    @classmethod
    def parse(cls, text: str) -> RecordMode:
        """A mode by name.

        Raises:
            ValueError: not one of them (the message lists them).
        """
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"record mode {text!r}: give one of {names}") from None


class Action(enum.Enum):
    """What the server does with each connection."""

    PLAY = "play"  # the recording, nothing else
    RECORD = "record"  # the upstream, through the recorder
    EPISODES = "episodes"  # the recording, then the upstream where the client leaves it


class BundleMissing(RtrecError, FileNotFoundError):
    """Record mode none (or playback) was asked for a bundle that is not there."""


class NotARecording(RtrecError):
    """A session that failed (refused, unreachable, closed with an error) was to be written
    as a bundle; the message names the cause."""


class NotSeedable(RtrecError):
    """new_episodes was asked of a recording whose dialect a live upstream cannot be brought
    to (``episodes.py`` seeds Realtime conversations only)."""


#: The dialect families whose recorded conversation a live upstream can be seeded with
#: (``episodes.seed_items``). GPT-Live has no items: nothing can recreate its past speech.
SEEDABLE: Final = frozenset({"realtime"})


class BundleLocked(RtrecError, TimeoutError):
    """Another process held a bundle's lock for longer than the caller would wait."""


def is_bundle(path: Path) -> bool:
    """Whether ``path`` holds a bundle (its ``session.json``)."""
    return (path / "session.json").is_file()


def choose(mode: RecordMode, bundle: Path) -> Action:
    """What a server in ``mode`` does for ``bundle`` as it stands now.

    Raises:
        BundleMissing: mode none without the bundle (the message says how to record it).
    """
    exists = is_bundle(bundle)
    if mode is RecordMode.NONE:
        if not exists:
            raise BundleMissing(
                f"no bundle at {bundle}, and record mode none only plays back: record it "
                "with --record-mode once --upstream URL (or sim), or rtrec record + rtrec export"
            )
        return Action.PLAY
    if mode is RecordMode.ONCE:
        return Action.PLAY if exists else Action.RECORD
    if mode is RecordMode.NEW_EPISODES:
        return Action.EPISODES if exists else Action.RECORD
    return Action.RECORD


def prepare(mode: RecordMode, bundle: Path) -> Action:
    """``choose``, after checking that a mode that will replace ``bundle`` may: the files
    there must be a bundle's (or none). Nothing is deleted before a recording succeeds.

    Raises:
        BundleMissing: as ``choose``.
        BundleError: a recording mode, and ``bundle`` holds something that is not a bundle.
    """
    if mode is not RecordMode.NONE:
        _own_files(bundle)
    return choose(mode, bundle)


#: close codes after which a session is a recording, by who closed (module docstring)
_NORMAL_CLOSES: Final = {
    Direction.CLIENT.value: frozenset({1000, 1001, 1005}),
    Direction.SERVER.value: frozenset({1000}),
    Direction.RECORDER.value: frozenset({1001}),
}


def _detail(reason: str | None, key: str) -> str:
    """A field of the JSON detail the recorder stores as a failed handshake's reason."""
    try:
        detail = orjson.loads(reason or "")
    except orjson.JSONDecodeError:
        return reason or ""
    return str(detail.get(key, "")) if isinstance(detail, dict) else str(detail)


def session_problem(
    status: str, close_code: int | None, close_reason: str | None, closed_by: str | None
) -> str | None:
    """Why a session (its ``sessions`` row, or the recorder's ``SessionClose``) is not a
    recording, in a few words; None when it is one.

    >>> session_problem("rejected", None, '{"status": 401, "body": "no key"}', "server")
    'the upstream refused the handshake with HTTP 401: no key'
    """
    if status == SessionStatus.REJECTED:
        body = " ".join(_detail(close_reason, "body").split())[:200]
        status_code = _detail(close_reason, "status")
        return f"the upstream refused the handshake with HTTP {status_code}: {body}".rstrip(": ")
    if status == SessionStatus.FAILED and close_code is None:
        return _detail(close_reason, "error").removeprefix("rtrec: ") or "the upstream failed"
    if status in (SessionStatus.OPEN, SessionStatus.INTERRUPTED):
        return f"the session was {status} (the recorder stopped before it ended)"
    reason = f" ({close_reason})" if close_reason else ""
    if status == SessionStatus.FAILED:
        return f"the recording failed: closed with {close_code}{reason}"
    if close_code in _NORMAL_CLOSES.get(closed_by or "", frozenset()):
        return None
    who = {"client": "the client", "server": "the upstream"}.get(closed_by or "", "rtrec")
    return f"{who} closed the session with {close_code}{reason}"


@contextlib.contextmanager
def bundle_lock(bundle: Path, *, timeout: float) -> Iterator[None]:
    """Hold the lock of ``bundle``: a lock file beside it (``.NAME.rtrec-lock``), locked
    with ``flock``, so that processes sharing a bundle (pytest-xdist workers) record it one
    at a time. The file is removed on release, so no lock file is left to commit.

    Raises:
        BundleLocked: another process held it for ``timeout`` seconds.
    """
    bundle.parent.mkdir(parents=True, exist_ok=True)
    path = bundle.parent / f".{bundle.name}.rtrec-lock"
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BundleLocked(
                            f"{bundle}: another process held its lock ({path}) for {timeout:g} s"
                        ) from None
                    # polled: flock has no timeout, and a blocking one would ignore Ctrl-C
                    time.sleep(0.05)
            # The holder before us removes the file as it releases it; a lock on that
            # unlinked file excludes nobody, so lock the file now at the path instead.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _own_files(bundle: Path) -> list[Path]:
    """The files that belong to the bundle at ``bundle`` (none if there is none)."""
    manifest_path = bundle / "session.json"
    if not manifest_path.is_file():
        return []
    manifest = orjson.loads(manifest_path.read_bytes())
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path} is not an rtrec bundle manifest; not touching it")
    names = [*_BUNDLE_FILES, *(str(e["file"]) for e in manifest.get("audio_streams", []))]
    return [bundle / name for name in names if Path(name).name == name]


def remove_bundle(bundle: Path) -> None:
    """Delete the bundle's own files (nothing else in the directory); no bundle: nothing.

    Raises:
        BundleError: ``session.json`` is not a bundle manifest.
    """
    for path in _own_files(bundle):
        path.unlink(missing_ok=True)


def _server_frames(recording: Recording) -> list[str | bytes]:
    return [s.message for s in recording.steps if isinstance(s, Send)]


def write_bundle(
    db: Path, session_id: str, bundle: Path, *, unless_within: Recording | None = None
) -> bool:
    """Export a session of ``db`` as the bundle at ``bundle``, replacing its own files.

    Only a session that is a recording is written (``session_problem``). The export goes to
    a new directory beside ``bundle`` first and is flushed to disk; the old bundle's files
    are replaced only once it is complete, ``session.json`` last, so a reader sees the old
    bundle, no bundle, or the new one whole, never a mix. Blocking: call it from a worker
    thread in trio code.

    Args:
        db: the log.
        session_id: the session.
        bundle: the bundle directory (created if missing).
        unless_within: new_episodes: write nothing when every server frame the session got
            is the recording's, in order (the client never left it, or the upstream said
            nothing): there is no new episode.

    Returns:
        Whether the bundle was written.

    Raises:
        NotARecording: the session failed; the bundle is left as it was.
        SessionNotFound, BundleError: as ``export_session``.
    """
    for info in read_sessions(db, [session_id]):
        problem = session_problem(info.status, info.close_code, info.close_reason, info.closed_by)
        if problem is not None:
            raise NotARecording(f"{bundle} was not written: {problem}")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.rtrec-", dir=bundle.parent))
    try:
        export_session(db, session_id, work / "bundle")
        if unless_within is not None:
            got = _server_frames(load_recording(work / "bundle"))
            if got == _server_frames(unless_within)[: len(got)]:
                return False
        for path in (work / "bundle").iterdir():
            with path.open("rb") as staged:
                os.fsync(staged.fileno())
        bundle.mkdir(exist_ok=True)
        remove_bundle(bundle)
        # session.json last: a reader never sees a manifest naming files not there yet
        files = sorted((work / "bundle").iterdir(), key=lambda p: p.name == "session.json")
        for path in files:
            path.replace(bundle / path.name)
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def describe_server(mode: RecordMode, action: Action, upstream: str, bundle: Path, db: Path) -> str:
    """One line about a record-mode server, for the command line (secrets redacted)."""
    shown = redact_path(upstream)
    if action is Action.EPISODES:
        what = f"playing {bundle} back; where a client leaves it, {shown} answers"
    else:
        what = f"recording every session from {shown}"
    return f"rtrec {mode}: {what}, into {db} and then {bundle}"


# ---------------------------------------------------------------- serving


@attrs.frozen(eq=False)
class Episodes:
    """A bundle loaded for new_episodes: its playback steps, its conversation (to seed the
    upstream with) and its input audio, held in memory (the bundle may be replaced while
    the server runs)."""

    recording: Recording
    replay: Replay
    audio: MemoryAudio


def load_episodes(bundle: Path) -> Episodes:
    """Load ``bundle`` for new_episodes.

    Raises:
        BundleError: the bundle is damaged.
        NotSeedable: the bundle's dialect cannot be taken over by a live upstream.
    """
    recording = load_recording(bundle)
    if recording.dialect.family not in SEEDABLE:
        raise NotSeedable(
            f"record mode new_episodes: an upstream cannot take a {recording.protocol} "
            "recording over (nothing brings it to the recorded conversation); use none, "
            "once, all or rewrite"
        )
    contents = read_bundle(bundle)
    audio = MemoryAudio()
    with LogAudio(contents.streams) as archive:
        for info in contents.streams:
            if info.stream is Stream.INPUT:
                pcm = archive.samples(info.stream, info.sample_rate, 0, info.frames)
                audio.append(info.stream, info.sample_rate, pcm)
    return Episodes(recording, rebuild(contents.frames), audio)


async def _each_closed(
    closed: trio.MemoryReceiveChannel[str],
    writer: LogWriter,
    recorded: Callable[[str], Awaitable[None]],
) -> None:
    # Shielded: a session that ended is handed over even while the server stops; this
    # ends when the channel is closed, after the recorder has closed every session.
    with trio.CancelScope(shield=True):
        async for session_id in closed:
            await writer.flush()
            await recorded(session_id)


async def serve_record_mode(
    action: Action,
    *,
    mode: RecordMode,
    upstream: str,
    db: Path,
    episodes: Episodes | None = None,
    options: PlaybackOptions | None = None,
    reports: PlaybackReports | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    sim: dict[str, Any] | None = None,
    recorded: Callable[[str], Awaitable[None]] | None = None,
    on_close: Callable[[SessionClose], None] | None = None,
    stop: trio.Event | None = None,
    tls: TlsServer | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve clients through the recorder (``Action.RECORD``), or through the recorder in
    front of a playback server that falls through to the upstream (``Action.EPISODES``).

    Reports the recorder's base URL (``ws://HOST:PORT/v1``) through ``task_status``.

    Args:
        action: RECORD or EPISODES (PLAY needs no recorder: ``serve_playback``).
        mode: the record mode (tagged on every recorded session).
        upstream: the Realtime server's base URL, or ``sim`` for the built-in simulator.
        db: the log the sessions are recorded in.
        episodes: for EPISODES, the bundle loaded by ``load_episodes``.
        options: for EPISODES, how the recorded part is played.
        reports: for EPISODES, where each connection's playback report goes.
        host: the address to bind.
        port: 0 picks a free one.
        sim: keywords for ``serve_simulator`` when ``upstream`` is ``sim``.
        recorded: called with each session's id once it has ended and is committed.
        on_close: called (in this trio loop; it must not block) with each session's close
            as the recorder logs it, before the client learns of it (a refused or failed
            session included; ``session_problem`` says whether it is a recording).
        stop: when set, close every session, hand the last ones to ``recorded`` and
            return; without it, run until cancelled.
        tls: the recorder listens with TLS (``wss://``).
        task_status: trio's start protocol.

    Raises:
        LogInUse, NotAnRtrecLog, LogTooNew: ``db`` cannot be opened for writing.
        OSError: the address cannot be bound.
    """
    if action is Action.PLAY:
        raise ValueError("Action.PLAY is serve_playback's job")
    if action is Action.EPISODES and episodes is None:
        raise ValueError("Action.EPISODES needs the bundle's episodes (load_episodes)")
    tags = (("record_mode", mode.value), ("upstream", redact_path(upstream)))
    closed_send, closed_receive = trio.open_memory_channel[str](math.inf)

    def note_close(message: LogMessage) -> None:
        if isinstance(message, SessionClose):
            if on_close is not None:
                on_close(message)
            if recorded is not None:
                closed_send.send_nowait(message.session_id)  # unbounded: never blocks

    async def playback_in_front(nursery: trio.Nursery, target: str) -> str:
        assert episodes is not None  # checked above
        fallthrough = LiveUpstream(target, episodes.replay, episodes.audio)
        played = attrs.evolve(options or PlaybackOptions(), fallthrough=fallthrough)
        return str(
            await nursery.start(
                functools.partial(
                    serve_playback, episodes.recording, options=played, reports=reports
                )
            )
        )

    # Seed 1 for new_episodes: recordings from the simulator use seed 0, and the ids it
    # makes after the switch must not repeat theirs (the service's ids never repeat).
    given: dict[str, Any] = {"seed": 1} if action is Action.EPISODES else {}
    given.update(sim or {})
    async with (
        open_recorder(
            upstream,
            db=db,
            host=host,
            port=port,
            options=ProxyOptions(tags=tags),
            simulator=given if upstream == "sim" else None,
            interpose=playback_in_front if action is Action.EPISODES else None,
            tap=note_close if recorded is not None or on_close is not None else None,
            tls=tls,
        ) as recorder,
        trio.open_nursery() as outer,
    ):
        if recorded is not None:
            outer.start_soon(_each_closed, closed_receive, recorder.writer, recorded)
        with closed_send:
            try:
                task_status.started(recorder.url)
                if stop is None:
                    await trio.sleep_forever()
                else:
                    await stop.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await recorder.close_sessions()


@contextlib.contextmanager
def temporary_log() -> Iterator[Path]:
    """A log file in a new temporary directory, removed afterwards (the plugin's)."""
    work = Path(tempfile.mkdtemp(prefix="rtrec-record-"))
    try:
        yield work / "log.duckdb"
    finally:
        shutil.rmtree(work, ignore_errors=True)
