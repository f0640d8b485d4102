"""Output that fits 80 and 120 columns: tables keep the columns that fit by priority and say
which they left out, ids are the shortest unique prefix (which every command takes back),
transcripts wrap with a hanging indent, and paths and long words are never cut."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.cli.common import short_ids, wrap_hanging
from rtrec.store.reader import read_sessions, read_streams

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sessions"
SESSION_COLUMNS = ("id", "start (UTC)", "duration", "model", "events", "audio", "status")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture sessions in one log (five of the six share an 8-character prefix)."""
    db = tmp_path_factory.mktemp("width") / "log.duckdb"
    done = CliRunner().invoke(cli, ["import", str(FIXTURES), "--db", str(db)])
    assert done.exit_code == 0, done.output
    return db


def at(columns: int, *args: str) -> Result:
    """Run a command as in a terminal ``columns`` wide."""
    done = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return done


def fits(text: str, columns: int) -> None:
    """Every line is within ``columns``, but for a single word that is longer."""
    for line in text.splitlines():
        assert len(line) <= columns or " " not in line.strip(), line


@pytest.mark.parametrize("columns", [80, 120])
def test_sessions_show_the_promised_columns(log: Path, columns: int) -> None:
    """id prefix, start, duration, model, events, audio and status at 80 columns; protocol
    and close code as well at 120; the ids shown are accepted by the other commands."""
    out = at(columns, "sessions", "--db", str(log)).output
    fits(out, columns)
    header = next(line for line in out.splitlines() if line.startswith("id "))
    assert re.split(r"\s{2,}", header.strip()) == [
        *SESSION_COLUMNS,
        *(("protocol", "close") if columns >= 120 else ()),
    ]
    sessions = read_sessions(log)
    short = short_ids([s.session_id for s in sessions])
    rows = [line.split()[0] for line in out.splitlines() if line[:2] == "01"]
    assert rows == [short[s.session_id] for s in sessions]
    assert len(set(rows)) == len(rows)
    assert all(8 <= len(r) < 36 for r in rows)
    for s in sessions:
        assert f"{s.events}  " in out or f"{s.events} " in out
    if columns < 120:
        assert "left out for width: protocol, close" in out
    shown = at(columns, "show", rows[1], "--db", str(log)).output
    assert f"session {sessions[1].session_id}" in shown


def test_wide_and_formats_give_every_column(log: Path) -> None:
    """--wide prints whole ids and every column however narrow the terminal; csv has all."""
    out = at(80, "sessions", "--db", str(log), "--wide").output
    header = next(line for line in out.splitlines() if line.startswith("id "))
    assert re.split(r"\s{2,}", header.strip()) == [*SESSION_COLUMNS, "protocol", "close", "tags"]
    for s in read_sessions(log):
        assert s.session_id in out
    csv = at(80, "sessions", "--db", str(log), "--format", "csv").output.splitlines()
    assert csv[0].split(",")[:3] == ["session_id", "started_at", "duration_s"]
    assert len(csv) == 1 + len(read_sessions(log))


@pytest.mark.parametrize("columns", [80, 120])
def test_sql_tables_keep_what_fits_and_name_the_rest(log: Path, columns: int) -> None:
    """`SELECT * FROM session_summary` keeps its leading columns whole, shortens the ids
    and lists the columns it left out; numbers carry no float noise."""
    out = at(columns, "sql", "SELECT * FROM session_summary", "--db", str(log)).output
    fits(out, columns)
    header = out.splitlines()[0].split()
    assert header[:3] == ["session_id", "started_at", "ended_at"]
    assert "more columns:" in out
    assert "--wide or --format csv|json|markdown shows them" in out
    assert not re.search(r"\d\.\d{9,}", out)
    csv = at(columns, "sql", "SELECT sum(audio_samples / audio_rate) AS s FROM events",
             "--db", str(log), "--format", "csv").output  # fmt: skip
    found = re.fullmatch(r"s\n(\d+)\.(\d+)\n", csv)
    assert found, csv
    assert len(found[1] + found[2]) <= 12, csv  # FLOAT_DIGITS: no binary-float noise


@pytest.mark.parametrize("columns", [80, 120])
def test_transcripts_wrap_with_a_hanging_indent(columns: int) -> None:
    """Each wrapped item continues under its text, after the time and speaker columns."""
    out = at(columns, "replay", str(FIXTURES / "barge_in")).output
    fits(out, columns)
    lines = out.splitlines()
    assert any(len(line) > columns - 12 for line in lines)  # something did need wrapping
    for before, line in itertools.pairwise(lines):
        if re.match(r"^ *\d+\.\d\ds  \w+", before) and line.startswith(" " * 19):
            assert line[19] != " " or line.strip().startswith("response")
    assert "item_GsMNksnlBUxX2hZmrfNxq" in out  # item ids are shown, whole


def test_wrap_hanging_never_cuts_a_word() -> None:
    """A word longer than the line overflows whole; the rest wraps under the body."""
    line = "  1.00s  user      " + "x" * 100 + " tail words here"
    wrapped = wrap_hanging(line, 40).splitlines()
    assert wrapped[0] == line[:19] + "x" * 100
    assert wrapped[1] == " " * 19 + "tail words here"


def test_the_demo_prints_paths_and_commands_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns every FLAC path and every suggested command is on one line of its own
    (the terminal may wrap it; nothing is cut or broken by rich)."""
    monkeypatch.chdir(tmp_path)
    db = Path("rtrec.duckdb")
    out = at(80, "demo").output
    (session,) = read_sessions(db)
    for stream in read_streams(db, session.session_id):
        shown = str(Path(stream.path).resolve().relative_to(tmp_path.resolve()))
        assert any(line.endswith(f"  {shown}") for line in out.splitlines()), out
    assert f"  rtrec show {session.session_id[:13]} --db rtrec.duckdb" in out.splitlines()
    assert "…" not in out
