"""GPT-Live's nested objects: session configuration and resource, audio formats, delegation
configs, triggers and Decisions questions, Decision items and results, usage and errors
(LIVE.md §4, §6, §8; the SDK's ``openai.types.live`` models, which win where they differ).

The rules are those of ``objects.py``: absent fields stay ``UNSET``, ``null`` stays ``None``,
unknown keys go to ``extra`` and an object whose ``type`` a union does not know becomes an
``UnknownObject``. Enumerations the SDK declares as ``Literal`` are plain ``str`` here, so a
value a newer server adds is kept and parsed rather than refused.

Messages are selected by ``message/<role>``; GPT-Live lets a message leave out its ``type``
(``InitialItem`` is selected by ``role`` alone), which the converter tags ``/<role>``, so each
message class lists both tags. Where the SDK itself leaves an object open (the nested
Responses event of ``response.event``, the Responses input item of ``response.item.create``)
it is a ``JsonObject`` here too; ``tests/test_live_schema_sdk.py`` lists the few SDK-typed
objects kept open on purpose.
"""

from __future__ import annotations

from typing import Final, TypeAlias, Union

import attrs

from rtrec.schemas.base import UNSET, JsonObject, Opt, SchemaObject, UnknownObject
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.objects import ToolChoiceFunction  # the same object in both protocols

__all__ = [
    "AssistantMessage",
    "ClientConfig",
    "ClientDelegation",
    "ContextWindow",
    "CustomToolCall",
    "CustomToolCallOutput",
    "CustomVoice",
    "DataChannelConfig",
    "Decision",
    "DecisionAnswer",
    "DecisionChoice",
    "DecisionChoiceAnswer",
    "DecisionChoiceOption",
    "DecisionChoiceProbability",
    "DecisionCompleted",
    "DecisionItem",
    "DecisionPredicate",
    "DecisionPredicateAnswer",
    "DecisionQuestion",
    "DecisionRefusalAnswer",
    "DecisionScore",
    "DecisionScoreAnswer",
    "DecisionScoreProbability",
    "DecisionTrigger",
    "DecisionUsage",
    "DecisionsConfig",
    "DecisionsDelegation",
    "DecisionsDelegationUpdate",
    "DecisionsTriggerConfig",
    "DecisionsUpdateConfig",
    "Delegation",
    "DelegationInfo",
    "DelegationUpdate",
    "DeveloperMessage",
    "ForkAudio",
    "ForkDelegation",
    "ForkSessionConfig",
    "FunctionCall",
    "FunctionCallOutput",
    "HostedTool",
    "HostedToolChoice",
    "InitialAssistant",
    "InitialDeveloper",
    "InitialItem",
    "InitialUser",
    "InputImage",
    "InputJson",
    "InputText",
    "Instructions",
    "LiveAudio",
    "LiveAudioFormat",
    "LiveAudioOutput",
    "LiveError",
    "LiveFunctionTool",
    "LivePcmFormat",
    "LivePcmaFormat",
    "LivePcmuFormat",
    "McpApprovalFilter",
    "McpToolFilter",
    "OutputText",
    "Refusal",
    "ResponsesDelegation",
    "ResponsesDelegationConfig",
    "ResponsesDelegationUpdate",
    "ResponsesDelegationUpdateConfig",
    "ResponsesMcpTool",
    "ResponsesReasoning",
    "ResponsesShellTool",
    "ResponsesText",
    "ResponsesTool",
    "ScoreLevel",
    "ServerEventSelector",
    "SessionConfig",
    "SessionResource",
    "SessionUpdateConfig",
    "SessionUsage",
    "StoredAssistantMessage",
    "StoredCustomToolCall",
    "StoredCustomToolCallOutput",
    "StoredDecisionItem",
    "StoredDeveloperMessage",
    "StoredFunctionCall",
    "StoredFunctionCallOutput",
    "StoredSystemMessage",
    "StoredUserMessage",
    "SystemMessage",
    "TextPart",
    "ToolChoice",
    "ToolChoiceAllowedTools",
    "ToolChoiceCustom",
    "ToolChoiceFunction",
    "ToolChoiceMcp",
    "TransportError",
    "Trigger",
    "UserMessage",
]


# --------------------------------------------------------------------------- audio


@attrs.frozen(kw_only=True)
class LivePcmFormat(SchemaObject):
    """``{"type": "audio/pcm", "rate": 16000 | 24000}``: 16-bit little-endian mono PCM.

    Unlike Realtime, ``rate`` is required and 16 kHz is allowed (LIVE.md §4.2)."""

    TAGS = ("audio/pcm",)
    type: str = "audio/pcm"
    rate: int

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.PCM16


@attrs.frozen(kw_only=True)
class LivePcmuFormat(SchemaObject):
    """``{"type": "audio/pcmu", "rate": 8000}``: G.711 µ-law."""

    TAGS = ("audio/pcmu",)
    type: str = "audio/pcmu"
    rate: int

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.G711_ULAW


@attrs.frozen(kw_only=True)
class LivePcmaFormat(SchemaObject):
    """``{"type": "audio/pcma", "rate": 8000}``: G.711 A-law."""

    TAGS = ("audio/pcma",)
    type: str = "audio/pcma"
    rate: int

    @property
    def encoding(self) -> AudioEncoding:
        """The sample encoding."""
        return AudioEncoding.G711_ALAW


#: One format for both directions (SDK ``AudioFormat``).
LiveAudioFormat: TypeAlias = Union[LivePcmFormat, LivePcmuFormat, LivePcmaFormat, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class CustomVoice(SchemaObject):
    """A custom voice, ``{"id": ...}``."""

    id: str


@attrs.frozen(kw_only=True)
class LiveAudioOutput(SchemaObject):
    """``session.audio.output``: the voice (a built-in name, any string, or a custom voice)."""

    voice: Opt[str | CustomVoice] = UNSET


@attrs.frozen(kw_only=True)
class LiveAudio(SchemaObject):
    """``session.audio``: the one wire format and the output voice."""

    format: Opt[LiveAudioFormat] = UNSET
    output: Opt[LiveAudioOutput] = UNSET


@attrs.frozen(kw_only=True)
class ForkAudio(SchemaObject):
    """A fork's ``session.audio``: only the format of the new WebSocket."""

    format: Opt[LiveAudioFormat] = UNSET


# --------------------------------------------------------------------------- frontend


@attrs.frozen(kw_only=True)
class ServerEventSelector(SchemaObject):
    """One server event a WebRTC data channel may receive (``response_event``: the nested
    Responses type, for ``response.event``)."""

    type: str
    response_event: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DataChannelConfig(SchemaObject):
    """``client.data_channel``: ``"all"`` or the lists of events the frontend may use."""

    allowed_client_events: Opt[str | tuple[str, ...]] = UNSET
    allowed_server_events: Opt[str | tuple[ServerEventSelector, ...]] = UNSET


@attrs.frozen(kw_only=True)
class ClientConfig(SchemaObject):
    """``session.client``: the WebRTC frontend's permissions."""

    data_channel: DataChannelConfig


# --------------------------------------------------------------------------- decisions questions


@attrs.frozen(kw_only=True)
class InputText(SchemaObject):
    """``{"type": "input_text", "text": ...}``."""

    TAGS = ("input_text",)
    type: str = "input_text"
    text: str


@attrs.frozen(kw_only=True)
class InputImage(SchemaObject):
    """``{"type": "input_image", "image_url": ..., "detail"?}``."""

    TAGS = ("input_image",)
    type: str = "input_image"
    image_url: str
    detail: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InputJson(SchemaObject):
    """``{"type": "input_json", "data": object | [object]}``."""

    TAGS = ("input_json",)
    type: str = "input_json"
    data: tuple[JsonObject, ...] | JsonObject


InstructionPart: TypeAlias = Union[InputText, InputImage, InputJson, UnknownObject]  # noqa: UP007
#: a question's instructions: a string or parts
Instructions: TypeAlias = Union[str, tuple[InstructionPart, ...]]  # noqa: UP007


@attrs.frozen(kw_only=True)
class DecisionChoiceOption(SchemaObject):
    """One allowed answer of a choice question."""

    value: str | bool
    description: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ScoreLevel(SchemaObject):
    """One level of a score question."""

    label: str
    description: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionChoice(SchemaObject):
    """A question answered by one of ``choices``."""

    TAGS = ("choice",)
    type: str = "choice"
    choices: tuple[DecisionChoiceOption, ...]
    instructions: Instructions
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionPredicate(SchemaObject):
    """A yes/no question answered with a probability."""

    TAGS = ("predicate",)
    type: str = "predicate"
    instructions: Instructions
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionScore(SchemaObject):
    """A question answered with one of ``levels``."""

    TAGS = ("score",)
    type: str = "score"
    instructions: Instructions
    levels: tuple[ScoreLevel, ...]
    name: Opt[str] = UNSET


DecisionQuestion: TypeAlias = Union[DecisionChoice, DecisionPredicate, DecisionScore, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class DecisionsTriggerConfig(SchemaObject):
    """A trigger's questions."""

    questions: tuple[DecisionQuestion, ...]


@attrs.frozen(kw_only=True)
class DecisionTrigger(SchemaObject):
    """Evaluate questions on every transcript delta of one type (LIVE.md §4.7)."""

    TAGS = ("decisions",)
    type: str = "decisions"
    event_type: str
    decisions: DecisionsTriggerConfig


Trigger: TypeAlias = Union[DecisionTrigger, UnknownObject]  # noqa: UP007


# --------------------------------------------------------------------------- responses delegation


@attrs.frozen(kw_only=True)
class ResponsesReasoning(SchemaObject):
    """The backend's ``reasoning`` settings."""

    effort: Opt[str] = UNSET
    summary: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesText(SchemaObject):
    """The backend's ``text`` settings."""

    verbosity: Opt[str] = UNSET


#: Tools (and tool choices) the SDK types by ``type`` alone.
_HOSTED: Final = (
    "web_search",
    "file_search",
    "code_interpreter",
    "image_generation",
    "custom",
    "namespace",
    "tool_search",
    "programmatic_tool_calling",
    "computer",
    "apply_patch",
)


@attrs.frozen(kw_only=True)
class LiveFunctionTool(SchemaObject):
    """A function the Responses backend may call."""

    TAGS = ("function",)
    type: str = "function"
    name: str
    description: Opt[str] = UNSET
    parameters: Opt[JsonObject] = UNSET
    strict: Opt[bool] = UNSET


@attrs.frozen(kw_only=True)
class HostedTool(SchemaObject):
    """A tool the service runs itself that the SDK types by its ``type`` only
    (``web_search``, ``file_search``, ...; settings such as ``search_context_size`` are
    kept in ``extra``)."""

    TAGS = _HOSTED
    type: str


@attrs.frozen(kw_only=True)
class McpToolFilter(SchemaObject):
    """Which MCP tools (by name, or read-only ones) a rule covers."""

    read_only: Opt[bool] = UNSET
    tool_names: Opt[tuple[str, ...]] = UNSET


@attrs.frozen(kw_only=True)
class McpApprovalFilter(SchemaObject):
    """``require_approval`` as an object: the tools that always / never need approval."""

    always: Opt[McpToolFilter] = UNSET
    never: Opt[McpToolFilter] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesMcpTool(SchemaObject):
    """A remote MCP server the backend calls."""

    TAGS = ("mcp",)
    type: str = "mcp"
    allowed_callers: Opt[tuple[str, ...]] = UNSET
    allowed_tools: Opt[tuple[str, ...] | McpToolFilter] = UNSET
    authorization: Opt[str] = UNSET
    connector_id: Opt[str] = UNSET
    defer_loading: Opt[bool] = UNSET
    headers: Opt[JsonObject] = UNSET
    require_approval: Opt[str | McpApprovalFilter] = UNSET
    server_description: Opt[str] = UNSET
    server_label: Opt[str] = UNSET
    server_url: Opt[str] = UNSET
    tunnel_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesShellTool(SchemaObject):
    """A shell the backend may use; its ``environment`` (container or local, with skills
    and network policy) is kept as JSON."""

    TAGS = ("shell",)
    type: str = "shell"
    environment: Opt[JsonObject] = UNSET


ResponsesTool: TypeAlias = Union[  # noqa: UP007
    LiveFunctionTool, HostedTool, ResponsesMcpTool, ResponsesShellTool, UnknownObject
]


@attrs.frozen(kw_only=True)
class ToolChoiceMcp(SchemaObject):
    """Force one tool of an MCP server."""

    TAGS = ("mcp",)
    type: str = "mcp"
    name: str
    server_label: str


@attrs.frozen(kw_only=True)
class ToolChoiceCustom(SchemaObject):
    """Force one custom tool."""

    TAGS = ("custom",)
    type: str = "custom"
    name: str


#: Tool choices the SDK types by ``type`` alone.
_HOSTED_CHOICES: Final = (
    "file_search",
    "web_search",
    "web_search_preview",
    "image_generation",
    "computer",
    "code_interpreter",
    "programmatic_tool_calling",
    "shell",
    "apply_patch",
)


@attrs.frozen(kw_only=True)
class HostedToolChoice(SchemaObject):
    """Force a hosted tool (``web_search``, ``shell``, ...)."""

    TAGS = _HOSTED_CHOICES
    type: str


AllowedTool: TypeAlias = Union[  # noqa: UP007
    ToolChoiceFunction, ToolChoiceMcp, ToolChoiceCustom, HostedToolChoice, UnknownObject
]


@attrs.frozen(kw_only=True)
class ToolChoiceAllowedTools(SchemaObject):
    """Restrict the backend to a subset of its tools."""

    TAGS = ("allowed_tools",)
    type: str = "allowed_tools"
    tools: tuple[AllowedTool, ...]
    mode: Opt[str] = UNSET


#: ``"auto" | "none" | "required"`` or an object naming the tool(s).
ToolChoice: TypeAlias = Union[  # noqa: UP007
    str,
    ToolChoiceFunction,
    ToolChoiceMcp,
    ToolChoiceCustom,
    HostedToolChoice,
    ToolChoiceAllowedTools,
    UnknownObject,
]


@attrs.frozen(kw_only=True)
class ResponsesDelegationUpdateConfig(SchemaObject):
    """The Responses backend's settings in an update or fork: all optional, omitted ones
    keep their values."""

    model: Opt[str] = UNSET
    instructions: Opt[str] = UNSET
    max_output_tokens: Opt[int] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    reasoning: Opt[ResponsesReasoning] = UNSET
    service_tier: Opt[str] = UNSET
    text: Opt[ResponsesText] = UNSET
    tool_choice: Opt[ToolChoice] = UNSET
    tools: Opt[tuple[ResponsesTool, ...]] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesDelegationConfig(ResponsesDelegationUpdateConfig):
    """The Responses backend's model, prompt and tools (``model`` required)."""

    model: str


@attrs.frozen(kw_only=True)
class DecisionsUpdateConfig(SchemaObject):
    """A Decisions delegation's model and questions in an update."""

    model: Opt[str] = UNSET
    questions: Opt[tuple[DecisionQuestion, ...]] = UNSET


@attrs.frozen(kw_only=True)
class DecisionsConfig(SchemaObject):
    """A Decisions delegation's model and questions."""

    model: str
    questions: tuple[DecisionQuestion, ...]


@attrs.frozen(kw_only=True)
class ClientDelegation(SchemaObject):
    """Delegate to the application (the default): no tool channel, answers come back as
    appends."""

    TAGS = ("client",)
    type: str = "client"
    acknowledgement_delay_ms: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesDelegation(SchemaObject):
    """Delegate to a Responses model run by the service."""

    TAGS = ("responses",)
    type: str = "responses"
    responses: ResponsesDelegationConfig
    acknowledgement_delay_ms: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class DecisionsDelegation(SchemaObject):
    """Delegate to the Decisions API."""

    TAGS = ("decisions",)
    type: str = "decisions"
    decisions: DecisionsConfig
    acknowledgement_delay_ms: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class ResponsesDelegationUpdate(SchemaObject):
    """A Responses delegation in ``session.update`` (the type cannot change)."""

    TAGS = ("responses",)
    type: str = "responses"
    acknowledgement_delay_ms: Opt[int] = UNSET
    responses: Opt[ResponsesDelegationUpdateConfig] = UNSET


@attrs.frozen(kw_only=True)
class DecisionsDelegationUpdate(SchemaObject):
    """A Decisions delegation in ``session.update``."""

    TAGS = ("decisions",)
    type: str = "decisions"
    acknowledgement_delay_ms: Opt[int] = UNSET
    decisions: Opt[DecisionsUpdateConfig] = UNSET


@attrs.frozen(kw_only=True)
class ForkDelegation(SchemaObject):
    """A fork may only override its Responses delegation."""

    TAGS = ("responses",)
    type: str = "responses"
    acknowledgement_delay_ms: Opt[int] = UNSET
    responses: Opt[ResponsesDelegationUpdateConfig] = UNSET


Delegation: TypeAlias = Union[  # noqa: UP007
    ClientDelegation, ResponsesDelegation, DecisionsDelegation, UnknownObject
]
DelegationUpdate: TypeAlias = Union[  # noqa: UP007
    ClientDelegation, ResponsesDelegationUpdate, DecisionsDelegationUpdate, UnknownObject
]


# --------------------------------------------------------------------------- initial items


@attrs.frozen(kw_only=True)
class TextPart(SchemaObject):
    """A text part of an initial message (``type`` optional: ``input_text`` or ``text``)."""

    TAGS = ("input_text", "text", "")
    text: str
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class OutputText(SchemaObject):
    """``{"type": "output_text", "text": ...}``."""

    TAGS = ("output_text",)
    type: str = "output_text"
    text: str


@attrs.frozen(kw_only=True)
class _InitialMessage(SchemaObject):
    role: str
    id: Opt[str] = UNSET
    status: Opt[str] = UNSET
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class InitialDeveloper(_InitialMessage):
    """History: a developer message (text only)."""

    TAGS = ("message/developer", "/developer")
    content: tuple[TextPart | UnknownObject, ...]


@attrs.frozen(kw_only=True)
class InitialUser(_InitialMessage):
    """History: a user message (text only)."""

    TAGS = ("message/user", "/user")
    content: tuple[TextPart | UnknownObject, ...]


@attrs.frozen(kw_only=True)
class InitialAssistant(_InitialMessage):
    """History: an assistant message (``text`` or ``output_text`` parts)."""

    TAGS = ("message/assistant", "/assistant")
    content: tuple[TextPart | OutputText | UnknownObject, ...]


InitialItem: TypeAlias = Union[InitialDeveloper, InitialUser, InitialAssistant, UnknownObject]  # noqa: UP007


# --------------------------------------------------------------------------- session


@attrs.frozen(kw_only=True)
class _SessionSettings(SchemaObject):
    audio: Opt[LiveAudio] = UNSET
    client: Opt[ClientConfig] = UNSET
    delegation: Opt[Delegation] = UNSET
    input: Opt[tuple[InitialItem, ...]] = UNSET
    instructions: Opt[str] = UNSET
    safety_identifier: Opt[str] = UNSET
    store: Opt[bool] = UNSET
    triggers: Opt[tuple[Trigger, ...]] = UNSET


@attrs.frozen(kw_only=True)
class SessionConfig(_SessionSettings):
    """What ``session.start`` asks for (LIVE.md §4.1); the service rejects unknown keys."""

    model: str


@attrs.frozen(kw_only=True)
class SessionResource(_SessionSettings):
    """The resolved session the server reports in ``session.started`` / ``updated`` /
    ``closed`` (``status`` is ``active`` even when closed)."""

    id: str
    expires_at: int
    model: str
    status: str


@attrs.frozen(kw_only=True)
class SessionUpdateConfig(SchemaObject):
    """What ``session.update`` may change: the delegation settings and the triggers."""

    delegation: Opt[DelegationUpdate] = UNSET
    triggers: Opt[tuple[Trigger, ...]] = UNSET


@attrs.frozen(kw_only=True)
class ForkSessionConfig(SchemaObject):
    """A fork's ``session.start``: ``{}`` inherits everything from the stored session."""

    audio: Opt[ForkAudio] = UNSET
    client: Opt[ClientConfig] = UNSET
    delegation: Opt[ForkDelegation | UnknownObject] = UNSET
    store: Opt[bool] = UNSET


@attrs.frozen(kw_only=True)
class SessionUsage(SchemaObject):
    """Cumulative billed duration (replace, never add; LIVE.md §6)."""

    seconds: float
    active_seconds: Opt[int] = UNSET
    paused_seconds: Opt[int] = UNSET


@attrs.frozen(kw_only=True)
class ContextWindow(SchemaObject):
    """Active context tokens over the model's limit."""

    usage_ratio: float


# --------------------------------------------------------------------------- errors, delegation


@attrs.frozen(kw_only=True)
class LiveError(SchemaObject):
    """``error.error``: the correlation key is ``client_event_id`` (Realtime: ``event_id``)."""

    type: str
    code: str
    message: str
    client_event_id: Opt[str] = UNSET
    param: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class TransportError(SchemaObject):
    """Why an outbound SIP leg failed (``type`` is ``call_error``)."""

    type: str
    code: str
    message: str
    param: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DelegationInfo(SchemaObject):
    """``session.delegation.created.delegation``: metadata only, no task text."""

    id: str
    target: str
    type: str
    response_id: Opt[str] = UNSET


# --------------------------------------------------------------------------- decision items


@attrs.frozen(kw_only=True)
class Refusal(SchemaObject):
    """``{"type": "refusal", "refusal": ...}`` in an assistant message."""

    TAGS = ("refusal",)
    type: str = "refusal"
    refusal: str


UserPart: TypeAlias = Union[InputText, InputImage, InputJson, UnknownObject]  # noqa: UP007
AssistantPart: TypeAlias = Union[OutputText, Refusal, UnknownObject]  # noqa: UP007
TextParts: TypeAlias = Union[InputText, UnknownObject]  # noqa: UP007
ToolOutputPart: TypeAlias = Union[InputText, InputImage, UnknownObject]  # noqa: UP007


@attrs.frozen(kw_only=True)
class UserMessage(SchemaObject):
    """A Decisions user message."""

    TAGS = ("message/user", "/user")
    role: str = "user"
    content: str | tuple[UserPart, ...]
    id: Opt[str] = UNSET
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DeveloperMessage(SchemaObject):
    """A Decisions developer message."""

    TAGS = ("message/developer", "/developer")
    role: str = "developer"
    content: str | tuple[TextParts, ...]
    id: Opt[str] = UNSET
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class SystemMessage(SchemaObject):
    """A Decisions system message."""

    TAGS = ("message/system", "/system")
    role: str = "system"
    content: str | tuple[TextParts, ...]
    id: Opt[str] = UNSET
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class AssistantMessage(SchemaObject):
    """A Decisions assistant message (``phase``: ``commentary`` or ``final_answer``)."""

    TAGS = ("message/assistant", "/assistant")
    role: str = "assistant"
    content: str | tuple[AssistantPart, ...]
    id: Opt[str] = UNSET
    phase: Opt[str] = UNSET
    type: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class FunctionCall(SchemaObject):
    """A function call as Decisions input."""

    TAGS = ("function_call",)
    type: str = "function_call"
    arguments: str
    call_id: str
    name: str
    id: Opt[str] = UNSET
    namespace: Opt[str] = UNSET
    status: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class FunctionCallOutput(SchemaObject):
    """A function call's output as Decisions input."""

    TAGS = ("function_call_output",)
    type: str = "function_call_output"
    call_id: str
    output: str | tuple[ToolOutputPart, ...]
    id: Opt[str] = UNSET
    status: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class CustomToolCall(SchemaObject):
    """A custom tool call as Decisions input."""

    TAGS = ("custom_tool_call",)
    type: str = "custom_tool_call"
    call_id: str
    input: str
    name: str
    id: Opt[str] = UNSET
    namespace: Opt[str] = UNSET
    status: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class CustomToolCallOutput(SchemaObject):
    """A custom tool call's output as Decisions input."""

    TAGS = ("custom_tool_call_output",)
    type: str = "custom_tool_call_output"
    call_id: str
    output: str | tuple[ToolOutputPart, ...]
    id: Opt[str] = UNSET
    status: Opt[str] = UNSET


# The stored forms (``decision.item.created``) are the same with a required ``id``.


@attrs.frozen(kw_only=True)
class StoredUserMessage(UserMessage):
    """A stored Decisions user message."""

    id: str


@attrs.frozen(kw_only=True)
class StoredDeveloperMessage(DeveloperMessage):
    """A stored Decisions developer message."""

    id: str


@attrs.frozen(kw_only=True)
class StoredSystemMessage(SystemMessage):
    """A stored Decisions system message."""

    id: str


@attrs.frozen(kw_only=True)
class StoredAssistantMessage(AssistantMessage):
    """A stored Decisions assistant message."""

    id: str


@attrs.frozen(kw_only=True)
class StoredFunctionCall(FunctionCall):
    """A stored function call."""

    id: str


@attrs.frozen(kw_only=True)
class StoredFunctionCallOutput(FunctionCallOutput):
    """A stored function call output."""

    id: str


@attrs.frozen(kw_only=True)
class StoredCustomToolCall(CustomToolCall):
    """A stored custom tool call."""

    id: str


@attrs.frozen(kw_only=True)
class StoredCustomToolCallOutput(CustomToolCallOutput):
    """A stored custom tool call output."""

    id: str


DecisionItem: TypeAlias = Union[  # noqa: UP007
    UserMessage,
    DeveloperMessage,
    SystemMessage,
    AssistantMessage,
    FunctionCall,
    FunctionCallOutput,
    CustomToolCall,
    CustomToolCallOutput,
    UnknownObject,
]
StoredDecisionItem: TypeAlias = Union[  # noqa: UP007
    StoredUserMessage,
    StoredDeveloperMessage,
    StoredSystemMessage,
    StoredAssistantMessage,
    StoredFunctionCall,
    StoredFunctionCallOutput,
    StoredCustomToolCall,
    StoredCustomToolCallOutput,
    UnknownObject,
]


# --------------------------------------------------------------------------- decision results


@attrs.frozen(kw_only=True)
class DecisionPredicateAnswer(SchemaObject):
    """A predicate's answer."""

    TAGS = ("predicate",)
    type: str = "predicate"
    probability: float
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionChoiceProbability(SchemaObject):
    """The probability of one choice."""

    probability: float
    value: str | bool


@attrs.frozen(kw_only=True)
class DecisionChoiceAnswer(SchemaObject):
    """A choice question's answer."""

    TAGS = ("choice",)
    type: str = "choice"
    choice: str | bool
    confidence: float
    probabilities: tuple[DecisionChoiceProbability, ...]
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionScoreProbability(SchemaObject):
    """The probability of one score level."""

    label: str
    probability: float
    value: int


@attrs.frozen(kw_only=True)
class DecisionScoreAnswer(SchemaObject):
    """A score question's answer."""

    TAGS = ("score",)
    type: str = "score"
    confidence: float
    probabilities: tuple[DecisionScoreProbability, ...]
    score: float
    name: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class DecisionRefusalAnswer(SchemaObject):
    """The model declined to answer a question."""

    TAGS = ("refusal",)
    type: str = "refusal"
    name: Opt[str] = UNSET


DecisionAnswer: TypeAlias = Union[  # noqa: UP007
    DecisionPredicateAnswer,
    DecisionChoiceAnswer,
    DecisionScoreAnswer,
    DecisionRefusalAnswer,
    UnknownObject,
]


@attrs.frozen(kw_only=True)
class _CachedTokens(SchemaObject):
    cache_write_tokens: int
    cached_tokens: int


@attrs.frozen(kw_only=True)
class _ReasoningTokens(SchemaObject):
    reasoning_tokens: int


@attrs.frozen(kw_only=True)
class DecisionUsage(SchemaObject):
    """The Decision model's tokens."""

    input_tokens: int
    input_tokens_details: _CachedTokens
    output_tokens: int
    output_tokens_details: _ReasoningTokens
    total_tokens: int


@attrs.frozen(kw_only=True)
class Decision(SchemaObject):
    """A Decisions evaluation: answers in question order (SDK ``openai.types.Decision``)."""

    answers: tuple[DecisionAnswer, ...]
    model: str
    usage: DecisionUsage


@attrs.frozen(kw_only=True)
class DecisionCompleted(SchemaObject):
    """``decision.event.event``."""

    TAGS = ("decision.completed",)
    type: str = "decision.completed"
    decision: Decision
