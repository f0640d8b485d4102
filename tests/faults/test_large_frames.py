"""Sessions of 16 MiB frames record, index and read back exactly (issue 15, defect 7).

Under the writer's 128MB DuckDB memory limit, a few such frames close together used to
fail the closing checkpoint (``failed to pin block of size 15.8 MiB``: the database is
invalidated, the session stays ``open``) or the indexing (``failed to allocate 64.0 MiB``).
A real ``rtrec record`` (which indexes each session as it closes), a real echo upstream on
loopback, a real DuckDB log and FLAC files."""

from __future__ import annotations

import base64
import signal
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from rtrec.replay.index import index_session
from rtrec.schemas.storage import Direction
from rtrec.store.reader import (
    LogAudio,
    open_log_reader,
    read_frames,
    read_sessions,
    rebuild_frame,
)
from rtrec.store.writer import open_log_writer
from rtrec.transport.ws import connect
from tests.logdata import SessionScript

from .kit import BIG, recorder_process, upstream_server


def _text(n: int) -> str:
    """A conversation item of just under 16 MiB, different for each ``n``."""
    head = '{"type":"conversation.item.create","item":{"type":"message","role":"user",'
    head += '"content":[{"type":"input_text","text":"'
    tail = '"}]}}'
    return head + chr(ord("a") + n) * (BIG - n * 4096 - len(head) - len(tail)) + tail


def _audio() -> str:
    """An input_audio_buffer.append of just under 16 MiB (the audio goes to FLAC)."""
    pcm = bytes(range(256)) * ((BIG // 4 * 3 - 4096) // 256)
    return '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(pcm).decode() + '"}'


async def _echo(request: WebSocketRequest) -> None:
    ws = await request.accept()
    async with ws:
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass  # the client closed


async def _record(db: Path, err: Path, messages: list[str]) -> int:
    """One session through `rtrec record`: send each message, get its echo; then Ctrl-C."""
    async with (
        upstream_server(_echo) as upstream,
        recorder_process(db, upstream, err) as (process, url),
    ):
        ws = await connect(f"{url}/realtime?model=gpt-realtime", max_size=BIG)
        for message in messages:
            await ws.send(message)
            assert await ws.receive() == message
        await ws.close()
        process.send_signal(signal.SIGINT)
        return await process.wait()


async def test_a_session_of_16_mib_frames_records_indexes_and_reads_back(tmp_path: Path) -> None:
    """Four 16 MiB text frames and a 16 MiB audio frame, echoed: the session is closed and
    indexed, nothing failed, and the log plus the FLAC rebuild every frame byte for byte.
    A second recorder on the same log (whose last rows are those large frames) closes
    cleanly too."""
    db = tmp_path / "log.duckdb"
    sent = [_text(0), _text(1), _audio(), _text(2), _text(3)]
    with trio.fail_after(120):
        status = await _record(db, tmp_path / "first.log", sent)
        assert status == 0, (tmp_path / "first.log").read_text()
        again = await _record(db, tmp_path / "second.log", ['{"type":"response.create"}'])
        assert again == 0, (tmp_path / "second.log").read_text()
    for log_file in ("first.log", "second.log"):
        text = (tmp_path / log_file).read_text()
        assert "rror" not in text, text
        assert "failed" not in text, text
    with open_log_reader(db) as log:
        first, second = read_sessions(log)
        assert (first.status, second.status) == ("closed", "closed")
        indexed = log.rows("SELECT session_id, events FROM indexed ORDER BY session_id")
        assert [(r["session_id"], r["events"]) for r in indexed] == [
            (first.session_id, first.events),
            (second.session_id, second.events),
        ]
        frames = [f for f in read_frames(log, first.session_id) if f.kind.value != "mark"]
        with LogAudio.of_session(log, first.session_id) as audio:
            rebuilt = [rebuild_frame(f, audio) for f in frames]
    assert rebuilt == [m for m in sent for _ in range(2)]  # the client's, then the echo


async def test_a_long_session_of_spread_out_16_mib_frames_is_indexed(tmp_path: Path) -> None:
    """Twelve 16 MiB frames, each 2,100 events apart: no 2,048 events hold more than one,
    so the writer keeps a small memory limit, yet the session holds 192 MiB of payload.
    Indexing it as it closes (the recorder's hook) must not need all of that in DuckDB at
    once: the session is indexed with every event."""
    db = tmp_path / "log.duckdb"
    script = SessionScript()
    for n in range(12):
        script.event(Direction.CLIENT, {"type": "conversation.item.create", "pad": _text(n)})
        for _ in range(2100):
            script.event(Direction.SERVER, {"type": "rate_limits.updated"})
    script.close()
    with trio.fail_after(120):
        async with open_log_writer(db, serve_queries=False, on_session_closed=index_session) as w:
            for message in script.messages:
                await w.send(message)
    with open_log_reader(db) as log:
        (session,) = read_sessions(log)
        indexed = log.rows("SELECT session_id, events FROM indexed")
    assert [(r["session_id"], r["events"]) for r in indexed] == [(session.session_id, 12 * 2101)]
