"""The simulated Realtime session: client frames in, server events out, no I/O.

``SimSession`` is a state machine in the style of h11: ``receive(frame, now)`` takes one
client frame and returns the server events it causes at once; ``advance(now)`` returns the
events that have come due since (streamed audio, late transcriptions); ``next_deadline()``
says when to call ``advance`` again. ``now`` is seconds on whatever monotonic clock the
caller drives it with (trio's, a MockClock); ``drain()`` runs the whole schedule at once,
which is ``--pace fast``.

Theory of operation:

- Every reply is planned in full when its response starts and laid out on the session's
  virtual timeline (``responses.Timing``); input transcriptions are scheduled the same way.
  Steps due at the same time run in the order they were planned, so the event *order* for a
  given sequence of client frames is the same at any pace: pace only decides whether the
  caller waits for the clock between steps.
- Turn detection runs on the timeline of input audio (``vad.py``), not on the clock. That
  includes ``idle_timeout_ms``: it fires once the client has streamed that much audio after
  the reply's audio would have finished playing. (The service uses the wall clock; here a
  client that stops streaming never times out, and runs stay deterministic.)
- Ids come from ``IdFactory(seed)``; ``expires_at`` is ``SIM_EPOCH + 3600 + seed % 86400``;
  audio is synthesised with integer arithmetic. Nothing reads the wall clock or global
  randomness, so the same seed, scenario and client frames give the same events and bytes.
- A bad client event is answered with an ``error`` event (the service's codes; see
  ``config.py``) and changes nothing; the session stays usable.
- MCP servers in the session's ``tools`` are "listed" when a ``session.update`` adds them:
  their tools come from the scenario (``[[mcp]]``). Calls of them run inside the response,
  unless ``require_approval`` asks for the client's ``mcp_approval_response`` first; the
  call then runs in the next response.
- A transcription-only session (``intent=transcription``, or a GA ``session.update`` of
  type ``transcription`` before anything happened) commits and transcribes input audio and
  never answers: response and item events are refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

import attrs
import orjson

from rtrec.schemas import (
    UNSET,
    AssistantMessageItem,
    AudioEncoding,
    AudioOutputConfig,
    BetaTranscriptionSession,
    ClientEvent,
    ContentPart,
    Conversation,
    ConversationCreated,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemDeleted,
    ConversationItemRetrieve,
    ConversationItemRetrieved,
    ConversationItemTruncate,
    ConversationItemTruncated,
    DurationUsage,
    ErrorEvent,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputAudioBufferAppend,
    InputAudioBufferCleared,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioBufferTimeoutTriggered,
    InputAudioPart,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionDelta,
    InputTextPart,
    InputTokenDetails,
    ItemReference,
    ItemStatus,
    Language,
    LogProb,
    McpApprovalResponseItem,
    McpCallItem,
    McpListToolsCompleted,
    McpListToolsFailed,
    McpListToolsInProgress,
    OutputAudioPart,
    RealtimeError,
    ResponseAudio,
    ResponseCancel,
    ResponseCreate,
    ResponseCreateParams,
    SchemaError,
    SchemaObject,
    ServerEvent,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    StatusReason,
    SystemMessageItem,
    TokenUsage,
    TranscriptionSessionUpdate,
    TranscriptionSessionUpdated,
    UnknownObject,
    UserMessageItem,
    from_dict,
    structure,
    to_dict,
)
from rtrec.simulator import audio as wav
from rtrec.simulator import wire
from rtrec.simulator.config import (
    ClientError,
    Protocol,
    Settings,
    apply_update,
    check_response,
    format_encoding,
    format_json,
    initial_session,
    quote_list,
    session_object,
    settings_of,
)
from rtrec.simulator.conversation import CLIENT_ITEMS, KNOWN_ITEMS, KnownItem, Stored
from rtrec.simulator.conversation import Conversation as Items
from rtrec.simulator.ids import IdFactory
from rtrec.simulator.responses import (
    Plan,
    PlannedCall,
    Responses,
    Run,
    Timing,
    audio_ms,
    text_tokens,
)
from rtrec.simulator.scenario import DEFAULT_SCENARIO, Call, Scenario, Turn
from rtrec.simulator.synth import Synthesizer, split_pieces
from rtrec.simulator.timeline import Timeline
from rtrec.simulator.tools import Choice, Toolbox, example_arguments
from rtrec.simulator.vad import EnergyVad, IdleTimeout, SpeechStarted, SpeechStopped, VadSettings
from rtrec.simulator.wire import evolve, make

__all__ = ["CLIENT_TYPES", "MAX_APPEND_BYTES", "SIM_EPOCH", "SimSession"]

#: 2026-01-01T00:00:00Z: the simulator's fixed "now" for ``expires_at``.
SIM_EPOCH: Final = 1_767_225_600
#: The service's limit on the decoded audio of one ``input_audio_buffer.append``.
MAX_APPEND_BYTES: Final = 15 * 1024 * 1024

#: Client event types a GA session accepts (beta also ``transcription_session.update``).
CLIENT_TYPES: Final = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
)
_BETA_ONLY: Final = ("transcription_session.update",)
#: What a transcription-only session refuses: it has no responses and no conversation to edit.
_NOT_TRANSCRIBING: Final = frozenset(
    t for t in CLIENT_TYPES if t.startswith(("response.", "conversation.", "output_audio_buffer."))
)
_DEFAULT_MODEL: Final = {"ga": "gpt-realtime", "beta": "gpt-4o-realtime-preview"}

#: JSON type names (as the schema and Python name them) as the service's messages say them.
_EXPECTED: Final = {
    "dict": "an object",
    "list": "an array",
    "NoneType": "null",
    "int": "an integer",
    "float": "a decimal",
    "str": "a string",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _schema_error(path: str, problem: str) -> ClientError:
    """Turn a schema problem (``SchemaError.problems``) into the service's kind of error."""
    param = path.removeprefix("$").removeprefix(".") or None
    if problem == "missing required field":
        return ClientError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if m := re.fullmatch(r"expected (.+), got (\w+)", problem):
        wanted = [w for w in m[1].split(" or ") if w != "null"] or ["null"]
        expected, got = _EXPECTED.get(wanted[0], wanted[0]), _EXPECTED.get(m[2], m[2])
        return ClientError(
            "invalid_type",
            f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
            param,
        )
    if m := re.fullmatch(r"expected one of (.+); got (.+)", problem):
        supported = re.findall(r"'([^']*)'", m[1])
        value = m[2].strip("'")
        return ClientError(
            "invalid_value",
            f"Invalid value: '{value}'. Supported values are: {quote_list(supported)}.",
            param,
        )
    if m := re.fullmatch(r"unknown type '([^']*)'.*", problem):
        return ClientError("invalid_value", f"Invalid value: '{m[1]}'.", f"{param}.type")
    return ClientError("invalid_value", f"Invalid '{param}': {problem}.", param)


def _first_unknown(value: Any, path: str) -> ClientError | None:
    """The first key or nested ``type`` the protocol does not know, as the service's error
    (the service rejects unknown parameters; the schema keeps them in ``extra``)."""
    if isinstance(value, UnknownObject):
        return ClientError(
            "invalid_value", f"Invalid value: '{value.raw.get('type')}'.", f"{path}.type"
        )
    if isinstance(value, SchemaObject):
        if value.extra:
            key = next(iter(value.extra))
            param = f"{path}.{key}" if path else key
            return ClientError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        for field in attrs.fields(type(value)):
            if field.name not in ("extra", "type"):
                child = f"{path}.{field.name}" if path else field.name
                found = _first_unknown(getattr(value, field.name), child)
                if found is not None:
                    return found
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            found = _first_unknown(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _parts(item: Any) -> tuple[ContentPart, ...]:
    content = getattr(item, "content", ())
    return content if isinstance(content, tuple) else ()


def _output_override(params: ResponseCreateParams) -> AudioOutputConfig | None:
    audio = params.audio
    if isinstance(audio, ResponseAudio) and isinstance(audio.output, AudioOutputConfig):
        return audio.output
    return None


@attrs.frozen
class _Reply:
    """What a response says and calls (``after``: said once its MCP calls returned)."""

    say: str | None = None
    calls: tuple[PlannedCall, ...] = ()
    after: str | None = None


@attrs.frozen
class _Context:
    """What reply templates can say about a user turn."""

    text: str = ""
    seconds: str = "0.0"
    turn: int = 0

    def render(self, template: str, output: str = "") -> str:
        fields = {"text": self.text, "seconds": self.seconds, "turn": self.turn, "output": output}
        return template.format_map(fields)


class _InputBuffer:
    """The input audio buffer: wire bytes since the last commit or clear, on the timeline."""

    def __init__(self, encoding: AudioEncoding) -> None:
        self.encoding = encoding
        self.start = 0  # timeline tick where the buffer begins
        self._data = bytearray()
        self._carry = b""  # an odd trailing PCM16 byte, completed by the next append

    @property
    def end(self) -> int:
        bps = self.encoding.bytes_per_sample
        return self.start + len(self._data) // bps * wav.ticks_per_sample(self.encoding)

    def append(self, data: bytes) -> wav.Samples:
        if self.encoding is AudioEncoding.PCM16:
            data = self._carry + data
            whole = len(data) - len(data) % 2
            data, self._carry = data[:whole], data[whole:]
        self._data += data
        return wav.decode(data, self.encoding)

    def take(self, begin: int, end: int) -> bytes:
        """The audio from tick ``begin`` to ``end``; the buffer then starts at ``end``."""
        tps, bps = wav.ticks_per_sample(self.encoding), self.encoding.bytes_per_sample
        lo = max(begin - self.start, 0) // tps * bps
        hi = min(max(end - self.start, 0) // tps * bps, len(self._data))
        out = bytes(self._data[lo:hi])
        del self._data[:hi]
        self.start += hi // bps * tps
        return out

    def clear(self) -> None:
        self.start = self.end
        self._data.clear()
        self._carry = b""

    def switch(self, encoding: AudioEncoding) -> None:
        """Re-encode buffered audio when the session's input format changes."""
        if encoding is not self.encoding:
            samples = wav.decode(bytes(self._data), self.encoding)
            samples = wav.resample(samples, self.encoding.sample_rate, encoding.sample_rate)
            self._data = bytearray(wav.encode(samples, encoding))
            self._carry = b""
            self.encoding = encoding


Handler = Callable[["SimSession", ClientEvent, dict[str, Any]], None]


class SimSession:
    """One simulated Realtime session (one WebSocket connection).

    Args:
        protocol: ``"ga"`` or ``"beta"`` (names and shapes of PROTOCOL.md §3.2, §8).
        model: the ``model`` query parameter; echoed in the session.
        seed: the seed of every id and padding string.
        scenario: what the model hears and says.
        synthesizer: lets the sessions of one server share the synthesis cache.
        timing: the reply timeline.
        intent: the ``intent`` query parameter; ``"transcription"`` makes a
            transcription-only session.
    """

    def __init__(
        self,
        *,
        protocol: Protocol = "ga",
        model: str | None = None,
        seed: int = 0,
        scenario: Scenario = DEFAULT_SCENARIO,
        synthesizer: Synthesizer | None = None,
        timing: Timing | None = None,
        intent: str | None = None,
    ) -> None:
        self.protocol: Protocol = protocol
        self._ga = protocol == "ga"
        self._ids = IdFactory(seed)
        self._timeline = Timeline(self._ids)
        self._scenario = scenario
        self._timing = timing or Timing()
        self._conversation_id = self._ids.new("conv")
        self._session_id = self._ids.new("sess")
        self._model = model or _DEFAULT_MODEL[protocol]
        self._expires_at = SIM_EPOCH + 3600 + seed % 86400
        self._config = initial_session(
            protocol,
            session_id=self._session_id,
            model=self._model,
            expires_at=self._expires_at,
            transcription=intent == "transcription",
        )
        self.settings: Settings = settings_of(protocol, self._config)
        self._items = Items(self._timeline, ga=self._ga)
        self._responses = Responses(
            self._timeline,
            self._items,
            ga=self._ga,
            conversation_id=self._conversation_id,
            ids=self._ids,
            synthesizer=synthesizer or Synthesizer(),
            timing=self._timing,
            on_done=self._response_done,
        )
        self._buffer = _InputBuffer(self.settings.input_encoding)
        self._vad = EnergyVad(self._vad_settings())
        self._speech: tuple[str, int] | None = None  # (item id, audio start tick)
        self._deferred = False  # a VAD turn ended while a response was active
        self._previous_input = 0  # input tokens of the last in-band response (cache)
        self._cursor = 0  # next ordered scenario turn
        self._user_turns = 0
        self._pending: tuple[Turn | None, _Context] | None = None
        self._last = _Context()
        self._answers: list[str] = []  # replies owed for function outputs
        #: the client's answers to approval requests, not yet acted on: (request id, call,
        #: approved)
        self._decisions: list[tuple[str, Call, bool]] = []
        #: MCP servers listed so far: label -> the tools found (None: the listing failed)
        self._listed: dict[str, tuple[Mapping[str, Any], ...] | None] = {}

    # ------------------------------------------------------------------ the sans-IO API

    @property
    def now(self) -> float:
        """The session's virtual time: the latest time it has been driven to."""
        return self._timeline.now

    def open(self, now: float = 0.0) -> list[ServerEvent]:
        """The events every session starts with: ``session.created``, ``conversation.created``."""
        self._timeline.run_due(now)
        self._timeline.emit(SessionCreated, session=session_object(self._config))
        conversation = make(Conversation, id=self._conversation_id, object="realtime.conversation")
        self._timeline.emit(ConversationCreated, conversation=conversation)
        return self._timeline.flush()

    def receive(self, frame: str | bytes, now: float) -> list[ServerEvent]:
        """Process one client frame at ``now``; returns the events due by then."""
        self._timeline.run_due(now)
        self._handle_frame(frame)
        self._timeline.run_due(self._timeline.now)
        return self._timeline.flush()

    def advance(self, now: float) -> list[ServerEvent]:
        """The scheduled events that have come due by ``now``."""
        self._timeline.run_due(now)
        return self._timeline.flush()

    def next_deadline(self) -> float | None:
        """When the next scheduled event is due, or None if nothing is scheduled."""
        return self._timeline.next_deadline()

    def drain(self) -> list[ServerEvent]:
        """Run the whole schedule at once (``--pace fast``)."""
        while (deadline := self._timeline.next_deadline()) is not None:
            self._timeline.run_due(deadline)
        return self._timeline.flush()

    # ------------------------------------------------------------------ dispatch

    def _handle_frame(self, frame: str | bytes) -> None:
        try:
            obj = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            self._error(ClientError("invalid_json", f"Invalid JSON: {exc}."), None)
            return
        if not isinstance(obj, dict):
            got = _EXPECTED.get(type(obj).__name__, type(obj).__name__)
            message = f"Invalid event: expected a JSON object, but got {got} instead."
            self._error(ClientError("invalid_type", message), None)
            return
        raw_id = obj.get("event_id")
        try:
            self._dispatch(obj)
        except ClientError as error:
            self._error(error, raw_id if isinstance(raw_id, str) else None)

    def _error(self, error: ClientError, client_event_id: str | None) -> None:
        body = make(
            RealtimeError,
            type="invalid_request_error",
            code=error.code,
            message=error.message,
            param=error.param,
            event_id=client_event_id if error.echo_event_id else None,
        )
        self._timeline.emit(ErrorEvent, error=body)

    def _dispatch(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        accepted = CLIENT_TYPES if self._ga else CLIENT_TYPES + _BETA_ONLY
        if kind is None:
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'type'.", "type"
            )
        if not isinstance(kind, str):
            raise _schema_error("$.type", f"expected str, got {type(kind).__name__}")
        if kind not in accepted:
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: {quote_list(accepted)}.",
                "type",
            )
        if self.settings.transcription_only and kind in _NOT_TRANSCRIBING:
            raise ClientError(
                "invalid_value",
                f"{kind} is not supported in transcription sessions.",
                "type",
            )
        try:
            event = from_dict(obj)
        except SchemaError as exc:
            raise _schema_error(*exc.problems[0]) from None
        assert isinstance(event, ClientEvent)  # every accepted type has a client class
        unknown = _first_unknown(event, "")
        if unknown is not None:
            raise unknown
        self._HANDLERS[kind](self, event, obj)

    # ------------------------------------------------------------------ session

    def _vad_settings(self) -> VadSettings:
        vad = self.settings.vad
        if vad is None:
            return VadSettings()
        return VadSettings(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms)

    def _on_session_update(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, SessionUpdate)
        if not self._ga and self.settings.transcription_only:
            raise ClientError(
                "invalid_value",
                "session.update is not supported in transcription sessions; use"
                " transcription_session.update.",
                "type",
            )
        config = self._config
        fresh = not self._items.stored() and not self._responses.runs and not self._user_turns
        if (
            self._ga
            and raw["session"].get("type") == "transcription"
            and not self.settings.transcription_only
            and fresh
        ):
            # A GA session becomes a transcription session by its first update (PROTOCOL.md
            # §8.6), as long as it has not started a conversation.
            config = initial_session(
                "ga",
                session_id=self._session_id,
                model=self._model,
                expires_at=self._expires_at,
                transcription=True,
            )
        self._apply(config, event.session, raw["session"], SessionUpdated)

    def _on_transcription_session_update(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, TranscriptionSessionUpdate)
        if not self.settings.transcription_only:
            raise ClientError(
                "invalid_value",
                "transcription_session.update is only supported by transcription sessions;"
                " this is a realtime session.",
                "type",
            )
        self._apply(self._config, event.session, raw["session"], TranscriptionSessionUpdated)

    def _apply(
        self,
        config: Mapping[str, Any],
        session: Any,
        raw: dict[str, Any],
        echo: type[SessionUpdated] | type[TranscriptionSessionUpdated],
    ) -> None:
        """Apply a session update and echo the effective configuration."""
        before = self.settings
        self._config = apply_update(
            self.protocol, config, session, raw, voice_locked=self._responses.audio_sent
        )
        self.settings = settings_of(self.protocol, self._config)
        self._vad.settings = self._vad_settings()
        if before.vad is None and self.settings.vad is not None:
            self._vad.reset(self._buffer.start)
        if self.settings.vad is None or self.settings.vad.idle_timeout_ms is None:
            self._vad.disarm()
        self._buffer.switch(self.settings.input_encoding)
        if echo is TranscriptionSessionUpdated:
            # the beta SDK's TranscriptionSession requires the ephemeral key; rtrec's
            # recorder redacts its value before anything is written
            secret = {"value": "ek_sim_" + self._ids.token("secret", 24, 24), "expires_at": 0}
            secret["expires_at"] = self._expires_at
            body = structure({**self._config, "client_secret": secret}, BetaTranscriptionSession)
            self._timeline.emit(TranscriptionSessionUpdated, session=body)
        else:
            self._timeline.emit(SessionUpdated, session=session_object(self._config))
        self._list_mcp_tools()

    def _list_mcp_tools(self) -> None:
        """List the tools of MCP servers the session has not listed yet (from the scenario),
        as ``mcp_list_tools`` items: added empty, in progress, completed (or failed), done
        with the tools."""
        if not self._ga:
            return  # MCP is GA only (PROTOCOL.md §3.2)
        for label, server in Toolbox.of(self.settings.tool_defs).servers.items():
            if label in self._listed:
                continue
            scripted = self._scenario.server(label)
            failed = scripted is not None and scripted.fail
            tools = scripted.tools if scripted is not None and not failed else ()
            if server.allowed is not None:
                tools = tuple(t for t in tools if t["name"] in server.allowed)
            self._listed[label] = None if failed else tools
            item_id = self._ids.new("mcpl")
            stored = Stored(wire.mcp_list_tools_item(item_id, label, ()))
            self._items.insert(stored)
            self._items.announce_added(stored)
            self._timeline.emit(McpListToolsInProgress, item_id=item_id)
            self._timeline.emit(
                McpListToolsFailed if failed else McpListToolsCompleted, item_id=item_id
            )
            stored.item = wire.mcp_list_tools_item(item_id, label, tools)
            self._items.announce_done(stored)

    def _on_output_audio_buffer_clear(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        raise ClientError(
            "invalid_value",
            "output_audio_buffer.clear is only supported on WebRTC and SIP connections.",
            "type",
        )

    # ------------------------------------------------------------------ input audio

    def _on_append(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, InputAudioBufferAppend)
        encoding = self.settings.input_encoding
        size = len(event.audio) // 4 * 3  # decoded size, within 2 bytes
        if size > MAX_APPEND_BYTES + 2:
            raise ClientError(
                "invalid_value",
                f"Invalid 'audio': an input_audio_buffer.append carries at most 15 MiB of audio"
                f" ({MAX_APPEND_BYTES} bytes), but got about {size} bytes.",
                "audio",
            )
        try:
            data = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientError(
                "invalid_value",
                f"Invalid 'audio'. Expected base64-encoded audio bytes ({wav.describe(encoding)})"
                " but got an invalid value.",
                "audio",
            ) from None
        samples = self._buffer.append(data)
        for vad_event in self._vad.feed(samples, encoding.sample_rate):
            if self.settings.vad is None:
                continue
            if isinstance(vad_event, SpeechStarted):
                self._speech_started(vad_event)
            elif isinstance(vad_event, SpeechStopped):
                self._speech_stopped(vad_event)
            elif isinstance(vad_event, IdleTimeout):
                self._idle_timeout(vad_event)

    def _speech_started(self, event: SpeechStarted) -> None:
        item_id = self._ids.new("item")
        self._speech = (item_id, event.tick)
        self._timeline.emit(
            InputAudioBufferSpeechStarted,
            audio_start_ms=wav.ticks_to_ms(event.tick),
            item_id=item_id,
        )
        vad, active = self.settings.vad, self._responses.active
        if active is not None and vad is not None and vad.interrupt_response:
            self._responses.cancel(active, StatusReason.TURN_DETECTED)

    def _speech_stopped(self, event: SpeechStopped) -> None:
        item_id, start = self._speech or (self._ids.new("item"), self._buffer.start)
        self._speech = None
        self._timeline.emit(
            InputAudioBufferSpeechStopped, audio_end_ms=wav.ticks_to_ms(event.tick), item_id=item_id
        )
        data = self._buffer.take(start, event.tick)
        self._vad.set_floor(self._buffer.start)
        self._commit(item_id, data, turn=True)
        vad = self.settings.vad
        if vad is not None and vad.create_response:
            if self._responses.active is None:
                self._respond(None)
            else:
                self._deferred = True

    def _idle_timeout(self, event: IdleTimeout) -> None:
        item_id = self._ids.new("item")
        start = max(event.armed_tick, self._buffer.start)
        self._timeline.emit(
            InputAudioBufferTimeoutTriggered,
            audio_start_ms=wav.ticks_to_ms(start),
            audio_end_ms=wav.ticks_to_ms(event.tick),
            item_id=item_id,
        )
        data = self._buffer.take(start, event.tick)
        self._vad.set_floor(self._buffer.start)
        self._commit(item_id, data, turn=False)
        if self._responses.active is None:
            self._respond(None, say=self._last.render(self._scenario.defaults.idle_reply))

    def _on_commit(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        ticks = self._buffer.end - self._buffer.start
        if ticks < wav.ms_to_ticks(100):
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms"
                f" of audio, but buffer only has {ticks / wav.TICKS_PER_MS:.2f}ms of audio.",
            )
        item_id = self._speech[0] if self._speech else self._ids.new("item")
        self._speech = None
        data = self._buffer.take(self._buffer.start, self._buffer.end)
        self._vad.reset(self._buffer.start)
        self._commit(item_id, data, turn=True)

    def _on_clear(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        self._buffer.clear()
        self._vad.reset(self._buffer.start)
        self._speech = None
        self._timeline.emit(InputAudioBufferCleared)

    def _commit(self, item_id: str, data: bytes, *, turn: bool) -> None:
        """Committed input audio becomes a user item (PROTOCOL.md §7 (a))."""
        encoding = self._buffer.encoding
        self._timeline.emit(
            InputAudioBufferCommitted, previous_item_id=self._items.last(), item_id=item_id
        )
        item = wire.user_audio_item(self._ga, item_id, transcript=None)
        self._items.add(Stored(item, {0: (data, encoding)}))
        if turn:
            ms = audio_ms(data, encoding)
            self._transcribe(item_id, self._user_turn(text=None, audio_ms=ms), ms)

    # ------------------------------------------------------------------ transcription

    def _transcribe(self, item_id: str, transcript: str, ms: int) -> None:
        model = self.settings.transcription_model
        if model is None:
            return
        # whisper-1 sends its transcript in one delta; the gpt-4o models stream words.
        pieces = [transcript] if model.startswith("whisper") else split_pieces(transcript)
        step = self._timing.transcription_delta_s
        start = self._timeline.now + self._timing.transcription_s
        logprobs = self.settings.logprobs
        for index, piece in enumerate(pieces):
            delta = partial(self._transcription_delta, item_id, piece, logprobs)
            self._timeline.at(start + index * step, delta)
        done = partial(self._transcription_done, item_id, transcript, model, ms, logprobs)
        self._timeline.at(start + len(pieces) * step, done)

    @staticmethod
    def _logprobs(text: str) -> tuple[LogProb, ...]:
        return tuple(
            make(
                LogProb,
                token=piece,
                logprob=-round(0.05 + sum(piece.encode()) % 300 / 1000, 6),
                bytes=tuple(piece.encode()),
            )
            for piece in split_pieces(text)
        )

    def _transcription_delta(self, item_id: str, piece: str, logprobs: bool) -> None:
        self._timeline.emit(
            InputAudioTranscriptionDelta,
            item_id=item_id,
            content_index=0,
            delta=piece,
            logprobs=self._logprobs(piece) if logprobs else UNSET,
            # GA deltas carry random padding (PROTOCOL.md §3); beta's none.
            extra={"obfuscation": self._ids.token("obfuscation", 6, 16)} if self._ga else {},
        )

    def _transcription_done(
        self, item_id: str, transcript: str, model: str, ms: int, logprobs: bool
    ) -> None:
        usage: TokenUsage | DurationUsage
        if model.startswith("whisper"):
            usage = make(DurationUsage, seconds=round(ms / 1000, 1))
        else:
            audio, text = (ms + 99) // 100, text_tokens(transcript)
            details = make(InputTokenDetails, text_tokens=0, audio_tokens=audio)
            usage = make(
                TokenUsage,
                input_tokens=audio,
                output_tokens=text,
                total_tokens=audio + text,
                input_token_details=details,
            )
        language = self.settings.language
        self._timeline.emit(
            InputAudioTranscriptionCompleted,
            item_id=item_id,
            content_index=0,
            transcript=transcript,
            usage=usage,
            logprobs=self._logprobs(transcript) if logprobs else UNSET,
            # the language the client named (the service detects it; the simulator cannot)
            languages=(make(Language, code=language),) if language else UNSET,
        )
        stored = self._items.get(item_id)
        parts = _parts(stored.item) if stored else ()
        if stored is not None and parts and isinstance(parts[0], InputAudioPart):
            first = evolve(parts[0], transcript=transcript)
            stored.item = evolve(stored.item, content=(first, *parts[1:]))

    # ------------------------------------------------------------------ scenario turns

    def _user_turn(self, *, text: str | None, audio_ms: int) -> str:
        """Pick the scenario turn for a new user item; returns its text (or transcript)."""
        self._user_turns += 1
        seconds = f"{audio_ms / 1000:.1f}"
        turn = self._scenario.match_text(text) if text is not None else None
        if turn is None:
            turn = self._scenario.ordered(self._cursor)
            self._cursor += turn is not None
        if text is None:
            template = (
                turn.transcript
                if turn is not None and turn.transcript is not None
                else self._scenario.defaults.transcript
            )
            text = _Context("", seconds, self._user_turns).render(template)
        context = _Context(text, seconds, self._user_turns)
        self._pending = (turn, context)
        self._last = context
        return text

    def _plan_reply(
        self, in_band: bool, params: ResponseCreateParams | None, toolbox: Toolbox, choice: Choice
    ) -> _Reply:
        """What the model says and calls (see ``scenario.py``)."""
        turn: Turn | None
        if not in_band:
            # Out-of-band responses answer their own input and leave the turn pending.
            text = self._input_text(params)
            turn = self._scenario.match_text(text) if text else None
            context = _Context(text or "", "0.0", self._user_turns)
        elif self._decisions:
            return self._after_approval(toolbox, choice)
        elif self._answers:
            answers = " ".join(self._answers)
            self._answers.clear()
            return self._reply([answers], self._forced(toolbox, choice, ()), toolbox, self._last)
        elif self._pending is not None:
            (turn, context), self._pending = self._pending, None
        else:
            turn, context = None, self._last
        calls = turn.calls if turn else ()
        usable = tuple(c for c in calls if self._usable(c, toolbox, choice))
        said: list[str] = [turn.reply] if turn is not None and turn.reply is not None else []
        # A call the session cannot make (no such tool) is answered in words instead.
        said += [c.answer for c in calls if c not in usable and c.answer is not None]
        usable += self._forced(toolbox, choice, usable)
        if not said and not usable:
            said = [self._scenario.defaults.reply]
        return self._reply([context.render(s) for s in said], usable, toolbox, context)

    def _reply(
        self, said: list[str], calls: Sequence[Call], toolbox: Toolbox, context: _Context
    ) -> _Reply:
        """Say ``said``, then make ``calls``: an MCP call that needs approval becomes the
        request and ends the response; the others are answered after they ran."""
        planned: list[PlannedCall] = []
        after: list[str] = []
        for call in calls:
            server = toolbox.servers.get(call.server) if call.server is not None else None
            if server is not None and server.needs_approval(call.name):
                # the response ends with the request; the call waits for the client
                planned.append(PlannedCall(call, approval=True))
                break
            planned.append(PlannedCall(call))
            if server is not None:
                after.append(self._mcp_answer(call, context))
        return _Reply(
            " ".join(said) if said else None, tuple(planned), " ".join(after) if after else None
        )

    def _mcp_answer(self, call: Call, context: _Context) -> str:
        """What the model says once an MCP call returned (``{output}``: its output or error)."""
        template = call.answer or self._scenario.defaults.answer
        return context.render(template, call.error or call.output or "")

    def _after_approval(self, toolbox: Toolbox, choice: Choice) -> _Reply:
        """The response after the client answered approval requests: approved calls run
        and are answered, refused ones are declined in words."""
        planned: list[PlannedCall] = []
        said: list[str] = []
        for request_id, call, approved in self._decisions:
            if approved:
                planned.append(PlannedCall(call, approval_request_id=request_id))
                said.append(self._mcp_answer(call, self._last))
            else:
                said.append(self._last.render(self._scenario.defaults.denied))
        self._decisions.clear()
        if not planned:
            return self._reply(said, self._forced(toolbox, choice, ()), toolbox, self._last)
        return _Reply(None, tuple(planned), " ".join(said))

    def _usable(self, call: Call, toolbox: Toolbox, choice: Choice) -> bool:
        """Whether the model can make a scripted call under these tools and ``tool_choice``."""
        if choice.mode == "none":
            return False
        if call.server is None:
            return (
                call.name in toolbox.functions
                and (choice.mode != "function" or choice.name == call.name)
                and choice.mode != "mcp"
            )
        listed = self._listed.get(call.server)
        if call.server not in toolbox.servers or choice.mode == "function":
            return False
        if choice.mode == "mcp" and (
            choice.server != call.server or choice.name not in (None, call.name)
        ):
            return False
        # a server the session listed offers what the listing found; one that only a
        # response's tools name offers the scenario's tools
        if call.server not in self._listed:
            scripted = self._scenario.server(call.server)
            listed = scripted.tools if scripted is not None else ()
        return listed is not None and any(t["name"] == call.name for t in listed)

    def _forced(
        self, toolbox: Toolbox, choice: Choice, usable: tuple[Call, ...]
    ) -> tuple[Call, ...]:
        """The call ``tool_choice`` forces when the scenario scripts none: ``required``
        calls the first function (else the first listed MCP tool), a named tool that tool;
        arguments come from the tool's schema (``example_arguments``)."""
        if not choice.forced or usable:
            return ()
        if choice.mode in ("required", "function"):
            names = list(toolbox.functions)
            name = choice.name if choice.mode == "function" else (names[0] if names else None)
            if name is not None and name in toolbox.functions:
                arguments = example_arguments(toolbox.functions[name])
                return (Call(name=name, arguments=orjson.dumps(arguments).decode()),)
            if choice.mode == "function":
                return ()
        for label in toolbox.servers:
            if choice.mode == "mcp" and label != choice.server:
                continue
            listed = self._listed.get(label)
            if label not in self._listed:
                scripted = self._scenario.server(label)
                listed = scripted.tools if scripted is not None else ()
            for tool in listed or ():
                if choice.name in (None, tool["name"]):
                    arguments = example_arguments(tool.get("input_schema"))
                    return (
                        Call(
                            name=tool["name"],
                            arguments=orjson.dumps(arguments).decode(),
                            server=label,
                            output="",
                        ),
                    )
        return ()

    @staticmethod
    def _input_text(params: ResponseCreateParams | None) -> str | None:
        text = None
        if params is not None and isinstance(params.input, tuple):
            for entry in params.input:
                if isinstance(entry, UserMessageItem):
                    for part in _parts(entry):
                        if isinstance(part, InputTextPart) and isinstance(part.text, str):
                            text = part.text
        return text

    # ------------------------------------------------------------------ items

    def _on_item_create(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ConversationItemCreate)
        item = event.item
        if not isinstance(item, CLIENT_ITEMS[self.protocol]):
            kind = item.raw.get("type") if isinstance(item, UnknownObject) else item.type
            supported = tuple(
                dict.fromkeys(
                    str(attrs.fields_dict(cls)["type"].default)
                    for cls in CLIENT_ITEMS[self.protocol]
                )
            )
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: {quote_list(supported)}.",
                "item.type",
            )
        previous = event.previous_item_id
        if isinstance(previous, str) and previous != "root" and previous not in self._items:
            raise ClientError(
                "invalid_value",
                f"Previous item with id '{previous}' not found in the conversation.",
                "previous_item_id",
            )
        item_id = item.id if isinstance(item.id, str) else self._ids.new("item")
        if item_id in self._items:
            raise ClientError(
                "invalid_value", f"Item with id '{item_id}' already exists.", "item.id"
            )
        audio: dict[int, tuple[bytes, AudioEncoding]] = {}
        text: str | None = None
        if isinstance(item, SystemMessageItem | UserMessageItem | AssistantMessageItem):
            parts: list[ContentPart] = []
            for index, part in enumerate(_parts(item)):
                if isinstance(item, AssistantMessageItem) and isinstance(part, OutputAudioPart):
                    raise ClientError(
                        "invalid_value",
                        "Assistant audio messages cannot be created by the client.",
                        f"item.content[{index}].type",
                    )
                if isinstance(part, InputAudioPart):
                    if isinstance(part.audio, str):
                        audio[index] = (
                            self._decode_audio(part.audio, index),
                            self._buffer.encoding,
                        )
                    # Client audio is never echoed (PROTOCOL.md §4.2).
                    transcript = None if part.transcript is UNSET else part.transcript
                    part = evolve(part, audio=UNSET, transcript=transcript)
                elif (
                    isinstance(part, InputTextPart)
                    and isinstance(item, UserMessageItem)
                    and text is None
                    and isinstance(part.text, str)
                ):
                    text = part.text
                parts.append(part)
            item = evolve(item, content=tuple(parts))
        decision: tuple[str, Call, bool] | None = None
        if isinstance(item, McpApprovalResponseItem):
            decision = self._decision(item)
        self._ids.take(item_id)
        if isinstance(item, FunctionCallItem) and isinstance(item.call_id, str):
            self._ids.take(item.call_id)
        known: KnownItem
        if isinstance(item, McpApprovalResponseItem):
            known = evolve(item, id=item_id)  # MCP items have no status nor object
        else:
            obj = UNSET if self._ga else "realtime.item"
            known = evolve(item, id=item_id, status=ItemStatus.COMPLETED, object=obj)
        stored = Stored(known, audio)
        if previous == "root":
            self._items.add(stored, first=True)
        else:
            self._items.add(stored, after=previous if isinstance(previous, str) else None)
        if isinstance(known, UserMessageItem) and (text is not None or audio):
            ms = sum(audio_ms(data, enc) for data, enc in audio.values())
            self._user_turn(text=text, audio_ms=ms)
        elif isinstance(known, FunctionCallOutputItem):
            call_id = known.call_id if isinstance(known.call_id, str) else ""
            call = self._responses.calls.pop(call_id, None)
            output = known.output if isinstance(known.output, str) else ""
            template = call.answer if call and call.answer else self._scenario.defaults.answer
            self._answers.append(self._last.render(template, output))
        elif decision is not None:
            self._decisions.append(decision)

    def _decision(self, item: McpApprovalResponseItem) -> tuple[str, Call, bool]:
        """The client's answer to an ``mcp_approval_request`` (checked before anything
        changes): the request must be one the model made and nobody answered yet."""
        if not isinstance(item.approve, bool):
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'item.approve'.",
                "item.approve",
            )
        request_id = item.approval_request_id
        pending = self._responses.approvals
        call = pending.pop(request_id, None) if isinstance(request_id, str) else None
        if call is None:
            raise ClientError(
                "invalid_value",
                f"No pending MCP approval request with id '{request_id}'.",
                "item.approval_request_id",
            )
        assert isinstance(request_id, str)
        return request_id, call, item.approve

    def _decode_audio(self, text: str, index: int) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            described = wav.describe(self._buffer.encoding)
            raise ClientError(
                "invalid_value",
                f"Invalid 'audio'. Expected base64-encoded audio bytes ({described}) but got an"
                " invalid value.",
                f"item.content[{index}].audio",
            ) from None

    def _on_item_delete(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ConversationItemDelete)
        self._items.lookup(event.item_id)
        self._items.delete(event.item_id)
        self._timeline.emit(ConversationItemDeleted, item_id=event.item_id)

    def _on_item_retrieve(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ConversationItemRetrieve)
        stored = self._items.lookup(event.item_id)
        item: KnownItem = stored.item
        if stored.audio:
            parts = list(_parts(item))
            for index, (data, _) in stored.audio.items():
                part = parts[index] if index < len(parts) else None
                if isinstance(part, InputAudioPart | OutputAudioPart):
                    parts[index] = evolve(part, audio=base64.b64encode(data).decode("ascii"))
            item = evolve(item, content=tuple(parts))
        self._timeline.emit(ConversationItemRetrieved, item=item)

    def _on_item_truncate(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ConversationItemTruncate)
        stored = self._items.lookup(event.item_id)
        parts = list(_parts(stored.item))
        index = event.content_index
        part = parts[index] if 0 <= index < len(parts) else None
        if (
            not isinstance(stored.item, AssistantMessageItem)
            or not isinstance(part, OutputAudioPart)
            or index not in stored.audio
        ):
            raise ClientError(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                "item_id",
            )
        data, encoding = stored.audio[index]
        duration = audio_ms(data, encoding)
        if not 0 <= event.audio_end_ms <= duration:
            raise ClientError(
                "invalid_value",
                f"Audio content of {duration}ms is already shorter than {event.audio_end_ms}ms",
                "audio_end_ms",
            )
        keep = event.audio_end_ms * encoding.sample_rate // 1000 * encoding.bytes_per_sample
        stored.audio[index] = (data[:keep], encoding)
        # The service drops a truncated item's transcript: the context must not hold words
        # the user never heard (PROTOCOL.md §4.2).
        parts[index] = evolve(part, transcript="")
        stored.item = evolve(stored.item, content=tuple(parts))
        self._timeline.emit(
            ConversationItemTruncated,
            item_id=event.item_id,
            content_index=index,
            audio_end_ms=event.audio_end_ms,
        )

    # ------------------------------------------------------------------ responses

    def _on_response_create(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ResponseCreate)
        params = event.response if isinstance(event.response, ResponseCreateParams) else None
        if params is not None:
            check_response(self.protocol, params)
            for index, entry in enumerate(params.input if isinstance(params.input, tuple) else ()):
                if isinstance(entry, ItemReference) and entry.id not in self._items:
                    raise ClientError(
                        "invalid_value",
                        f"Item with item_id not found: {entry.id}.",
                        f"response.input[{index}].id",
                    )
        active = self._responses.active
        if self._in_band(params) and active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. Wait"
                " until the response is finished before creating a new one.",
                echo_event_id=False,  # as captured (PROTOCOL.md §6.2)
            )
        self._respond(params)

    def _on_response_cancel(self, event: ClientEvent, raw: dict[str, Any]) -> None:
        assert isinstance(event, ResponseCancel)
        if isinstance(event.response_id, str):
            run = self._responses.find(event.response_id)
        else:
            run = self._responses.active
        if run is None:
            raise ClientError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                echo_event_id=False,  # as captured (PROTOCOL.md §6.5)
            )
        self._responses.cancel(run, StatusReason.CLIENT_CANCELLED)

    @staticmethod
    def _in_band(params: ResponseCreateParams | None) -> bool:
        return params is None or params.conversation in (UNSET, None, "auto")

    def _input_counts(self, params: ResponseCreateParams | None, in_band: bool) -> wire.TokenCounts:
        """Input tokens: instructions, tools and the context."""
        instructions = self.settings.instructions
        if params is not None and isinstance(params.instructions, str):
            instructions = params.instructions
        tools = orjson.dumps(self._config.get("tools") or []).decode()
        text, audio = text_tokens(instructions) + text_tokens(tools), 0
        context: list[Stored] = []
        if params is not None and isinstance(params.input, tuple):
            for entry in params.input:
                if isinstance(entry, ItemReference) and isinstance(entry.id, str):
                    context.append(self._items.lookup(entry.id))
                elif isinstance(entry, KNOWN_ITEMS):
                    context.append(Stored(entry))
        else:
            context = self._items.stored()
        for stored in context:
            item = stored.item
            if isinstance(item, FunctionCallItem):
                text += text_tokens(f"{item.name or ''}{item.arguments or ''}")
            elif isinstance(item, McpCallItem):
                output = item.output if isinstance(item.output, str) else ""
                text += text_tokens(f"{item.name or ''}{item.arguments or ''}{output}")
            elif isinstance(item, FunctionCallOutputItem):
                text += text_tokens(item.output if isinstance(item.output, str) else "")
            for part in _parts(item):
                value = getattr(part, "text", None) or getattr(part, "transcript", None)
                if isinstance(value, str):
                    text += text_tokens(value)
            for data, encoding in stored.audio.values():
                audio += (audio_ms(data, encoding) + 99) // 100
        cached = min(self._previous_input, text + audio) // 64 * 64 if in_band else 0
        cached_text = min(cached, text)
        return wire.TokenCounts(
            input_text=text,
            input_audio=audio,
            cached_text=cached_text,
            cached_audio=cached - cached_text,
        )

    def _respond(self, params: ResponseCreateParams | None, *, say: str | None = None) -> Run:
        """Start a response, the session's settings overridden by ``params``."""
        s = self.settings
        in_band = self._in_band(params)
        audio, voice, fmt = s.audio_out, s.voice, s.output_format
        toolbox, choice = Toolbox.of(s.tool_defs), Choice.of(s.tool_choice)
        max_tokens: int | str = s.max_output_tokens
        metadata: Mapping[str, Any] | None = None
        if params is not None:
            modalities = params.output_modalities if self._ga else params.modalities
            if isinstance(modalities, tuple):
                audio = any(m.value == "audio" for m in modalities)
            out = _output_override(params) if self._ga else None
            new_voice = out.voice if out is not None else params.voice
            if isinstance(new_voice, str):
                voice = new_voice
            if out is not None and out.format is not UNSET and out.format is not None:
                fmt = format_json(out.format)
            elif not self._ga and params.output_audio_format:
                fmt = params.output_audio_format.value
            if isinstance(params.tools, tuple):
                toolbox = Toolbox.of([to_dict(t) for t in params.tools])
            if params.tool_choice is not UNSET:
                choice = Choice.of(
                    to_dict(params.tool_choice)
                    if isinstance(params.tool_choice, SchemaObject)
                    else params.tool_choice
                )
            limit = params.max_output_tokens if self._ga else params.max_response_output_tokens
            if isinstance(limit, int | str):
                max_tokens = limit
            if isinstance(params.metadata, Mapping):
                metadata = params.metadata
        if say is not None:
            reply = _Reply(say)
        else:
            reply = self._plan_reply(in_band, params, toolbox, choice)
        plan = Plan(
            in_band=in_band,
            audio=audio,
            voice=voice,
            speed=s.speed,
            encoding=format_encoding(fmt),
            output_format=fmt,
            max_output_tokens=max_tokens,
            temperature=s.temperature,
            metadata=metadata,
            input_counts=self._input_counts(params, in_band),
            reply=reply.say,
            calls=reply.calls,
            after=reply.after,
        )
        return self._responses.start(plan)

    def _response_done(self, run: Run, counts: wire.TokenCounts) -> None:
        """After ``response.done`` of an in-band response: remember the input for the cache
        figure, arm the idle timeout, start a reply deferred by a busy response."""
        if not run.plan.in_band:
            return
        if counts.input:
            self._previous_input = counts.input
        vad = self.settings.vad
        if vad is not None and vad.idle_timeout_ms is not None and not self._vad.speaking:
            # "after the last model response's audio has finished playing"
            played = self._vad.tick + run.played_ticks()
            self._vad.arm(played, played + wav.ms_to_ticks(vad.idle_timeout_ms))
        if self._deferred:
            self._deferred = False
            self._respond(None)

    _HANDLERS: Final[dict[str, Handler]] = {
        "session.update": _on_session_update,
        "transcription_session.update": _on_transcription_session_update,
        "input_audio_buffer.append": _on_append,
        "input_audio_buffer.commit": _on_commit,
        "input_audio_buffer.clear": _on_clear,
        "output_audio_buffer.clear": _on_output_audio_buffer_clear,
        "conversation.item.create": _on_item_create,
        "conversation.item.retrieve": _on_item_retrieve,
        "conversation.item.truncate": _on_item_truncate,
        "conversation.item.delete": _on_item_delete,
        "response.create": _on_response_create,
        "response.cancel": _on_response_cancel,
    }
