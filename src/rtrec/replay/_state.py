"""The rebuilt conversation: frozen values that the reducer produces and the views read.

Everything here is immutable (``attrs.frozen``; mappings are read-only proxies), so a state
can be shared between checkpoints, compared with ``==`` and handed to any thread. Times are
the log's monotonic nanoseconds since the session started (``FrameRecord.t_ns``); audio is
never copied, only referenced (``AudioRef``: where the samples are in the FLAC archive).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any, ClassVar, Final

import attrs

from rtrec.replay._rules import INTERRUPTING_REASONS, AnomalyKind
from rtrec.schemas.base import UNSET, Unset
from rtrec.schemas.storage import Stream

__all__ = [
    "EMPTY_MAP",
    "Anomaly",
    "AudioRef",
    "ClientEventIndex",
    "ClientEventRef",
    "ConversationState",
    "ErrorRecord",
    "InputBuffer",
    "InputRun",
    "Item",
    "Part",
    "Placement",
    "ResponseState",
    "TextValue",
    "Transcription",
    "audio_duration",
    "audio_samples",
    "clip_audio",
]

EMPTY_MAP: Final[Mapping[str, Any]] = MappingProxyType({})


# --------------------------------------------------------------------------- audio


@attrs.frozen(kw_only=True)
class AudioRef:
    """A stretch of samples in the archive: ``samples`` samples of ``stream`` at
    ``sample_rate``, starting at sample ``offset`` (16-bit mono PCM after decoding)."""

    stream: Stream
    sample_rate: int
    offset: int
    samples: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples / self.sample_rate

    @property
    def end(self) -> int:
        """The sample after the last one."""
        return self.offset + self.samples


def audio_samples(refs: tuple[AudioRef, ...]) -> int:
    """Total samples of a sequence of audio references."""
    return sum(r.samples for r in refs)


def audio_duration(refs: tuple[AudioRef, ...]) -> float:
    """Total seconds of a sequence of audio references (rates may differ)."""
    return sum(r.samples / r.sample_rate for r in refs)


def clip_audio(refs: tuple[AudioRef, ...], end_ms: int) -> tuple[AudioRef, ...]:
    """The first ``end_ms`` milliseconds of ``refs`` (PROTOCOL.md §5: samples =
    ``audio_end_ms * rate / 1000``, per stretch, since each stretch has its own rate)."""
    out: list[AudioRef] = []
    left = Fraction(max(end_ms, 0), 1000)  # seconds still to keep; exact across rates
    for ref in refs:
        if left <= 0:
            break
        take = min(ref.samples, int(left * ref.sample_rate))
        if take > 0:
            out.append(ref if take == ref.samples else attrs.evolve(ref, samples=take))
        left -= Fraction(ref.samples, ref.sample_rate)
    return tuple(out)


# --------------------------------------------------------------------------- text


@attrs.frozen(kw_only=True)
class TextValue:
    """A text that grows by deltas, may be restated by snapshots and is settled by ``*.done``.

    ``value`` applies the rule in ``_rules.py``: ``final`` if set, else the longer of the
    accumulated deltas and the latest snapshot; ``None`` when nothing said anything.
    """

    deltas: str | None = None
    snapshot: str | None = None
    final: str | None = None

    @property
    def value(self) -> str | None:
        """The text as the log says it is now."""
        if self.final is not None:
            return self.final
        if self.deltas is None:
            return self.snapshot
        if self.snapshot is not None and len(self.snapshot) > len(self.deltas):
            return self.snapshot
        return self.deltas


EMPTY_TEXT: Final = TextValue()


# --------------------------------------------------------------------------- items


@attrs.frozen(kw_only=True)
class Transcription:
    """The asynchronous transcription of a user audio part (PROTOCOL.md §4.2)."""

    status: str  # "in_progress" | "completed" | "failed"
    usage: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    segments: tuple[Mapping[str, Any], ...] = ()
    logprobs: tuple[Mapping[str, Any], ...] | None = None
    #: the languages the service detected (``[{"code": "en"}]``), when it says
    languages: tuple[Mapping[str, Any], ...] | None = None


@attrs.frozen(kw_only=True)
class Part:
    """One content part of an item, addressed by ``index`` (the protocol's content_index).

    ``type`` is normalised to the GA item vocabulary (``output_audio``, not ``audio``).
    ``audio`` is every sample the log attributes to the part; when the part was truncated,
    ``heard_audio`` is the first ``truncated_at_ms`` of it and ``heard_transcript`` is empty
    (the service deletes the transcript of what was not heard), while ``transcript`` keeps
    what was generated.
    """

    index: int
    type: str | None = None
    text: TextValue = EMPTY_TEXT
    transcript: TextValue = EMPTY_TEXT
    audio: tuple[AudioRef, ...] = ()
    truncated_at_ms: int | None = None
    transcription: Transcription | None = None
    #: audio of the part as ``conversation.item.retrieved`` returned it (server-side copy)
    retrieved_audio: tuple[AudioRef, ...] = ()
    #: the part's other fields from its latest snapshot (``image_url``, ``detail``, ...)
    fields: Mapping[str, Any] = EMPTY_MAP

    @property
    def heard_audio(self) -> tuple[AudioRef, ...]:
        """The audio that was played: all of it, or up to the truncation point."""
        if self.truncated_at_ms is None:
            return self.audio
        return clip_audio(self.audio, self.truncated_at_ms)

    @property
    def heard_transcript(self) -> str | None:
        """The transcript the conversation keeps: cleared by truncation (PROTOCOL.md §4.2)."""
        if self.truncated_at_ms is not None and self.transcript.value is not None:
            return ""
        return self.transcript.value


@attrs.frozen(kw_only=True)
class Placement:
    """Where an item was put in the conversation: after ``previous_item_id`` (``None``:
    first), by the event at ``seq``; later placements after the same predecessor go ahead of
    earlier ones, as insertion into a linked list does."""

    previous_item_id: str | None
    seq: int


@attrs.frozen(kw_only=True)
class Item:
    """A conversation item (message, function call, call output, MCP item), as rebuilt.

    An item the log mentions before it enters the conversation (deltas ahead of their item,
    an out-of-band response's output, an item the log cut off) has no ``placement`` and shows
    up in ``ConversationState.detached`` rather than in the conversation.
    """

    id: str
    type: str | None = None
    role: str | None = None
    status: str | None = None
    parts: tuple[Part, ...] = ()
    name: str | None = None
    call_id: str | None = None
    arguments: TextValue = EMPTY_TEXT
    output: str | None = None
    response_id: str | None = None
    placement: Placement | None = None
    #: the predecessor ``input_audio_buffer.committed`` declared, for a placement without one
    declared_previous: str | Unset | None = UNSET
    #: how the item came about: "input_audio_buffer" (a commit), "client"
    #: (``conversation.item.create``), "response" (model output); None when the log does not say
    origin: str | None = None
    deleted_seq: int | None = None
    first_seq: int = 0
    first_t_ns: int = 0
    #: the item's other fields from its latest snapshot (``server_label``, ``error``, ...)
    fields: Mapping[str, Any] = EMPTY_MAP

    def part(self, index: int) -> Part | None:
        """The part at content index ``index``, if the item has one."""
        for p in self.parts:
            if p.index == index:
                return p
        return None

    @property
    def truncated(self) -> bool:
        """Whether any part was truncated."""
        return any(p.truncated_at_ms is not None for p in self.parts)


# --------------------------------------------------------------------------- responses


@attrs.frozen(kw_only=True)
class ResponseState:
    """A response: status, usage, output items and the times that matter for latency."""

    id: str
    status: str | None = None
    status_details: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None
    #: item ids by output_index
    output: tuple[str, ...] = ()
    conversation_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    #: other response fields (modalities, audio format, voice, max tokens, ...)
    params: Mapping[str, Any] = EMPTY_MAP
    created_seq: int | None = None
    created_t_ns: int | None = None
    first_delta_t_ns: int | None = None
    done_seq: int | None = None
    done_t_ns: int | None = None
    first_seq: int = 0
    #: WebRTC/SIP playout of the response's audio: ``(what, t_ns)`` per
    #: ``output_audio_buffer.started`` / ``stopped`` / ``cleared``, in log order
    playback: tuple[tuple[str, int], ...] = ()

    @property
    def interrupted(self) -> bool:
        """The response was cut off by the user's speech or by the client."""
        reason = (self.status_details or {}).get("reason")
        return self.status == "cancelled" and reason in INTERRUPTING_REASONS


# --------------------------------------------------------------------------- errors


@attrs.frozen(kw_only=True)
class ClientEventRef:
    """A client event, as an ``error`` refers to it: where it is in the log and what it was."""

    seq: int
    t_ns: int
    type: str


@attrs.frozen(kw_only=True)
class ErrorRecord:
    """An ``error`` event, linked to the client event that caused it when the log has it."""

    seq: int
    t_ns: int
    event_id: str | None
    type: str | None
    code: str | None
    message: str | None
    param: str | None
    client_event_id: str | None
    caused_by: ClientEventRef | None
    raw: Mapping[str, Any] = EMPTY_MAP


@attrs.frozen(eq=False)
class ClientEventIndex:
    """Client events by ``event_id``, as a persistent map of read-only layers.

    Every client event with an id goes in (a voice client may stamp each of thousands of
    appends), so copying one dict per checkpoint would cost O(session). Each freeze adds one
    layer instead; lookups read newest first. Layers are merged only when there are hundreds:
    a lookup serves an error, which is rare, so walking layers is cheaper than copying them.
    Entries are ``(seq, t_ns, type)`` tuples, cheaper to make than a ``ClientEventRef``.
    """

    layers: tuple[Mapping[str, tuple[int, int, str]], ...] = ()

    MAX_LAYERS: ClassVar[int] = 256

    def get(self, event_id: str) -> ClientEventRef | None:
        """The latest client event with this id, if any."""
        for layer in reversed(self.layers):
            found = layer.get(event_id)
            if found is not None:
                return ClientEventRef(seq=found[0], t_ns=found[1], type=found[2])
        return None

    def with_layer(self, layer: dict[str, tuple[int, int, str]]) -> ClientEventIndex:
        """A new index with ``layer`` (which the caller must no longer change) on top."""
        if not layer:
            return self
        layers = (*self.layers, MappingProxyType(layer))
        if len(layers) > self.MAX_LAYERS:
            merged: dict[str, tuple[int, int, str]] = {}
            for one in layers:
                merged.update(one)
            layers = (MappingProxyType(merged),)
        return ClientEventIndex(layers)

    def flat(self) -> dict[str, tuple[int, int, str]]:
        """All entries in one dict (the latest per id)."""
        out: dict[str, tuple[int, int, str]] = {}
        for layer in self.layers:
            out.update(layer)
        return out

    def __len__(self) -> int:
        return len(self.flat())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientEventIndex):
            return NotImplemented
        return self.flat() == other.flat()

    def __hash__(self) -> int:
        return hash(frozenset(self.flat().items()))


# --------------------------------------------------------------------------- input audio


@attrs.frozen(kw_only=True)
class InputRun:
    """A stretch of appended input audio that is contiguous in one archive stream.

    ``start_ms`` is where it begins on the input timeline: milliseconds of audio appended in
    the session before it, the scale of ``audio_start_ms``/``audio_end_ms`` (PROTOCOL.md §5).
    """

    start_ms: float
    stream: Stream
    sample_rate: int
    offset: int
    samples: int

    @property
    def end_ms(self) -> float:
        """Where the run ends on the input timeline."""
        return self.start_ms + self.samples * 1000 / self.sample_rate


@attrs.frozen(kw_only=True)
class InputBuffer:
    """The input audio buffer, and what the reducer remembers to attribute user audio.

    ``runs`` map the input timeline onto the archive. ``pending_from_ms`` is where audio not
    yet committed or cleared starts. The other fields wait for the server event that settles
    them: VAD marks for items not yet committed, client commits not yet answered, audio from
    ``conversation.item.create`` not yet matched to its item (PROTOCOL.md §8).
    """

    runs: tuple[InputRun, ...] = ()
    pending_from_ms: float = 0.0
    #: item_id -> (audio_start_ms, audio_end_ms); either may be None until its event arrives
    speech: Mapping[str, tuple[int | None, int | None]] = EMPTY_MAP
    #: (from_ms, to_ms) of each client ``input_audio_buffer.commit`` not yet ``committed``
    commits: tuple[tuple[float, float], ...] = ()
    #: client ``input_audio_buffer.clear`` events not yet answered by ``cleared``
    clears_pending: int = 0
    #: audio of ``conversation.item.create`` (content index, audio) by the item id the client
    #: gave the item
    created_audio: Mapping[str, tuple[int, tuple[AudioRef, ...]]] = EMPTY_MAP
    #: the same for items created without an id, oldest first
    created_audio_queue: tuple[tuple[int, tuple[AudioRef, ...]], ...] = ()

    @property
    def appended_ms(self) -> float:
        """Milliseconds of audio appended in the session (as far as the log shows)."""
        return self.runs[-1].end_ms if self.runs else 0.0

    @property
    def pending_ms(self) -> float:
        """Milliseconds of audio appended since the last commit or clear."""
        return max(self.appended_ms - self.pending_from_ms, 0.0)


# --------------------------------------------------------------------------- anomalies


@attrs.frozen(kw_only=True)
class Anomaly:
    """Something the log shows that the protocol does not promise; flagged, never fatal."""

    seq: int
    kind: AnomalyKind
    detail: str


# --------------------------------------------------------------------------- the state


@attrs.frozen(kw_only=True)
class ConversationState:
    """Everything the log says about a session up to and including event ``seq``.

    ``items`` holds every item the log mentioned, by id; ``order`` lists the ones in the
    conversation (placed, not deleted), in conversation order. Use ``conversation`` for the
    items themselves and ``detached`` for items that never entered it.
    """

    seq: int | None = None
    t_ns: int | None = None
    events: int = 0
    protocol: str | None = None  # "ga" | "beta", from the session object or the names seen
    session_started: bool = False  # the log holds session.created
    session: Mapping[str, Any] | None = None  # effective config, as the server last stated it
    session_seq: int | None = None
    conversation_id: str | None = None
    items: Mapping[str, Item] = EMPTY_MAP
    order: tuple[str, ...] = ()
    #: placed items whose declared predecessor the log does not hold (appended at the end)
    orphans: tuple[str, ...] = ()
    responses: Mapping[str, ResponseState] = EMPTY_MAP
    input: InputBuffer = InputBuffer()
    errors: tuple[ErrorRecord, ...] = ()
    rate_limits: tuple[Mapping[str, Any], ...] | None = None
    rate_limits_seq: int | None = None
    #: ``output_audio_buffer.*`` events by what they say (``started``, ``stopped``,
    #: ``cleared``), the ones without a known response included
    playback: Mapping[str, int] = EMPTY_MAP
    unknown_types: Mapping[str, int] = EMPTY_MAP
    marks: Mapping[str, int] = EMPTY_MAP
    binary_frames: int = 0
    #: audio-carrying frames the log holds no archived samples for (no ``AudioSpan``)
    unarchived_audio: int = 0
    invalid_frames: tuple[int, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    client_events: ClientEventIndex = ClientEventIndex()

    @property
    def conversation(self) -> tuple[Item, ...]:
        """The items in the conversation, in conversation order."""
        return tuple(self.items[i] for i in self.order)

    @property
    def detached(self) -> tuple[Item, ...]:
        """Items the log mentioned that are not in the conversation and were not deleted
        (out-of-band responses, deltas whose item never arrived), by first appearance."""
        return tuple(
            sorted(
                (i for i in self.items.values() if i.placement is None and i.deleted_seq is None),
                key=lambda i: i.first_seq,
            )
        )

    @property
    def deleted(self) -> tuple[Item, ...]:
        """Items that were deleted, in the order of their deletion."""
        return tuple(
            sorted(
                (i for i in self.items.values() if i.deleted_seq is not None),
                key=lambda i: i.deleted_seq or 0,
            )
        )

    def responses_in_order(self) -> Iterator[ResponseState]:
        """Responses in the order the log first mentioned them."""
        return iter(sorted(self.responses.values(), key=lambda r: r.first_seq))
