"""The `rtrec` command group: every command is reachable, start-up stays light, check-events."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtrec.cli import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_lazy_command_loads_and_shows_its_help(name):
    """Each command named in COMMANDS imports to a click command of that name and has help."""
    done = CliRunner().invoke(cli, [name, "--help"])
    assert done.exit_code == 0, done.output
    assert f"Usage: cli {name}" in done.output or f"Usage: rtrec {name}" in done.output


def test_the_group_lists_every_command():
    """`rtrec --help` lists the lazy commands next to the ones defined in cli.py."""
    done = CliRunner().invoke(cli, ["--help"])
    assert done.exit_code == 0, done.output
    for name in [*COMMANDS, "check-events"]:
        assert f"  {name} " in done.output


def test_starting_the_cli_does_not_import_the_heavy_modules():
    """Loading the group imports neither DuckDB, trio, numpy nor the protocol model."""
    code = (
        "import sys; import rtrec.cli; "
        "print(sorted(m for m in ('duckdb', 'trio', 'numpy', 'rtrec.schemas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_events_names_the_bad_lines(tmp_path):
    """check-events counts the good events and exits 1 naming each line that is wrong."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"type": "input_audio_buffer.clear", "event_id": "e1"}\n'
        "not json\n"
        '{"type": "response.create", "response": 5}\n'
    )
    done = CliRunner().invoke(cli, ["check-events", str(path)])
    assert done.exit_code == 1
    assert "line 2: invalid JSON" in done.output
    assert "line 3: $.response" in done.output
    assert "input_audio_buffer.clear" in done.output
    assert "line 1:" not in done.output


def test_check_events_names_the_expected_type(tmp_path):
    """An object where a string is expected is reported with the type that fits, not as an
    unknown type; key order and number spelling of a good event do not fail it."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"type": "session.update", "session": {"type": "realtime", "instructions": {"a": 1}}}\n'
        '{"event_id": "e2", "session": {"audio": {"input": {"turn_detection":'
        ' {"threshold": 5E-1, "type": "server_vad"}}}, "type": "realtime"},'
        ' "type": "session.update"}\n'
    )
    done = CliRunner().invoke(cli, ["check-events", str(path)])
    assert done.exit_code == 1
    assert "line 1: $.session.instructions: expected null or str, got object" in done.output
    assert "unknown type" not in done.output
    assert "line 2" not in done.output


def test_check_events_reads_a_bundle_and_caps_its_problem_list(tmp_path):
    """A bundle's events.jsonl is checked by its payloads (recorder marks skipped, exit 0);
    a file of 30 bad events shows 20 problems and counts the rest (exit 1)."""
    bundle = Path(__file__).resolve().parent.parent / "fixtures" / "sessions" / "voice_turn"
    done = CliRunner().invoke(cli, ["check-events", str(bundle / "events.jsonl")])
    assert done.exit_code == 0, done.output
    assert "2 lines skipped: recorder marks" in done.output
    assert "missing required field" not in done.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "response.done"}\n' * 30)
    done = CliRunner().invoke(cli, ["check-events", str(bad)])
    assert done.exit_code == 1
    assert len(re.findall(r"^line \d+: ", done.output, re.M)) == 20
    assert "... and 10 more problems" in done.output
