"""A simulated GPT-Live session (LIVE.md), sans-IO: a client frame in, server events out.

The session timeline is the media clock (LIVE.md §5.3, §10: observations point to it): it
advances only with the input audio the client appends, so the same input gives the same
events at any pace. For every chunk of input the server answers with the same duration of
output audio in the session's format, speech when the model is talking and silence
otherwise, the way the service streams output continuously.

- ``session.start`` (strict config: unknown fields are ``unknown_parameter``; PCM at 16 or
  24 kHz, G.711 at 8 kHz) -> ``session.started``; ``session.update`` -> ``session.updated``
  (the delegation type is immutable).
- Speech is heard by the energy VAD of the Realtime simulator. When an utterance ends, its
  transcript (the scenario's turn, else the default) arrives as input transcript deltas on
  the utterance's interval, and the reply follows as speech with output transcript deltas
  placed where each word plays.
- A scenario turn with a call delegates: to the client (``session.delegation.created``,
  then the answer once a ``session.commentary.append`` for that delegation arrives) or to
  Responses (the nested ``response.event`` stream of a function call, then the answer once
  a ``function_call_output`` and ``response.create`` arrive).
- Context appends are acknowledged when the timeline reaches their end; at
  ``session.close`` the ones not yet placed get ``context_injection_incomplete``.
- Mute and unmute, the output fixture (played into the output stream, then ``…played``),
  ``session.usage.updated`` every 60 s of timeline, and ``session.closed`` with the usage.

- Sideband observers (``attach``): each gets ``session.started`` when it attaches, then
  everything the session says (transcripts, delegations, acks, usage, the close), the
  primary's input reflected as server ``session.input_audio.append`` and the output as
  ``session.output_audio.delta`` with ``start_ms``/``end_ms``, both PCM16 at 24 kHz
  whatever the session's format. A sideband may send every command but ``session.start``
  and input audio; an ``error`` goes only to the connection whose command caused it.

``receive`` returns what each connection gets (``PRIMARY`` and the attached sidebands'
keys), so the server only routes. Not simulated (an ``error`` says so): Decisions, DTMF.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson

from rtrec.schemas import AudioEncoding
from rtrec.simulator import audio as wav
from rtrec.simulator.ids import IdFactory
from rtrec.simulator.scenario import DEFAULT_SCENARIO, Call, Scenario, Turn
from rtrec.simulator.synth import Synthesizer, split_pieces
from rtrec.simulator.vad import EnergyVad, SpeechStarted, SpeechStopped, VadSettings

__all__ = ["PRIMARY", "LiveSession", "Outbox"]

#: the key of the connection that started the session, in an ``Outbox``
PRIMARY: Final = "primary"
#: events per connection key, in the order each connection gets them
Outbox = dict[str, list[dict[str, Any]]]

_EPOCH: Final = 1_767_225_600  # the simulator's fixed "now" (2026-01-01), for stable bytes
_SESSION_KEYS: Final = frozenset(
    {
        "model",
        "instructions",
        "audio",
        "delegation",
        "input",
        "store",
        "safety_identifier",
        "triggers",
        "client",
    }
)
_FORK_KEYS: Final = frozenset({"delegation", "instructions"})
_UPDATE_KEYS: Final = frozenset({"delegation", "triggers"})
_ENCODINGS: Final = {
    "audio/pcm": AudioEncoding.PCM16,
    "audio/pcmu": AudioEncoding.G711_ULAW,
    "audio/pcma": AudioEncoding.G711_ALAW,
}
_APPENDS: Final = (
    "session.instructions.append",
    "session.thinking.append",
    "session.commentary.append",
)
#: commands a sideband may not send (LIVE.md §1.1), and why
_PRIMARY_ONLY: Final = {
    "session.start": "A sideband attaches to a started session; it never sends session.start.",
    "session.input_audio.append": "Input audio comes from the primary connection, not a sideband.",
}
_USAGE_EVERY_MS: Final = 60_000
_FIXTURE_MAX_SAMPLES: Final = 30 * 24000
_ACK_PHRASE: Final = "One moment, let me check."


class _Reject(Exception):
    """A client command the service refuses: becomes an ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _to_24k(samples: wav.Samples, rate: int) -> wav.Samples:
    """Samples at the VAD's 24 kHz timeline (16 kHz is 2:3, so interpolate)."""
    if rate in (24000, 8000):
        return wav.resample(samples, rate, 24000) if rate != 24000 else samples
    n = len(samples) * 24000 // rate
    x = np.arange(n) * (rate / 24000)
    resampled: wav.Samples = np.interp(x, np.arange(len(samples)), samples).astype(np.int16)
    return resampled


def _pcm24(samples: wav.Samples, rate: int) -> bytes:
    """What a sideband gets, whatever the session's format: PCM16LE at 24 kHz."""
    return _to_24k(samples, rate).astype("<i2").tobytes()


def _from_24k(samples: wav.Samples, rate: int) -> wav.Samples:
    if rate == 24000:
        return samples
    n = len(samples) * rate // 24000
    x = np.arange(n) * (24000 / rate)
    resampled: wav.Samples = np.interp(x, np.arange(len(samples)), samples).astype(np.int16)
    return resampled


class LiveSession:
    """One simulated GPT-Live connection (see the module docstring).

    Args:
        endpoint: ``"primary"`` or ``"fork"`` (a fork inherits its model).
        seed: the seed of every id.
        scenario: what the model hears and says.
        synthesizer: shared synthesis cache.
    """

    def __init__(
        self,
        *,
        endpoint: str = "primary",
        seed: int = 0,
        scenario: Scenario = DEFAULT_SCENARIO,
        synthesizer: Synthesizer | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ids = IdFactory(seed)
        self._scenario = scenario
        self._synth = synthesizer or Synthesizer()
        self._observers: list[str] = []  # attached sidebands, in attach order
        self._outbox: Outbox = {PRIMARY: []}
        self._via = PRIMARY  # the connection whose command is being handled
        self.started = self.closed = False
        self._resource: dict[str, Any] = {}
        self._encoding, self._rate = AudioEncoding.PCM16, 24000
        self._vad = EnergyVad(VadSettings(silence_duration_ms=500))
        self._carry = b""
        self._timeline = 0  # input samples at the session rate
        self._speech_from: int | None = None  # 24 kHz tick where the user began speaking
        self._utterances = 0
        self._queue: list[wav.Samples] = []  # output speech waiting to play
        self._queued = 0
        self._played = 0  # output samples sent
        self._words: list[tuple[int, int, str]] = []  # (output samples it plays at, text)
        # (ack type, client id, end ms, the connection that sent it)
        self._appends: list[tuple[str, str | None, int, str]] = []
        self._delegation: dict[str, Any] | None = None
        self._spoken: set[str] = set()  # speakers with a transcript so far
        self._muted = False
        self._fixture_until: int | None = None  # timeline sample where the fixture ends
        self._fixture_cid: str | None = None
        self._next_usage = _USAGE_EVERY_MS

    # ------------------------------------------------------------------ interface

    def receive(self, frame: str | bytes, *, via: str = PRIMARY) -> Outbox:
        """The server events one client frame causes, per connection, in order.

        Args:
            frame: the client frame as received.
            via: the connection that sent it: ``PRIMARY`` or an attached sideband's key.
        """
        self._via = via
        cid: str | None = None
        try:
            try:
                event = orjson.loads(frame)
            except orjson.JSONDecodeError as exc:
                raise _Reject("invalid_json", f"The frame is not valid JSON: {exc}") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise _Reject("invalid_request_error", "An event is a JSON object with a 'type'.")
            cid = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            self._dispatch(event["type"], event, cid)
        except _Reject as exc:
            self._error(exc, cid)
        return self._take()

    def attach(self, key: str) -> Outbox:
        """A sideband connects (``…/{id}/attach``): it gets ``session.started`` at once (as
        observed, LIVE.md §7 (h); nothing said earlier is replayed), then everything the
        session says from now on, under ``key``.

        Raises:
            ValueError: the session has not started or is closed, or ``key`` is taken.
        """
        if not self.started or self.closed:
            raise ValueError("a sideband attaches to a started session that is still open")
        if key == PRIMARY or key in self._observers:
            raise ValueError(f"connection key {key!r} is already in use")
        self._observers.append(key)
        self._outbox[key] = []
        self._emit("session.started", to=key, session=self._resource)
        return self._take()

    def detach(self, key: str) -> None:
        """A sideband left; the session goes on without it."""
        if key in self._observers:
            self._observers.remove(key)
            self._outbox.pop(key, None)

    def lose_primary(self) -> Outbox:
        """The primary connection dropped without ``session.close``: the session ends with
        ``connection_lost`` (LIVE.md §3.2), which the sidebands see."""
        if self.closed or not self.started:
            self.closed = True
            return self._take()
        self._outbox.pop(PRIMARY, None)
        self._finish("connection_lost", None)
        return self._take()

    def _take(self) -> Outbox:
        out = self._outbox
        self._outbox = {key: [] for key in out}
        return {key: events for key, events in out.items() if events}

    @property
    def session_id(self) -> str | None:
        """The id ``session.started`` gave, once started (attach and fork URLs use it)."""
        sid = self._resource.get("id")
        return sid if isinstance(sid, str) else None

    @property
    def now_ms(self) -> int:
        """Where the session timeline is: milliseconds of input audio received."""
        return self._timeline * 1000 // self._rate

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, kind: str, event: dict[str, Any], cid: str | None) -> None:
        if self.closed:
            raise _Reject("session_closed", "The session is closed; no more commands.")
        sideband = self._via != PRIMARY
        if sideband and kind in _PRIMARY_ONLY:
            raise _Reject("invalid_request_error", _PRIMARY_ONLY[kind])
        if not sideband and kind == "transport.dtmf.send":
            raise _Reject(
                "invalid_request_error", "transport.dtmf.send is a sideband command (SIP calls)."
            )
        if kind == "session.start":
            self._start(event, cid)
            return
        if not self.started:
            raise _Reject(
                "session_not_started",
                f"Send session.start before {kind}; wait for session.started.",
            )
        handler = self._HANDLERS.get(kind)
        if handler is None:
            raise _Reject("invalid_request_error", f"The rtrec simulator does not simulate {kind}.")
        handler(self, event, cid)

    def _emit(
        self, kind: str, cid: str | None = None, *, to: str | None = None, **fields: Any
    ) -> None:
        """A server event with an ``event_id``: to every connection, or only ``to``."""
        event: dict[str, Any] = {"type": kind, "event_id": self._ids.new("event")}
        if cid is not None:
            event["client_event_id"] = cid
        event.update(fields)
        self._post(event, to)

    def _post(self, event: dict[str, Any], to: str | None = None) -> None:
        if to is None:
            for events in self._outbox.values():
                events.append(event)
        elif to in self._outbox:  # a connection that left gets nothing
            self._outbox[to].append(event)

    def _error(self, exc: _Reject, cid: str | None, to: str | None = None) -> None:
        """An ``error`` for a command: only the connection that sent it sees it."""
        error: dict[str, Any] = {
            "type": "invalid_request_error",
            "code": exc.code,
            "message": exc.message,
        }
        if exc.param is not None:
            error["param"] = exc.param
        if cid is not None:
            error["client_event_id"] = cid
        self._emit("error", cid, to=self._via if to is None else to, error=error)

    # ------------------------------------------------------------------ session

    def _start(self, event: dict[str, Any], cid: str | None) -> None:
        if self.started:
            raise _Reject("invalid_request_error", "session.start was already sent.")
        session = event.get("session")
        if not isinstance(session, dict):
            raise _Reject("missing_required_parameter", "Missing 'session'.", "session")
        allowed = _FORK_KEYS if self.endpoint == "fork" else _SESSION_KEYS
        for key in session:
            if key not in allowed:
                why = "a fork inherits it" if self.endpoint == "fork" else "unknown parameter"
                raise _Reject("unknown_parameter", f"session.{key}: {why}.", f"session.{key}")
        model = session.get("model", "gpt-live-1" if self.endpoint == "fork" else None)
        if not isinstance(model, str) or not model:
            raise _Reject("missing_required_parameter", "Missing 'session.model'.", "session.model")
        audio = session.get("audio") or {}
        self._check_keys(audio, {"format", "output"}, "session.audio")
        fmt = audio.get("format") or {"type": "audio/pcm", "rate": 24000}
        self._set_format(fmt)
        output = audio.get("output") or {}
        self._check_keys(output, {"voice"}, "session.audio.output")
        delegation = session.get("delegation") or {"type": "client"}
        self._check_delegation(delegation)
        self._check_triggers(session.get("triggers"))
        self._resource = {
            "id": self._ids.new("live_u1"),
            "model": model,
            "audio": {"format": fmt, "output": {"voice": output.get("voice", "marin")}},
            "delegation": delegation,
            "expires_at": _EPOCH + 7200,
            "status": "active",
            "store": bool(session.get("store", False)),
        }
        for key in ("instructions", "input", "safety_identifier", "triggers"):
            if key in session:
                self._resource[key] = session[key]
        self.started = True
        self._emit("session.started", cid, session=self._resource)

    @staticmethod
    def _check_keys(value: Any, allowed: set[str], where: str) -> None:
        if not isinstance(value, dict):
            raise _Reject("invalid_type", f"{where} must be an object.", where)
        for key in value:
            if key not in allowed:
                raise _Reject(
                    "unknown_parameter", f"Unknown parameter: {where}.{key}.", f"{where}.{key}"
                )

    def _set_format(self, fmt: Any) -> None:
        self._check_keys(fmt, {"type", "rate"}, "session.audio.format")
        encoding = _ENCODINGS.get(fmt.get("type"))
        rate = fmt.get("rate")
        if encoding is None:
            raise _Reject(
                "invalid_value",
                f"session.audio.format.type must be one of {', '.join(_ENCODINGS)}.",
                "session.audio.format.type",
            )
        allowed = (16000, 24000) if encoding is AudioEncoding.PCM16 else (8000,)
        if rate not in allowed:
            raise _Reject(
                "invalid_value",
                f"session.audio.format.rate must be {' or '.join(map(str, allowed))} "
                f"for {fmt['type']}.",
                "session.audio.format.rate",
            )
        self._encoding, self._rate = encoding, int(rate)

    @staticmethod
    def _check_triggers(triggers: Any) -> None:
        """Decision triggers would fire decisions, which are not simulated: refused rather
        than accepted and never fired (none, or ``[]``, is fine)."""
        if triggers is not None and triggers != []:
            raise _Reject(
                "invalid_value",
                "The rtrec simulator does not simulate Decisions (triggers); omit them or send [].",
                "session.triggers",
            )

    @staticmethod
    def _check_delegation(delegation: Any) -> None:
        if not isinstance(delegation, dict):
            raise _Reject(
                "invalid_type", "session.delegation must be an object.", "session.delegation"
            )
        kind = delegation.get("type")
        if kind == "decisions":
            raise _Reject(
                "invalid_value",
                "The rtrec simulator does not simulate Decisions.",
                "session.delegation.type",
            )
        if kind not in ("client", "responses"):
            raise _Reject(
                "invalid_value",
                "session.delegation.type must be client, responses or decisions.",
                "session.delegation.type",
            )
        if kind == "responses" and not isinstance(
            (delegation.get("responses") or {}).get("model"), str
        ):
            raise _Reject(
                "missing_required_parameter",
                "Missing 'session.delegation.responses.model'.",
                "session.delegation.responses.model",
            )

    def _update(self, event: dict[str, Any], cid: str | None) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            raise _Reject("missing_required_parameter", "Missing 'session'.", "session")
        for key in session:
            if key not in _UPDATE_KEYS:
                raise _Reject(
                    "immutable_field_update" if key in _SESSION_KEYS else "unknown_parameter",
                    f"session.{key} cannot be updated.",
                    f"session.{key}",
                )
        if "delegation" in session:
            new = session["delegation"]
            if not isinstance(new, dict) or new.get("type") != self._resource["delegation"]["type"]:
                raise _Reject(
                    "immutable_field_update",
                    "The delegation type cannot change.",
                    "session.delegation",
                )
            self._resource["delegation"] = {**self._resource["delegation"], **new}
        if "triggers" in session:
            self._check_triggers(session["triggers"])
            self._resource["triggers"] = session["triggers"]
        self._emit("session.updated", cid, session=self._resource)

    def _close(self, event: dict[str, Any], cid: str | None) -> None:
        self._finish("close_requested", cid)

    def _finish(self, reason: str, cid: str | None) -> None:
        for _, client_id, _end, origin in self._appends:  # LIVE.md §7 (g): never placed
            self._error(
                _Reject(
                    "context_injection_incomplete",
                    "The session closed before this context was injected.",
                ),
                client_id,
                to=origin,
            )
        self._appends.clear()
        self.closed = True
        self._emit(
            "session.closed",
            cid,
            reason=reason,
            session=self._resource,
            usage={"seconds": self.now_ms // 1000},
        )

    # ------------------------------------------------------------------ audio

    def _append(self, event: dict[str, Any], cid: str | None) -> None:
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            raise _Reject("invalid_audio", "audio is not valid base64.", "audio") from None
        if self._encoding is AudioEncoding.PCM16 and len(data) % 2:
            raise _Reject("invalid_audio", "PCM16 audio needs an even number of bytes.", "audio")
        samples = wav.decode(data, self._encoding)
        if self._observers:  # reflected before model-input muting (LIVE.md §3.3)
            reflected = base64.b64encode(_pcm24(samples, self._rate)).decode()
            for key in self._observers:
                self._post({"type": "session.input_audio.append", "audio": reflected}, key)
        # muted, or during a fixture, the model hears silence; the clock still moves
        heard = samples if not (self._muted or self._fixture_until is not None) else samples * 0
        for vad_event in self._vad.feed(_to_24k(heard, self._rate), 24000):
            if isinstance(vad_event, SpeechStarted):
                self._speech_from = vad_event.tick
                if self._queue and self._fixture_until is None:  # the user barges in
                    self._queue.clear()
                    self._words.clear()
            elif isinstance(vad_event, SpeechStopped) and self._speech_from is not None:
                self._utterance(self._speech_from // 24, vad_event.tick // 24)
                self._speech_from = None
        self._play(len(samples))

    def _play(self, n: int) -> None:
        """Send ``n`` samples of output (queued speech, then silence), and move the clock."""
        start_ms = self.now_ms
        parts, need = [], n
        while need and self._queue:
            head = self._queue[0]
            parts.append(head[:need])
            if len(head) <= need:
                self._queue.pop(0)
            else:
                self._queue[0] = head[need:]
            need -= len(parts[-1])
        if need:
            parts.append(np.zeros(need, dtype=np.int16))
        chunk = np.concatenate(parts)
        for word in [w for w in self._words if w[0] < self._played + n]:
            at, end, text = word
            self._emit(
                "session.output_transcript.delta",
                delta=text,
                start_ms=start_ms + (at - self._played) * 1000 // self._rate,
                end_ms=start_ms + (end - self._played) * 1000 // self._rate,
            )
            self._words.remove(word)
        self._post(
            {
                "type": "session.output_audio.delta",
                "delta": base64.b64encode(wav.encode(chunk, self._encoding)).decode(),
            },
            PRIMARY,
        )
        self._played += n
        self._timeline += n
        if self._observers:  # the sideband's copy: PCM16 24 kHz, placed on the timeline
            reflected = {
                "type": "session.output_audio.delta",
                "delta": base64.b64encode(_pcm24(chunk, self._rate)).decode(),
                "start_ms": start_ms,
                "end_ms": self.now_ms,
            }
            for key in self._observers:
                self._post(reflected, key)
        self._reached()

    def _reached(self) -> None:
        """What the timeline's advance makes due: placed appends, the fixture's end, usage."""
        now = self.now_ms
        for pending in [a for a in self._appends if a[2] <= now]:
            kind, client_id, end, _origin = pending
            self._emit(kind, client_id, start_ms=max(0, end - 100), end_ms=end)
            self._appends.remove(pending)
        if self._fixture_until is not None and self._timeline >= self._fixture_until:
            self._fixture_until = None
            self._emit("session.output_audio.fixture.played", self._fixture_cid)
        if now >= self._next_usage:
            self._next_usage += _USAGE_EVERY_MS
            self._emit(
                "session.usage.updated",
                usage={"seconds": now // 1000},
                context_window={"usage_ratio": round(min(1.0, now / 3_600_000), 4)},
            )

    def _say(self, text: str, *, not_before_ms: int = 0) -> None:
        """Queue speech for ``text``, its words timed where they will play: after what is
        queued, and not before ``not_before_ms`` on the timeline (a reply starts once the
        user has stopped, though the VAD noticed it inside the current chunk)."""
        voice = self._resource["audio"]["output"]["voice"]
        speech = self._synth.speech(
            text, rate=self._rate, voice=voice if isinstance(voice, str) else "marin", speed=1.0
        )
        base = self._played + self._queued_samples()
        gap = not_before_ms * self._rate // 1000 - base
        if gap > 0:
            self._queue.append(np.zeros(gap, dtype=np.int16))
            base += gap
        for piece, start, end in zip(speech.pieces, speech.starts, speech.ends, strict=True):
            self._words.append((base + start, base + end, self._spaced("assistant", piece)))
        self._queue.append(speech.samples)

    def _spaced(self, speaker: str, piece: str) -> str:
        """Fragments carry their own leading spaces and are joined as they come (LIVE.md
        §3.4): a speaker's first word after something it said earlier gets one too."""
        first = speaker not in self._spoken
        self._spoken.add(speaker)
        return piece if first or piece[:1].isspace() else f" {piece}"

    def _queued_samples(self) -> int:
        return sum(len(q) for q in self._queue)

    # ------------------------------------------------------------------ turns

    def _utterance(self, start_ms: int, end_ms: int) -> None:
        turn = self._scenario.ordered(self._utterances) or Turn()
        self._utterances += 1
        seconds = f"{(end_ms - start_ms) / 1000:.1f}"
        text = (turn.transcript or self._scenario.defaults.transcript).format_map(
            {"seconds": seconds, "turn": self._utterances, "text": "", "output": ""}
        )
        pieces = split_pieces(text) or [text]
        step = (end_ms - start_ms) / len(pieces)
        for i, piece in enumerate(pieces):
            a = start_ms + math.floor(i * step)
            self._emit(
                "session.input_transcript.delta",
                delta=self._spaced("user", piece),
                start_ms=a,
                end_ms=start_ms + math.floor((i + 1) * step),
            )
        if turn.calls:  # the turn's reply, if any, is the spoken acknowledgement
            self._delegate(turn.calls[0], end_ms, turn.reply or _ACK_PHRASE)
            return
        reply = turn.reply or self._scenario.defaults.reply
        fields = {"text": text, "seconds": seconds, "turn": self._utterances, "output": ""}
        self._say(reply.format_map(fields), not_before_ms=end_ms)

    def _delegate(self, call: Call, at_ms: int, acknowledgement: str) -> None:
        target = self._resource["delegation"]["type"]
        delegation: dict[str, Any] = {
            "id": self._ids.new("dlg"),
            "target": target,
            "type": "delegation",
        }
        self._delegation = {"id": delegation["id"], "call": call}
        if target == "responses":
            delegation["response_id"] = response_id = self._ids.new("resp")
            self._delegation["response_id"] = response_id
        self._emit("session.delegation.created", offset_ms=at_ms, delegation=delegation)
        self._say(acknowledgement, not_before_ms=at_ms)
        if target == "responses":
            self._backend_call(call)

    def _nested(self, event: dict[str, Any]) -> None:
        assert self._delegation is not None
        self._delegation["seq"] = seq = self._delegation.get("seq", -1) + 1
        self._emit(
            "response.event",
            delegation_id=self._delegation["id"],
            event={**event, "sequence_number": seq},
        )

    def _backend_call(self, call: Call) -> None:
        """The Responses backend calls the function (LIVE.md §7 (d))."""
        assert self._delegation is not None
        rid = self._delegation["response_id"]
        item_id, call_id = self._ids.new("fc"), self._ids.new("call", 16)
        self._delegation["call_id"] = call_id
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        self._nested({"type": "response.created", "response": _snapshot(rid, "in_progress")})
        self._nested({"type": "response.output_item.added", "output_index": 0, "item": item})
        self._nested(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item_id,
                "output_index": 0,
                "delta": call.arguments,
            }
        )
        self._nested(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": 0,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
        done = {**item, "status": "completed", "arguments": call.arguments}
        self._nested({"type": "response.output_item.done", "output_index": 0, "item": done})
        self._nested(
            {
                "type": "response.completed",
                "response": _snapshot(rid, "completed", _tokens(call.arguments)),
            }
        )

    def _answer(self, output: str) -> None:
        assert self._delegation is not None
        call: Call = self._delegation["call"]
        template = call.answer or self._scenario.defaults.answer
        self._say(template.format_map({"output": output, "text": "", "seconds": "", "turn": 0}))

    def _context(self, event: dict[str, Any], cid: str | None) -> None:
        kind = event["type"]
        content = event.get("content")
        if not isinstance(content, str) or not content:
            raise _Reject("missing_required_parameter", "Missing 'content'.", "content")
        if "delegation_id" not in event:
            raise _Reject(
                "missing_required_parameter",
                "Missing 'delegation_id' (null is allowed).",
                "delegation_id",
            )
        did = event["delegation_id"]
        ours = self._delegation is not None and did == self._delegation["id"]
        if did is not None and not ours:
            raise _Reject("invalid_value", f"Unknown delegation_id {did!r}.", "delegation_id")
        words = max(1, len(content.split()))
        self._appends.append((f"{kind}ed", cid, self.now_ms + 100 + 20 * words, self._via))
        if ours and kind == "session.commentary.append":
            self._answer(content)
            self._delegation = None

    def _mute(self, event: dict[str, Any], cid: str | None) -> None:
        self._muted = event["type"] == "session.input_audio.mute"
        self._emit(
            "session.input_audio.muted" if self._muted else "session.input_audio.unmuted", cid
        )

    def _fixture(self, event: dict[str, Any], cid: str | None) -> None:
        if self._fixture_until is not None:
            raise _Reject("invalid_request_error", "A fixture is already playing.")
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            raise _Reject("invalid_audio", "audio is not valid base64.", "audio") from None
        if not data or len(data) % 2 or len(data) // 2 > _FIXTURE_MAX_SAMPLES:
            raise _Reject("invalid_audio", "A fixture is PCM16 at 24 kHz, 30 s at most.", "audio")
        samples = _from_24k(np.frombuffer(data, dtype="<i2").astype(np.int16), self._rate)
        self._queue.insert(0, samples)  # it interrupts the model's speech
        self._fixture_until = self._timeline + len(samples)
        self._fixture_cid = cid
        self._emit("session.output_audio.fixture.playing", cid)

    def _response_item(self, event: dict[str, Any], cid: str | None) -> None:
        item = event.get("item")
        if self._resource["delegation"]["type"] != "responses":
            raise _Reject("invalid_request_error", "response.* needs Responses delegation.")
        if not isinstance(item, dict):
            raise _Reject("missing_required_parameter", "Missing 'item'.", "item")
        if self._delegation is not None and item.get("type") == "function_call_output":
            if item.get("call_id") != self._delegation.get("call_id"):
                raise _Reject(
                    "invalid_value", f"Unknown call_id {item.get('call_id')!r}.", "item.call_id"
                )
            self._delegation["output"] = str(item.get("output", ""))

    def _response_create(self, event: dict[str, Any], cid: str | None) -> None:
        if self._resource["delegation"]["type"] != "responses":
            raise _Reject("invalid_request_error", "response.* needs Responses delegation.")
        if self._delegation is None or "output" not in self._delegation:
            raise _Reject("invalid_request_error", "No function output to respond to.")
        output = self._delegation["output"]
        call: Call = self._delegation["call"]
        text = (call.answer or self._scenario.defaults.answer).format_map(
            {"output": output, "text": "", "seconds": "", "turn": 0}
        )
        rid, msg = self._ids.new("resp"), self._ids.new("msg")
        self._nested({"type": "response.created", "response": _snapshot(rid, "in_progress")})
        self._nested(
            {
                "type": "response.output_text.delta",
                "item_id": msg,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
            }
        )
        self._nested(
            {
                "type": "response.output_text.done",
                "item_id": msg,
                "output_index": 0,
                "content_index": 0,
                "text": text,
            }
        )
        self._nested(
            {"type": "response.completed", "response": _snapshot(rid, "completed", _tokens(text))}
        )
        self._say(text)
        self._delegation = None

    def _unsupported(self, event: dict[str, Any], cid: str | None) -> None:
        raise _Reject(
            "invalid_request_error", f"The rtrec simulator does not simulate {event['type']}."
        )

    def _dtmf(self, event: dict[str, Any], cid: str | None) -> None:
        raise _Reject(
            "invalid_request_error",
            "transport.dtmf.send needs a SIP call; this simulated session has none.",
        )

    _HANDLERS: Final[dict[str, Callable[[LiveSession, dict[str, Any], str | None], None]]] = {
        "session.update": _update,
        "session.close": _close,
        "session.input_audio.append": _append,
        "session.input_audio.mute": _mute,
        "session.input_audio.unmute": _mute,
        "session.output_audio.fixture.play": _fixture,
        **dict.fromkeys(_APPENDS, _context),
        "response.item.create": _response_item,
        "response.create": _response_create,
        "decision.create": _unsupported,
        "decision.item.create": _unsupported,
        "decision.item.delete": _unsupported,
        "transport.dtmf.send": _dtmf,
    }


def _snapshot(rid: str, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A lifecycle snapshot as Live relays it: input omitted, instructions/tools/output cleared."""
    snapshot: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "status": status,
        "instructions": None,
        "tools": [],
        "output": [],
    }
    if usage is not None:
        snapshot["usage"] = usage
    return snapshot


def _tokens(text: str) -> dict[str, Any]:
    out = max(1, len(text) // 4)
    return {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 120 + out,
    }
