"""The protocol's nested objects: sessions, audio configuration, items, content parts,
responses, usage, rate limits and errors (PROTOCOL.md §4-6).

One class serves both protocols where GA and beta share a shape; a field that only one of
them has is optional. Fields the wire leaves out stay ``UNSET``; unknown keys are kept in
``extra``. Classes that a union selects by ``type`` list the wire values in ``TAGS``
(messages are selected by ``message/<role>``; a tag of ``""`` matches an object without a
``type`` key, which is how a beta session differs from a GA one).
"""

from __future__ import annotations

from typing import TypeAlias, Union

import attrs

from rtrec.schemas.base import UNSET, JsonObject, Opt, SchemaObject, UnknownObject
from rtrec.schemas.enums import (
    AudioEncoding,
    BetaAudioFormat,
    ItemStatus,
    Modality,
    ResponseStatus,
    Role,
    StatusReason,
)

__all__ = [
    "AssistantMessageItem",
    "AudioConfig",
    "AudioFormat",
    "AudioInputConfig",
    "AudioOutputConfig",
    "BetaSession",
    "BetaTranscriptionSession",
    "CachedTokensDetails",
    "ClientSecret",
    "ContentPart",
    "Conversation",
    "DurationUsage",
    "ErrorDetails",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "InputAudioPart",
    "InputEntry",
    "InputImagePart",
    "InputTextPart",
    "InputTokenDetails",
    "Item",
    "ItemReference",
    "Language",
    "LogProb",
    "McpApprovalRequestItem",
    "McpApprovalResponseItem",
    "McpCallItem",
    "McpError",
    "McpListToolsItem",
    "McpTool",
    "McpToolDescription",
    "MessageItem",
    "NoiseReductionConfig",
    "OutputAudioPart",
    "OutputTextPart",
    "OutputTokenDetails",
    "PcmFormat",
    "PcmaFormat",
    "PcmuFormat",
    "Prompt",
    "RateLimit",
    "RealtimeError",
    "RealtimeSession",
    "Reasoning",
    "Response",
    "ResponseAudio",
    "ResponseCreateParams",
    "ResponseStatusDetails",
    "RetentionRatioTruncation",
    "SemanticVad",
    "ServerVad",
    "Session",
    "SystemMessageItem",
    "TokenUsage",
    "Tool",
    "ToolChoice",
    "ToolChoiceFunction",
    "ToolChoiceMcp",
    "TracingConfig",
    "TranscriptionConfig",
    "TranscriptionSession",
    "TranscriptionUsage",
    "TurnDetection",
    "Usage",
    "UserMessageItem",
    "VoiceId",
    "encoding_of",
]


# --------------------------------------------------------------------------- audio formats


@attrs.frozen(kw_only=True)
class PcmFormat(SchemaObject):
    """GA ``{"type": "audio/pcm", "rate": 24000}``: 16-bit little-endian PCM, mono."""

    TAGS = ("audio/pcm",)
    type: str = "audio/pcm"
    rate: Opt[int] = UNSET

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.PCM16

    @property
    def sample_rate(self) -> int:
        """Samples per second (the service only allows 24000)."""
        return self.rate if isinstance(self.rate, int) else 24000


@attrs.frozen(kw_only=True)
class PcmuFormat(SchemaObject):
    """GA ``{"type": "audio/pcmu"}``: G.711 µ-law at 8 kHz."""

    TAGS = ("audio/pcmu",)
    type: str = "audio/pcmu"

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.G711_ULAW

    @property
    def sample_rate(self) -> int:
        """Samples per second."""
        return 8000


@attrs.frozen(kw_only=True)
class PcmaFormat(SchemaObject):
    """GA ``{"type": "audio/pcma"}``: G.711 A-law at 8 kHz."""

    TAGS = ("audio/pcma",)
    type: str = "audio/pcma"

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.G711_ALAW

    @property
    def sample_rate(self) -> int:
        """Samples per second."""
        return 8000


#: A GA audio format object (SDK ``RealtimeAudioFormats``).
AudioFormat: TypeAlias = Union[PcmFormat, PcmuFormat, PcmaFormat, UnknownObject]  # noqa: UP007


def encoding_of(fmt: AudioFormat | BetaAudioFormat | str | None) -> AudioEncoding | None:
    """The encoding named by a GA format object or a beta format string, if known."""
    if isinstance(fmt, PcmFormat | PcmuFormat | PcmaFormat):
        return fmt.encoding
    if isinstance(fmt, BetaAudioFormat):
        return fmt.encoding
    if isinstance(fmt, str) and fmt in BetaAudioFormat.__members__.values():
        return BetaAudioFormat(fmt).encoding
    return None


# --------------------------------------------------------------------------- session config


@attrs.frozen(kw_only=True)
class NoiseReductionConfig(SchemaObject):
    """``audio.input.noise_reduction`` (GA) / ``input_audio_noise_reduction`` (beta)."""

    type: Opt[str] = UNSET
    strength: Opt[float] = UNSET


@attrs.frozen(kw_only=True)
class TranscriptionConfig(SchemaObject):
    """Input audio transcription settings (GA ``audio.input.transcription``, beta
    ``input_audio_transcription``)."""

    model: Opt[str] = UNSET
    language: Opt[str] = UNSET
    languages: Opt[tuple[str, ...]] = UNSET
    prompt: Opt[str] = UNSET
    delay: Opt[str] = UNSET
    keywords: Opt[tuple[str, ...]] = UNSET


@attrs.frozen(kw_only=True)
class ServerVad(SchemaObject):
    """Server-side voice activity detection by energy."""

    TAGS = ("server_vad",)
    type: str = "server_vad"
    threshold: Opt[float] = UNSET
    prefix_padding_ms: Opt[int] = UNSET
    silence_duration_ms: Opt[int] = UNSET
    idle_timeout_ms: Opt[int] = UNSET
    create_response: Opt[bool] = UNSET
    interrupt_response: Opt[bool] = UNSET


@attrs.frozen(kw_only=True)
class SemanticVad(SchemaObject):
    """Turn detection by a model that judges whether the user has finished speaking."""

    TAGS = ("semantic_vad",)
    type: str = "semantic_vad"
    eagerness: Opt[str] = UNSET
    create_response: Opt[bool] = UNSET
    interrupt_response: Opt[bool] = UNSET


#: Turn detection settings; ``null`` on the wire means manual turns.
TurnDetection: TypeAlias = Union[ServerVad, SemanticVad, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class AudioInputConfig(SchemaObject):
    """GA ``session.audio.input``."""

    format: Opt[AudioFormat] = UNSET
    noise_reduction: Opt[NoiseReductionConfig] = UNSET
    transcription: Opt[TranscriptionConfig] = UNSET
    turn_detection: Opt[TurnDetection] = UNSET


@attrs.frozen(kw_only=True)
class VoiceId(SchemaObject):
    """A custom voice, ``{"id": ...}``."""

    id: str


@attrs.frozen(kw_only=True)
class AudioOutputConfig(SchemaObject):
    """GA ``session.audio.output`` and ``response.audio.output``."""

    format: Opt[AudioFormat] = UNSET
    voice: Opt[str | VoiceId] = UNSET
    speed: Opt[float] = UNSET


@attrs.frozen(kw_only=True)
class AudioConfig(SchemaObject):
    """GA ``session.audio`` and ``response.audio``."""

    input: Opt[AudioInputConfig] = UNSET
    output: Opt[AudioOutputConfig] = UNSET


@attrs.frozen(kw_only=True)
class FunctionTool(SchemaObject):
    """A function the model may call."""

    TAGS = ("function",)
    type: str = "function"
    name: Opt[str] = UNSET
    description: Opt[str] = UNSET
    parameters: Opt[JsonObject] = UNSET


@attrs.frozen(kw_only=True)
class McpTool(SchemaObject):
    """A remote MCP server whose tools the service calls itself (GA only)."""

    TAGS = ("mcp",)
    type: str = "mcp"
    server_label: Opt[str] = UNSET
    server_url: Opt[str] = UNSET
    connector_id: Opt[str] = UNSET
    server_description: Opt[str] = UNSET
    authorization: Opt[str] = UNSET
    headers: Opt[JsonObject] = UNSET
    allowed_tools: Opt[tuple[str, ...] | JsonObject] = UNSET
    require_approval: Opt[str | JsonObject] = UNSET


Tool: TypeAlias = Union[FunctionTool, McpTool, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class ToolChoiceFunction(SchemaObject):
    """``tool_choice`` forcing one function."""

    TAGS = ("function",)
    type: str = "function"
    name: str


@attrs.frozen(kw_only=True)
class ToolChoiceMcp(SchemaObject):
    """``tool_choice`` forcing an MCP server (or one of its tools)."""

    TAGS = ("mcp",)
    type: str = "mcp"
    server_label: str
    name: Opt[str] = UNSET


#: ``"auto" | "none" | "required"`` or an object naming the tool.
ToolChoice: TypeAlias = Union[str, ToolChoiceFunction, ToolChoiceMcp, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class TracingConfig(SchemaObject):
    """``tracing`` as an object (it may also be ``"auto"`` or ``null``)."""

    workflow_name: Opt[str] = UNSET
    group_id: Opt[str] = UNSET
    metadata: Opt[JsonObject] = UNSET


@attrs.frozen(kw_only=True)
class RetentionRatioTruncation(SchemaObject):
    """``truncation`` as an object (it may also be ``"auto"`` or ``"disabled"``)."""

    TAGS = ("retention_ratio",)
    type: str = "retention_ratio"
    retention_ratio: Opt[float] = UNSET
    token_limits: Opt[JsonObject] = UNSET


@attrs.frozen(kw_only=True)
class Prompt(SchemaObject):
    """A stored prompt reference."""

    id: Opt[str] = UNSET
    version: Opt[str] = UNSET
    variables: Opt[JsonObject] = UNSET


@attrs.frozen(kw_only=True)
class Reasoning(SchemaObject):
    """Reasoning settings of reasoning models."""

    effort: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ClientSecret(SchemaObject):
    """An ephemeral key (beta sessions echo it; rtrec redacts ``value`` before writing)."""

    value: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class RealtimeSession(SchemaObject):
    """A GA realtime session (``session.type == "realtime"``), as sent in ``session.update``
    (partial) and ``session.created`` / ``session.updated`` (complete)."""

    TAGS = ("realtime",)
    type: str = "realtime"
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    model: Opt[str] = UNSET
    instructions: Opt[str] = UNSET
    output_modalities: Opt[tuple[Modality, ...]] = UNSET
    audio: Opt[AudioConfig] = UNSET
    include: Opt[tuple[str, ...]] = UNSET
    tools: Opt[tuple[Tool, ...]] = UNSET
    tool_choice: Opt[ToolChoice] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    max_output_tokens: Opt[int | str] = UNSET
    tracing: Opt[str | TracingConfig] = UNSET
    truncation: Opt[str | RetentionRatioTruncation] = UNSET
    prompt: Opt[Prompt] = UNSET
    reasoning: Opt[Reasoning] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


@attrs.frozen(kw_only=True)
class TranscriptionSession(SchemaObject):
    """A GA transcription-only session (``session.type == "transcription"``)."""

    TAGS = ("transcription",)
    type: str = "transcription"
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    audio: Opt[AudioConfig] = UNSET
    include: Opt[tuple[str, ...]] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


@attrs.frozen(kw_only=True)
class BetaSession(SchemaObject):
    """A beta session: one flat object without ``type`` (PROTOCOL.md §6.1, §8)."""

    TAGS = ("",)
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    model: Opt[str] = UNSET
    modalities: Opt[tuple[Modality, ...]] = UNSET
    instructions: Opt[str] = UNSET
    voice: Opt[str] = UNSET
    speed: Opt[float] = UNSET
    input_audio_format: Opt[BetaAudioFormat] = UNSET
    output_audio_format: Opt[BetaAudioFormat] = UNSET
    input_audio_transcription: Opt[TranscriptionConfig] = UNSET
    input_audio_noise_reduction: Opt[NoiseReductionConfig] = UNSET
    turn_detection: Opt[TurnDetection] = UNSET
    tools: Opt[tuple[Tool, ...]] = UNSET
    tool_choice: Opt[ToolChoice] = UNSET
    temperature: Opt[float] = UNSET
    max_response_output_tokens: Opt[int | str] = UNSET
    tracing: Opt[str | TracingConfig] = UNSET
    include: Opt[tuple[str, ...]] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


@attrs.frozen(kw_only=True)
class BetaTranscriptionSession(SchemaObject):
    """A beta transcription session (``transcription_session.update`` / ``.updated``)."""

    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    modalities: Opt[tuple[Modality, ...]] = UNSET
    input_audio_format: Opt[BetaAudioFormat] = UNSET
    input_audio_transcription: Opt[TranscriptionConfig] = UNSET
    input_audio_noise_reduction: Opt[NoiseReductionConfig] = UNSET
    turn_detection: Opt[TurnDetection] = UNSET
    include: Opt[tuple[str, ...]] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


#: The ``session`` of session events: GA realtime, GA transcription, or beta (no ``type``).
Session: TypeAlias = Union[  # noqa: UP007
    RealtimeSession, TranscriptionSession, BetaSession, UnknownObject
]

# --------------------------------------------------------------------------- content parts


@attrs.frozen(kw_only=True)
class InputTextPart(SchemaObject):
    """User or system text."""

    TAGS = ("input_text",)
    type: str = "input_text"
    text: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InputAudioPart(SchemaObject):
    """User audio: base64 in ``audio`` (client side only), ``transcript`` once transcribed."""

    TAGS = ("input_audio",)
    type: str = "input_audio"
    audio: Opt[str] = UNSET
    transcript: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InputImagePart(SchemaObject):
    """A user image as a data URI (GA)."""

    TAGS = ("input_image",)
    type: str = "input_image"
    image_url: Opt[str] = UNSET
    detail: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class OutputTextPart(SchemaObject):
    """Assistant text: GA ``output_text``, beta and content-part events ``text``."""

    TAGS = ("output_text", "text")
    type: str = "output_text"
    text: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class OutputAudioPart(SchemaObject):
    """Assistant audio: GA ``output_audio``, beta and content-part events ``audio``."""

    TAGS = ("output_audio", "audio")
    type: str = "output_audio"
    audio: Opt[str] = UNSET
    transcript: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ItemReference(SchemaObject):
    """A reference to an existing item: a beta content part, or a GA ``response.input``
    entry (never a conversation item)."""

    TAGS = ("item_reference",)
    type: str = "item_reference"
    id: Opt[str] = UNSET


ContentPart: TypeAlias = Union[  # noqa: UP007
    InputTextPart,
    InputAudioPart,
    InputImagePart,
    OutputTextPart,
    OutputAudioPart,
    ItemReference,
    UnknownObject,
]

# --------------------------------------------------------------------------- items


@attrs.frozen(kw_only=True)
class _ItemBase(SchemaObject):
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    status: Opt[ItemStatus] = UNSET


@attrs.frozen(kw_only=True)
class SystemMessageItem(_ItemBase):
    """A system message (instructions inserted into the conversation)."""

    TAGS = ("message/system",)
    type: str = "message"
    role: Role = Role.SYSTEM
    content: Opt[tuple[ContentPart, ...]] = UNSET


@attrs.frozen(kw_only=True)
class UserMessageItem(_ItemBase):
    """A user message: text, audio or image parts."""

    TAGS = ("message/user",)
    type: str = "message"
    role: Role = Role.USER
    content: Opt[tuple[ContentPart, ...]] = UNSET


@attrs.frozen(kw_only=True)
class AssistantMessageItem(_ItemBase):
    """An assistant message: text or audio (with transcript) parts."""

    TAGS = ("message/assistant",)
    type: str = "message"
    role: Role = Role.ASSISTANT
    content: Opt[tuple[ContentPart, ...]] = UNSET


@attrs.frozen(kw_only=True)
class FunctionCallItem(_ItemBase):
    """A call of a client-side function, made by the model."""

    TAGS = ("function_call",)
    type: str = "function_call"
    call_id: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class FunctionCallOutputItem(_ItemBase):
    """The client's answer to a function call."""

    TAGS = ("function_call_output",)
    type: str = "function_call_output"
    call_id: Opt[str] = UNSET
    output: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class McpToolDescription(SchemaObject):
    """One tool listed by an MCP server."""

    name: str
    input_schema: Opt[JsonObject] = UNSET
    description: Opt[str] = UNSET
    annotations: Opt[JsonObject] = UNSET


@attrs.frozen(kw_only=True)
class McpListToolsItem(SchemaObject):
    """The tools an MCP server offers (GA)."""

    TAGS = ("mcp_list_tools",)
    type: str = "mcp_list_tools"
    id: Opt[str] = UNSET
    server_label: Opt[str] = UNSET
    tools: Opt[tuple[McpToolDescription, ...]] = UNSET


@attrs.frozen(kw_only=True)
class McpError(SchemaObject):
    """Why an MCP call failed: ``protocol_error``, ``tool_execution_error`` or ``http_error``."""

    type: str
    message: Opt[str] = UNSET
    code: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class McpCallItem(SchemaObject):
    """A call of an MCP tool, run by the service (GA)."""

    TAGS = ("mcp_call",)
    type: str = "mcp_call"
    id: Opt[str] = UNSET
    server_label: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[str] = UNSET
    output: Opt[str] = UNSET
    error: Opt[McpError] = UNSET
    approval_request_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class McpApprovalRequestItem(SchemaObject):
    """The service asks the client to approve an MCP call (GA)."""

    TAGS = ("mcp_approval_request",)
    type: str = "mcp_approval_request"
    id: Opt[str] = UNSET
    server_label: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class McpApprovalResponseItem(SchemaObject):
    """The client's approval or refusal of an MCP call (GA)."""

    TAGS = ("mcp_approval_response",)
    type: str = "mcp_approval_response"
    id: Opt[str] = UNSET
    approval_request_id: Opt[str] = UNSET
    approve: Opt[bool] = UNSET
    reason: Opt[str] = UNSET


#: A conversation item (SDK ``ConversationItem`` / ``RealtimeItem``).
Item: TypeAlias = Union[  # noqa: UP007
    SystemMessageItem,
    UserMessageItem,
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    McpListToolsItem,
    McpCallItem,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    UnknownObject,
]

#: An entry of ``response.create.response.input``: an item or a GA item reference.
InputEntry: TypeAlias = Union[  # noqa: UP007
    SystemMessageItem,
    UserMessageItem,
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    McpListToolsItem,
    McpCallItem,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    ItemReference,
    UnknownObject,
]

MessageItem: TypeAlias = Union[SystemMessageItem, UserMessageItem, AssistantMessageItem]  # noqa: UP007

# --------------------------------------------------------------------------- responses


@attrs.frozen(kw_only=True)
class ErrorDetails(SchemaObject):
    """An error inside a response status or a failed transcription."""

    type: Opt[str] = UNSET
    code: Opt[str] = UNSET
    message: Opt[str] = UNSET
    param: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ResponseStatusDetails(SchemaObject):
    """Why a response ended as it did (SDK ``RealtimeResponseStatus``)."""

    type: Opt[str] = UNSET
    reason: Opt[StatusReason] = UNSET
    error: Opt[ErrorDetails] = UNSET


@attrs.frozen(kw_only=True)
class CachedTokensDetails(SchemaObject):
    """Cached input tokens by kind (GA)."""

    text_tokens: Opt[int] = UNSET
    audio_tokens: Opt[int] = UNSET
    image_tokens: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class InputTokenDetails(SchemaObject):
    """Input tokens by kind."""

    text_tokens: Opt[int] = UNSET
    audio_tokens: Opt[int] = UNSET
    image_tokens: Opt[int] = UNSET
    cached_tokens: Opt[int] = UNSET
    cached_tokens_details: Opt[CachedTokensDetails] = UNSET


@attrs.frozen(kw_only=True)
class OutputTokenDetails(SchemaObject):
    """Output tokens by kind."""

    text_tokens: Opt[int] = UNSET
    audio_tokens: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class Usage(SchemaObject):
    """Token usage of a response."""

    total_tokens: Opt[int] = UNSET
    input_tokens: Opt[int] = UNSET
    output_tokens: Opt[int] = UNSET
    input_token_details: Opt[InputTokenDetails] = UNSET
    output_token_details: Opt[OutputTokenDetails] = UNSET


@attrs.frozen(kw_only=True)
class ResponseAudio(SchemaObject):
    """GA ``response.audio`` (the per-response output format and voice)."""

    output: Opt[AudioOutputConfig] = UNSET


@attrs.frozen(kw_only=True)
class Response(SchemaObject):
    """A response, as in ``response.created`` and ``response.done`` (GA and beta fields)."""

    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    status: Opt[ResponseStatus] = UNSET
    status_details: Opt[ResponseStatusDetails] = UNSET
    output: Opt[tuple[Item, ...]] = UNSET
    conversation_id: Opt[str] = UNSET
    output_modalities: Opt[tuple[Modality, ...]] = UNSET
    max_output_tokens: Opt[int | str] = UNSET
    audio: Opt[ResponseAudio] = UNSET
    usage: Opt[Usage] = UNSET
    metadata: Opt[JsonObject] = UNSET
    # beta only
    modalities: Opt[tuple[Modality, ...]] = UNSET
    voice: Opt[str] = UNSET
    output_audio_format: Opt[BetaAudioFormat] = UNSET
    temperature: Opt[float] = UNSET


@attrs.frozen(kw_only=True)
class ResponseCreateParams(SchemaObject):
    """Per-response overrides in ``response.create`` (PROTOCOL.md §6.2)."""

    conversation: Opt[str] = UNSET
    input: Opt[tuple[InputEntry, ...]] = UNSET
    instructions: Opt[str] = UNSET
    output_modalities: Opt[tuple[Modality, ...]] = UNSET
    audio: Opt[ResponseAudio] = UNSET
    tools: Opt[tuple[Tool, ...]] = UNSET
    tool_choice: Opt[ToolChoice] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    max_output_tokens: Opt[int | str] = UNSET
    metadata: Opt[JsonObject] = UNSET
    prompt: Opt[Prompt] = UNSET
    reasoning: Opt[Reasoning] = UNSET
    # beta only
    modalities: Opt[tuple[Modality, ...]] = UNSET
    voice: Opt[str] = UNSET
    output_audio_format: Opt[BetaAudioFormat] = UNSET
    temperature: Opt[float] = UNSET
    max_response_output_tokens: Opt[int | str] = UNSET


# --------------------------------------------------------------------------- misc


@attrs.frozen(kw_only=True)
class Conversation(SchemaObject):
    """The default conversation (``conversation.created``)."""

    id: Opt[str] = UNSET
    object: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class RealtimeError(SchemaObject):
    """The body of an ``error`` event; ``event_id`` names the client event that caused it."""

    type: str
    message: str
    code: Opt[str] = UNSET
    param: Opt[str] = UNSET
    event_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class RateLimit(SchemaObject):
    """One entry of ``rate_limits.updated``."""

    name: Opt[str] = UNSET
    limit: Opt[int] = UNSET
    remaining: Opt[int] = UNSET
    reset_seconds: Opt[float] = UNSET


@attrs.frozen(kw_only=True)
class TokenUsage(SchemaObject):
    """Transcription usage billed by tokens."""

    TAGS = ("tokens",)
    type: str = "tokens"
    input_tokens: Opt[int] = UNSET
    output_tokens: Opt[int] = UNSET
    total_tokens: Opt[int] = UNSET
    input_token_details: Opt[InputTokenDetails] = UNSET


@attrs.frozen(kw_only=True)
class DurationUsage(SchemaObject):
    """Transcription usage billed by audio duration."""

    TAGS = ("duration",)
    type: str = "duration"
    seconds: Opt[float] = UNSET


TranscriptionUsage: TypeAlias = Union[TokenUsage, DurationUsage, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class LogProb(SchemaObject):
    """A token's log probability in a transcription."""

    token: str
    logprob: float
    bytes: Opt[tuple[int, ...]] = UNSET


@attrs.frozen(kw_only=True)
class Language(SchemaObject):
    """A language detected in a transcription."""

    code: Opt[str] = UNSET
