"""Helpers for the playback tests: the weather conversation, recorded through the real stack.

``conversation(...)`` is one client's behaviour (the official SDK): a text turn, two voice
turns and a function call. ``record(tmp, protocol)`` runs it through `rtrec record` against
the simulator and exports the session as a bundle. The committed fixture bundles under
fixtures/sessions/ were made with ``python -m tests.playkit OUT_DIR PROTOCOL``.
"""

from __future__ import annotations

import base64
import functools
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

from rtrec.replay.threaded import run_in_thread
from rtrec.store.bundle import export_session
from rtrec.store.reader import read_sessions

from .simkit import chunks, speech
from .test_record_sdk import VAD, Tap, run_sdk, serve_recording

try:  # main moves the tool into the simulator (rtrec.simulator.tools); same dict either way
    from rtrec.simulator import WEATHER_TOOL  # type: ignore[attr-defined]
except ImportError:
    from .simkit import WEATHER_TOOL

SESSIONS = Path(__file__).parent.parent / "fixtures" / "sessions"


@attrs.frozen
class Behaviour:
    """What the client does differently from the recorded one."""

    chunk_ms: int = 100
    function_output: str = '{"c":14}'
    send_final_response_create: bool = True


def conversation(protocol: str, how: Behaviour = Behaviour()) -> Callable[[Tap], Awaitable[None]]:
    """The client script: session.update, a text turn, two voice turns, a function call."""

    async def say(sdk: Tap, name: str) -> None:
        for piece in chunks(speech(name), ms=how.chunk_ms):
            await sdk.conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())

    async def script(sdk: Tap) -> None:
        session: dict[str, Any] = (
            {
                "type": "realtime",
                "tools": [WEATHER_TOOL],
                "audio": {"input": {"turn_detection": VAD}},
            }
            if protocol == "ga"
            else {"tools": [WEATHER_TOOL], "turn_detection": VAD}
        )
        await sdk.conn.session.update(session=session)
        await sdk.until("session.updated")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What time is it?"}],
        }
        await sdk.conn.conversation.item.create(item=item)
        await sdk.conn.response.create()
        await sdk.until("response.done")
        await say(sdk, "hello")
        await sdk.until("response.done")
        await say(sdk, "weather")
        done = await sdk.until("response.done")
        call = done["response"]["output"][-1]
        output = {
            "type": "function_call_output",
            "call_id": call["call_id"],
            "output": how.function_output,
        }
        await sdk.conn.conversation.item.create(item=output)
        if how.send_final_response_create:
            await sdk.conn.response.create()
            await sdk.until("response.done")

    return script


def record(out: Path, protocol: str, work: Path) -> Tap:
    """Record the conversation through the recorder and export it as a bundle at ``out``."""
    db = work / "log.duckdb"
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        tap = run_sdk(server.url, protocol, conversation(protocol))
    (session,) = read_sessions(db)
    export_session(db, session.session_id, out)
    return tap


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        record(Path(sys.argv[1]), sys.argv[2], Path(tmp))
