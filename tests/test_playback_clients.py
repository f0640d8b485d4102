"""Playback with clients that behave as agent frameworks do (issue 14), against the official SDK.

A framework creates items under its own random ids, tags ``response.create`` with
``metadata.client_event_id`` and waits for the server to echo *its* ids; it sends its
configuration from two tasks, in either order; it opens several connections, one after
another or at once, and reconnects after a failure. Each is recorded once through
``rtrec record`` from the simulator, then played back with default options.

Real sockets on 127.0.0.1 port 0; the playback server runs in its own trio loop in a thread
(rtrec.replay.threaded), the SDK on asyncio in the test. Pace is instant.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed

from rtrec.replay.playback import (
    Pace,
    PlaybackOptions,
    PlaybackReports,
    Recording,
    load_recording,
    serve_playback,
)
from rtrec.replay.threaded import run_in_thread
from rtrec.store.bundle import export_session
from rtrec.store.reader import read_sessions

from .simkit import chunks, speech
from .test_record_sdk import Tap, serve_recording

INSTANT = PlaybackOptions(Pace.parse("instant"))
UPDATE_A = {"type": "realtime", "instructions": "Answer briefly."}
UPDATE_B = {"type": "realtime", "tracing": "auto"}


class Framework:
    """One run of a framework-like client: its own ids, chosen afresh."""

    def __init__(self, *, reverse_updates: bool = False) -> None:
        self.item_id = f"item_{uuid.uuid4().hex[:20]}"
        self.tag = uuid.uuid4().hex
        self.reverse_updates = reverse_updates
        self.seen_item: dict[str, Any] | None = None
        self.seen_metadata: dict[str, Any] | None = None

    async def script(self, sdk: Tap) -> None:
        updates = [UPDATE_B, UPDATE_A] if self.reverse_updates else [UPDATE_A, UPDATE_B]
        for session in updates:
            await sdk.conn.session.update(session=session)
        for _ in updates:
            await sdk.until("session.updated")
        item = {
            "id": self.item_id,
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What time is it?"}],
        }
        await sdk.conn.conversation.item.create(item=item)
        while self.seen_item is None:
            event = await sdk.until("conversation.item.added")
            if event["item"]["id"] == self.item_id:  # the framework waits for its own item
                self.seen_item = event["item"]
        await sdk.conn.response.create(response={"metadata": {"client_event_id": self.tag}})
        created = await sdk.until("response.created")
        self.seen_metadata = created["response"].get("metadata")
        await sdk.until("response.done")


async def run_framework(url: str, how: Framework | PushToTalk) -> Tap:
    """Run ``how``'s script with the official SDK (GA) against ``url``."""
    client = AsyncOpenAI(api_key="sk-test-not-a-real-key", websocket_base_url=url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        tap = Tap(conn, "ga")
        await asyncio.wait_for(how.script(tap), timeout=30)
        return tap


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, Framework, Tap]:
    """The framework's turn, recorded through the recorder from the simulator."""
    work = tmp_path_factory.mktemp("framework")
    db = work / "log.duckdb"
    how = Framework()
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        tap = asyncio.run(run_framework(server.url, how))
    assert how.seen_metadata == {"client_event_id": how.tag}  # the simulator echoes them
    (session,) = read_sessions(db)
    export_session(db, session.session_id, work / "bundle")
    return load_recording(work / "bundle"), how, tap


def serve(recording: Recording, reports: PlaybackReports) -> Any:
    return run_in_thread(
        functools.partial(serve_playback, recording, options=INSTANT, reports=reports),
        timeout=30,
    )


def settle(server: Any, reports: PlaybackReports) -> None:
    trio.from_thread.run(reports.wait_idle, trio_token=server.token)


def test_the_client_gets_its_own_ids_back_and_the_same_bytes_otherwise(recorded: tuple) -> None:
    """Played back to a client that chose other random ids, the server frames carry the
    live client's item id and metadata; apart from those ids every frame is the recorded
    one, byte for byte (the determinism contract); the report maps the ids."""
    recording, original, original_tap = recorded
    reports = PlaybackReports()
    with serve(recording, reports) as server:
        how = Framework()
        tap = asyncio.run(run_framework(server.url, how))
        settle(server, reports)
    (report,) = reports.sessions
    assert report.ok, report.render()
    assert how.seen_item is not None
    assert how.seen_metadata == {"client_event_id": how.tag}
    assert report.ids[original.item_id] == how.item_id
    assert report.ids[original.tag] == how.tag
    expected = [
        str(frame).replace(original.item_id, how.item_id).replace(original.tag, how.tag)
        for frame in original_tap.received
    ]
    assert tap.received == expected


def test_configuration_sent_in_the_other_order_still_plays(recorded: tuple) -> None:
    """The two session.updates sent in the reverse of the recorded order (as the JS Agents
    SDK does in some runs) match, and the client gets the recorded frames in order."""
    recording, _, _ = recorded
    reports = PlaybackReports()
    with serve(recording, reports) as server:
        asyncio.run(run_framework(server.url, Framework(reverse_updates=True)))
        settle(server, reports)
    (report,) = reports.sessions
    assert report.ok, report.render()


def test_many_connections_one_after_another_and_at_once(recorded: tuple) -> None:
    """One server plays three connections in a row, then three at once (a framework that
    reconnects, or tests sharing the server): each is matched and reported on its own."""
    recording, _, _ = recorded
    reports = PlaybackReports()
    with serve(recording, reports) as server:
        for _ in range(3):
            asyncio.run(run_framework(server.url, Framework()))

        async def together() -> None:
            await asyncio.gather(*(run_framework(server.url, Framework()) for _ in range(3)))

        asyncio.run(together())
        settle(server, reports)
    assert len(reports.sessions) == 6
    assert sorted(r.connection for r in reports.sessions) == [1, 2, 3, 4, 5, 6]
    for report in reports.sessions:
        assert report.ok, report.render()
        assert report.completed
    assert len({r.ids[next(iter(r.ids))] for r in reports.sessions}) == 6


def test_a_client_that_reconnects_after_a_mismatch_is_counted_not_rewritten(
    recorded: tuple,
) -> None:
    """A client that fails the same way on each of four connections: every connection is
    closed with 1008, and the reports know the last three repeat the first."""
    recording, _, _ = recorded

    async def wrong(url: str) -> None:
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "instructions": "Other."})
            async for _ in conn:
                pass

    reports = PlaybackReports()
    with serve(recording, reports) as server:
        for _ in range(4):
            with pytest.raises(ConnectionClosed, match="1008"):
                asyncio.run(wrong(server.url))
        settle(server, reports)
    assert [reports.repeats(r) for r in reports.sessions] == [0, 1, 2, 3]
    assert all(r.close is not None and r.close[0] == 1008 for r in reports.sessions)


class PushToTalk:
    """A push-to-talk turn: audio appended in 100 ms pieces, then commit and response.create.
    ``overtake``: the commit is sent before the last ``overtake`` pieces (the audio task
    lags behind the control task); ``drop``: those pieces are never sent."""

    def __init__(self, *, overtake: int = 0, drop: bool = False) -> None:
        self.overtake, self.drop = overtake, drop

    async def script(self, sdk: Tap) -> None:
        await sdk.conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        await sdk.until("session.updated")
        pieces = chunks(speech("hello"))
        cut = len(pieces) - self.overtake
        for piece in pieces[:cut]:
            await sdk.conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        await sdk.conn.input_audio_buffer.commit()
        if not self.drop:
            for piece in pieces[cut:]:
                await sdk.conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        await sdk.until("input_audio_buffer.committed")
        await sdk.conn.response.create()
        await sdk.until("response.done")


def test_a_commit_that_overtakes_the_last_audio_waits_for_it(tmp_path: Path) -> None:
    """Recorded with the commit after all the audio; played back to a client whose commit
    overtakes the last 287 ms of audio (three appends), the turn plays (committed goes out
    once the audio has come); a client that never sends them is closed with 1008 within a second,
    saying how much audio it sent and how much the recording had."""
    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        original = asyncio.run(run_framework(server.url, PushToTalk()))
    (session,) = read_sessions(db)
    export_session(db, session.session_id, tmp_path / "bundle")
    recording = load_recording(tmp_path / "bundle")
    reports = PlaybackReports()
    with serve(recording, reports) as server:
        tap = asyncio.run(run_framework(server.url, PushToTalk(overtake=3)))
        with pytest.raises(ConnectionClosed, match="1008") as closed:
            asyncio.run(run_framework(server.url, PushToTalk(overtake=3, drop=True)))
        settle(server, reports)
    assert tap.received == original.received
    good, bad = reports.sessions
    assert good.ok, good.render()
    assert "the client sent input_audio_buffer.commit after" in str(closed.value)
    (mismatch,) = bad.mismatches
    assert mismatch.summary.endswith(
        "after 2300 ms of audio; the recording had 2587 ms of audio at this point "
        "(287 ms more, and no more came within 787 ms)"
    )
    assert bad.unsent_audio == (3, pytest.approx(287.0, abs=0.5))
