"""The library API of docs/api.md: what ``rtrec`` exports, and a recorder run in-process.

A real recorder (writer, simulator, proxy) on loopback, a real WebSocket client, a real
DuckDB log and FLAC archive: the test talks to ``rec.url`` and reads the log afterwards.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

import rtrec
from rtrec.schemas.storage import LogMessage, SessionClose, SessionRecord
from rtrec.store.writer import RELAY_SWITCH_INTERVAL
from rtrec.transport.ws import Closed, WebSocket, connect

#: The public API; a change here is a change of every user's code (docs/api.md).
API = [
    "LogAudio",
    "PlaybackOptions",
    "ProxyOptions",
    "Replay",
    "RtrecError",
    "RunningRecorder",
    "SessionInfo",
    "__version__",
    "canonical_json",
    "check_golden",
    "diff_conversations",
    "export_session",
    "import_bundle",
    "index_session",
    "load_recording",
    "load_scenario",
    "open_log_reader",
    "open_recorder",
    "read_frame_columns",
    "read_frames",
    "read_sessions",
    "read_streams",
    "rebuild",
    "replay_session",
    "resolve_session",
    "run_in_thread",
    "serve_playback",
    "serve_simulator",
    "transcript",
    "tune_process",
]


def test_the_api_is_pinned() -> None:
    """``rtrec.__all__`` is exactly the documented API, each name resolves to the object of
    the module that defines it, and ``dir(rtrec)`` lists them."""
    assert rtrec.__all__ == API
    for name in API:
        value = getattr(rtrec, name)
        if name != "__version__":
            module = importlib.import_module(rtrec._EXPORTS[name])
            assert value is getattr(module, name), name
    assert set(API) <= set(dir(rtrec))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        rtrec.nothing_here  # noqa: B018


def test_every_exported_name_is_in_docs_api() -> None:
    """docs/api.md mentions every exported name (backquoted)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    missing = [n for n in API if n != "__version__" and not re.search(rf"\b{n}\b", doc)]
    assert missing == []


@pytest.mark.parametrize("module", ["rtrec", "rtrec.replay"])
def test_importing_stays_light(module: str) -> None:
    """``import rtrec`` loads no I/O library (nor numpy): ``rtrec --version`` and the pytest
    plugin stay fast; ``import rtrec.replay`` (the reducer) loads no I/O library either."""
    heavy = ["trio", "duckdb", "soundfile", "pyarrow", "websockets", "click"]
    if module == "rtrec":
        heavy.append("numpy")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


async def text_turn(url: str, text: str) -> tuple[WebSocket, list[dict[str, Any]]]:
    """Connect to ``url``, ask ``text`` and read up to the response's end."""
    ws = await connect(
        f"{url}/realtime?model=gpt-realtime",
        headers=[("Authorization", "Bearer sk-test-not-a-real-key")],
        max_size=None,
    )
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await ws.send('{"type": "response.create"}')
    events = []
    while not events or events[-1]["type"] != "response.done":
        events.append(orjson.loads(await ws.receive()))
    return ws, events


async def test_open_recorder_records_a_session_in_process(tmp_path: Path) -> None:
    """``open_recorder("sim")`` serves on loopback; a client's turn through ``rec.url`` is in
    the log once the block ends: listed closed, replayed to the simulator's answer, indexed
    through ``on_session_closed``, and shown to ``tap`` as it was logged. The process's
    switch interval is left alone."""
    db = tmp_path / "rtrec.duckdb"
    seen: list[LogMessage] = []
    interval = sys.getswitchinterval()
    async with rtrec.open_recorder(
        "sim",
        db=db,
        simulator={"pace": "fast"},
        on_session_closed=rtrec.index_session,
        tap=seen.append,
    ) as rec:
        assert rec.url.startswith("ws://127.0.0.1:")
        assert rec.url.endswith("/v1")
        assert rec.upstream.startswith("ws://127.0.0.1:")
        assert rec.upstream != rec.url
        assert rec.db == db
        ws, events = await text_turn(rec.url, "What time is it?")
        await ws.close()
        assert sys.getswitchinterval() == interval
    (session,) = rtrec.read_sessions(db)
    assert session.status == "closed"
    replay = rtrec.replay_session(db, session.session_id[:13])
    answer = events[-1]["response"]["output"][0]["content"][0]
    said = rtrec.transcript(replay.state)
    assert 'user      "What time is it?"' in said
    assert orjson.dumps(answer["transcript"]).decode() in said  # the view quotes as JSON
    with rtrec.open_log_reader(db) as log:
        assert log.rows("SELECT count(*) AS n FROM items")[0]["n"] == len(replay.state.items)
    assert isinstance(seen[0], SessionRecord)
    assert isinstance(seen[-1], SessionClose)


async def read_until_closed(ws: WebSocket, closes: list[Closed]) -> None:
    """Read (as a client does) until the connection closes; note how, close the socket."""
    try:
        while True:
            await ws.receive()
    except Closed as closed:
        closes.append(closed)
    finally:
        await ws.close()


async def test_leaving_the_block_closes_the_sessions_still_open(tmp_path: Path) -> None:
    """A client still connected when the block ends gets a 1001 close, and its session is
    logged as closed by the recorder."""
    db = tmp_path / "rtrec.duckdb"
    closes: list[Closed] = []
    async with (
        trio.open_nursery() as nursery,
        rtrec.open_recorder("sim", db=db, simulator={"pace": "fast"}) as rec,
    ):
        ws, _ = await text_turn(rec.url, "hello")
        nursery.start_soon(read_until_closed, ws, closes)
    assert [c.code for c in closes] == [1001]
    (session,) = rtrec.read_sessions(db)
    assert (session.status, session.close_code, session.closed_by) == ("closed", 1001, "recorder")


async def test_an_error_in_the_block_comes_out_as_raised(tmp_path: Path) -> None:
    """An exception raised inside the block reaches the caller as itself, not wrapped in an
    exception group, and the log is still committed and closed."""
    with pytest.raises(KeyError, match="mine"):
        async with rtrec.open_recorder("sim", db=tmp_path / "log.duckdb"):
            raise KeyError("mine")
    assert rtrec.read_sessions(tmp_path / "log.duckdb") == []


async def test_simulator_options_need_the_simulator(tmp_path: Path) -> None:
    """Simulator options with a real upstream are refused, naming the upstream."""
    with pytest.raises(ValueError, match=re.escape("wss://api.openai.com/v1")):
        async with rtrec.open_recorder(
            "wss://api.openai.com/v1", db=tmp_path / "log.duckdb", simulator={"pace": "fast"}
        ):
            pass


def test_tune_process_sets_the_relay_switch_interval() -> None:
    """``tune_process`` is the one call that sets the process's switch interval."""
    before = sys.getswitchinterval()
    try:
        rtrec.tune_process()
        assert sys.getswitchinterval() == RELAY_SWITCH_INTERVAL
    finally:
        sys.setswitchinterval(before)


async def test_a_cancelled_block_still_commits_the_log(tmp_path: Path) -> None:
    """Cancelling the block (a test's timeout, Ctrl-C) still closes the sessions and commits
    the log: the session is there, closed by the recorder."""
    db = tmp_path / "rtrec.duckdb"
    closes: list[Closed] = []
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            async with rtrec.open_recorder("sim", db=db, simulator={"pace": "fast"}) as rec:
                ws, _ = await text_turn(rec.url, "hello")
                nursery.start_soon(read_until_closed, ws, closes)
                scope.cancel()
                await trio.sleep_forever()
    assert scope.cancelled_caught
    assert [c.code for c in closes] == [1001]
    (session,) = rtrec.read_sessions(db)
    assert (session.status, session.closed_by) == ("closed", "recorder")
