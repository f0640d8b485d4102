"""The exit-code contract, for every command: 0 success or equal, 1 a difference or a
failed check, 2 a usage error or trouble. Each command is run with each kind of bad input
it can get (a missing log, a file that is no log, no such session, an ambiguous prefix, a
file or a damaged directory where a bundle belongs, a bad option); every one exits 2 with
one line of error and no traceback. The rules are in README.md and `rtrec --help`."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rtrec.cli import COMMANDS, cli
from rtrec.cli.common import EXIT_STATUS_HELP

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sessions"
BUNDLE = FIXTURES / "voice_turn"
OTHER = FIXTURES / "text_turn"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A log of the six fixture sessions (two share a prefix), a text file that is not a
    log, a damaged bundle, and paths that are not there."""
    root = tmp_path_factory.mktemp("bad")
    log = root / "log.duckdb"
    done = CliRunner().invoke(cli, ["import", str(FIXTURES), "--db", str(log)])
    assert done.exit_code == 0, done.output
    (root / "notalog.txt").write_text("hello\n")
    damaged = root / "damaged"
    shutil.copytree(BUNDLE, damaged)
    (damaged / "events.jsonl").write_text('{"seq": 0, "direction": "client"}\n{')
    return {
        "LOG": str(log),
        "NOTALOG": str(root / "notalog.txt"),
        "NOLOG": str(root / "missing.duckdb"),
        "DAMAGED": str(damaged),
        "FILE": str(root / "notalog.txt"),
        "GONE": str(root / "gone" / "bundle"),
        "OUT": str(root / "out"),
        "AMBIGUOUS": "01a20a90",  # five of the fixture sessions start with it
    }


#: (command line, what the one error line says); the words in capitals are ``inputs``.
BAD: list[tuple[str, str]] = [
    ("sessions --db NOLOG", "no rtrec log at"),
    ("sessions --db NOTALOG", "is not a DuckDB database"),
    ("sessions --format yaml", "Invalid value for '--format'"),
    ("export zzzz --out OUT --db LOG", "no session 'zzzz'"),
    ("export AMBIGUOUS --out OUT --db LOG", "matches several sessions"),
    ("export FILE --out OUT", "is a file: give a bundle directory"),
    ("export DAMAGED --out OUT", "events.jsonl"),
    ("export zzzz --out OUT --db NOLOG", "no rtrec log at"),
    ("export --out OUT --db LOG", "give SESSION (one or more), or --all"),
    ("import DAMAGED --db OUT/x.duckdb", "events.jsonl"),
    ("import GONE --db OUT/x.duckdb", "does not exist"),
    ("repair --db NOLOG", "no rtrec log at"),
    ("repair --db NOTALOG", "is not a DuckDB database"),
    ("sql 'SELECT 1' --db NOLOG", "no rtrec log at"),
    ("sql 'SELECT 1' --db NOTALOG", "is not a DuckDB database"),
    ("sql 'SELEC 1' --db LOG", "syntax error"),
    ("sql 'SELECT * FROM nope' --db LOG", "nope does not exist"),
    ("sql 'SELECT 1' --parquet OUT", "does not exist"),
    ("export-parquet OUT/p --db NOLOG", "no rtrec log at"),
    ("publish --db LOG --lake OUT/none.toml", "cannot read the lake file"),
    ("lake compact --lake OUT/none.toml", "cannot read the lake file"),
    ("export-parquet OUT/p --db NOTALOG", "is not a DuckDB database"),
    ("audio zzzz -o OUT/a.wav --db LOG", "no session 'zzzz'"),
    ("audio AMBIGUOUS -o OUT/a.wav --db LOG", "matches several sessions"),
    ("audio DAMAGED -o OUT/a.wav", "events.jsonl"),
    ("audio GONE -o OUT/a.wav", "is not there"),
    ("audio zzzz -o OUT/a.mp3 --db LOG", "must end in .flac or .wav"),
    ("show zzzz --db LOG", "no session 'zzzz'"),
    ("show AMBIGUOUS --db LOG", "matches several sessions"),
    ("show FILE", "is a file"),
    ("show DAMAGED", "events.jsonl"),
    ("show zzzz --db NOTALOG", "is not a DuckDB database"),
    ("index --db NOLOG", "no rtrec log at"),
    ("index --db NOTALOG", "is not a DuckDB database"),
    ("report zzzz -o OUT/r.html --db LOG", "no session 'zzzz'"),
    ("report AMBIGUOUS -o OUT/r.html --db LOG", "matches several sessions"),
    ("report DAMAGED -o OUT/r.html", "events.jsonl"),
    ("report zzzz -o OUT/r.html --db NOLOG", "no rtrec log at"),
    ("report zzzz -o OUT/r.html --audio loud --db LOG", "Invalid value for '--audio'"),
    ("sim --listen nope", "expected HOST:PORT"),
    ("sim --scenario NOTALOG", "invalid TOML"),
    ("record --listen nope", "expected HOST:PORT"),
    ("record --listen 127.0.0.1:0 --db NOTALOG", "is not a DuckDB database"),
    ("record --tag novalue", "expected KEY=VALUE"),
    ("demo --db NOTALOG", "is not a DuckDB database"),
    ("demo --pace slow", "Invalid value for '--pace'"),
    ("playback zzzz --serve 127.0.0.1:0 --db LOG", "no session 'zzzz'"),
    ("playback zzzz --serve 127.0.0.1:0 --db NOLOG", "no rtrec log at"),
    ("playback DAMAGED --serve 127.0.0.1:0", "events.jsonl"),
    ("playback FILE --serve 127.0.0.1:0", "is a file"),
    (f"playback {BUNDLE} --serve nope", "is not HOST:PORT"),
    ("replay zzzz --db LOG", "no session 'zzzz'"),
    ("replay AMBIGUOUS --db LOG", "matches several sessions"),
    ("replay zzzz --db NOLOG", "no rtrec log at"),
    ("replay zzzz --db NOTALOG", "is not a DuckDB database"),
    ("replay FILE", "is a file"),
    ("replay DAMAGED", "events.jsonl"),
    (f"replay {BUNDLE} --at 99999", "past the session's last seq"),
    (f"replay {BUNDLE} --at soon", "cannot read 'soon'"),
    (f"replay {BUNDLE} --drive http://x", "give a ws:// or wss:// base URL"),
    (f"replay {BUNDLE} --drive sim --db NOTALOG", "is not a DuckDB database"),
    (f"replay {BUNDLE} --update", "--update needs --golden FILE"),
    (f"diff {BUNDLE} zzzz --db LOG", "no session 'zzzz'"),
    (f"diff DAMAGED {BUNDLE}", "events.jsonl"),
    (f"diff {BUNDLE} GONE", "is not there"),
    (f"check-events {BUNDLE}/input.flac", "not a JSON-lines file"),
    ("check-events GONE", "does not exist"),
    ("nope", "No such command"),
]


def run(line: str, inputs: dict[str, str]) -> Result:
    """Run one command line, its capitalised words (or their first part) replaced by
    ``inputs``."""
    args = []
    for word in shlex.split(line):
        head, sep, rest = word.partition("/")
        args.append(inputs[head] + sep + rest if head in inputs else word)
    return CliRunner().invoke(cli, args)


def test_every_command_is_walked() -> None:
    """The table of bad inputs covers every command of the group."""
    walked = {line.split()[0] for line, _ in BAD}
    assert walked >= {*COMMANDS, "check-events"}


@pytest.mark.parametrize(("line", "says"), BAD, ids=[line for line, _ in BAD])
def test_bad_input_exits_2_with_one_line(line: str, says: str, inputs: dict[str, str]) -> None:
    """Status 2, one error line naming the problem, never a traceback."""
    done = run(line, inputs)
    assert done.exit_code == 2, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert "Traceback" not in done.output
    errors = [x for x in done.output.splitlines() if x.startswith(("Error:", "failed "))]
    assert len(errors) == 1, done.output
    assert says in errors[0], done.output


def test_differences_and_failed_checks_exit_1(inputs: dict[str, str], tmp_path: Path) -> None:
    """diff of two conversations that differ, a golden file that differs, and events that
    do not fit the protocol: status 1; the same things equal: status 0."""
    assert run(f"diff {BUNDLE} {OTHER}", inputs).exit_code == 1
    assert run(f"diff {BUNDLE} {BUNDLE}", inputs).exit_code == 0
    golden = BUNDLE / "golden.json"
    assert run(f"replay {BUNDLE} --stable-ids --golden {golden}", inputs).exit_code == 0
    other = run(f"replay {BUNDLE} --stable-ids --golden {OTHER / 'golden.json'}", inputs)
    assert other.exit_code == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "response.done"}\n')
    assert run(f"check-events {bad}", inputs).exit_code == 1
    assert run(f"check-events {BUNDLE}/events.jsonl", inputs).exit_code == 0


def test_the_contract_is_in_the_help_and_the_readme() -> None:
    """`rtrec --help` and the README state the same three codes."""
    shown = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    assert " ".join(EXIT_STATUS_HELP.split()) in shown
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert EXIT_STATUS_HELP in " ".join(readme.split())
