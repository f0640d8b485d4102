"""Bundles and the log commands: export -> import is byte-exact; the CLI says what it did.

Commands run through click's CliRunner in-process, or as real ``python -m rtrec``
processes when a writer in this process holds the log.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
import pytest
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.store.bundle import BundleError, export_session, import_bundle
from rtrec.store.reader import LogAudio, read_frames, read_sessions, rebuild_frame
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript, killed_recording, voice_session


async def _write(db: Path, messages) -> None:
    async with open_log_writer(db, serve_queries=False) as w:
        for m in messages:
            await w.send(m)


def recorded(tmp_path: Path, *, close: bool = True, **options) -> tuple[Path, SessionScript]:
    """A log holding one voice session."""
    db = tmp_path / "log.duckdb"
    s = voice_session(**options)
    if close:
        s.close()
    trio.run(_write, db, s.messages)
    return db, s


def rebuilt(db: Path, session_id: str) -> list[str | bytes]:
    """Every frame of a session as rebuilt from log + FLAC."""
    with LogAudio.of_session(db, session_id) as audio:
        return [rebuild_frame(f, audio) for f in read_frames(db, session_id)]


def test_export_then_import_is_byte_exact(tmp_path):
    """A bundle imported into another log rebuilds every frame exactly, with the same rows."""
    db, s = recorded(tmp_path, with_g711=True)
    result = export_session(db, s.session_id[:8], tmp_path / "bundle")
    assert result.events == len(s.frames())
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "events.jsonl",
        "input-8000.flac",
        "input.flac",
        "output-8000.flac",
        "output.flac",
        "session.json",
    ]
    other = tmp_path / "other" / "log.duckdb"
    assert import_bundle(other, tmp_path / "bundle") == s.session_id
    assert rebuilt(other, s.session_id) == [s.wire[seq] for seq in sorted(s.wire)]
    assert list(read_frames(other, s.session_id)) == s.frames()
    assert read_sessions(other) == read_sessions(db)
    # and a second export of the imported copy is the same bundle, file for file
    export_session(other, s.session_id, tmp_path / "again")
    for path in (tmp_path / "bundle").iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


def test_importing_twice_is_a_no_op(tmp_path):
    """A second import of the very same session changes nothing and is no error."""
    db, s = recorded(tmp_path)
    export_session(db, s.session_id, tmp_path / "bundle")
    assert import_bundle(db, tmp_path / "bundle") == s.session_id
    assert read_sessions(db)[0].events == len(s.frames())


def test_a_damaged_bundle_is_refused_before_anything_is_written(tmp_path):
    """A FLAC that does not match its checksum, or a bad line, stops the import cleanly."""
    db, s = recorded(tmp_path)
    bundle = tmp_path / "bundle"
    export_session(db, s.session_id, bundle)
    other = tmp_path / "other.duckdb"
    flac = bundle / "input.flac"
    original = flac.read_bytes()
    flac.write_bytes(original[:-10])
    with pytest.raises(BundleError, match=r"input\.flac does not match its checksum"):
        import_bundle(other, bundle)
    flac.write_bytes(original)
    lines = (bundle / "events.jsonl").read_bytes().splitlines(keepends=True)
    (bundle / "events.jsonl").write_bytes(b"".join([*lines[:3], b"{oops\n", *lines[3:]]))
    with pytest.raises(BundleError, match=r"events\.jsonl:4: not an event line"):
        import_bundle(other, bundle)
    assert not other.exists()


def test_a_bundle_whose_audio_is_too_short_is_refused(tmp_path):
    """Frames pointing past the end of their FLAC are caught at import."""
    db, s = recorded(tmp_path)
    bundle = tmp_path / "bundle"
    export_session(db, s.session_id, bundle)
    manifest = json.loads((bundle / "session.json").read_text())
    manifest["audio_streams"][0]["frames"] -= 100
    (bundle / "session.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="the bundle has"):
        import_bundle(tmp_path / "other.duckdb", bundle)


def test_bundle_is_a_fraction_of_inline_base64(tmp_path):
    """The bundle of a voice session is far smaller than its frames with base64 inline."""
    db, s = recorded(tmp_path, chunks=30)
    result = export_session(db, s.session_id, tmp_path / "bundle")
    inline = sum(
        len(orjson.dumps(f if isinstance(f, str) else f.hex())) + 1
        for f in rebuilt(db, s.session_id)
    )
    assert result.size < 0.5 * inline


def test_cli_sessions_export_import(tmp_path):
    """`rtrec sessions`, `export` and `import` work end to end and report what they did."""
    db, s = recorded(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["sessions", "--db", str(db), "--wide"])
    assert listed.exit_code == 0, listed.output
    assert s.session_id in listed.output
    assert "closed" in listed.output
    assert "1 session in" in listed.output
    out = tmp_path / "bundle"
    exported = runner.invoke(cli, ["export", s.session_id[:10], "--out", str(out), "--db", str(db)])
    assert exported.exit_code == 0, exported.output
    assert f"exported {s.session_id}: {len(s.frames())} events" in exported.output
    other = tmp_path / "other.duckdb"
    imported = runner.invoke(cli, ["import", str(out), "--db", str(other)])
    assert imported.exit_code == 0, imported.output
    again = runner.invoke(cli, ["import", str(out), "--db", str(other)])
    assert again.exit_code == 0, again.output
    assert "already imported" in again.output
    missing = runner.invoke(cli, ["export", "zzz", "--out", str(tmp_path / "x"), "--db", str(db)])
    assert missing.exit_code == 2
    assert "no session 'zzz'" in missing.output


def test_cli_repair_after_a_killed_recorder(tmp_path):
    """`rtrec sessions` flags a session cut off by a kill; `rtrec repair` marks and repairs it."""
    db = tmp_path / "log.duckdb"
    session_id, _ = killed_recording(db, 12)
    runner = CliRunner()
    listed = runner.invoke(cli, ["sessions", "--db", str(db)])
    assert "open*" in listed.output
    assert "rtrec repair" in listed.output
    repaired = runner.invoke(cli, ["repair", "--db", str(db)])
    assert repaired.exit_code == 0, repaired.output
    assert f"{session_id}: marked interrupted" in repaired.output
    assert "input.flac: rewritten" in repaired.output
    assert "lost" not in repaired.output
    assert read_sessions(db)[0].status == "interrupted"
    assert "nothing to repair" in runner.invoke(cli, ["repair", "--db", str(db)]).output


async def test_cli_lists_and_exports_while_recording(tmp_path):
    """With a recorder holding the log, `rtrec sessions` and `rtrec export` still work."""
    db = tmp_path / "log.duckdb"
    s = voice_session()
    with trio.fail_after(60):
        async with open_log_writer(db, commit_interval=60) as w:
            for m in s.messages:
                await w.send(m)
            await w.flush()
            listed = await trio.run_process(
                [sys.executable, "-m", "rtrec", "sessions", "--db", str(db), "--wide"],
                capture_stdout=True,
            )
            assert "(being recorded)" in listed.stdout.decode()
            assert s.session_id in listed.stdout.decode()
            await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "rtrec",
                    "export",
                    s.session_id,
                    "--out",
                    str(tmp_path / "b"),
                    "--db",
                    str(db),
                ],
                capture_stdout=True,
            )
            refused = await trio.run_process(
                [sys.executable, "-m", "rtrec", "import", str(tmp_path / "b"), "--db", str(db)],
                capture_stderr=True,
                check=False,
            )
            assert refused.returncode == 2
            assert b"being recorded by `rtrec record` (pid" in refused.stderr
    other = tmp_path / "other.duckdb"
    import_bundle(other, tmp_path / "b")
    assert rebuilt(other, s.session_id) == [s.wire[seq] for seq in sorted(s.wire)]
    assert read_sessions(other)[0].status == "interrupted"


DATA = Path(__file__).resolve().parent / "data"


def test_version_1_bundles_keep_loading(tmp_path):
    """A bundle written by the first bundle format imports and rebuilds its frames exactly."""
    db = tmp_path / "log.duckdb"
    session_id = import_bundle(db, DATA / "bundle_v1")
    expected = []
    for line in (DATA / "bundle_v1.wire.jsonl").read_text().splitlines():
        obj = json.loads(line)
        expected.append(obj["text"] if "text" in obj else bytes.fromhex(obj["hex"]))
    assert rebuilt(db, session_id) == expected
