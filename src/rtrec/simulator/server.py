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

import contextlib
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
from rtrec.simulator.live import PRIMARY, LiveSession, Outbox
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
    lives: dict[str, _LiveHub],
) -> None:
    path, _, query = request.path.partition("?")
    live = _LIVE_PATH.match(path)
    if live is not None:
        await _handle_live(
            request, live, scenario=scenario, seed=seed, synthesizer=synthesizer, lives=lives
        )
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
#: Frames queued per Live connection before its sender waits for the socket.
_LIVE_OUTBOX: Final = 64
#: What a lagging sideband may lose: its copies of the session's audio.
_SIDEBAND_AUDIO: Final = frozenset({"session.output_audio.delta", "session.input_audio.append"})


class _LiveHub:
    """One simulated Live session and the connections that see it: its primary (or fork)
    and the sidebands attached to it. Frames are handled one at a time under ``lock`` and
    their events queued per connection in that order, so every connection sees the
    session's events in the order they happened. The hub is in ``lives`` (the server's
    open sessions, by id, for attach) from ``session.started`` to ``session.closed``."""

    def __init__(self, session: LiveSession, lives: dict[str, _LiveHub]) -> None:
        self.session = session
        self.lock = trio.Lock()
        self.outboxes: dict[str, trio.MemorySendChannel[str | trio.Event]] = {}
        self._lives = lives
        self._sidebands = 0

    def new_key(self) -> str:
        self._sidebands += 1
        return f"sideband-{self._sidebands}"

    def join(self, key: str) -> trio.MemoryReceiveChannel[str | trio.Event]:
        """A connection's queue, registered at once: a sideband's ``session.started`` is in
        it before its handshake completes, so no event of the session can slip between
        the two (this runs without a checkpoint, so no other connection's frame does)."""
        send, queue = trio.open_memory_channel[str | trio.Event](_LIVE_OUTBOX)
        self.outboxes[key] = send
        if key != PRIMARY:
            for event in self.session.attach(key)[key]:
                send.send_nowait(orjson.dumps(event).decode())
        return queue

    async def deliver(self, outbox: Outbox) -> None:
        """Queue each connection's events; once the session is over, end every connection
        (its sender drains its queue, then the socket closes)."""
        for key, events in outbox.items():
            channel = self.outboxes.get(key)
            if channel is None:  # it left
                continue
            for event in events:
                text = orjson.dumps(event).decode()
                if key != PRIMARY and event["type"] in _SIDEBAND_AUDIO:
                    # a sideband that lags loses audio, as on the service (gaps between
                    # the start_ms/end_ms ranges), rather than holding the session up
                    with contextlib.suppress(trio.WouldBlock):
                        channel.send_nowait(text)
                else:
                    await channel.send(text)
        sid = self.session.session_id
        if sid is not None and not self.session.closed:
            self._lives.setdefault(sid, self)
        if self.session.closed:
            if sid is not None and self._lives.get(sid) is self:
                del self._lives[sid]
            for channel in self.outboxes.values():
                channel.close()
            self.outboxes.clear()

    async def flushed(self, key: str) -> None:
        """Wait until what is queued for ``key`` is on its socket, so a connection reads its
        next frame only once its answers to the last one are out (a client that closes
        right after a command still gets them first)."""
        channel = self.outboxes.get(key)
        if channel is not None:
            sent = trio.Event()
            await channel.send(sent)
            await sent.wait()

    async def leave(self, key: str) -> None:
        """A connection ended: a primary that leaves ends the session (the sidebands see
        ``connection_lost``); a sideband that leaves is forgotten."""
        async with self.lock:
            if key == PRIMARY:
                await self.deliver(self.session.lose_primary())
            else:
                self.session.detach(key)
            channel = self.outboxes.pop(key, None)
            if channel is not None:
                channel.close()


async def _live_connection(
    request: ServerHandshake,
    hub: _LiveHub,
    key: str,
    queue: trio.MemoryReceiveChannel[str | trio.Event],
) -> None:
    """Serve one connection of a Live session (``PRIMARY`` or a sideband's key), already
    joined to its hub: its frames go to the session, the events for it come back through
    its queue; when the queue ends (the session closed) the socket closes with 1000."""
    try:
        ws = await request.accept(None)
    except BaseException:
        with trio.CancelScope(shield=True):
            await hub.leave(key)
        raise
    finished, reading = trio.Event(), trio.CancelScope()

    async def send_all() -> None:
        try:
            with contextlib.suppress(Closed):  # the client is gone: its reader sees it
                async for item in queue:
                    if isinstance(item, trio.Event):
                        item.set()
                    else:
                        await ws.send(item)
        finally:
            finished.set()
            reading.cancel()  # the session is over (or the client gone): stop reading

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            with reading, contextlib.suppress(Closed):
                while not hub.session.closed:
                    frame = await ws.receive()
                    async with hub.lock:
                        await hub.deliver(hub.session.receive(frame, via=key))
                    await hub.flushed(key)
            await hub.leave(key)  # the client left (or the session ended): end its queue
            await finished.wait()
    except Exception:
        # A bug in one session must not take the server down with it: say so, loudly.
        _log.exception("simulated Live session failed; closing it with 1011")
        with trio.CancelScope(shield=True):
            await hub.leave(key)
        await ws.close(1011, "simulator error", linger=CLOSE_LINGER)
        return
    await ws.close(1000, linger=CLOSE_LINGER)


async def _handle_live(
    request: ServerHandshake,
    match: re.Match[str],
    *,
    scenario: Scenario,
    seed: int,
    synthesizer: Synthesizer,
    lives: dict[str, _LiveHub],
) -> None:
    """GPT-Live (``live.py``): primary, fork and sideband connections. A sideband
    attaches to a session of this server that has started and is still open."""
    headers = {k.lower(): v for k, v in request.headers}
    if _api_key(headers, request.subprotocols) is None:
        await _reject(request, 401, "Missing bearer or basic authentication in header", None)
        return
    kind = match.group("kind")
    if kind != "attach":
        session = LiveSession(
            endpoint="fork" if kind == "fork" else "primary",
            seed=seed,
            scenario=scenario,
            synthesizer=synthesizer,
        )
        hub = _LiveHub(session, lives)
        await _live_connection(request, hub, PRIMARY, hub.join(PRIMARY))
        return
    session_id = urllib.parse.unquote(match.group("id"))
    params = urllib.parse.parse_qs(request.path.partition("?")[2])
    graceful = params.get("graceful_close", ["true"])[0]
    if graceful not in ("true", "false"):
        await _reject(
            request,
            400,
            f"Invalid value: '{graceful}'. graceful_close is true or false.",
            "invalid_value",
        )
        return
    attached = lives.get(session_id)
    if attached is None or attached.session.closed:  # closed: its last events still going out
        await _reject(
            request,
            404,
            f"No open Live session {session_id!r} on this simulator: a sideband attaches to a "
            "session started here and not yet closed (the id in its session.started).",
            "session_not_found",
        )
        return
    key = attached.new_key()
    await _live_connection(request, attached, key, attached.join(key))


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
        lives={},
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
