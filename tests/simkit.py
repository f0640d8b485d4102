"""Helpers for the simulator tests: fixture speech, event checks, and a core driver.

``Core`` drives a ``SimSession`` without sockets, Playbook style: send client events (as
dicts, serialised to JSON like a real client), get the server events back as the JSON
objects a client would receive. Every event it sees is checked with ``check_server_event``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import soundfile as sf

from rtrec.schemas import UnknownEvent, from_dict, to_json
from rtrec.schemas.g711 import alaw_encode, ulaw_encode
from rtrec.simulator import SimSession

from .sdk_types import sdk_adapter

FIXTURES = Path(__file__).parent.parent / "src" / "rtrec" / "fixtures"
AUDIO = FIXTURES / "audio"
SCENARIOS = FIXTURES / "scenarios"


def speech_samples(name: str) -> np.ndarray:
    """A fixture utterance as 24 kHz int16 samples."""
    samples, rate = sf.read(AUDIO / f"{name}.flac", dtype="int16")
    assert rate == 24000
    return samples


def speech(name: str) -> bytes:
    """A fixture utterance as PCM16 little-endian bytes (the wire's ``pcm16``)."""
    return speech_samples(name).astype("<i2").tobytes()


def speech_g711(name: str, law: str) -> bytes:
    """A fixture utterance at 8 kHz as G.711 (decimated by 3: crude, but it is speech)."""
    samples = speech_samples(name)[::3].copy()
    return ulaw_encode(samples) if law == "ulaw" else alaw_encode(samples)


def silence(ms: int, *, rate: int = 24000, width: int = 2) -> bytes:
    """Digital silence in PCM16 (width 2) or G.711 µ-law (width 1, code 0xFF)."""
    n = rate * ms // 1000
    return bytes(n * 2) if width == 2 else b"\xff" * n


def chunks(data: bytes, *, ms: int = 100, rate: int = 24000, width: int = 2) -> list[bytes]:
    """Split wire audio into ``ms`` pieces, as a streaming client sends it."""
    size = rate * ms // 1000 * width
    return [data[i : i + size] for i in range(0, len(data), size)]


def append(data: bytes) -> dict[str, Any]:
    """An ``input_audio_buffer.append`` event."""
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}


def user_text(text: str) -> dict[str, Any]:
    """A ``conversation.item.create`` of a user text message."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def check_server_event(protocol: str, event: dict[str, Any]) -> None:
    """The event validates as the SDK's own model of its type (no fallback), and parses
    strictly into rtrec's schema as a known class that writes back the same JSON."""
    model = sdk_adapter(protocol, "server").validate_python(event)
    assert model.type == event["type"], f"SDK parsed {event['type']!r} as {model.type!r}"
    typed = from_dict(event)
    assert not isinstance(typed, UnknownEvent), event["type"]
    assert orjson.loads(to_json(typed)) == event


class Core:
    """A ``SimSession`` driven by client events as JSON, without sockets."""

    def __init__(self, protocol: str = "ga", **options: Any) -> None:
        self.protocol = protocol
        self.session = SimSession(protocol=protocol, **options)  # type: ignore[arg-type]
        self.log: list[dict[str, Any]] = []
        self._take(self.session.open())

    def _take(self, events: list[Any]) -> list[dict[str, Any]]:
        out = [orjson.loads(to_json(e)) for e in events]
        for event in out:
            check_server_event(self.protocol, event)
        self.log += out
        return out

    def send(
        self, event: dict[str, Any] | str | bytes, at: float | None = None
    ) -> list[dict[str, Any]]:
        """Send one client event at virtual time ``at`` (default: now); returns what is due."""
        frame = event if isinstance(event, str | bytes) else orjson.dumps(event)
        now = self.session.now if at is None else at
        return self._take(self.session.receive(frame, now))

    def advance(self, at: float) -> list[dict[str, Any]]:
        """Let the timeline run to ``at``."""
        return self._take(self.session.advance(at))

    def drain(self) -> list[dict[str, Any]]:
        """Run the whole schedule (``--pace fast``)."""
        return self._take(self.session.drain())

    def stream(self, data: bytes, *, at: float | None = None, **split: Any) -> list[dict[str, Any]]:
        """Append ``data`` in 100 ms chunks; returns the events they caused."""
        out: list[dict[str, Any]] = []
        for piece in chunks(data, **split):
            out += self.send(append(piece), at)
        return out


def types(events: list[dict[str, Any]]) -> list[str]:
    """The event types, in order."""
    return [e["type"] for e in events]


def without_deltas(events: list[dict[str, Any]]) -> list[str]:
    """The event types with consecutive runs of the same delta type collapsed to one."""
    out: list[str] = []
    for t in types(events):
        if t.endswith(".delta") and out and out[-1] == t:
            continue
        out.append(t)
    return out


def first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The first event of a type."""
    return next(e for e in events if e["type"] == kind)


def audio_of(events: list[dict[str, Any]], item_id: str | None = None) -> bytes:
    """The concatenated output audio of the audio delta events (of one item)."""
    return b"".join(
        base64.b64decode(e["delta"])
        for e in events
        if e["type"] in ("response.output_audio.delta", "response.audio.delta")
        and (item_id is None or e["item_id"] == item_id)
    )
