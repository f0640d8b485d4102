"""A user's project (tests/userproject: pytest-asyncio, pytest-xdist, the official SDK, a
conftest of its own) run through rtrec's pytest plugin as separate pytest processes, once
for each numbered case of issue #21. Each run has a timeout, so a hang fails the test
instead of the suite, and each asserts the text the user reads.

The project is copied to a temporary directory first (the record modes write bundles into
it), and recorded against the simulator (``--rtrec-upstream sim``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from rtrec.replay.threaded import run_in_thread
from rtrec.transport.ws import accept_handshake

PROJECT = Path(__file__).parent / "userproject"
#: seconds any one inner pytest run may take; far above what each needs
RUN_TIMEOUT = 120
SIM = ("--rtrec-upstream", "sim")


def user_project(tmp_path: Path) -> Path:
    """A fresh copy of the user's project."""
    target = tmp_path / "project"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def run(project: Path, *args: str, **env: str) -> tuple[int, str, float]:
    """``pytest`` in ``project`` (its own pytest.ini): exit code, output, seconds."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ.update(env)
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-c", "pytest.ini", "-q", *args],
            cwd=project,
            env=environ,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pytest {' '.join(args)} hung for {RUN_TIMEOUT} s:\n{exc.stdout!r}")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's project after ``--rtrec-record-mode once --rtrec-upstream sim`` of
    test_turns.py (case 3: one bundle per parametrized case, by default names)."""
    project = user_project(tmp_path_factory.mktemp("recorded"))
    code, out, _ = run(project, "test_turns.py", "--rtrec-record-mode", "once", *SIM)
    assert code == 0, out
    return project


def copy_of(project: Path, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(project, target)
    return target


async def serve_refusing_upstream(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A Realtime upstream that refuses every key, as the service does a wrong one."""

    async def handle(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=2**20)
        await handshake.reject(401, b'{"error": {"code": "invalid_api_key"}}')

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bundle_files(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_default_bundles_and_one_failure_per_mismatch(recorded: Path, tmp_path: Path) -> None:
    """Cases 3 and 4. A parametrized test without a bundle path recorded one bundle per
    case in mode once, beside its module; mode none plays them back. A changed question
    is one failure (one junit testcase) with the field diff, and no websockets traceback."""
    project = copy_of(recorded, tmp_path)
    bundles = project / "rtrec_bundles" / "test_turns"
    assert sorted(p.name for p in bundles.iterdir()) == [
        "test_question[place]",
        "test_question[time]",
    ]
    saved = bundle_files(bundles)
    code, out, _ = run(project, "test_turns.py")
    assert code == 0, out
    assert "2 passed" in out

    # case 4: one failure per mismatch, at the place it happened
    junit = tmp_path / "junit.xml"
    code, out, _ = run(
        project,
        "test_turns.py::test_question[time]",
        f"--junitxml={junit}",
        USERPROJECT_QUESTION="What day is it?",
    )
    assert code == 1, out
    assert "1 failed in" in out, out
    assert "error" not in out.splitlines()[-1]
    assert '$.item.content[0].text: recorded "What time is it?" != live "What day is it?"' in out
    assert "(the test then failed with ConnectionClosedError: received 1008" in out
    assert "websockets/" not in out  # no traceback through the client's internals
    cases = ET.parse(junit).getroot().iter("testcase")
    assert [(c.get("name"), [e.tag for e in c]) for c in cases] == [
        ("test_question[time]", ["failure"])
    ]
    assert bundle_files(bundles) == saved  # mode none never writes


def test_a_turn_past_the_end_of_the_recording_fails_at_once(recorded: Path) -> None:
    """Case 1. The agent gained a follow-up turn the recording does not have: the test ends
    at once with one readable failure naming the events past the end, instead of hanging."""
    target = "test_turns.py::test_question[place]"
    code, out, seconds = run(recorded, target, USERPROJECT_FOLLOW_UP="And now?")
    assert code == 1, out
    assert "1 failed in" in out, out
    assert "after the recording's last client event: conversation.item.create" in out, out
    assert seconds < RUN_TIMEOUT / 2


def test_failed_sessions_are_never_recordings(tmp_path: Path) -> None:
    """Case 2. Mode once with an unreachable upstream, and with an upstream that refuses the
    key (401), fails naming the cause and writes no bundle; mode all (rewrite
    is the same code) with an unreachable upstream leaves the good bundle byte for byte."""
    project = user_project(tmp_path)
    nowhere = f"ws://127.0.0.1:{free_port()}/v1"
    target = "test_turns.py::test_question[time]"
    code, out, _ = run(project, target, "--rtrec-record-mode", "once", "--rtrec-upstream", nowhere)
    assert code == 1, out
    assert f"rtrec record mode once: upstream {nowhere}/realtime" in out, out
    assert "unreachable: OSError" in out
    assert "was not written (a failed session is never a recording)" in out
    assert not bundle_files(project / "rtrec_bundles")

    with run_in_thread(serve_refusing_upstream) as refusing:
        code, out, _ = run(
            project, target, "--rtrec-record-mode", "once", "--rtrec-upstream", refusing.url
        )
    assert code == 1, out
    assert "the upstream refused the handshake with HTTP 401" in out, out
    assert "invalid_api_key" in out
    assert not bundle_files(project / "rtrec_bundles")

    code, out, _ = run(project, target, "--rtrec-record-mode", "once", *SIM)
    assert code == 0, out
    good = bundle_files(project / "rtrec_bundles")
    code, out, _ = run(project, target, "--rtrec-record-mode", "all", "--rtrec-upstream", nowhere)
    assert code == 1, out
    assert "unreachable" in out
    assert bundle_files(project / "rtrec_bundles") == good


def test_a_client_left_connected_and_xdist_recording(recorded: Path, tmp_path: Path) -> None:
    """Case 5: a test that leaves its connection open fails after rtrec_close_timeout (1 s
    in the project's ini) with a readable message, not a trio.TooSlowError. Case 6: two
    xdist workers that ask for the same missing bundle at once: one records it, the other
    waits for it and plays it back."""
    project = copy_of(recorded, tmp_path)
    code, out, seconds = run(project, "test_leak.py")
    assert code == 1, out
    assert "were still open 1 s after the test ended (close_timeout), and rtrec closed" in out
    assert "TooSlowError" not in out
    assert "trio" not in out
    assert seconds < RUN_TIMEOUT / 2

    barrier, log = tmp_path / "barrier", tmp_path / "log"
    barrier.mkdir()
    code, out, _ = run(
        project,
        "test_shared.py",
        "-n",
        "2",
        "--rtrec-record-mode",
        "once",
        *SIM,
        USERPROJECT_BARRIER=str(barrier),
        USERPROJECT_LOG=str(log),
    )
    assert code == 0, out
    assert "2 passed" in out
    assert sorted(log.read_text().split()) == ["played", "recorded"]
    assert [p.name for p in (project / "bundles").iterdir()] == ["shared-turn"]


def response_ids(bundle: Path) -> set[str]:
    """The response ids the simulator handed out in a bundle."""
    ids = set()
    for line in (bundle / "events.jsonl").read_bytes().splitlines():
        payload = orjson.loads(orjson.loads(line)["payload"] or "{}")
        response = payload.get("response") if isinstance(payload, dict) else None
        if isinstance(response, dict) and isinstance(response.get("id"), str):
            ids.add(response["id"])
    return ids


def test_the_simulator_takes_a_scenario_and_a_seed(tmp_path: Path) -> None:
    """Case 7: --rtrec-sim-scenario makes the simulator call the agent's tool, so a
    tool-calling agent can be recorded and played back; --rtrec-sim-seed and the marker's
    sim={"seed": 3} choose the ids."""
    project = user_project(tmp_path)
    code, out, _ = run(
        project,
        "test_tools.py",
        "--rtrec-record-mode",
        "once",
        *SIM,
        "--rtrec-sim-scenario",
        "weather.toml",
        "--rtrec-sim-seed",
        "7",
    )
    assert code == 0, out
    code, out, _ = run(project, "test_tools.py")
    assert code == 0, out
    assert "2 passed" in out
    bundles = project / "rtrec_bundles" / "test_tools"
    seven, three = (
        response_ids(bundles / "test_weather"),
        response_ids(bundles / "test_weather_seed_3"),
    )
    assert len(seven) == len(three) == 2  # the call, then the answer
    assert not seven & three
