"""``rtrec replay`` and ``rtrec diff``: a recorded session's conversation, shown and checked.

CLI wiring: it joins the log reader and bundles (``rtrec.recorder``) with the pure replay
engine (``rtrec.replay``), which is why it lives in the package root. A SESSION is a bundle
directory (read in place, checked as ``rtrec import`` checks it, never modified) or a session
id or unique id prefix in the log given by ``--db``.

Exit codes follow diff(1), as every command's do (``rtrec.cli.common``): 0 equal (or
nothing compared), 1 different, 2 trouble (no such session, a damaged bundle, an unreadable
log).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click
import orjson

from rtrec.cli.common import (
    Exit,
    Trouble,
    console,
    is_path,
    output_width,
    require_log,
    trouble,
    wrap_hanging,
)
from rtrec.cli.drive import drive_options, run_drive, take_drive_options
from rtrec.cli.lake import lake_session
from rtrec.cli.options import db_option
from rtrec.cli.playback import playback_options, serve_session
from rtrec.replay import (
    GoldenStatus,
    Replay,
    canonical_json,
    check_golden,
    diff_conversations,
    rebuild,
    transcript,
)
from rtrec.replay.live import (
    LiveState,
    diff_live,
    fold_live,
    live_at,
    live_canonical,
    live_transcript,
)
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.storage import FrameRecord
from rtrec.store.bundle import BundleError, read_bundle
from rtrec.store.log import DEFAULT_DB, LogError
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frame_columns,
    read_frames,
    read_sessions,
    read_streams,
    resolve_session,
)

__all__ = ["LoadedSession", "diff_command", "load_session", "replay_command"]


@attrs.frozen
class LoadedSession:
    """A session's log rows folded into a ``Replay``, and its archived audio (open files:
    close ``audio``, a context manager, when done)."""

    #: the session id
    session_id: str
    #: where it came from: the bundle directory, or the log file
    source: str
    replay: Replay
    audio: LogAudio
    #: a GPT-Live session's state (its rows speak the Live dialect); None for Realtime
    live: LiveState | None = None


def load_session(ref: str | Path, db: Path | str = DEFAULT_DB) -> LoadedSession:
    """Rebuild one session from a bundle directory or from a log.

    Args:
        ref: a bundle directory, or a session id (or unique id prefix) in ``db``.
        db: the log to look ``ref`` up in when it is not a directory.

    Raises:
        BundleError: ``ref`` is a path but not a sound bundle directory.
        SessionNotFound: no single session of ``db`` matches ``ref``.
        LogError: the log cannot be read, or its rows are out of ``seq`` order.
    """
    path = Path(ref)
    if is_path(str(ref)):  # a path, never a session id
        if not path.is_dir():
            what = "a file" if path.exists() else "not there"
            raise BundleError(
                f"{ref} is {what}: give a bundle directory (with session.json), "
                "or a session id in the log"
            )
        bundle = read_bundle(path)
        replay = _rebuild(bundle.frames, f"{ref}/events.jsonl")
        live = fold_live(bundle.frames) if bundle.session.get("protocol") == "live" else None
        return LoadedSession(bundle.session_id, str(ref), replay, LogAudio(bundle.streams), live)
    # one open of the file for the three queries; the rows come as columns, which the
    # reducer folds without an object per row (docs/replay.md, Speed)
    with open_log_reader(db) as log, log.held():
        session_id = resolve_session(log, str(ref))
        frames = read_frame_columns(log, session_id)
        streams = read_streams(log, session_id)
        (info,) = read_sessions(log, [session_id])
        live = fold_live(read_frames(log, session_id)) if info.protocol == "live" else None
    replay = _rebuild(frames, f"{db}, session {session_id}")
    return LoadedSession(session_id, str(db), replay, LogAudio(streams), live)


def _rebuild(frames: Iterable[FrameRecord], source: str) -> Replay:
    try:
        return rebuild(frames)
    except ValueError as exc:  # rows out of order: a hand-edited bundle, say
        raise LogError(f"{source}: {exc}") from None


@contextmanager
def _loaded(ref: str, db: Path) -> Iterator[LoadedSession]:
    """``load_session`` for a command: trouble exits 2; the audio files close afterwards."""
    if not is_path(ref):
        require_log(db)
    with trouble():
        loaded = load_session(ref, db)
    with contextlib.closing(loaded.audio):
        yield loaded


_db_option = db_option("The log to look session ids up in (bundle directories need none).")


@click.command("replay")
@click.argument("session")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print the canonical state as JSON.")
@click.option(
    "--at",
    "at",
    metavar="SEQ|TIME",
    help="The state at a seq (120) or a time into the session (12.5s, 800ms).",
)
@click.option(
    "--stable-ids",
    is_flag=True,
    help="Replace generated ids with ordinals (item#1, resp#1, call#1) and leave out times, "
    "seqs and archive offsets, so that golden files do not churn.",
)
@click.option(
    "--golden",
    "golden",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Compare the canonical state with FILE: exit 0 if equal, 1 and a unified diff if not.",
)
@click.option("--update", is_flag=True, help="With --golden: write FILE instead of comparing.")
@click.option(
    "--serve",
    "serve",
    metavar="HOST:PORT",
    help="Serve SESSION as the server it was recorded from (Realtime or GPT-Live) for a "
    "client under test (see docs/playback.md); "
    "the base URL is printed first. The playback options below apply.",
)
@playback_options
@drive_options
@lake_session
def replay_command(
    session: str,
    db: Path,
    as_json: bool,
    at: str | None,
    stable_ids: bool,
    golden: Path | None,
    update: bool,
    serve: str | None,
    **playback: Any,
) -> None:
    """Rebuild SESSION's conversation and print it as a readable transcript, with --serve
    play it back to a client under test, or with --drive send its client side to a server
    and compare the new conversation with it.

    SESSION is a bundle directory or a session id (or unique prefix) in the log. Audio
    appears in --json and golden files as duration and a SHA-256 of its samples, read from
    the session's FLAC files.
    """
    drive = take_drive_options(playback)
    if drive is not None and serve is not None:
        raise click.UsageError(
            "--serve and --drive are exclusive: serve a client, or drive a server"
        )
    if drive is not None:
        run_drive(session, db, drive, pace=playback["pace"])
        return
    if serve is not None:
        serve_session(session, db, serve, **playback)
        return
    if update and golden is None:
        raise click.UsageError("--update needs --golden FILE")
    with _loaded(session, db) as loaded:
        state = loaded.replay.state
        if loaded.live is not None:  # GPT-Live: its own state and views (src/rtrec/replay/live.py)
            live = loaded.live
            if at is not None:
                _check_within(loaded.replay, at)
                try:
                    live = live_at(loaded.replay.records, at)
                except ValueError as exc:
                    raise click.BadParameter(str(exc), param_hint="--at") from None
            if golden is None and not as_json:
                text = live_transcript(live, ended=at is None)
                click.echo(wrap_hanging(text.rstrip("\n"), output_width(console())))
                return
            canonical = live_canonical(live)
            options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            text = orjson.dumps(canonical, option=options).decode() + "\n"
        else:
            if at is not None:
                _check_within(loaded.replay, at)
                try:
                    state = loaded.replay.at(at)
                except ValueError as exc:
                    raise click.BadParameter(str(exc), param_hint="--at") from None
            if golden is None and not as_json:
                text = transcript(state, stable_ids=stable_ids, times=not stable_ids, item_ids=True)
                click.echo(wrap_hanging(text.rstrip("\n"), output_width(console())))
                return
            try:
                text = canonical_json(state, stable_ids=stable_ids, audio=loaded.audio)
            except LookupError as exc:  # the archive lacks samples the log refers to
                raise Trouble(f"{loaded.source}: {exc}") from None
    if golden is None:
        click.echo(text, nl=False)
        return
    result = check_golden(text, golden, update=update)
    if result.status is GoldenStatus.EQUAL:
        click.echo(f"{golden}: equal")
    elif result.status is GoldenStatus.WRITTEN:
        click.echo(f"{golden}: written")
    else:
        click.echo(result.diff, nl=False)
        what = "missing" if result.status is GoldenStatus.MISSING else "different"
        click.echo(f"{golden}: {what} (rtrec replay ... --golden FILE --update rewrites it)")
        if not stable_ids and _has_stable_ids(golden):
            click.echo(
                f"hint: {golden} was written with --stable-ids (it holds item#1, resp#1); "
                "compare with --stable-ids too"
            )
        sys.exit(Exit.DIFFERENT)


def _check_within(replay: Replay, at: str) -> None:
    """Refuse an --at beyond the session's last seq or time: the state there would only be
    the final state, which is not what was asked for."""
    records = replay.records
    if isinstance(records, FrameColumns):
        last_seq, last_ns = max(records.seq, default=0), max(records.t_ns, default=0)
    else:
        last_seq = max((r.seq for r in records), default=0)
        last_ns = max((r.t_ns for r in records), default=0)
    last_s = last_ns / 1e9
    text = at.strip()
    if text.isdigit():
        if int(text) > last_seq:
            raise click.BadParameter(
                f"seq {text} is past the session's last seq, {last_seq} (at {last_s:.3f}s)",
                param_hint="--at",
            )
        return
    number = text.removesuffix("ms").removesuffix("s").strip()
    try:
        seconds = float(number) / (1000 if text.endswith("ms") else 1)
    except ValueError:
        return  # Replay.at names the problem
    if seconds > last_s:
        raise click.BadParameter(
            f"{text} is past the session's end, {last_s:.3f}s (seq {last_seq})",
            param_hint="--at",
        )


def _has_stable_ids(golden: Path) -> bool:
    """Whether a golden file was written with --stable-ids."""
    try:
        text = golden.read_text(encoding="utf-8")
    except OSError:
        return False
    return '"item#1"' in text or '"resp#1"' in text


@click.command("diff")
@click.argument("a")
@click.argument("b")
@_db_option
def diff_command(a: str, b: str, db: Path) -> None:
    """Compare the conversations of sessions A and B; exit 0 if equal, 1 if not.

    A and B are bundle directories or session ids (or unique prefixes) in the log. Items
    in order, roles, texts and heard transcripts, truncations, calls with their arguments
    and outputs, and response and item statuses are compared; ids, times, audio offsets and
    token counts are not. Two GPT-Live sessions compare by their settings, what each
    speaker said, the context appends, the delegations with their calls, the errors and
    how they ended.
    """
    with _loaded(a, db) as one, _loaded(b, db) as two:
        if one.live is not None and two.live is not None:
            result = diff_live(one.live, two.live)
        elif one.live is not None or two.live is not None:
            live, other = (a, b) if one.live is not None else (b, a)
            raise Trouble(
                f"{live} is a GPT-Live session and {other} a Realtime one: "
                "rtrec diff compares sessions of one protocol"
            )
        else:
            result = diff_conversations(one.replay.state, two.replay.state)
    click.echo(result.report(a, b), nl=False)
    if not result.equal:
        sys.exit(Exit.DIFFERENT)
