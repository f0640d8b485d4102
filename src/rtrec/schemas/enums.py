"""Enumerations of the protocol's closed vocabularies (PROTOCOL.md §4-6).

They are ``StrEnum``s, so a member compares equal to its wire string. Fields typed with one
of these accept only the listed values in strict parsing; the lenient parser keeps a value
from a newer server as a plain string in the object's ``extra`` instead of failing.
"""

from __future__ import annotations

import enum

__all__ = [
    "AudioEncoding",
    "BetaAudioFormat",
    "ContentType",
    "ItemStatus",
    "ItemType",
    "Modality",
    "ResponseStatus",
    "Role",
    "StatusReason",
]


class ItemStatus(enum.StrEnum):
    """Status of a conversation item."""

    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    IN_PROGRESS = "in_progress"


class ResponseStatus(enum.StrEnum):
    """Status of a response (``in_progress`` only in ``response.created``)."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INCOMPLETE = "incomplete"
    IN_PROGRESS = "in_progress"


class StatusReason(enum.StrEnum):
    """Why a response ended other than completed (``status_details.reason``)."""

    TURN_DETECTED = "turn_detected"
    CLIENT_CANCELLED = "client_cancelled"
    MAX_OUTPUT_TOKENS = "max_output_tokens"
    CONTENT_FILTER = "content_filter"


class Role(enum.StrEnum):
    """Role of a message item."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class ItemType(enum.StrEnum):
    """Type of a conversation item."""

    MESSAGE = "message"
    FUNCTION_CALL = "function_call"
    FUNCTION_CALL_OUTPUT = "function_call_output"
    MCP_LIST_TOOLS = "mcp_list_tools"
    MCP_CALL = "mcp_call"
    MCP_APPROVAL_REQUEST = "mcp_approval_request"
    MCP_APPROVAL_RESPONSE = "mcp_approval_response"


class ContentType(enum.StrEnum):
    """Type of a content part. GA items say ``output_text``/``output_audio`` where beta items
    and every ``response.content_part.*`` event say ``text``/``audio`` (PROTOCOL.md §4.1)."""

    INPUT_TEXT = "input_text"
    INPUT_AUDIO = "input_audio"
    INPUT_IMAGE = "input_image"
    OUTPUT_TEXT = "output_text"
    OUTPUT_AUDIO = "output_audio"
    TEXT = "text"
    AUDIO = "audio"
    ITEM_REFERENCE = "item_reference"


class Modality(enum.StrEnum):
    """An output modality."""

    TEXT = "text"
    AUDIO = "audio"


class AudioEncoding(enum.StrEnum):
    """How audio samples are encoded on the wire (inside the base64 strings)."""

    PCM16 = "pcm16"
    G711_ULAW = "g711_ulaw"
    G711_ALAW = "g711_alaw"

    @property
    def sample_rate(self) -> int:
        """Samples per second: 24 kHz for PCM16, 8 kHz for G.711 (PROTOCOL.md §5)."""
        return 24000 if self is AudioEncoding.PCM16 else 8000

    @property
    def bytes_per_sample(self) -> int:
        """Bytes one mono sample occupies on the wire."""
        return 2 if self is AudioEncoding.PCM16 else 1


class BetaAudioFormat(enum.StrEnum):
    """The beta protocol's audio format strings (``input_audio_format`` and friends)."""

    PCM16 = "pcm16"
    G711_ULAW = "g711_ulaw"
    G711_ALAW = "g711_alaw"

    @property
    def encoding(self) -> AudioEncoding:
        """The encoding this format string names."""
        return AudioEncoding(self.value)

    @property
    def sample_rate(self) -> int:
        """Samples per second of this format."""
        return self.encoding.sample_rate
