"""Helpers for the GPT-Live playback, driver and plugin tests: one client conversation with
the official SDK's ``client.live.connect()``, and its recording through the real stack
(`rtrec record` in front of `rtrec sim`, as tests/test_sim_live.py serves them).

``live_conversation(how)`` is the client: ``session.start``, fixture speech and silence
streamed as a microphone does, the answer to the client delegation the simulator opens
(``session.commentary.append``), more silence while the answer plays, then
``session.close``. It tags its commands with event ids of its own (``how.ids``), as
frameworks do, so that playback must map them (the server echoes them as
``client_event_id``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
from openai import AsyncOpenAI

from rtrec.replay.threaded import run_in_thread
from rtrec.store.bundle import export_session
from rtrec.store.reader import read_sessions

from .simkit import chunks, silence, speech
from .test_record_sdk import Tap
from .test_sim_live import WEATHER, serve

KEY = "sk-test-not-a-real-key"
__all__ = ["WEATHER", "LiveBehaviour", "live_conversation", "record_live", "run_live"]


@attrs.frozen
class LiveBehaviour:
    """What one run of the client does."""

    #: the prefix of the event ids the client chooses for its commands
    ids: str = "rec"
    #: milliseconds of audio per append
    chunk_ms: int = 100
    #: what the client answers the delegation with
    answer: str = "14 degrees and sunny"
    #: ``client`` (the app answers with a commentary append) or ``responses`` (the backend
    #: calls the function inside ``response.event``; the app returns its output)
    delegation: str = "client"


def live_conversation(how: LiveBehaviour = LiveBehaviour()) -> Callable[[Tap], Awaitable[None]]:
    """The client script (see the module docstring)."""

    async def stream(sdk: Tap, pcm: bytes) -> None:
        for piece in chunks(pcm, ms=how.chunk_ms):
            await sdk.conn.session.input_audio.append(audio=base64.b64encode(piece).decode())

    async def answer_backend(sdk: Tap) -> None:
        while True:
            event = await sdk.until("response.event")
            nested = event["event"]
            if nested["type"] == "response.output_item.done":
                break
        output = {
            "type": "function_call_output",
            "call_id": nested["item"]["call_id"],
            "output": orjson.dumps({"forecast": how.answer}).decode(),
        }
        await sdk.conn.response.item.create(item=output, event_id=f"{how.ids}_answer")
        await sdk.conn.response.create(event_id=f"{how.ids}_go")

    async def script(sdk: Tap) -> None:
        conn = sdk.conn
        session: dict[str, Any] = {"model": "gpt-live-1"}
        if how.delegation == "responses":
            session["delegation"] = {"type": "responses", "responses": {"model": "gpt-5.2"}}
        await conn.session.start(session=session, event_id=f"{how.ids}_start")
        await sdk.until("session.started")
        await stream(sdk, speech("weather") + silence(800))
        created = await sdk.until("session.delegation.created")
        if how.delegation == "responses":
            await answer_backend(sdk)
        else:
            await conn.session.commentary.append(
                content=how.answer,
                delegation_id=created["delegation"]["id"],
                event_id=f"{how.ids}_answer",
            )
        await stream(sdk, silence(6000))  # the answer plays while the microphone streams on
        await conn.session.close(event_id=f"{how.ids}_close")
        await sdk.until("session.closed")

    return script


def run_live(url: str, script: Callable[[Tap], Awaitable[None]], *, fork: str | None = None) -> Tap:
    """Run ``script`` with the official SDK's ``client.live.connect()`` against ``url``
    (``client.live.forks.connect(session_id=fork)`` with ``fork``)."""

    async def main() -> Tap:
        client = AsyncOpenAI(api_key=KEY, websocket_base_url=url)
        live = client.live
        connecting = live.connect() if fork is None else live.forks.connect(session_id=fork)
        async with connecting as conn:
            tap = Tap(conn, "live")
            await asyncio.wait_for(script(tap), timeout=30)
            return tap

    return asyncio.run(main())


def record_live(work: Path, how: LiveBehaviour = LiveBehaviour()) -> tuple[Path, str, Tap]:
    """Record the conversation into ``work/log.duckdb`` and export it as ``work/bundle``;
    returns the log, the session id and what the client saw."""
    db = work / "log.duckdb"
    with run_in_thread(functools.partial(serve, record_to=db), timeout=30) as server:
        tap = run_live(server.url, live_conversation(how))
    (session,) = read_sessions(db)
    export_session(db, session.session_id, work / "bundle")
    return db, session.session_id, tap
