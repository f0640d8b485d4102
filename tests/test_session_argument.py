"""A SESSION argument means the same in every command: a bundle directory gives what its
session's id gives in a log (show, report, audio, export, replay), and the smaller promises
of the transcript views (item ids, --stable-ids without times, the golden hint) hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from rtrec.cli import COMMANDS, cli
from rtrec.store.reader import read_sessions

BUNDLE = Path(__file__).resolve().parent.parent / "fixtures" / "sessions" / "voice_turn"


def rtrec(*args: str | Path) -> Result:
    """Run one command; it must succeed."""
    done = CliRunner().invoke(cli, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, str]:
    """The voice_turn bundle imported into a log: (log, session id)."""
    db = tmp_path / "log.duckdb"
    rtrec("import", BUNDLE, "--db", db)
    (session,) = read_sessions(db)
    return db, session.session_id


def test_a_bundle_is_a_session_in_every_command(log: tuple[Path, str], tmp_path: Path) -> None:
    """show, audio, export and report of the bundle equal those of its id in the log."""
    db, sid = log
    assert rtrec("show", BUNDLE).output == rtrec("show", sid[:13], "--db", db).output
    for choice in ("mix", "input", "output"):
        a, b = tmp_path / f"a-{choice}.flac", tmp_path / f"b-{choice}.flac"
        rtrec("audio", BUNDLE, "--stream", choice, "-o", a)
        rtrec("audio", sid, "--stream", choice, "-o", b, "--db", db)
        assert np.array_equal(sf.read(a, dtype="int16")[0], sf.read(b, dtype="int16")[0])
    rtrec("export", BUNDLE, "--out", tmp_path / "again")
    for name in ("events.jsonl", "input.flac", "output.flac"):
        assert (tmp_path / "again" / name).read_bytes() == (BUNDLE / name).read_bytes()
    again = orjson.loads((tmp_path / "again" / "session.json").read_bytes())
    assert again["session"] == orjson.loads((BUNDLE / "session.json").read_bytes())["session"]
    rtrec("report", BUNDLE, "-o", tmp_path / "a.html", "--audio", "none")
    rtrec("report", sid, "-o", tmp_path / "b.html", "--audio", "none", "--db", db)
    assert (tmp_path / "a.html").read_text() == (tmp_path / "b.html").read_text()


def test_export_several_sessions_at_once(log: tuple[Path, str], tmp_path: Path) -> None:
    """--all writes one bundle per session, named by its id, that imports back."""
    db, sid = log
    done = rtrec("export", "--all", "--out", tmp_path / "all", "--db", db)
    assert "exported 1 sessions" in done.output
    assert (tmp_path / "all" / sid / "events.jsonl").read_bytes() == (
        BUNDLE / "events.jsonl"
    ).read_bytes()


def test_transcripts_show_item_ids_and_stable_ids_hide_times(log: tuple[Path, str]) -> None:
    """Item ids end the items' lines in show and replay; --stable-ids shows ordinals and no
    time at all (no line time, no latency)."""
    db, sid = log
    shown = rtrec("show", sid, "--db", db).output
    assert "item_cjkdxjmxslCJTO6jzMrEE" in shown
    stable = rtrec("replay", BUNDLE, "--stable-ids").output
    assert "· item#1" in stable
    assert "item_" not in stable
    assert not re.search(r"^ *\d+\.\d\ds ", stable, re.M), stable  # no time column
    assert "first delta" not in stable


def test_a_stable_golden_compared_without_stable_ids_gets_a_hint(tmp_path: Path) -> None:
    """The diff against a golden written with --stable-ids says to add --stable-ids."""
    done = CliRunner().invoke(cli, ["replay", str(BUNDLE), "--golden", str(BUNDLE / "golden.json")])
    assert done.exit_code == 1
    assert "was written with --stable-ids" in done.output
    done = CliRunner().invoke(
        cli, ["replay", str(BUNDLE), "--stable-ids", "--golden", str(BUNDLE / "golden.json")]
    )
    assert done.exit_code == 0
    assert "hint" not in done.output


def test_machine_formats_carry_no_float_noise(log: tuple[Path, str]) -> None:
    """JSON and CSV print floats to 12 significant digits (7.56625, not 7.56624999999999)."""
    db, _ = log
    query = (
        "SELECT 0.1::DOUBLE + 0.2::DOUBLE AS x, sum(audio_samples / audio_rate) AS s FROM events"
    )
    out = rtrec("sql", query, "--db", db, "--format", "json").output
    assert '"x": 0.3' in out
    assert not re.search(r"\d\.\d{13,}", out)


@pytest.mark.parametrize("name", sorted([*COMMANDS, "check-events"]))
def test_help_has_no_markup_left(name: str) -> None:
    """No reStructuredText (double backquotes, roles) in any command's --help."""
    out = rtrec(name, "--help").output
    assert "``" not in out
    assert ":class:" not in out
