"""``rtrec replay SESSION --drive URL|sim`` from the command line (in-process, click's runner):
the new session and the diff on stdout, exit 0 for the same scenario and 1 for a changed
one (also when the changed model leaves recorded frames unsent), 2 and a message naming
the awaited event for a server that never answers, the key from OPENAI_API_KEY and never on
disk, and clear option errors.

Rules: real sockets on 127.0.0.1 port 0; the scripted server runs in a thread with its own
trio loop (``run_in_thread``), as the command runs its own.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.replay.driver import DRIVE_TAG
from rtrec.replay.threaded import run_in_thread
from rtrec.schemas.storage import SessionStatus
from rtrec.store.bundle import import_bundle, read_bundle
from rtrec.store.reader import read_sessions
from rtrec.transport.ws import ServerHandshake, WebSocket

from .drivekit import SCENARIOS, SESSIONS, drain, serve_script

BUNDLE = SESSIONS / "function_call"
WEATHER = SCENARIOS / "weather.toml"


def rtrec(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    """Run the rtrec command line in-process."""
    return CliRunner(env=env).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def new_session(result: Result) -> str:
    """The new session's id, from the first line of stdout."""
    match = re.fullmatch(r"new session (\S+) in .+", result.stdout.splitlines()[0])
    assert match is not None, result.stdout
    return match[1]


def test_same_scenario_gives_an_empty_diff_and_exit_0(tmp_path: Path) -> None:
    """Re-driving the function-call fixture against its scenario prints the new session and
    "equal", exits 0, and the log holds the new session tagged with the old one's id."""
    db = tmp_path / "log.duckdb"
    result = rtrec(
        "replay", BUNDLE, "--drive", "sim", "--scenario", WEATHER, "--seed", "3",
        "--pace", "instant", "--db", db,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sid = new_session(result)
    assert result.stdout.splitlines()[1] == f"{BUNDLE} and {sid}: the conversations are equal"
    assert "driving 01a20a90-25b9" in result.stderr
    assert "33 client events, 30 audio appends" in result.stderr
    (row,) = read_sessions(db)
    assert row.session_id == sid
    assert orjson.loads(row.tags)[DRIVE_TAG] == read_bundle(BUNDLE).session_id


def test_changed_scenario_shows_the_change_and_exits_1(tmp_path: Path) -> None:
    """A simulator whose model calls the function with other arguments: the diff names the
    call's arguments (and the transcript that changed with them) and the command exits 1."""
    changed = tmp_path / "lyon.toml"
    changed.write_text(WEATHER.read_text().replace("Paris", "Lyon"))
    result = rtrec(
        "replay", BUNDLE, "--drive", "sim", "--scenario", changed, "--pace", "instant",
        "--db", tmp_path / "log.duckdb",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    sid = new_session(result)
    diff = result.stdout.splitlines()[1:]
    assert diff[0] == f"{BUNDLE} and {sid} differ in 2 places:"
    assert "  item 3 (function_call get_weather): arguments" in diff
    assert f"""    {sid}: '{{"city":"Lyon","unit":"celsius"}}'""" in diff
    assert f"""    {BUNDLE}: '{{"city":"Paris","unit":"celsius"}}'""" in diff


def test_a_model_that_no_longer_calls_the_function_ends_when_idle_with_exit_1(
    tmp_path: Path,
) -> None:
    """Re-driving the function-call fixture against a scenario whose model only answers:
    once the simulator is idle the drive stops (exit 1, not a 60 s timeout and exit 2),
    prints the diff, names the frames not sent and the call awaited, and the new session
    is recorded and closed by the client."""
    db = tmp_path / "log.duckdb"
    result = rtrec(
        "replay", BUNDLE, "--drive", "sim", "--scenario", SCENARIOS / "demo.toml",
        "--pace", "instant", "--idle-grace", "1", "--db", db,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    sid = new_session(result)
    assert f"{BUNDLE} and {sid} differ in 6 places:" in result.stdout
    assert "  item 3: only in " in result.stdout
    assert result.stderr.rstrip().splitlines()[-1] == (
        "rtrec replay --drive: not sent: 2 recorded client frames, recorded seq 96 "
        "(conversation.item.create), recorded seq 97 (response.create); the server went idle "
        "(1 s quiet) while the driver waited for the arguments of call #1 "
        "(call_deDl3wW6iK9Va2NS in the recording) to be done (recorded seq 92)"
    )
    (row,) = read_sessions(db)
    assert row.session_id == sid
    assert (row.status, row.close_code, row.closed_by) == (SessionStatus.CLOSED, 1000, "client")


def test_a_session_of_the_log_is_driven_into_the_same_log(tmp_path: Path) -> None:
    """SESSION may be an id prefix in --db: it is read first, then the new session is
    recorded beside it in the same log."""
    db = tmp_path / "log.duckdb"
    old = import_bundle(db, SESSIONS / "text_turn")
    demo = SCENARIOS / "demo.toml"
    result = rtrec(
        "replay", old[:13], "--drive", "sim", "--scenario", demo, "--pace", "instant", "--db", db
    )
    assert result.exit_code == 0, result.output
    assert "the conversations are equal" in result.stdout
    assert {s.session_id for s in read_sessions(db)} == {old, new_session(result)}


def test_a_server_that_never_answers_exits_2_naming_the_awaited_event(tmp_path: Path) -> None:
    """Against a server that accepts and stays silent, the command waits --wait-timeout,
    says what it waited for, still records and diffs the attempt, and exits 2; the key from
    OPENAI_API_KEY reached the server and no file written holds it."""
    seen: list[list[tuple[str, str]]] = []

    async def silent(ws: WebSocket, handshake: ServerHandshake) -> None:
        seen.append(handshake.headers)
        await drain(ws)

    key = "sk-proj-driveTestKey0123456789abcdef"
    with run_in_thread(functools.partial(serve_script, silent)) as server:
        result = rtrec(
            "replay", SESSIONS / "function_call_beta", "--drive", server.url,
            "--wait-timeout", "0.5", "--pace", "instant", "--db", tmp_path / "log.duckdb",
            env={"OPENAI_API_KEY": key},
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.rstrip().endswith(
        "Error: replay --drive: waited 0.5 s for session.created #1 (recorded seq 1) "
        "before sending recorded seq 3 (session.update)"
    )
    sid = new_session(result)
    assert "differ in" in result.stdout
    ((headers),) = seen
    sent = {k.lower(): v for k, v in headers}
    assert sent["authorization"] == f"Bearer {key}"
    assert sent["openai-beta"] == "realtime=v1"  # the recorded beta handshake, sent again
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    (row,) = read_sessions(tmp_path / "log.duckdb")
    assert row.session_id == sid
    assert (row.close_code, row.closed_by) == (1000, "client")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drive", "wss://api.openai.com/v1"], "OPENAI_API_KEY is not set"),
        (["--drive", "http://127.0.0.1:1/v1"], "give a ws:// or wss:// base URL, or 'sim'"),
        (["--drive", "sim", "--serve", "127.0.0.1:0"], "--serve and --drive are exclusive"),
        (["--drive", "ws://127.0.0.1:1/v1", "--scenario", str(WEATHER)], "only applies with"),
        (["--scenario", str(WEATHER)], "--idle-grace go with --drive"),
        (["--idle-grace", "5"], "--idle-grace go with --drive"),
        (["--wait-timeout", "60"], "--idle-grace go with --drive"),
        (["--seed", "3"], "--idle-grace go with --drive"),
        (["--drive", "sim", "--pace", "slow"], "'recorded', 'instant' or a speed"),
        (["--drive", "sim", "--wait-timeout", "0"], "must be above 0"),
        (["--drive", "sim", "--idle-grace", "-1"], "must be above 0"),
    ],
)
def test_bad_drive_options_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    """Bad or conflicting --drive options exit 2 with a message, before anything is opened."""
    result = rtrec(
        "replay", BUNDLE, *args, "--db", tmp_path / "log.duckdb", env={"OPENAI_API_KEY": None}
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "log.duckdb").exists()


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ("ffff", "Error: replay --drive: no session 'ffff'"),
        ("nowhere/bundle", "Error: replay --drive: nowhere/bundle is not a bundle"),
    ],
)
def test_a_missing_session_is_trouble(session: str, message: str, tmp_path: Path) -> None:
    """A session id the log does not have, or a bundle path that is not there, is a message
    and exit 2, not a traceback."""
    db = tmp_path / "log.duckdb"
    import_bundle(db, SESSIONS / "text_turn")
    result = rtrec("replay", session, "--drive", "sim", "--db", db)
    assert result.exit_code == 2
    assert message in result.stderr
