"""Bundles: one session as a portable directory, and back into a log, byte for byte.

A bundle is what goes into git as a fixture: text that diffs, audio any player opens.

- ``session.json``: the bundle format and version, the session row, the number of events
  and the SHA-256 of ``events.jsonl``, and one entry per FLAC (stream, sample rate, file
  name, frames, SHA-256);
- ``events.jsonl``: one frame per line, in ``seq`` order: every ``FrameRecord`` field but
  the session id, the payload with its audio cut out exactly as in the log;
- ``input.flac``, ``output.flac`` (and ``input-8000.flac`` ... for other sample rates).

Importing checks everything before writing anything: the format, every line, the events'
count and checksum (bundles written before they were recorded are checked line by line
only), every file's checksum and length, and that every frame's audio lies inside its file.
Importing a session the log already holds is a no-op when the two are the same (events and
audio), and an error naming both when they differ.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import duckdb
import orjson

from rtrec._version import __version__
from rtrec.schemas.errors import describe_error
from rtrec.schemas.storage import SCHEMA_VERSION, FrameRecord, SessionStatus, Stream
from rtrec.store.audio import read_flac, sha256_file, write_flac
from rtrec.store.log import LogError, OpenReport, open_log, stored_path
from rtrec.store.reader import (
    LogReader,
    StreamInfo,
    read_frames,
    read_streams,
    resolve_session,
)
from rtrec.store.rows import (
    FRAME_COLUMNS,
    frame_from_json,
    frame_to_json,
    frames_from_arrow,
    frames_to_arrow,
    timestamp,
)

__all__ = [
    "BUNDLE_VERSION",
    "AlreadyImported",
    "BundleContents",
    "BundleError",
    "ExportResult",
    "ImportResult",
    "export_session",
    "import_bundle",
    "import_bundles",
    "read_bundle",
]

BUNDLE_FORMAT: Final = "rtrec-bundle"
BUNDLE_VERSION: Final = 1
_SESSION_FIELDS: Final = (
    "session_id",
    "upstream_url",
    "request_path",
    "model",
    "protocol",
    "request_headers",
    "subprotocol",
    "status",
    "close_code",
    "close_reason",
    "closed_by",
    "tags",
    "rtrec_version",
)


class BundleError(LogError):
    """A bundle cannot be written or read as asked (the message says which file and why)."""


class AlreadyImported(BundleError):
    """The log already holds this very session (the same events and audio): a no-op."""


@attrs.frozen
class ExportResult:
    """What ``export_session`` wrote."""

    session_id: str
    out_dir: Path
    events: int
    files: tuple[Path, ...]

    @property
    def size(self) -> int:
        """Bytes of the bundle on disk."""
        return sum(p.stat().st_size for p in self.files)


def _session_row(reader: LogReader, session_id: str) -> dict[str, Any]:
    rows = reader.rows(
        "SELECT *, epoch_us(started_at) AS started_us, epoch_us(ended_at) AS ended_us "
        "FROM sessions WHERE session_id = ?",
        [session_id],
    )
    row = rows[0]
    session = {name: row[name] for name in _SESSION_FIELDS}
    session["started_ns"] = row["started_us"] * 1000
    session["ended_ns"] = None if row["ended_us"] is None else row["ended_us"] * 1000
    return session


def export_session(log: LogReader | Path | str, session: str, out_dir: Path) -> ExportResult:
    """Write one session of a log (live ones too) as a bundle in ``out_dir``.

    Args:
        log: the log, or a reader of it.
        session: the session id or a unique prefix of it.
        out_dir: created if missing; must be empty if it exists.

    Raises:
        SessionNotFound: no single session matches ``session``.
        BundleError: ``out_dir`` is not empty.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BundleError(f"{out_dir} is not empty; export into a new or empty directory")
    reader = log if isinstance(log, LogReader) else LogReader(Path(log))
    session_id = resolve_session(reader, session)
    row = _session_row(reader, session_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Frames first, then audio: for a live session the audio can only be ahead of them.
    events = 0
    digest = hashlib.sha256()
    with (out_dir / "events.jsonl").open("wb") as f:
        for frame in read_frames(reader, session_id):
            line = orjson.dumps(frame_to_json(frame)) + b"\n"
            f.write(line)
            digest.update(line)
            events += 1
    streams = []
    files = [out_dir / "events.jsonl"]
    for info in read_streams(reader, session_id):
        target = out_dir / info.path.name
        if info.sha256 is not None and sha256_file(info.path) == info.sha256:
            shutil.copyfile(info.path, target)
            frames = info.frames
        else:  # still being written (or damaged): write what it holds as a complete FLAC
            samples, _, _ = read_flac(info.path)
            write_flac(target, samples, info.sample_rate)
            frames = len(samples)
        streams.append(
            {
                "stream": info.stream.value,
                "sample_rate": info.sample_rate,
                "file": target.name,
                "frames": frames,
                "sha256": sha256_file(target),
            }
        )
        files.append(target)
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "exported_by": f"rtrec {__version__}",
        "session": row,
        "events": {"count": events, "sha256": digest.hexdigest()},
        "audio_streams": streams,
    }
    (out_dir / "session.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    )
    files.insert(0, out_dir / "session.json")
    return ExportResult(session_id, out_dir, events, tuple(files))


def _load_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / "session.json"
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{bundle} is not a bundle: it has no session.json") from None
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{path}: not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not an rtrec bundle manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{path} is bundle version {manifest.get('version')}; this rtrec reads "
            f"version {BUNDLE_VERSION}"
        )
    return manifest


def _load_frames(bundle: Path, session_id: str) -> Iterator[FrameRecord]:
    path = bundle / "events.jsonl"
    try:
        lines = path.open("rb")
    except FileNotFoundError:
        raise BundleError(f"{bundle} has no events.jsonl") from None
    with lines:
        for number, line in enumerate(lines, start=1):
            try:
                yield frame_from_json(session_id, orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
                raise BundleError(f"{path}:{number}: not an event line: {exc!r}") from None


def _check_events(bundle: Path, expected: Any, count: int) -> None:
    """``events.jsonl`` against the count and SHA-256 in ``session.json`` (when it has them:
    bundles exported before they were recorded are only checked line by line)."""
    if expected is None:
        return
    manifest = bundle / "session.json"
    if not isinstance(expected, dict) or not isinstance(expected.get("count"), int):
        raise BundleError(f'{manifest}: \'events\' must be {{"count": int, "sha256": str}}')
    digest = sha256_file(bundle / "events.jsonl")
    if count != expected["count"] or digest != expected.get("sha256"):
        raise BundleError(
            f"{bundle / 'events.jsonl'} holds {count} events (sha256 {digest[:12]}...) but "
            f"session.json says {expected['count']} (sha256 {str(expected.get('sha256'))[:12]}"
            "...): the bundle was changed or cut short after export; nothing was imported"
        )


def _events_digest(frames: Iterable[FrameRecord]) -> str:
    """The SHA-256 of the ``events.jsonl`` that ``frames`` export as."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(orjson.dumps(frame_to_json(frame)) + b"\n")
    return digest.hexdigest()


@attrs.frozen
class BundleContents:
    """A bundle read and checked (``read_bundle``), without a log.

    ``streams`` point at the bundle's own FLAC files, so ``LogAudio(contents.streams)``
    reads its samples.
    """

    session_id: str
    #: the session row as ``session.json`` holds it
    session: dict[str, Any]
    frames: tuple[FrameRecord, ...]
    streams: tuple[StreamInfo, ...]


def read_bundle(bundle: Path | str) -> BundleContents:
    """Read a bundle directory and check it as ``import_bundle`` does, writing nothing.

    Raises:
        BundleError: the bundle is damaged or inconsistent (the message names the file).
    """
    bundle = Path(bundle)
    manifest = _load_manifest(bundle)
    found = manifest.get("session")
    session: dict[str, Any] = found if isinstance(found, dict) else {}
    missing = [k for k in (*_SESSION_FIELDS, "started_ns", "ended_ns") if k not in session]
    if not isinstance(manifest.get("audio_streams"), list):
        missing.append("audio_streams")
    if missing:
        raise BundleError(f"{bundle / 'session.json'} lacks {', '.join(missing)}")
    session_id = str(session["session_id"])
    frames = tuple(_load_frames(bundle, session_id))
    _check_events(bundle, manifest.get("events"), len(frames))
    streams: list[StreamInfo] = []
    extent: dict[tuple[Stream, int], int] = {}
    for entry in manifest["audio_streams"]:
        key = (Stream(entry["stream"]), int(entry["sample_rate"]))
        path = bundle / str(entry["file"])
        if not path.is_file():
            raise BundleError(f"{path} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise BundleError(f"{path} does not match its checksum in session.json")
        extent[key] = int(entry["frames"])
        streams.append(
            StreamInfo(session_id, *key, path, int(entry["frames"]), str(entry["sha256"]))
        )
    for frame in frames:
        span = frame.audio
        if span is None or span.samples == 0:
            continue
        have = extent.get((span.stream, span.sample_rate), 0)
        if span.offset + span.samples > have:
            raise BundleError(
                f"frame {frame.seq} needs {span.stream} samples up to "
                f"{span.offset + span.samples} at {span.sample_rate} Hz; the bundle has {have}"
            )
    return BundleContents(session_id, session, frames, tuple(streams))


def import_bundle(db_path: Path, bundle: Path, audio_dir: Path | None = None) -> str:
    """Load a bundle into a log (created if missing); returns the session id.

    Needs the log file itself: stop a recorder writing it first.

    The log holding the very same session already (events and audio) is no error: nothing
    is done and its id is returned.

    Raises:
        BundleError: the bundle is damaged or inconsistent, or the log holds a different
            session with its id.
        LogInUse: a recorder holds the log.
    """
    contents = read_bundle(bundle)  # checked before the log is even opened
    con, report = open_log(Path(db_path), audio_dir, version=__version__)
    try:
        return _import_into(con, Path(db_path), report.audio_dir, contents, Path(bundle))
    except AlreadyImported:
        return contents.session_id
    finally:
        con.close()


@attrs.frozen
class ImportResult:
    """What ``import_bundles`` did with one bundle."""

    bundle: Path
    #: the session imported; None when nothing was imported
    session_id: str | None = None
    #: why nothing was imported (a damaged bundle, a session already in the log, ...)
    error: str | None = None
    #: imported, but ``on_imported`` failed on it (what it raised)
    hook_error: str | None = None
    #: the log already held this very session: nothing was done, and nothing is wrong
    already: bool = False


def import_bundles(
    db_path: Path,
    bundles: Sequence[Path],
    audio_dir: Path | None = None,
    *,
    on_imported: Callable[[duckdb.DuckDBPyConnection, str], object] | None = None,
    progress: Callable[[ImportResult], None] | None = None,
) -> list[ImportResult]:
    """Load many bundles into a log opened once; a bundle that fails does not stop the rest.

    Each bundle is checked and loaded as ``import_bundle`` does, in its own transaction;
    the log is opened (or created) when the first bundle has passed its checks.

    Args:
        db_path: the log (created if missing).
        bundles: bundle directories, imported in this order.
        audio_dir: as for ``import_bundle``.
        on_imported: called with the log's connection and the session id after each
            bundle is committed (the CLI indexes the session with it); what it raises is
            kept in ``hook_error`` and the session stays imported.
        progress: called with each bundle's result as soon as it is known.

    Raises:
        LogError: the log cannot be opened for writing (``LogInUse``: a recorder holds it).
    """
    opened: tuple[duckdb.DuckDBPyConnection, OpenReport] | None = None
    results: list[ImportResult] = []
    try:
        for bundle in map(Path, bundles):
            try:
                contents = read_bundle(bundle)
                if opened is None:
                    # a log that cannot be opened stops everything: no bundle can go in
                    opened = open_log(Path(db_path), audio_dir, version=__version__)
                con, report = opened
                session_id = _import_into(con, Path(db_path), report.audio_dir, contents, bundle)
            except AlreadyImported:
                result = ImportResult(bundle, contents.session_id, already=True)
            except BundleError as exc:
                result = ImportResult(bundle, error=str(exc))
            except (OSError, duckdb.Error) as exc:
                result = ImportResult(bundle, error=f"{bundle}: {describe_error(exc)}")
            else:
                hook_error = None
                if on_imported is not None:
                    try:
                        on_imported(con, session_id)
                    except Exception as exc:
                        hook_error = describe_error(exc)
                result = ImportResult(bundle, session_id, hook_error=hook_error)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if opened is not None:
            opened[0].close()
    return results


def _same_or_refuse(
    con: duckdb.DuckDBPyConnection, db_path: Path, contents: BundleContents, bundle: Path
) -> None:
    """Return if the log's copy of the session is the bundle's; else raise, naming both."""
    session_id = contents.session_id
    cursor = con.cursor()
    try:
        table = cursor.sql(
            f"SELECT {FRAME_COLUMNS} FROM events WHERE session_id = ? ORDER BY seq",
            params=[session_id],
        ).to_arrow_table()
        streams = sorted(
            (str(stream), int(rate), sha)
            for stream, rate, sha in cursor.execute(
                "SELECT stream, sample_rate, sha256 FROM audio_streams WHERE session_id = ?",
                [session_id],
            ).fetchall()
        )
    finally:
        cursor.close()
    theirs = _events_digest(frames_from_arrow([table]))
    ours = _events_digest(contents.frames)
    bundle_streams = sorted((s.stream.value, s.sample_rate, s.sha256) for s in contents.streams)
    if theirs == ours and streams == bundle_streams:
        return
    differs = "events" if theirs != ours else "audio"
    raise BundleError(
        f"{bundle} holds session {session_id}, and {db_path} holds a different session with "
        f"that id ({differs}: {table.num_rows} events in the log, {len(contents.frames)} "
        "in the bundle): a different recording with the same id; nothing was imported"
    )


def _import_into(
    con: duckdb.DuckDBPyConnection,
    db_path: Path,
    audio_dir: Path,
    contents: BundleContents,
    bundle: Path,
) -> str:
    session, session_id, frames = contents.session, contents.session_id, contents.frames
    copied: list[Path] = []
    try:
        if con.execute("SELECT 1 FROM sessions WHERE session_id = ?", [session_id]).fetchall():
            _same_or_refuse(con, db_path, contents, bundle)
            raise AlreadyImported(f"session {session_id} is already in {db_path}: nothing to do")
        target_dir = audio_dir / session_id
        if target_dir.exists() and any(target_dir.iterdir()):
            raise BundleError(f"{target_dir} already holds files; nothing was imported")
        rows = []
        for info in contents.streams:
            target = target_dir / info.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(info.path, target)
            copied.append(target)
            rows.append(
                [
                    session_id,
                    info.stream.value,
                    info.sample_rate,
                    stored_path(Path(db_path), target),
                    info.frames,
                    info.sha256,
                ]
            )
        status = session["status"]
        reason = session["close_reason"]
        if status == SessionStatus.OPEN.value:
            # exported while being recorded: nobody will ever close this copy
            status = SessionStatus.INTERRUPTED.value
            reason = "imported from a bundle exported while the session was being recorded"
        con.execute("BEGIN")
        con.execute(
            "INSERT INTO sessions (session_id, started_at, ended_at, upstream_url, request_path, "
            "model, protocol, request_headers, subprotocol, status, close_code, close_reason, "
            "closed_by, tags, rtrec_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                session_id,
                timestamp(int(session["started_ns"])),
                None if session["ended_ns"] is None else timestamp(int(session["ended_ns"])),
                session["upstream_url"],
                session["request_path"],
                session["model"],
                session["protocol"],
                session["request_headers"],
                session["subprotocol"],
                status,
                session["close_code"],
                reason,
                session["closed_by"],
                session["tags"],
                session["rtrec_version"],
            ],
        )
        if frames:
            con.register("rtrec_import", frames_to_arrow(frames))
            con.execute("INSERT INTO events BY NAME SELECT * FROM rtrec_import")
            con.unregister("rtrec_import")
        if rows:
            con.executemany("INSERT INTO audio_streams VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # no transaction was open yet
            con.execute("ROLLBACK")
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    return session_id
