"""Every client and server event of the Realtime protocol (PROTOCOL.md §2-3).

GA names are the primary classes. A beta name that differs from its GA counterart is a
subclass of the GA class that only changes ``type`` (PROTOCOL.md §3.2), so code that handles
``ResponseOutputAudioDelta`` handles beta ``response.audio.delta`` too, while ``event.type``
still says which name was on the wire. ``CLIENT_EVENTS`` and ``SERVER_EVENTS`` at the end are
the registry the converter dispatches on.
"""

from __future__ import annotations

import attrs

from rtrec.schemas.base import UNSET, ClientEvent, Opt, ServerEvent
from rtrec.schemas.objects import (
    BetaTranscriptionSession,
    ContentPart,
    Conversation,
    ErrorDetails,
    Item,
    Language,
    LogProb,
    RateLimit,
    RealtimeError,
    Response,
    ResponseCreateParams,
    Session,
    TranscriptionUsage,
)

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ConversationCreated",
    "ConversationItemAdded",
    "ConversationItemCreate",
    "ConversationItemCreated",
    "ConversationItemDelete",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemRetrieve",
    "ConversationItemRetrieved",
    "ConversationItemTruncate",
    "ConversationItemTruncated",
    "ErrorEvent",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCleared",
    "InputAudioBufferCommit",
    "InputAudioBufferCommitted",
    "InputAudioBufferDtmfEventReceived",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioBufferTimeoutTriggered",
    "InputAudioTranscriptionCompleted",
    "InputAudioTranscriptionDelta",
    "InputAudioTranscriptionFailed",
    "InputAudioTranscriptionSegment",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpListToolsInProgress",
    "OutputAudioBufferClear",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "RateLimitsUpdated",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseCancel",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreate",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseMcpCallArgumentsDelta",
    "ResponseMcpCallArgumentsDone",
    "ResponseMcpCallCompleted",
    "ResponseMcpCallFailed",
    "ResponseMcpCallInProgress",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioDone",
    "ResponseOutputAudioTranscriptDelta",
    "ResponseOutputAudioTranscriptDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "SessionCreated",
    "SessionUpdate",
    "SessionUpdated",
    "TranscriptionSessionUpdate",
    "TranscriptionSessionUpdated",
]


# =========================================================================== client events


@attrs.frozen(kw_only=True)
class SessionUpdate(ClientEvent):
    """Change the session configuration; only the fields present change."""

    type: str = "session.update"
    session: Session


@attrs.frozen(kw_only=True)
class TranscriptionSessionUpdate(ClientEvent):
    """Beta: configure a transcription session."""

    type: str = "transcription_session.update"
    session: BetaTranscriptionSession


@attrs.frozen(kw_only=True)
class InputAudioBufferAppend(ClientEvent):
    """Append base64 audio (in the session's input format) to the input buffer."""

    type: str = "input_audio_buffer.append"
    audio: str


@attrs.frozen(kw_only=True)
class InputAudioBufferCommit(ClientEvent):
    """Commit the input buffer as a user message (manual turns)."""

    type: str = "input_audio_buffer.commit"


@attrs.frozen(kw_only=True)
class InputAudioBufferClear(ClientEvent):
    """Drop the audio in the input buffer."""

    type: str = "input_audio_buffer.clear"


@attrs.frozen(kw_only=True)
class OutputAudioBufferClear(ClientEvent):
    """WebRTC/SIP: cut off the audio being played out."""

    type: str = "output_audio_buffer.clear"


@attrs.frozen(kw_only=True)
class ConversationItemCreate(ClientEvent):
    """Add an item after ``previous_item_id`` (absent: append; ``"root"``: first)."""

    type: str = "conversation.item.create"
    item: Item
    previous_item_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ConversationItemRetrieve(ClientEvent):
    """Ask for the server's copy of an item, audio included."""

    type: str = "conversation.item.retrieve"
    item_id: str


@attrs.frozen(kw_only=True)
class ConversationItemTruncate(ClientEvent):
    """Cut an assistant item's audio at ``audio_end_ms`` (what the user actually heard)."""

    type: str = "conversation.item.truncate"
    item_id: str
    content_index: int
    audio_end_ms: int


@attrs.frozen(kw_only=True)
class ConversationItemDelete(ClientEvent):
    """Remove an item from the conversation."""

    type: str = "conversation.item.delete"
    item_id: str


@attrs.frozen(kw_only=True)
class ResponseCreate(ClientEvent):
    """Ask the model for a response, optionally with per-response overrides."""

    type: str = "response.create"
    response: Opt[ResponseCreateParams] = UNSET


@attrs.frozen(kw_only=True)
class ResponseCancel(ClientEvent):
    """Cancel the response in progress (or the one named)."""

    type: str = "response.cancel"
    response_id: Opt[str] = UNSET


# =========================================================================== server events


@attrs.frozen(kw_only=True)
class ErrorEvent(ServerEvent):
    """A recoverable error; the session stays open."""

    type: str = "error"
    error: RealtimeError


@attrs.frozen(kw_only=True)
class SessionCreated(ServerEvent):
    """The first event of every session, with the effective configuration."""

    type: str = "session.created"
    session: Session


@attrs.frozen(kw_only=True)
class SessionUpdated(ServerEvent):
    """The complete effective configuration after a ``session.update``."""

    type: str = "session.updated"
    session: Session


@attrs.frozen(kw_only=True)
class TranscriptionSessionUpdated(ServerEvent):
    """Beta: the transcription session configuration."""

    type: str = "transcription_session.updated"
    session: BetaTranscriptionSession


@attrs.frozen(kw_only=True)
class ConversationCreated(ServerEvent):
    """The default conversation exists (right after ``session.created``)."""

    type: str = "conversation.created"
    conversation: Conversation


@attrs.frozen(kw_only=True)
class _ItemEvent(ServerEvent):
    item: Item
    previous_item_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ConversationItemAdded(_ItemEvent):
    """GA: an item entered the conversation (model items arrive empty, in progress)."""

    type: str = "conversation.item.added"


@attrs.frozen(kw_only=True)
class ConversationItemDone(_ItemEvent):
    """GA: an item is final (content complete, audio omitted)."""

    type: str = "conversation.item.done"


@attrs.frozen(kw_only=True)
class ConversationItemCreated(_ItemEvent):
    """Beta (and legacy GA): an item entered the conversation."""

    type: str = "conversation.item.created"


@attrs.frozen(kw_only=True)
class ConversationItemRetrieved(ServerEvent):
    """The server's copy of an item, audio included."""

    type: str = "conversation.item.retrieved"
    item: Item


@attrs.frozen(kw_only=True)
class ConversationItemTruncated(ServerEvent):
    """An assistant item's audio was cut and its transcript removed."""

    type: str = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


@attrs.frozen(kw_only=True)
class ConversationItemDeleted(ServerEvent):
    """An item was removed."""

    type: str = "conversation.item.deleted"
    item_id: str


@attrs.frozen(kw_only=True)
class InputAudioTranscriptionDelta(ServerEvent):
    """A piece of the user's transcript (arrives asynchronously, keyed by item)."""

    type: str = "conversation.item.input_audio_transcription.delta"
    item_id: str
    content_index: Opt[int] = UNSET
    delta: Opt[str] = UNSET
    logprobs: Opt[tuple[LogProb, ...]] = UNSET


@attrs.frozen(kw_only=True)
class InputAudioTranscriptionCompleted(ServerEvent):
    """The user's complete transcript for an item, with usage."""

    type: str = "conversation.item.input_audio_transcription.completed"
    item_id: str
    content_index: int
    transcript: str
    usage: Opt[TranscriptionUsage] = UNSET
    logprobs: Opt[tuple[LogProb, ...]] = UNSET
    languages: Opt[tuple[Language, ...]] = UNSET


@attrs.frozen(kw_only=True)
class InputAudioTranscriptionFailed(ServerEvent):
    """Transcription of a user item failed."""

    type: str = "conversation.item.input_audio_transcription.failed"
    item_id: str
    content_index: int
    error: ErrorDetails


@attrs.frozen(kw_only=True)
class InputAudioTranscriptionSegment(ServerEvent):
    """GA: a diarized transcript segment."""

    type: str = "conversation.item.input_audio_transcription.segment"
    item_id: str
    content_index: int
    id: str
    text: str
    speaker: str
    start: float
    end: float


@attrs.frozen(kw_only=True)
class InputAudioBufferSpeechStarted(ServerEvent):
    """Server VAD heard speech start, ``audio_start_ms`` into all audio appended so far."""

    type: str = "input_audio_buffer.speech_started"
    item_id: str
    audio_start_ms: int


@attrs.frozen(kw_only=True)
class InputAudioBufferSpeechStopped(ServerEvent):
    """Server VAD heard speech stop, ``audio_end_ms`` into all audio appended so far."""

    type: str = "input_audio_buffer.speech_stopped"
    item_id: str
    audio_end_ms: int


@attrs.frozen(kw_only=True)
class InputAudioBufferCommitted(ServerEvent):
    """The input buffer became user item ``item_id``."""

    type: str = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InputAudioBufferCleared(ServerEvent):
    """The input buffer was emptied."""

    type: str = "input_audio_buffer.cleared"


@attrs.frozen(kw_only=True)
class InputAudioBufferTimeoutTriggered(ServerEvent):
    """GA: the idle timeout fired and committed what was in the buffer."""

    type: str = "input_audio_buffer.timeout_triggered"
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@attrs.frozen(kw_only=True)
class InputAudioBufferDtmfEventReceived(ServerEvent):
    """GA, SIP only: a DTMF key was pressed. The only server event without ``event_id``."""

    type: str = "input_audio_buffer.dtmf_event_received"
    event_id: Opt[str] = UNSET  # type: ignore[assignment]  # SIP events carry none
    event: str
    received_at: int


@attrs.frozen(kw_only=True)
class OutputAudioBufferStarted(ServerEvent):
    """WebRTC/SIP: the server began playing a response's audio."""

    type: str = "output_audio_buffer.started"
    response_id: str


@attrs.frozen(kw_only=True)
class OutputAudioBufferStopped(ServerEvent):
    """WebRTC/SIP: the server finished playing a response's audio."""

    type: str = "output_audio_buffer.stopped"
    response_id: str


@attrs.frozen(kw_only=True)
class OutputAudioBufferCleared(ServerEvent):
    """WebRTC/SIP: the audio being played was cut off."""

    type: str = "output_audio_buffer.cleared"
    response_id: str


@attrs.frozen(kw_only=True)
class ResponseCreated(ServerEvent):
    """A response started (``status == "in_progress"``)."""

    type: str = "response.created"
    response: Response


@attrs.frozen(kw_only=True)
class ResponseDone(ServerEvent):
    """A response ended, whatever its final status, with usage."""

    type: str = "response.done"
    response: Response


@attrs.frozen(kw_only=True)
class _OutputItemEvent(ServerEvent):
    response_id: str
    output_index: int
    item: Item


@attrs.frozen(kw_only=True)
class ResponseOutputItemAdded(_OutputItemEvent):
    """A response began an output item (before ``conversation.item.added``)."""

    type: str = "response.output_item.added"


@attrs.frozen(kw_only=True)
class ResponseOutputItemDone(_OutputItemEvent):
    """A response finished an output item (content complete, audio omitted)."""

    type: str = "response.output_item.done"


@attrs.frozen(kw_only=True)
class _PartEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@attrs.frozen(kw_only=True)
class ResponseContentPartAdded(_PartEvent):
    """A content part began (``part.type`` is ``text`` or ``audio`` in both protocols)."""

    type: str = "response.content_part.added"
    part: ContentPart


@attrs.frozen(kw_only=True)
class ResponseContentPartDone(_PartEvent):
    """A content part is complete."""

    type: str = "response.content_part.done"
    part: ContentPart


@attrs.frozen(kw_only=True)
class ResponseOutputTextDelta(_PartEvent):
    """A piece of assistant text."""

    type: str = "response.output_text.delta"
    delta: str


@attrs.frozen(kw_only=True)
class ResponseOutputTextDone(_PartEvent):
    """The assistant's complete text for a part."""

    type: str = "response.output_text.done"
    text: str


@attrs.frozen(kw_only=True)
class ResponseOutputAudioDelta(_PartEvent):
    """A chunk of assistant audio, base64 in the response's output format."""

    type: str = "response.output_audio.delta"
    delta: str


@attrs.frozen(kw_only=True)
class ResponseOutputAudioDone(_PartEvent):
    """The assistant's audio for a part is complete."""

    type: str = "response.output_audio.done"


@attrs.frozen(kw_only=True)
class ResponseOutputAudioTranscriptDelta(_PartEvent):
    """A piece of the transcript of the assistant's audio."""

    type: str = "response.output_audio_transcript.delta"
    delta: str


@attrs.frozen(kw_only=True)
class ResponseOutputAudioTranscriptDone(_PartEvent):
    """The complete transcript of the assistant's audio for a part."""

    type: str = "response.output_audio_transcript.done"
    transcript: str


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDelta(ServerEvent):
    """A piece of a function call's JSON arguments."""

    type: str = "response.function_call_arguments.delta"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDone(ServerEvent):
    """A function call's complete arguments (GA adds ``name``; beta has none)."""

    type: str = "response.function_call_arguments.done"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    arguments: str
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ResponseMcpCallArgumentsDelta(ServerEvent):
    """GA: a piece of an MCP call's arguments."""

    type: str = "response.mcp_call_arguments.delta"
    response_id: str
    item_id: str
    output_index: int
    delta: str
    obfuscation: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ResponseMcpCallArgumentsDone(ServerEvent):
    """GA: an MCP call's complete arguments."""

    type: str = "response.mcp_call_arguments.done"
    response_id: str
    item_id: str
    output_index: int
    arguments: str


@attrs.frozen(kw_only=True)
class _McpCallEvent(ServerEvent):
    item_id: str
    output_index: int


@attrs.frozen(kw_only=True)
class ResponseMcpCallInProgress(_McpCallEvent):
    """GA: an MCP call started."""

    type: str = "response.mcp_call.in_progress"


@attrs.frozen(kw_only=True)
class ResponseMcpCallCompleted(_McpCallEvent):
    """GA: an MCP call succeeded."""

    type: str = "response.mcp_call.completed"


@attrs.frozen(kw_only=True)
class ResponseMcpCallFailed(_McpCallEvent):
    """GA: an MCP call failed."""

    type: str = "response.mcp_call.failed"


@attrs.frozen(kw_only=True)
class _McpListToolsEvent(ServerEvent):
    item_id: str


@attrs.frozen(kw_only=True)
class McpListToolsInProgress(_McpListToolsEvent):
    """GA: listing an MCP server's tools started."""

    type: str = "mcp_list_tools.in_progress"


@attrs.frozen(kw_only=True)
class McpListToolsCompleted(_McpListToolsEvent):
    """GA: an MCP server's tools were listed."""

    type: str = "mcp_list_tools.completed"


@attrs.frozen(kw_only=True)
class McpListToolsFailed(_McpListToolsEvent):
    """GA: listing an MCP server's tools failed."""

    type: str = "mcp_list_tools.failed"


@attrs.frozen(kw_only=True)
class RateLimitsUpdated(ServerEvent):
    """Rate limits, at response start and again after it (position varies, §9)."""

    type: str = "rate_limits.updated"
    rate_limits: tuple[RateLimit, ...]


# --------------------------------------------------------------------------- beta aliases


@attrs.frozen(kw_only=True)
class ResponseTextDelta(ResponseOutputTextDelta):
    """Beta name of ``response.output_text.delta``."""

    type: str = "response.text.delta"


@attrs.frozen(kw_only=True)
class ResponseTextDone(ResponseOutputTextDone):
    """Beta name of ``response.output_text.done``."""

    type: str = "response.text.done"


@attrs.frozen(kw_only=True)
class ResponseAudioDelta(ResponseOutputAudioDelta):
    """Beta name of ``response.output_audio.delta``."""

    type: str = "response.audio.delta"


@attrs.frozen(kw_only=True)
class ResponseAudioDone(ResponseOutputAudioDone):
    """Beta name of ``response.output_audio.done``."""

    type: str = "response.audio.done"


@attrs.frozen(kw_only=True)
class ResponseAudioTranscriptDelta(ResponseOutputAudioTranscriptDelta):
    """Beta name of ``response.output_audio_transcript.delta``."""

    type: str = "response.audio_transcript.delta"


@attrs.frozen(kw_only=True)
class ResponseAudioTranscriptDone(ResponseOutputAudioTranscriptDone):
    """Beta name of ``response.output_audio_transcript.done``."""

    type: str = "response.audio_transcript.done"


CLIENT_EVENTS: tuple[type[ClientEvent], ...] = (
    SessionUpdate,
    TranscriptionSessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    OutputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemDelete,
    ResponseCreate,
    ResponseCancel,
)

SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    ErrorEvent,
    SessionCreated,
    SessionUpdated,
    TranscriptionSessionUpdated,
    ConversationCreated,
    ConversationItemAdded,
    ConversationItemDone,
    ConversationItemCreated,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    ConversationItemDeleted,
    InputAudioTranscriptionDelta,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionFailed,
    InputAudioTranscriptionSegment,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioBufferCommitted,
    InputAudioBufferCleared,
    InputAudioBufferTimeoutTriggered,
    InputAudioBufferDtmfEventReceived,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioBufferCleared,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallInProgress,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    McpListToolsInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    RateLimitsUpdated,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
)
