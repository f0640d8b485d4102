"""How GA and beta spell what the simulator sends (PROTOCOL.md §3.2, §4.1, §6.3, §8).

The session core decides *what* happens; these builders decide how each protocol writes it:
event names (``response.output_audio.delta`` vs ``response.audio.delta``), item shapes
(beta items carry ``object: "realtime.item"`` and name assistant parts ``audio``/``text``
where GA says ``output_audio``/``output_text``), response objects and usage details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import attrs

from rtrec.schemas import (
    UNSET,
    AssistantMessageItem,
    AudioOutputConfig,
    BetaAudioFormat,
    CachedTokensDetails,
    ContentPart,
    FunctionCallItem,
    InputAudioPart,
    InputTokenDetails,
    ItemStatus,
    McpApprovalRequestItem,
    McpCallItem,
    McpError,
    McpListToolsItem,
    McpToolDescription,
    Modality,
    OutputAudioPart,
    OutputTextPart,
    OutputTokenDetails,
    RateLimit,
    Response,
    ResponseAudio,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseStatus,
    ResponseStatusDetails,
    ResponseTextDelta,
    ResponseTextDone,
    SchemaObject,
    StatusReason,
    Usage,
    UserMessageItem,
    structure,
)
from rtrec.schemas import AudioFormat as AudioFormatType

__all__ = [
    "BETA",
    "GA",
    "Spelling",
    "TokenCounts",
    "assistant_item",
    "content_part",
    "evolve",
    "function_call_item",
    "make",
    "mcp_approval_request_item",
    "mcp_call_item",
    "mcp_list_tools_item",
    "rate_limits",
    "response_object",
    "usage",
    "user_audio_item",
]


S = TypeVar("S", bound=SchemaObject)


def make(cls: type[S], **fields: Any) -> S:
    """Construct a schema object.

    The schema classes are declared through an alias of ``attrs.frozen(kw_only=True)``, which
    mypy's attrs plugin does not follow, so it sees no constructor fields; construction goes
    through here (the classes still validate nothing at runtime either way).
    """
    return cls(**fields)


def evolve(inst: S, **changes: Any) -> S:
    """``attrs.evolve`` for schema objects (see ``make``)."""
    return attrs.evolve(inst, **changes)


@attrs.frozen
class Spelling:
    """The event classes whose names differ between GA and beta."""

    ga: bool
    text_delta: type[ResponseOutputTextDelta]
    text_done: type[ResponseOutputTextDone]
    audio_delta: type[ResponseOutputAudioDelta]
    audio_done: type[ResponseOutputAudioDone]
    transcript_delta: type[ResponseOutputAudioTranscriptDelta]
    transcript_done: type[ResponseOutputAudioTranscriptDone]


GA: Final = Spelling(
    True,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
)
BETA: Final = Spelling(
    False,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
)


def _object(ga: bool) -> str | Any:
    return UNSET if ga else "realtime.item"


def content_part(ga: bool, *, audio: bool, text: str, in_item: bool) -> ContentPart:
    """An assistant content part. Inside items GA says ``output_audio``/``output_text``;
    ``response.content_part.*`` events say ``audio``/``text`` in both protocols."""
    if audio:
        return make(
            OutputAudioPart, type="output_audio" if ga and in_item else "audio", transcript=text
        )
    return make(OutputTextPart, type="output_text" if ga and in_item else "text", text=text)


def assistant_item(
    ga: bool, item_id: str, status: ItemStatus, part: ContentPart | None
) -> AssistantMessageItem:
    """An assistant message (``part`` None: the empty item of ``output_item.added``)."""
    return make(
        AssistantMessageItem,
        id=item_id,
        object=_object(ga),
        status=status,
        content=() if part is None else (part,),
    )


def function_call_item(
    ga: bool, item_id: str, status: ItemStatus, call_id: str, name: str, arguments: str
) -> FunctionCallItem:
    """A model-made function call."""
    return make(
        FunctionCallItem,
        id=item_id,
        object=_object(ga),
        status=status,
        call_id=call_id,
        name=name,
        arguments=arguments,
    )


def mcp_call_item(
    item_id: str,
    server: str,
    name: str,
    arguments: str,
    *,
    output: str | None = None,
    error: str | None = None,
    approval_request_id: str | None = None,
) -> McpCallItem:
    """A call of an MCP tool (GA; MCP items have no ``status`` nor ``object``). ``output``
    and ``error`` stay null until the call has run; a failed call's error is a
    ``tool_execution_error``."""
    return make(
        McpCallItem,
        id=item_id,
        server_label=server,
        name=name,
        arguments=arguments,
        approval_request_id=approval_request_id,
        output=output,
        error=None if error is None else make(McpError, type="tool_execution_error", message=error),
    )


def mcp_approval_request_item(
    item_id: str, server: str, name: str, arguments: str
) -> McpApprovalRequestItem:
    """The service asks the client to approve a call (GA)."""
    return make(
        McpApprovalRequestItem, id=item_id, server_label=server, name=name, arguments=arguments
    )


def mcp_list_tools_item(
    item_id: str, server: str, tools: tuple[Mapping[str, Any], ...]
) -> McpListToolsItem:
    """The tools an MCP server offers (empty while the listing runs)."""
    listed = tuple(
        make(
            McpToolDescription,
            name=t["name"],
            description=t.get("description", UNSET),
            input_schema=t.get("input_schema", UNSET),
        )
        for t in tools
    )
    return make(McpListToolsItem, id=item_id, server_label=server, tools=listed)


def user_audio_item(
    ga: bool, item_id: str, *, transcript: str | None, audio: str | None = None
) -> UserMessageItem:
    """A committed user audio message (``audio`` only in ``conversation.item.retrieved``)."""
    part = make(InputAudioPart, audio=UNSET if audio is None else audio, transcript=transcript)
    return make(
        UserMessageItem,
        id=item_id,
        object=_object(ga),
        status=ItemStatus.COMPLETED,
        content=(part,),
    )


@attrs.frozen
class TokenCounts:
    """Token counts of one response (PROTOCOL.md §6.3)."""

    input_text: int = 0
    input_audio: int = 0
    cached_text: int = 0
    cached_audio: int = 0
    output_text: int = 0
    output_audio: int = 0

    @property
    def input(self) -> int:
        """All input tokens."""
        return self.input_text + self.input_audio

    @property
    def output(self) -> int:
        """All output tokens."""
        return self.output_text + self.output_audio


def usage(ga: bool, counts: TokenCounts) -> Usage:
    """``response.usage``; beta's input details lack the image counts."""
    cached = counts.cached_text + counts.cached_audio
    if ga:
        details = make(
            InputTokenDetails,
            text_tokens=counts.input_text,
            audio_tokens=counts.input_audio,
            image_tokens=0,
            cached_tokens=cached,
            cached_tokens_details=make(
                CachedTokensDetails,
                text_tokens=counts.cached_text,
                audio_tokens=counts.cached_audio,
                image_tokens=0,
            ),
        )
    else:
        details = make(
            InputTokenDetails,
            cached_tokens=cached,
            text_tokens=counts.input_text,
            audio_tokens=counts.input_audio,
            cached_tokens_details=make(
                CachedTokensDetails,
                text_tokens=counts.cached_text,
                audio_tokens=counts.cached_audio,
            ),
        )
    return make(
        Usage,
        total_tokens=counts.input + counts.output,
        input_tokens=counts.input,
        output_tokens=counts.output,
        input_token_details=details,
        output_token_details=make(
            OutputTokenDetails, text_tokens=counts.output_text, audio_tokens=counts.output_audio
        ),
    )


def response_object(
    ga: bool,
    *,
    response_id: str,
    status: ResponseStatus,
    reason: StatusReason | None,
    output: tuple[Any, ...],
    conversation_id: str | None,
    audio: bool,
    output_format: Any,
    voice: str,
    max_output_tokens: int | str,
    temperature: float | None,
    counts: TokenCounts | None,
    metadata: Mapping[str, Any] | None,
) -> Response:
    """A ``response`` as in ``response.created`` (``counts`` None) and ``response.done``."""
    details = None
    if reason is not None:
        details = make(ResponseStatusDetails, type=status.value, reason=reason)
    common: dict[str, Any] = {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": conversation_id,
        "max_output_tokens": max_output_tokens,
        "usage": None if counts is None else usage(ga, counts),
        "metadata": None if metadata is None else dict(metadata),
    }
    if ga:
        fmt: AudioFormatType = structure(dict(output_format), AudioFormatType)
        return make(
            Response,
            output_modalities=(Modality.AUDIO,) if audio else (Modality.TEXT,),
            audio=make(ResponseAudio, output=make(AudioOutputConfig, format=fmt, voice=voice)),
            **common,
        )
    return make(
        Response,
        modalities=(Modality.AUDIO, Modality.TEXT) if audio else (Modality.TEXT,),
        voice=voice,
        output_audio_format=BetaAudioFormat(output_format),
        temperature=0.8 if temperature is None else temperature,
        **common,
    )


def rate_limits(ga: bool, *, used_tokens: int) -> tuple[RateLimit, ...]:
    """``rate_limits.updated`` after a response reserved ``used_tokens`` (beta also lists
    requests, as its captures do)."""
    limit = 40000
    tokens = make(
        RateLimit,
        name="tokens",
        limit=limit,
        remaining=max(limit - used_tokens, 0),
        reset_seconds=round(used_tokens * 60 / limit, 3),
    )
    if ga:
        return (tokens,)
    return (
        make(RateLimit, name="requests", limit=5000, remaining=4999, reset_seconds=0.012),
        tokens,
    )
