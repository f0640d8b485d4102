"""A mutable working copy of a ``ConversationState``: what a fold changes in place, then
freezes.

The draft is split by what each part owns: ``ItemsDraft`` the items, their order and their
pending deltas; ``InputAudioDraft`` the input audio buffer; ``ResponsesDraft`` the
responses; ``Findings`` what the fold notices about the log. The draft itself owns the
session's facts (the session object, protocol, errors, rate limits, playback counts) and
the client events by id, and applies the two deltas that cross the parts.

Nothing here is shared with the state it started from or with a state it froze: frozen
values are replaced, never changed, and the dicts are copies.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final, final

from rtrec.replay._findings import At, Findings
from rtrec.replay._input_audio import InputAudioDraft
from rtrec.replay._items import ItemsDraft
from rtrec.replay._responses import ResponsesDraft
from rtrec.replay._state import ConversationState
from rtrec.schemas.storage import AudioSpan, Stream

__all__ = ["APPEND", "Draft", "span_fields"]

APPEND: Final = "input_audio_buffer.append"
_MISSING: Final = object()


def span_fields(span: AudioSpan | None) -> tuple[Stream | None, int, int, int]:
    """A row's audio as ``Draft.append`` and ``Draft.audio_delta`` take it: stream, rate,
    offset, samples (no stream, and zeros, when the archive lacks the audio)."""
    if span is None:
        return None, 0, 0, 0
    return span.stream, span.sample_rate, span.offset, span.samples


@final
class Draft:
    """A fold's working copy of a state (see the module's docstring for its parts).

    ``append``, ``audio_delta`` and ``text_delta`` are the one place each of those events
    changes the state: the typed handlers and both fast paths (``feed_records`` and
    ``feed_columns`` in ``_reducer.py``) call them with the fields they read.
    """

    __slots__ = (
        "client_events",
        "conversation_id",
        "delta_seen",
        "errors",
        "events",
        "findings",
        "input",
        "items",
        "new_client_events",
        "pending",
        "playback",
        "protocol",
        "rate_limits",
        "rate_limits_seq",
        "responses",
        "seq",
        "session",
        "session_seq",
        "session_started",
        "t_ns",
    )

    def __init__(self, base: ConversationState) -> None:
        self.seq = base.seq
        self.t_ns = base.t_ns
        self.events = base.events
        self.protocol = base.protocol
        self.session_started = base.session_started
        self.session = base.session
        self.session_seq = base.session_seq
        self.conversation_id = base.conversation_id
        self.errors = list(base.errors)
        self.rate_limits = base.rate_limits
        self.rate_limits_seq = base.rate_limits_seq
        self.playback = dict(base.playback)
        self.client_events = base.client_events
        #: client events of this fold by event_id: (seq, t_ns, type), tuples being cheaper
        #: than ClientEventRef for the thousands of appends a voice client may stamp
        self.new_client_events: dict[str, tuple[int, int, str]] = {}
        self.findings = Findings(base)
        self.input = InputAudioDraft(base.input, self.findings)
        self.items = ItemsDraft(base, self.findings)
        self.responses = ResponsesDraft(base, self.findings)
        # the parts' containers the hot paths read at every delta, one lookup closer
        self.pending = self.items.pending
        self.delta_seen = self.responses.delta_seen

    # ------------------------------------------------------------------ the hot events

    def append(
        self,
        seq: int,
        t_ns: int,
        event_id: str | None,
        stream: Stream | None,
        rate: int,
        offset: int,
        samples: int,
    ) -> None:
        """An ``input_audio_buffer.append`` (the client event, and its audio)."""
        if event_id is not None:
            self.new_client_events[event_id] = (seq, t_ns, APPEND)
        self.input.append(stream, rate, offset, samples)

    def audio_delta(
        self,
        seq: int,
        t_ns: int,
        item_id: str,
        index: int,
        response_id: str | None,
        stream: Stream | None,
        rate: int,
        offset: int,
        samples: int,
    ) -> None:
        """A ``response.output_audio.delta``: ``samples`` at ``offset`` of a stream of the
        archive (``stream`` None: the archive lacks its audio) for part ``index``."""
        if response_id is not None and response_id not in self.delta_seen:
            self.responses.first_delta(At(seq, t_ns), response_id)
        if stream is None:
            self.findings.unarchived_audio += 1
            return
        pending = self.pending.get(item_id)
        audio = pending.audio.get(index) if pending is not None else None
        if audio is None:
            audio = self.items.open_audio(At(seq, t_ns), item_id, index, response_id)
        if offset == audio.offset + audio.samples and stream == audio.stream and rate == audio.rate:
            audio.samples += samples  # contiguous: the usual case
        else:
            audio.start(stream, rate, offset, samples)

    def text_delta(
        self,
        seq: int,
        t_ns: int,
        item_id: str,
        index: int,
        field: str,
        delta: str,
        response_id: str | None,
    ) -> None:
        """A delta that grows the ``field`` (``text`` or ``transcript``) of part ``index``."""
        if response_id is not None and response_id not in self.delta_seen:
            self.responses.first_delta(At(seq, t_ns), response_id)
        pending = self.pending.get(item_id)
        chunks: Any = _MISSING if pending is None else pending.text.get((index, field), _MISSING)
        if chunks is _MISSING:
            chunks = self.items.open_text(At(seq, t_ns), item_id, index, field, response_id)
        if chunks is not None:  # None: the text is final, the delta is dropped
            chunks.append(delta)

    # ------------------------------------------------------------------ freezing

    def freeze(self) -> ConversationState:
        """The state as it stands; the draft stays usable."""
        items, order, orphans = self.items.freeze()
        self.client_events = self.client_events.with_layer(self.new_client_events)
        self.new_client_events = {}
        findings = self.findings
        return ConversationState(
            seq=self.seq,
            t_ns=self.t_ns,
            events=self.events,
            protocol=self.protocol,
            session_started=self.session_started,
            session=self.session,
            session_seq=self.session_seq,
            conversation_id=self.conversation_id,
            items=items,
            order=order,
            orphans=orphans,
            responses=self.responses.freeze(),
            input=self.input.freeze(),
            errors=tuple(self.errors),
            rate_limits=self.rate_limits,
            rate_limits_seq=self.rate_limits_seq,
            playback=MappingProxyType(dict(self.playback)),
            unknown_types=MappingProxyType(dict(findings.unknown_types)),
            marks=MappingProxyType(dict(findings.marks)),
            binary_frames=findings.binary_frames,
            unarchived_audio=findings.unarchived_audio,
            invalid_frames=tuple(findings.invalid_frames),
            anomalies=tuple(findings.anomalies),
            client_events=self.client_events,
        )
