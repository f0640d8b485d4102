"""Every client and server event of GPT-Live (LIVE.md §2-3; the SDK's ``openai.types.live``).

GPT-Live is not a version of the Realtime API: several names mean something else there
(``session.update``, ``session.updated``, ``response.create``, ``error``), and two names travel
in both directions within GPT-Live itself (``session.input_audio.append`` is a client command
and, on a sideband, the server's reflection of the primary's input; ``transport.dtmf.send`` is
a sideband command and a legacy server notice). So a wire name alone does not pick a class:
the connection's dialect and the frame's direction do. The tuples at the end are the unions
of the SDK per connection and direction; ``rtrec.schemas.dialects`` turns them into the
lookups ``Dialect.parse`` uses.
"""

from __future__ import annotations

import attrs

from rtrec.schemas.base import UNSET, Event, JsonObject, Opt, UnknownObject
from rtrec.schemas.live_objects import (
    ContextWindow,
    DecisionCompleted,
    DecisionItem,
    DelegationInfo,
    ForkSessionConfig,
    LiveError,
    SessionConfig,
    SessionResource,
    SessionUpdateConfig,
    SessionUsage,
    StoredDecisionItem,
    TransportError,
)

__all__ = [
    "LIVE_CLIENT_EVENTS",
    "LIVE_FORK_CLIENT_EVENTS",
    "LIVE_SERVER_EVENTS",
    "LIVE_SIDEBAND_CLIENT_EVENTS",
    "LIVE_SIDEBAND_SERVER_EVENTS",
    "CommentaryAppend",
    "CommentaryAppended",
    "DecisionCreate",
    "DecisionEvent",
    "DecisionItemCreate",
    "DecisionItemCreated",
    "DecisionItemDelete",
    "DecisionItemDeleted",
    "DelegationCreated",
    "ErrorEvent",
    "ForkSessionStart",
    "InfoEvent",
    "InputAudioAppend",
    "InputAudioMute",
    "InputAudioMuted",
    "InputAudioReflected",
    "InputAudioUnmute",
    "InputAudioUnmuted",
    "InputTranscriptDelta",
    "InstructionsAppend",
    "InstructionsAppended",
    "LiveClientEvent",
    "LiveEvent",
    "LiveServerEvent",
    "OutputAudioDelta",
    "OutputAudioFixturePlay",
    "OutputAudioFixturePlayed",
    "OutputAudioFixturePlaying",
    "OutputTranscriptDelta",
    "ResponseCreate",
    "ResponseEvent",
    "ResponseItemCreate",
    "SessionClose",
    "SessionClosed",
    "SessionPaused",
    "SessionResumed",
    "SessionStart",
    "SessionStarted",
    "SessionUpdate",
    "SessionUpdated",
    "SessionUsageUpdated",
    "ThinkingAppend",
    "ThinkingAppended",
    "TransportAnswered",
    "TransportDtmfReceived",
    "TransportDtmfSend",
    "TransportDtmfSendNotice",
    "TransportDtmfSent",
    "TransportFailed",
    "TransportRinging",
]


@attrs.frozen(kw_only=True)
class LiveEvent(Event):
    """Base of every GPT-Live event, client or server."""


@attrs.frozen(kw_only=True)
class LiveClientEvent(LiveEvent):
    """An event a client sends; the server echoes ``event_id`` as ``client_event_id``."""

    event_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class LiveServerEvent(LiveEvent):
    """An event the server sends (two of them, the audio ones, carry no ``event_id``)."""


@attrs.frozen(kw_only=True)
class _Notice(LiveServerEvent):
    event_id: str
    client_event_id: Opt[str] = UNSET


# =========================================================================== client events


@attrs.frozen(kw_only=True)
class SessionStart(LiveClientEvent):
    """The first frame of a primary connection: the whole session configuration."""

    type: str = "session.start"
    session: SessionConfig


@attrs.frozen(kw_only=True)
class ForkSessionStart(LiveClientEvent):
    """The first frame of a fork: what changes from the stored session (``{}``: nothing)."""

    type: str = "session.start"
    session: ForkSessionConfig


@attrs.frozen(kw_only=True)
class SessionUpdate(LiveClientEvent):
    """Change the delegation settings or the triggers (everything else is immutable)."""

    type: str = "session.update"
    session: SessionUpdateConfig


@attrs.frozen(kw_only=True)
class SessionClose(LiveClientEvent):
    """Ask the server to finish the session; ``session.closed`` ends it."""

    type: str = "session.close"


@attrs.frozen(kw_only=True)
class InputAudioAppend(LiveClientEvent):
    """Base64 input audio in the session's format; never acknowledged."""

    type: str = "session.input_audio.append"
    audio: str


@attrs.frozen(kw_only=True)
class InputAudioMute(LiveClientEvent):
    """The model hears silence from now on."""

    type: str = "session.input_audio.mute"


@attrs.frozen(kw_only=True)
class InputAudioUnmute(LiveClientEvent):
    """The model hears the input again."""

    type: str = "session.input_audio.unmute"


@attrs.frozen(kw_only=True)
class OutputAudioFixturePlay(LiveClientEvent):
    """Play PCM16 24 kHz audio (at most 30 s) to the listener, whatever the session format."""

    type: str = "session.output_audio.fixture.play"
    audio: str


@attrs.frozen(kw_only=True)
class _Append(LiveClientEvent):
    content: str
    #: ``null``: general context; else the id of a client delegation
    delegation_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InstructionsAppend(_Append):
    """Developer instructions added to the running conversation."""

    type: str = "session.instructions.append"


@attrs.frozen(kw_only=True)
class ThinkingAppend(_Append):
    """Silent reasoning or progress; it asks for no speech."""

    type: str = "session.thinking.append"


@attrs.frozen(kw_only=True)
class CommentaryAppend(_Append):
    """Context the model should tell the user (how a client answers a delegation)."""

    type: str = "session.commentary.append"


@attrs.frozen(kw_only=True)
class DecisionCreate(LiveClientEvent):
    """Evaluate the configured questions now; ``event_id`` is required and unique."""

    type: str = "decision.create"
    event_id: str


@attrs.frozen(kw_only=True)
class DecisionItemCreate(LiveClientEvent):
    """Add an item to the Decisions input store."""

    type: str = "decision.item.create"
    item: DecisionItem


@attrs.frozen(kw_only=True)
class DecisionItemDelete(LiveClientEvent):
    """Remove an item from the Decisions input store."""

    type: str = "decision.item.delete"
    item_id: str


@attrs.frozen(kw_only=True)
class ResponseItemCreate(LiveClientEvent):
    """Add a Responses API input item (a ``function_call_output``, a message, ...) to the
    delegated backend; the SDK types it as a Responses ``ResponseInputItem``, kept as JSON
    here."""

    type: str = "response.item.create"
    item: JsonObject


@attrs.frozen(kw_only=True)
class ResponseCreate(LiveClientEvent):
    """Ask the Responses backend to (continue to) respond; no body."""

    type: str = "response.create"


@attrs.frozen(kw_only=True)
class TransportDtmfSend(LiveClientEvent):
    """Sideband, SIP only: send one DTMF key."""

    type: str = "transport.dtmf.send"
    event: str


# =========================================================================== server events


@attrs.frozen(kw_only=True)
class SessionStarted(_Notice):
    """The reply to ``session.start``: the resolved session."""

    type: str = "session.started"
    session: SessionResource


@attrs.frozen(kw_only=True)
class SessionUpdated(_Notice):
    """The full resolved session after an accepted ``session.update``."""

    type: str = "session.updated"
    session: SessionResource


@attrs.frozen(kw_only=True)
class SessionClosed(_Notice):
    """Terminal: why the session ended, its final snapshot and cumulative usage."""

    type: str = "session.closed"
    reason: str
    session: SessionResource
    usage: SessionUsage


@attrs.frozen(kw_only=True)
class SessionPaused(_Notice):
    """Sideband (WebRTC): the idle timeout paused inference."""

    type: str = "session.paused"


@attrs.frozen(kw_only=True)
class SessionResumed(_Notice):
    """Sideband (WebRTC): speech woke inference."""

    type: str = "session.resumed"


@attrs.frozen(kw_only=True)
class InputAudioMuted(_Notice):
    """Acknowledges ``session.input_audio.mute``."""

    type: str = "session.input_audio.muted"


@attrs.frozen(kw_only=True)
class InputAudioUnmuted(_Notice):
    """Acknowledges ``session.input_audio.unmute``."""

    type: str = "session.input_audio.unmuted"


@attrs.frozen(kw_only=True)
class OutputAudioFixturePlaying(_Notice):
    """The fixture was accepted."""

    type: str = "session.output_audio.fixture.playing"


@attrs.frozen(kw_only=True)
class OutputAudioFixturePlayed(_Notice):
    """The fixture drained and normal inference resumed."""

    type: str = "session.output_audio.fixture.played"


@attrs.frozen(kw_only=True)
class _Appended(_Notice):
    #: where on the session timeline the context was injected
    start_ms: int
    end_ms: int


@attrs.frozen(kw_only=True)
class InstructionsAppended(_Appended):
    """The instructions were placed on the timeline."""

    type: str = "session.instructions.appended"


@attrs.frozen(kw_only=True)
class ThinkingAppended(_Appended):
    """The thinking was placed on the timeline."""

    type: str = "session.thinking.appended"


@attrs.frozen(kw_only=True)
class CommentaryAppended(_Appended):
    """The commentary was placed on the timeline."""

    type: str = "session.commentary.appended"


@attrs.frozen(kw_only=True)
class InputAudioReflected(LiveServerEvent):
    """Sideband: the primary's input audio (PCM16 24 kHz, before muting); no ``event_id``.

    Same wire name as the client command, other direction."""

    type: str = "session.input_audio.append"
    audio: str


@attrs.frozen(kw_only=True)
class OutputAudioDelta(LiveServerEvent):
    """Output audio; no ``event_id``. Times are on the sideband (optional on the primary)."""

    type: str = "session.output_audio.delta"
    delta: str
    start_ms: Opt[int] = UNSET
    end_ms: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class _TranscriptDelta(_Notice):
    delta: str
    start_ms: int
    end_ms: int


@attrs.frozen(kw_only=True)
class InputTranscriptDelta(_TranscriptDelta):
    """A fragment of the user's speech, placed on the session timeline."""

    type: str = "session.input_transcript.delta"


@attrs.frozen(kw_only=True)
class OutputTranscriptDelta(_TranscriptDelta):
    """A fragment of the model's speech, placed on the session timeline."""

    type: str = "session.output_transcript.delta"


@attrs.frozen(kw_only=True)
class DelegationCreated(_Notice):
    """The model handed work off (to the client, a Responses or a Decisions backend)."""

    type: str = "session.delegation.created"
    delegation: DelegationInfo
    offset_ms: int


@attrs.frozen(kw_only=True)
class ResponseEvent(_Notice):
    """A nested Responses streaming event of the delegated backend; the SDK leaves
    ``event`` an open object (dispatch on ``event["type"]``)."""

    type: str = "response.event"
    event: JsonObject
    delegation_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionEvent(LiveServerEvent):
    """A Decisions result, fired by a trigger, a delegation or ``decision.create``; it has
    no ``client_event_id``."""

    type: str = "decision.event"
    event_id: str
    event: DecisionCompleted | UnknownObject
    delegation_id: Opt[str] = UNSET
    source_event_id: Opt[str] = UNSET
    source_event_type: Opt[str] = UNSET
    trigger_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionItemCreated(_Notice):
    """The stored Decisions item (with its ``id``)."""

    type: str = "decision.item.created"
    item: StoredDecisionItem


@attrs.frozen(kw_only=True)
class DecisionItemDeleted(_Notice):
    """A Decisions item was removed."""

    type: str = "decision.item.deleted"
    item_id: str


@attrs.frozen(kw_only=True)
class SessionUsageUpdated(_Notice):
    """Cumulative usage in seconds, and how full the context is."""

    type: str = "session.usage.updated"
    usage: SessionUsage
    context_window: Opt[ContextWindow] = UNSET


@attrs.frozen(kw_only=True)
class ErrorEvent(_Notice):
    """A failure; a command error need not end a started session."""

    type: str = "error"
    error: LiveError


@attrs.frozen(kw_only=True)
class InfoEvent(_Notice):
    """A notice (for example ``data_channel_permissions``)."""

    type: str = "info"
    code: str
    message: str


@attrs.frozen(kw_only=True)
class TransportDtmfReceived(LiveServerEvent):
    """A caller's DTMF key (sideband, SIP)."""

    type: str = "transport.dtmf.received"
    event_id: str
    event: str


@attrs.frozen(kw_only=True)
class TransportDtmfSendNotice(_Notice):
    """Legacy server notice of a sent DTMF key (current servers send ``.sent``)."""

    type: str = "transport.dtmf.send"
    event: str


@attrs.frozen(kw_only=True)
class TransportDtmfSent(_Notice):
    """A DTMF key reached the SIP trunk."""

    type: str = "transport.dtmf.sent"
    event: str


@attrs.frozen(kw_only=True)
class _Transport(LiveServerEvent):
    event_id: str
    session_id: str


@attrs.frozen(kw_only=True)
class TransportRinging(_Transport):
    """The outbound SIP leg is ringing."""

    type: str = "transport.ringing"


@attrs.frozen(kw_only=True)
class TransportAnswered(_Transport):
    """The outbound SIP leg answered."""

    type: str = "transport.answered"


@attrs.frozen(kw_only=True)
class TransportFailed(_Transport):
    """The outbound SIP leg failed."""

    type: str = "transport.failed"
    error: TransportError


# =========================================================================== the unions

_COMMANDS: tuple[type[LiveClientEvent], ...] = (
    SessionUpdate,
    InputAudioMute,
    InputAudioUnmute,
    OutputAudioFixturePlay,
    InstructionsAppend,
    ThinkingAppend,
    CommentaryAppend,
    DecisionCreate,
    DecisionItemCreate,
    DecisionItemDelete,
    ResponseItemCreate,
    ResponseCreate,
    SessionClose,
)

#: SDK ``ClientEvent``: the primary connection
LIVE_CLIENT_EVENTS: tuple[type[LiveClientEvent], ...] = (SessionStart, InputAudioAppend, *_COMMANDS)
#: SDK ``ForkClientEvent``: a fork starts with its own configuration
LIVE_FORK_CLIENT_EVENTS: tuple[type[LiveClientEvent], ...] = (
    ForkSessionStart,
    InputAudioAppend,
    *_COMMANDS,
)
#: SDK ``ConnectClientEvent``: a sideband neither starts the session nor sends audio
LIVE_SIDEBAND_CLIENT_EVENTS: tuple[type[LiveClientEvent], ...] = (*_COMMANDS, TransportDtmfSend)

#: SDK ``ServerEvent`` (= ``ForkServerEvent``)
LIVE_SERVER_EVENTS: tuple[type[LiveServerEvent], ...] = (
    SessionStarted,
    SessionUpdated,
    InputAudioMuted,
    InputAudioUnmuted,
    OutputAudioFixturePlaying,
    OutputAudioFixturePlayed,
    InstructionsAppended,
    ThinkingAppended,
    CommentaryAppended,
    InputAudioReflected,
    OutputAudioDelta,
    InputTranscriptDelta,
    OutputTranscriptDelta,
    DelegationCreated,
    DecisionEvent,
    DecisionItemCreated,
    DecisionItemDeleted,
    ResponseEvent,
    SessionUsageUpdated,
    SessionClosed,
    ErrorEvent,
    InfoEvent,
    TransportDtmfReceived,
    TransportDtmfSendNotice,
    TransportDtmfSent,
    TransportRinging,
    TransportAnswered,
    TransportFailed,
)
#: SDK ``ConnectServerEvent``: adds the WebRTC wake policy's pause and resume
LIVE_SIDEBAND_SERVER_EVENTS: tuple[type[LiveServerEvent], ...] = (
    *LIVE_SERVER_EVENTS,
    SessionPaused,
    SessionResumed,
)
