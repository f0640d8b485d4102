"""A scripted GPT-Live server for the recorder's tests (LIVE.md §7): real WebSocket, real
frames, just enough behaviour for the official SDK's `client.live` connections.

Primary and fork (`/v1/live/sessions`, `…/{id}/fork`): `session.start` -> `session.started`
(echoing the requested audio format); every 200 ms of appended input audio is answered
with an input transcript delta, an output transcript delta and 200 ms of output audio in
the session's format; `session.output_audio.fixture.play` -> `…playing`, `…played`;
`session.close` -> `session.closed`, then close 1000.

Sideband (`…/{id}/attach`): `session.started` at once, then the primary's input reflected
as server `session.input_audio.append` and output deltas with `start_ms`/`end_ms`, both
PCM16 24 kHz whatever the session's format, then `session.closed` when the observer sends
`session.close`.
"""

from __future__ import annotations

import base64
import contextlib
import re
from typing import Any

import numpy as np
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from rtrec.schemas import g711

Wire = tuple[str, str]
_PATH = re.compile(r"^/v1/live/sessions(?:/(?P<id>[^/?]+)/(?P<kind>attach|fork))?/?(?:\?.*)?$")


def tone(samples: int, *, start: int = 0, period: int = 40) -> np.ndarray:
    """A deterministic saw-tooth: output audio whose every sample the test can predict."""
    n = np.arange(start, start + samples)
    return (((n % period) - period // 2) * 600).astype("<i2")


def encode(samples: np.ndarray, fmt: dict[str, Any]) -> bytes:
    """PCM16 samples in the session's wire format."""
    kind = fmt.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return g711.ulaw_encode(samples)
    if kind == "audio/pcma":
        return g711.alaw_encode(samples)
    return samples.astype("<i2").tobytes()


def bytes_per_sample(fmt: dict[str, Any]) -> int:
    return 2 if fmt.get("type", "audio/pcm") == "audio/pcm" else 1


class _Session:
    def __init__(
        self, ws: WebSocketConnection, kind: str | None, session_id: str, wire: list[Wire]
    ) -> None:
        self.ws, self.kind, self.session_id, self.wire = ws, kind, session_id, wire
        self.n = 0
        self.fmt: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
        self.model = "gpt-live-1"
        self.heard = 0  # input samples not yet answered
        self.out_samples = 0
        self.ms = 0

    def eid(self) -> str:
        self.n += 1
        return f"event_live{self.n:04d}"

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.session_id,
            "model": self.model,
            "audio": {"format": self.fmt, "output": {"voice": "marin"}},
            "expires_at": 1_900_000_000,
            "status": "active",
        }

    async def send(self, event: dict[str, Any]) -> None:
        text = orjson.dumps(event).decode()
        self.wire.append(("server", text))
        await self.ws.send_message(text)

    async def receive(self) -> dict[str, Any]:
        text = await self.ws.get_message()
        self.wire.append(("client", text))
        return dict(orjson.loads(text))

    async def output(self, samples: int) -> None:
        wire = encode(tone(samples, start=self.out_samples), self.fmt)
        self.out_samples += samples
        await self.send(
            {"type": "session.output_audio.delta", "delta": base64.b64encode(wire).decode()}
        )

    async def run(self) -> None:
        if self.kind == "attach":
            await self.sideband()
            return
        while True:
            event = await self.receive()
            kind, cid = event.get("type"), event.get("event_id")
            if kind == "session.start":
                session = event.get("session", {})
                self.model = session.get("model", self.model)
                self.fmt = session.get("audio", {}).get("format", self.fmt)
                await self.send(
                    {"type": "session.started", "event_id": self.eid(), "session": self.resource()}
                )
            elif kind == "session.input_audio.append":
                raw = base64.b64decode(event["audio"])
                self.heard += len(raw) // bytes_per_sample(self.fmt)
                step = self.fmt.get("rate", 24000) // 5  # 200 ms
                while self.heard >= step:
                    self.heard -= step
                    start, self.ms = self.ms, self.ms + 200
                    for delta_type, text in (
                        ("session.input_transcript.delta", " hello"),
                        ("session.output_transcript.delta", " hi"),
                    ):
                        await self.send(
                            {
                                "type": delta_type,
                                "event_id": self.eid(),
                                "delta": text,
                                "start_ms": start,
                                "end_ms": self.ms,
                            }
                        )
                    await self.output(step)
            elif kind == "session.output_audio.fixture.play":
                ack = {"event_id": self.eid(), "client_event_id": cid}
                await self.send({"type": "session.output_audio.fixture.playing", **ack})
                await self.send(
                    {"type": "session.output_audio.fixture.played", **ack, "event_id": self.eid()}
                )
            elif kind == "session.close":
                await self.send(
                    {
                        "type": "session.closed",
                        "event_id": self.eid(),
                        "reason": "close_requested",
                        "session": self.resource(),
                    }
                )
                await self.ws.aclose(1000)
                return

    async def sideband(self) -> None:
        """What an observer sees: the session, reflected input and timed output, at 24 kHz."""
        await self.send(
            {"type": "session.started", "event_id": self.eid(), "session": self.resource()}
        )
        mic = tone(4800, period=24)
        await self.send(
            {
                "type": "session.input_audio.append",
                "audio": base64.b64encode(mic.tobytes()).decode(),
            }
        )
        for i in range(3):
            out = tone(2400, start=2400 * i)
            await self.send(
                {
                    "type": "session.output_audio.delta",
                    "delta": base64.b64encode(out.tobytes()).decode(),
                    "start_ms": 100 * i,
                    "end_ms": 100 * (i + 1),
                }
            )
        while True:
            event = await self.receive()
            if event.get("type") == "session.close":
                await self.send(
                    {
                        "type": "session.closed",
                        "event_id": self.eid(),
                        "reason": "close_requested",
                        "session": self.resource(),
                    }
                )
                await self.ws.aclose(1000)
                return


async def serve_live_peer(
    wire: list[Wire], *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; reports its base URL (`ws://127.0.0.1:PORT/v1`). Every message
    it receives and sends is appended to ``wire`` as ("client" | "server", text)."""

    async def handle(request: WebSocketRequest) -> None:
        m = _PATH.match(request.path)
        if m is None:
            await request.reject(404, body=b"not a GPT-Live path")
            return
        ws = await request.accept()
        session = _Session(ws, m.group("kind"), m.group("id") or "live_u1_peer0001", wire)
        with contextlib.suppress(ConnectionClosed):
            await session.run()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handle, "127.0.0.1", 0, None)
        task_status.started(f"ws://127.0.0.1:{server.port}/v1")
