"""Helpers for the driver tests: scripted WebSocket servers and reading a drive's session.

Rules (after trio-websocket's own test suite): real sockets on 127.0.0.1 port 0, a
``trio.fail_after`` cap per test, and no sleep that waits for something to happen.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import trio

from rtrec.replay.driver import DriveOptions, DriveResult, drive_session, load_plan
from rtrec.replay.playback import Pace
from rtrec.schemas.storage import Direction, FrameRecord
from rtrec.simulator import load_scenario, serve_simulator
from rtrec.store.reader import LogAudio, read_frames, rebuild_frame
from rtrec.transport.ws import Closed, ServerHandshake, WebSocket, accept_handshake

ROOT = Path(__file__).parent.parent
SESSIONS = ROOT / "fixtures" / "sessions"
SCENARIOS = ROOT / "src" / "rtrec" / "fixtures" / "scenarios"

Script = Callable[[WebSocket, ServerHandshake], Awaitable[None]]


async def serve_script(
    script: Script, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """A WebSocket server on 127.0.0.1 that runs ``script`` for each connection; reports
    its base URL (``ws://127.0.0.1:PORT/v1``)."""

    async def handle(stream: trio.SocketStream) -> None:
        handshake = await accept_handshake(stream, max_size=2**20)
        ws = await handshake.accept(None)
        try:
            await script(ws, handshake)
        except Closed:
            pass
        finally:
            with trio.CancelScope(shield=True):
                await ws.close(linger=0.5)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1")


async def drain(ws: WebSocket) -> None:
    """Read and drop client messages until the client closes."""
    while True:
        await ws.receive()


async def drive_fixture(
    name: str,
    db: Path,
    *,
    scenario: str | Path,
    seed: int = 5,
    sim_pace: str = "fast",
    pace: str = "instant",
    wait_timeout: float = 30.0,
) -> DriveResult:
    """Drive the fixture bundle ``name`` against a simulator on loopback, recording to ``db``."""
    path = scenario if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.toml"
    plan, audio = load_plan(SESSIONS / name)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            functools.partial(
                serve_simulator, scenario=load_scenario(path), pace=sim_pace, seed=seed
            )
        )
        with audio:
            result = await drive_session(
                plan,
                audio,
                upstream=url,
                db=db,
                api_key="sk-test",
                options=DriveOptions(pace=Pace.parse(pace), wait_timeout=wait_timeout),
            )
        nursery.cancel_scope.cancel()
    return result


def client_messages(frames: Sequence[FrameRecord], audio: LogAudio) -> list[str | bytes]:
    """The client's messages of a session, rebuilt byte for byte."""
    return [rebuild_frame(f, audio) for f in frames if f.direction is Direction.CLIENT]


def session_frames(db: Path, session_id: str) -> list[FrameRecord]:
    """A session's rows from a log."""
    return list(read_frames(db, session_id))


def events(frames: list[FrameRecord], direction: Direction, kind: str) -> list[dict[str, Any]]:
    """The decoded events of one direction and type (audio cut out, as the log keeps them)."""
    return [
        orjson.loads(f.payload or "{}")
        for f in frames
        if f.direction is direction and f.type == kind
    ]
