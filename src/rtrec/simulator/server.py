"""The simulator's WebSocket server: a thin trio shell around ``SimSession``, on rtrec's one
WebSocket layer (``rtrec.transport.ws``, as the recorder and playback).

``serve_simulator`` accepts ``GET /v1/realtime?model=...`` the way the service does
(PROTOCOL.md §1): a key in ``Authorization: Bearer ...`` or in the browser subprotocol
``openai-insecure-api-key.<key>`` (no key: HTTP 401), the beta protocol when the handshake
carries ``OpenAI-Beta: realtime=v1`` or the ``openai-beta.realtime-v1`` subprotocol, and
the ``realtime`` subprotocol echoed when offered (browsers reject a handshake that selects
none). Each connection is one session; one task moves frames between it and the socket:

- ``fast``: after each client frame the whole schedule is sent at once, so a response is
  complete before the next client frame is read.
- ``realtime``: events go out when their time on the session's timeline comes, measured on
  trio's clock (so a ``MockClock`` drives it in tests).

GPT-Live (``/v1/live/sessions``, ``…/{id}/fork``, ``…/{id}/attach``; ``LiveSession``) runs
on its media clock, so the pace does not apply. A sideband attaches to a session this
server started and has not closed; each session's connections share one ``_LiveHub``.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import ssl
import urllib.parse
from functools import partial
from typing import Final

import orjson
import trio

from rtrec.schemas import ServerEvent, to_json
from rtrec.simulator.live import LiveSession
from rtrec.simulator.responses import Timing
from rtrec.simulator.scenario import DEFAULT_SCENARIO, Scenario
from rtrec.simulator.session import SimSession
from rtrec.simulator.synth import Synthesizer
from rtrec.transport.ws import (
    Closed,
    ServerHandshake,
    WebSocket,
    open_inbox,
    serve_websocket,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MESSAGE_QUEUE_SIZE",
    "Pace",
    "serve_simulator",
]

#: A 15 MiB append is 20 MiB of base64; anything larger is refused with close code 1009.
MAX_MESSAGE_SIZE: Final = 32 * 1024 * 1024
#: Frames the reader may queue ahead of the session (each up to MAX_MESSAGE_SIZE). A few
#: let the reader keep the socket drained while the session works; more only buys memory.
MESSAGE_QUEUE_SIZE: Final = 4
#: How long a close waits for the client's close frame (or, after a protocol failure such
#: as 1009, its end of stream) before dropping the socket. Generous: a client still busy
#: sending a refused 32 MiB message must get to read our close frame, and a socket closed
#: with its bytes unread would reset the connection instead.
CLOSE_LINGER: Final = 30.0

_log = logging.getLogger("rtrec.simulator")


class Pace(enum.StrEnum):
    """How the server spaces out a session's events."""

    REALTIME = "realtime"
    FAST = "fast"


def _error_body(message: str, code: str | None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )


async def _reject(request: ServerHandshake, status: int, message: str, code: str | None) -> None:
    await request.reject(status, _error_body(message, code), [("Content-Type", "application/json")])


def _api_key(headers: dict[str, str], protocols: list[str]) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    for proto in protocols:
        if proto.startswith("openai-insecure-api-key.") and len(proto) > 24:
            return proto[24:]
    return None


async def _handle(
    request: ServerHandshake,
    *,
    scenario: Scenario,
    pace: Pace,
    seed: int,
    synthesizer: Synthesizer,
    timing: Timing | None,
) -> None:
    path, _, query = request.path.partition("?")
    live = _LIVE_PATH.match(path)
    if live is not None:
        await _handle_live(request, live.group("kind"), scenario, seed, synthesizer)
        return
    if path.rstrip("/") != "/v1/realtime":
        await _reject(
            request, 404, f"Not found: {path}. The Realtime API is at /v1/realtime.", None
        )
        return
    headers = {k.lower(): v for k, v in request.headers}
    protocols = request.subprotocols
    if _api_key(headers, protocols) is None:
        await _reject(
            request,
            401,
            "Missing bearer or basic authentication in header",
            None,
        )
        return
    params = urllib.parse.parse_qs(query)
    model = params.get("model", [None])[0]
    intent = params.get("intent", [None])[0]
    if intent not in (None, "transcription"):
        await _reject(
            request,
            400,
            f"Invalid value: '{intent}'. Supported values are: 'transcription'.",
            "invalid_value",
        )
        return
    # a transcription session needs no model (PROTOCOL.md §1: intent=transcription)
    if not model and intent is None:
        await _reject(
            request, 400, "Missing required parameter: 'model'.", "missing_required_parameter"
        )
        return
    beta = "realtime=v1" in headers.get("openai-beta", "") or "openai-beta.realtime-v1" in protocols
    ws = await request.accept("realtime" if "realtime" in protocols else None)
    session = SimSession(
        protocol="beta" if beta else "ga",
        model=model,
        seed=seed,
        scenario=scenario,
        synthesizer=synthesizer,
        timing=timing,
        intent=intent,
    )
    try:
        async with open_inbox(ws, MESSAGE_QUEUE_SIZE) as inbox:
            await _run(ws, inbox, session, pace)
    except (Closed, trio.EndOfChannel):
        pass  # the client left; nothing more to say
    except Exception:
        # A bug in one session must not take the server down with it: say so, loudly.
        _log.exception("simulated session failed; closing it with 1011")
        await ws.close(1011, "simulator error", linger=CLOSE_LINGER)
    await ws.close(linger=CLOSE_LINGER)


_LIVE_PATH: Final = re.compile(r"^/v1/live/sessions(?:/(?P<id>[^/]+)/(?P<kind>attach|fork))?/?$")


async def _handle_live(
    request: ServerHandshake,
    kind: str | None,
    scenario: Scenario,
    seed: int,
    synthesizer: Synthesizer,
) -> None:
    """GPT-Live (``live.py``): primary and fork connections; a sideband is refused."""
    if kind == "attach":
        await _reject(request, 404, "The rtrec simulator does not simulate sideband attach.", None)
        return
    headers = {k.lower(): v for k, v in request.headers}
    if _api_key(headers, request.subprotocols) is None:
        await _reject(request, 401, "Missing bearer or basic authentication in header", None)
        return
    ws = await request.accept(None)
    session = LiveSession(
        endpoint="fork" if kind == "fork" else "primary",
        seed=seed,
        scenario=scenario,
        synthesizer=synthesizer,
    )
    try:
        while not session.closed:
            for event in session.receive(await ws.receive()):
                await ws.send(orjson.dumps(event).decode())
        await ws.close(1000, linger=CLOSE_LINGER)
    except Closed:
        pass  # the client left
    except Exception:
        _log.exception("simulated Live session failed; closing it with 1011")
        await ws.close(1011, "simulator error", linger=CLOSE_LINGER)


async def _send(ws: WebSocket, events: list[ServerEvent]) -> None:
    for event in events:
        await ws.send(to_json(event).decode())


async def _run(
    ws: WebSocket,
    inbox: trio.MemoryReceiveChannel[str | bytes],
    session: SimSession,
    pace: Pace,
) -> None:
    """Run one session until the client leaves (``EndOfChannel``, or ``Closed`` on a send)."""
    origin = trio.current_time()
    await _send(ws, session.open(0.0))
    while True:
        if pace is Pace.FAST:
            message = await inbox.receive()
            await _send(ws, session.receive(message, session.now))
            await _send(ws, session.drain())
            continue
        deadline = session.next_deadline()
        received: list[str | bytes] = []
        with trio.move_on_at(math.inf if deadline is None else origin + deadline):
            received.append(await inbox.receive())
        now = trio.current_time() - origin
        if received:
            await _send(ws, session.receive(received[0], now))
        elif deadline is not None:
            # origin + deadline - origin can round below deadline; never spin on it.
            await _send(ws, session.advance(max(now, deadline)))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    scenario: Scenario = DEFAULT_SCENARIO,
    pace: Pace | str = Pace.REALTIME,
    seed: int = 0,
    timing: Timing | None = None,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the simulated Realtime API until cancelled.

    Reports its base URL, ``ws://HOST:PORT/v1`` (``wss://`` with ``ssl_context``), through
    ``task_status.started``; point an SDK at it with
    ``AsyncOpenAI(api_key="sk-test", websocket_base_url=url)``.

    Args:
        host: the address to bind (the URL names the first address it resolves to).
        port: the port; 0 picks a free one.
        scenario: what the simulated model hears and says.
        pace: ``"realtime"`` (events at their time) or ``"fast"`` (no waiting).
        seed: seeds every id; each connection starts from it.
        timing: the reply timeline (``Timing()`` by default).
        ssl_context: listen with TLS (``rtrec.transport.tls.load_tls().context``).
        task_status: trio's start protocol.

    Raises:
        OSError: the address cannot be bound.
    """
    pace = Pace(pace)
    handler = partial(
        _handle,
        scenario=scenario,
        pace=pace,
        seed=seed,
        synthesizer=Synthesizer(),
        timing=timing,
    )
    # Bind before opening the nursery, so a busy port is a plain OSError for the caller.
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    served: list[trio.SSLListener[trio.SocketStream] | trio.SocketListener] = (
        list(listeners)
        if ssl_context is None
        else [trio.SSLListener(listener, ssl_context) for listener in listeners]
    )
    serve = partial(serve_websocket, handler, served, max_size=MAX_MESSAGE_SIZE, name="rtrec sim")
    scheme = "ws" if ssl_context is None else "wss"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        task_status.started(f"{scheme}://{_url_host(host)}:{bound}/v1")
