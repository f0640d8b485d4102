"""The protocol rules the replay reducer follows, as data, in one place.

Rule 1 (after h11's ``_state.py``): every decision the reducer takes *because of how the
Realtime protocol behaves* is a table in this file. ``_reducer.py`` and the draft's parts
(``_draft.py``, ``_items.py``, ``_input_audio.py``, ``_responses.py``, ``_handlers.py``) are
mechanism: they read frames, find items, keep accumulators; when they have to know which name
is an alias of which, which status may follow which, or where an item goes, they ask here.
When a capture shows the service doing something new, this is the file to change (and
PROTOCOL.md §8-9 the text to cite).

Theory of operation
-------------------

*Names.* GA and beta name six events differently (PROTOCOL.md §3.2). The schema layer already
parses each beta name into a subclass of its GA class, so the typed handlers see one class per
meaning. The fast paths, which never build a typed event, key on the wire name instead; the
sets below are derived from ``BETA_EVENT_NAMES`` so that a GA session that sends a beta name
(§9 saw ``response.audio_transcript.done`` on a GA data channel) is handled the same way.

*Conversation order.* The conversation is a linked list: every event that places an item names
its predecessor (``previous_item_id``). The reducer keeps the declarations and derives the order
(see ``order_items`` in ``_items.py``), which makes late predecessors harmless: an item that
named a predecessor not seen yet is appended and flagged, and moves to its place when the
predecessor arrives. ``predecessor()`` says what a declaration means and
``PREDECESSOR_RULES`` which events place an item.

*Text.* A text (assistant text, a transcript, call arguments) grows by deltas, may be restated
by a snapshot (an item in ``conversation.item.done``, ``response.output_item.done``,
``response.done``, ``conversation.item.retrieved``) and is settled by its ``*.done`` event.
``*.done`` wins; before it, the longer of the deltas and the latest snapshot wins, because
snapshots carry no deltas' worth of news and have been seen ahead of the last deltas (§9: "newer
models have sent output_item.done before all transcript deltas arrived"). A snapshot's
``null`` never erases anything (§8: "merge, never overwrite ... with nulls").

*Statuses.* Items and responses only move forward: ``in_progress`` to a final status, and a
final status may be restated (``completed`` then ``incomplete`` when a cancel lands right after,
§9) but never goes back to ``in_progress`` (a late re-announcement). A response that ends
cancelled, incomplete or failed leaves its unfinished items ``incomplete`` (§8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "AUDIO_DELTA_TYPES",
    "BETA_EVENT_NAMES",
    "DELTA_PART_TYPES",
    "GA_ONLY_EVENT_TYPES",
    "INTERRUPTING_REASONS",
    "ITEM_STATUS_AFTER_RESPONSE",
    "PART_TYPE_ALIASES",
    "PLAYBACK_EVENTS",
    "PREDECESSOR_RULES",
    "TEXT_DELTA_FIELDS",
    "AnomalyKind",
    "Ordering",
    "Predecessor",
    "final_status",
    "predecessor",
]

#: beta wire name -> GA wire name (PROTOCOL.md §3.2). ``conversation.item.created`` plays the
#: roles of both GA ``conversation.item.added`` and ``conversation.item.done``.
BETA_EVENT_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "response.text.delta": "response.output_text.delta",
        "response.text.done": "response.output_text.done",
        "response.audio.delta": "response.output_audio.delta",
        "response.audio.done": "response.output_audio.done",
        "response.audio_transcript.delta": "response.output_audio_transcript.delta",
        "response.audio_transcript.done": "response.output_audio_transcript.done",
        "transcription_session.update": "session.update",
        "transcription_session.updated": "session.updated",
    }
)


def _with_beta_names(*ga_names: str) -> frozenset[str]:
    return frozenset(ga_names) | {b for b, g in BETA_EVENT_NAMES.items() if g in ga_names}


#: Events that exist only in GA: seeing one in a log without ``session.created`` says GA.
GA_ONLY_EVENT_TYPES: Final = frozenset(
    {
        "conversation.item.added",
        "conversation.item.done",
        "response.output_text.delta",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        # MCP is GA only (PROTOCOL.md §3.2)
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)

#: WebRTC/SIP playout of a response's audio, as the server reports it (PROTOCOL.md §3.1, §9:
#: ``started`` amid transcript deltas, ``stopped`` after ``response.done``, ``cleared`` on a
#: barge-in): event name -> what happened to the response's playback.
PLAYBACK_EVENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "output_audio_buffer.started": "started",
        "output_audio_buffer.stopped": "stopped",
        "output_audio_buffer.cleared": "cleared",
    }
)

#: Server events whose audio (an ``AudioSpan`` in the log) is assistant output audio.
AUDIO_DELTA_TYPES: Final = _with_beta_names("response.output_audio.delta")

#: Delta events that grow a content part's text, by wire name -> the part field they grow.
TEXT_DELTA_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        name: field
        for field, ga in (
            ("text", "response.output_text.delta"),
            ("transcript", "response.output_audio_transcript.delta"),
        )
        for name in _with_beta_names(ga)
    }
)

#: The part type a delta implies when the part was never announced (a log cut mid-response).
DELTA_PART_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {"text": "output_text", "transcript": "output_audio", "audio": "output_audio"}
)

#: Content-part types normalised to the GA item vocabulary (PROTOCOL.md §4.1, §8.2): beta items
#: and every ``response.content_part.*`` event say ``text``/``audio`` where a GA item says
#: ``output_text``/``output_audio``.
PART_TYPE_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {"text": "output_text", "audio": "output_audio"}
)


class Predecessor(enum.Enum):
    """What a ``previous_item_id`` declaration means for where an item goes."""

    #: ``null``: the item is first (also what ``"root"`` insertion yields)
    FIRST = "first"
    #: the key is absent: append after the current last item
    APPEND = "append"
    #: an id the conversation holds: right after it, ahead of items placed after it earlier
    AFTER = "after"
    #: an id never seen (log started mid-session, or the predecessor arrives later): append,
    #: flag, and move into place if the predecessor shows up
    UNKNOWN = "unknown"


def predecessor(previous: object, is_placed: bool) -> Predecessor:
    """What a ``previous_item_id`` value means: ``previous`` is the value, or ``UNSET`` (any
    non-string, non-null value) when the key was absent or malformed; ``is_placed`` says
    whether the conversation holds an item with that id."""
    if previous is None:
        return Predecessor.FIRST
    if not isinstance(previous, str):
        return Predecessor.APPEND
    return Predecessor.AFTER if is_placed else Predecessor.UNKNOWN


class Ordering(enum.Enum):
    """How an event that carries ``previous_item_id`` takes part in ordering."""

    #: puts the item into the conversation (if it is not there yet: the first placement of
    #: an item wins, so GA's ``conversation.item.done`` places only an item whose ``added``
    #: the log lacks)
    PLACES = "places"
    #: states the predecessor of an item that another event will place
    DECLARES = "declares"


#: The events that carry ``previous_item_id``. Only the conversation events place an item
#: (§8: "never insert on response.output_item.added alone"); ``input_audio_buffer.committed``
#: declares the predecessor of the user item it announces, used when that item is placed by
#: an event without the key.
PREDECESSOR_RULES: Final[Mapping[str, Ordering]] = MappingProxyType(
    {
        "conversation.item.added": Ordering.PLACES,
        "conversation.item.created": Ordering.PLACES,
        "conversation.item.done": Ordering.PLACES,
        "input_audio_buffer.committed": Ordering.DECLARES,
    }
)


def final_status(current: str | None, new: str | None) -> str | None:
    """The status after ``new`` was announced for something whose status is ``current``.

    Statuses move forward only: a final status is never replaced by ``in_progress``, and
    ``None`` (absent) changes nothing.
    """
    if new is None:
        return current
    if new == "in_progress" and current is not None and current != "in_progress":
        return current
    return new


#: Response final status -> status given to its items that are still unfinished (§8).
ITEM_STATUS_AFTER_RESPONSE: Final[Mapping[str, str]] = MappingProxyType(
    {"cancelled": "incomplete", "incomplete": "incomplete", "failed": "incomplete"}
)

#: ``status_details.reason`` values that mean the user (or the client) cut the response off.
INTERRUPTING_REASONS: Final = frozenset({"turn_detected", "client_cancelled"})


class AnomalyKind(enum.StrEnum):
    """Things a log can show that the protocol does not promise; each is flagged, none fatal."""

    #: an item named a predecessor the conversation does not hold (yet)
    UNKNOWN_PREDECESSOR = "unknown_predecessor"
    #: a delta or transcription for an item not seen yet; it is kept until the item arrives
    ITEM_NOT_SEEN = "item_not_seen"
    #: truncation, deletion or retrieval of an item the log never showed
    UNKNOWN_ITEM = "unknown_item"
    #: an event about a response whose ``response.created`` is not in the log
    RESPONSE_NOT_SEEN = "response_not_seen"
    #: a server event type sent by the client, or the reverse; it changes nothing
    WRONG_DIRECTION = "wrong_direction"
    #: an event the lenient parser could not type well enough to act on (a required field
    #: was missing or of the wrong type)
    MALFORMED = "malformed"
    #: a VAD offset beyond the audio the log holds (a log that starts mid-session)
    AUDIO_OUT_OF_RANGE = "audio_out_of_range"
    #: VAD offsets count from the session's first append, which a log that starts
    #: mid-session does not hold: the user audio sliced by them may be misaligned
    INPUT_TIMELINE_UNKNOWN = "input_timeline_unknown"
    #: ``input_audio_buffer.committed`` with neither VAD marks nor a client commit to take the
    #: audio from: the item gets what was appended since the last commit
    COMMIT_WITHOUT_REQUEST = "commit_without_request"
