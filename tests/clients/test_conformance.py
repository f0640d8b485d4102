"""Conformance: the clients teams use, recorded through rtrec and played back by it.

For each client: one conversation (a text turn, a voice turn of fixture speech, a function
call; the Agents SDKs also talk over a reply) is recorded with `rtrec record` in front of
`rtrec sim` and exported with `rtrec export`; then `rtrec playback BUNDLE` with default
options serves it to the same client ten times at `--pace instant` and twice at recorded
pace (the default pace). Every run must complete: the client finishes its conversation and
the server's report for that connection names nothing wrong. A bundle recorded by one
client is also played to another client of the same protocol.

Everything is a process on 127.0.0.1 (tests/clients/harness.py). The clients: the official
`openai` SDK (GA, beta), the Agents SDK for Python (tests/clients/.venv-agents), the Agents
SDK for JavaScript (tests/clients/node, `npm ci`), a page in Debian's headless Chromium.
`.ci/run` installs them; elsewhere a missing one is skipped with the command that installs it
(under CI=true it fails instead). The per-client tally is printed at the end of the session
(tests/clients/tally.py).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf

from .harness import HERE, SCENARIO, Client, Run, play, record, rtrec, serving

FIXTURE_AUDIO = HERE.parent.parent / "src" / "rtrec" / "fixtures" / "audio"
AGENTS_PYTHON = HERE / ".venv-agents" / "bin" / "python"
NODE_CLIENT = HERE / "node" / "client.mjs"

CLIENTS = {
    "openai-ga": Client("openai-ga", (sys.executable, str(HERE / "sdk_client.py")), "ga", ("ga",)),
    "openai-beta": Client(
        "openai-beta", (sys.executable, str(HERE / "sdk_client.py")), "beta", ("beta",)
    ),
    "agents-python": Client(
        "agents-python", (str(AGENTS_PYTHON), str(HERE / "agents_client.py")), "ga"
    ),
    "agents-node": Client("agents-node", ("node", str(NODE_CLIENT)), "ga"),
    "browser": Client("browser", (sys.executable, str(HERE / "browser_client.py")), "ga"),
}
#: What each client needs besides rtrec's own environment, and how .ci/run provides it.
NEEDS: dict[str, tuple[Callable[[], bool], str]] = {
    "agents-python": (AGENTS_PYTHON.exists, "tests/clients/setup"),
    "agents-node": (
        lambda: shutil.which("node") is not None and (HERE / "node" / "node_modules").is_dir(),
        "apt-get install nodejs npm && tests/clients/setup",
    ),
    "browser": (lambda: shutil.which("chromium") is not None, "apt-get install chromium"),
}
INSTANT_RUNS = 10
RECORDED_PACE_RUNS = 2


def need(name: str) -> Client:
    """The client, or a skip (a failure under CI) saying how to install what it lacks."""
    available, install = NEEDS.get(name, (lambda: True, ""))
    if not available():
        message = f"{name} is not installed here: {install}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CLIENTS[name]


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture utterances as raw PCM16 24 kHz files, as the clients read them."""
    folder = tmp_path_factory.mktemp("audio")
    for name in ("hello", "weather", "joke", "stop"):
        samples, rate = sf.read(FIXTURE_AUDIO / f"{name}.flac", dtype="int16")
        assert rate == 24000
        (folder / f"{name}.pcm").write_bytes(samples.astype("<i2").tobytes())
    return folder


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory, audio: Path) -> Callable[[str], Path]:
    """The bundle each client recorded, recorded once per pytest session: xdist's workers
    share the base temporary directory, and the first to need a bundle records it under a
    file lock while the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    # under xdist, the base is popen-gwN inside this session's directory
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bundles"
    shared.mkdir(exist_ok=True)

    def bundle(name: str) -> Path:
        client = need(name)
        work = shared / name
        with (shared / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (work / "bundle" / "session.json").exists():
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
                record(client, audio, work)
        return work / "bundle"

    return bundle


def tally(
    record_property: Callable[[str, object], None], client: str, kind: str, runs: list[Run]
) -> None:
    record_property(
        "conformance",
        {
            "client": client,
            "kind": kind,
            "completed": sum(r.completed for r in runs),
            "tried": len(runs),
        },
    )


def failures(runs: list[Run]) -> str:
    return "\n".join(f"run {i}: {r.describe()}" for i, r in enumerate(runs) if not r.completed)


@pytest.mark.parametrize("name", list(CLIENTS))
def test_every_playback_run_completes(
    name: str,
    audio: Path,
    bundles: Callable[[str], Path],
    record_property: Callable[[str, object], None],
) -> None:
    """A client's recorded conversation, played back to it with default options, completes
    10 of 10 runs at instant pace and 2 of 2 at recorded pace."""
    client = need(name)
    bundle = bundles(name)
    instant = play(bundle, client, audio, INSTANT_RUNS, "--pace", "instant")
    tally(record_property, name, "instant", instant)
    paced = play(bundle, client, audio, RECORDED_PACE_RUNS)
    tally(record_property, name, "recorded pace", paced)
    assert not failures(instant + paced), failures(instant) + "\n" + failures(paced)


@pytest.mark.parametrize(
    ("recorded_by", "played_to"), [("openai-ga", "browser"), ("browser", "openai-ga")]
)
def test_a_bundle_plays_back_to_another_client_of_its_protocol(
    recorded_by: str,
    played_to: str,
    audio: Path,
    bundles: Callable[[str], Path],
    record_property: Callable[[str, object], None],
) -> None:
    """The official SDK (Authorization header) and a browser page (subprotocol auth) send the
    same GA events: a recording of either plays back to the other, every run."""
    client = need(played_to)
    assert client.protocol == CLIENTS[recorded_by].protocol
    bundle = bundles(recorded_by)
    runs = play(bundle, client, audio, INSTANT_RUNS, "--pace", "instant")
    tally(record_property, f"{played_to} <- {recorded_by}", "instant", runs)
    assert not failures(runs), failures(runs)


@pytest.mark.parametrize("command", ["sim", "record", "playback"])
def test_a_plain_http_request_leaves_the_server_serving(
    command: str, audio: Path, bundles: Callable[[str], Path]
) -> None:
    """`curl` at a server's URL (a health check, a URL typed into a browser) gets an HTTP
    answer, and the next client still has its whole conversation."""
    client = CLIENTS["openai-ga"]
    argv = {
        "sim": lambda: rtrec("sim", "--scenario", str(SCENARIO)),
        "record": lambda: rtrec(
            "record",
            "--upstream",
            "sim",
            "--scenario",
            str(SCENARIO),
            "--db",
            str(audio / "curl.duckdb"),
        ),
        "playback": lambda: rtrec("playback", str(bundles("openai-ga")), "--pace", "instant"),
    }[command]()
    listen = "--serve" if command == "playback" else "--listen"
    with serving([*argv, listen, "127.0.0.1:0"]) as server:
        http = server.url.replace("ws://", "http://", 1) + "/realtime?model=gpt-realtime"
        curl = subprocess.run(
            ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", http],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert curl.stdout.startswith("4"), f"curl: {curl.stdout} {curl.stderr}"
        (result,) = client.run(server.url, audio, 1)
        assert result["ok"], result
        assert server.process.poll() is None, "".join(server.stderr)
