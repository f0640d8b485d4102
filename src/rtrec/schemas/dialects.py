"""The protocol dialects rtrec speaks, known in one place.

A WebSocket session speaks one dialect, chosen at the handshake by the URL path (and, for the
Realtime API, the beta header or subprotocol):

| dialect | ``sessions.protocol`` | chosen by |
|---|---|---|
| Realtime GA | ``ga`` | any other path (``/v1/realtime``), no beta marker |
| Realtime beta | ``beta`` | ``OpenAI-Beta: realtime=v1`` or ``openai-beta.realtime-v1`` |
| GPT-Live primary | ``live`` | ``/v1/live/sessions`` |
| GPT-Live fork | ``live`` | ``/v1/live/sessions/{id}/fork`` |
| GPT-Live sideband | ``live`` | ``/v1/live/sessions/{id}/attach`` |

For each dialect this module says which events each side may send (the typed event classes
of ``events.py`` / ``live_events.py``, per direction, so ``dialect.events(direction)`` parses a
frame of any dialect: ``session.update`` is a Realtime event on ``/v1/realtime`` and a GPT-Live
one on ``/v1/live/sessions``), where audio travels (which event, which top-level field,
which stream of the archive, in which format) and how the session configuration names the
audio format (PROTOCOL.md §5, LIVE.md §5). Capture looks these up instead of re-declaring
them; adding a dialect means adding a ``Dialect`` here and a line to ``dialect_of``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from rtrec.schemas.base import Event
from rtrec.schemas.converter import REALTIME_EVENTS, EventTypes
from rtrec.schemas.enums import AudioEncoding, BetaAudioFormat
from rtrec.schemas.live_events import (
    LIVE_CLIENT_EVENTS,
    LIVE_FORK_CLIENT_EVENTS,
    LIVE_SERVER_EVENTS,
    LIVE_SIDEBAND_CLIENT_EVENTS,
    LIVE_SIDEBAND_SERVER_EVENTS,
)
from rtrec.schemas.objects import PcmaFormat, PcmFormat, PcmuFormat
from rtrec.schemas.storage import Direction, Stream

__all__ = [
    "DIALECTS",
    "GA_ENCODINGS",
    "LIVE",
    "LIVE_FORK",
    "LIVE_SIDEBAND",
    "REALTIME_BETA",
    "REALTIME_GA",
    "AudioField",
    "AudioFormat",
    "Dialect",
    "dialect_of",
    "encoding_from_config",
    "recorded_dialect",
]


@attrs.frozen
class AudioFormat:
    """Samples on the wire: an encoding at a rate (GPT-Live allows PCM at 16 or 24 kHz)."""

    encoding: AudioEncoding
    rate: int

    @classmethod
    def default(cls, encoding: AudioEncoding) -> AudioFormat:
        """The encoding at the rate the Realtime API fixes for it (24 kHz PCM, 8 kHz G.711)."""
        return cls(encoding, encoding.sample_rate)


PCM24: Final = AudioFormat.default(AudioEncoding.PCM16)

#: Where each direction's audio goes in the archive unless an event says otherwise.
_BY_DIRECTION: Final[Mapping[Direction, Stream]] = {
    Direction.CLIENT: Stream.INPUT,
    Direction.SERVER: Stream.OUTPUT,
}


@attrs.frozen
class AudioField:
    """An event that carries base64 audio in a top-level string field."""

    key: str
    #: the archive stream per direction the event travels in
    streams: Mapping[Direction, Stream] = _BY_DIRECTION
    #: a format the protocol fixes for this event whatever the session's (None: the session's)
    fixed: AudioFormat | None = None


#: The encoding each GA format ``type`` names (``"audio/pcmu"``: G.711 µ-law), from the
#: schema's format classes (their tags); GPT-Live names its formats the same way.
GA_ENCODINGS: Final[Mapping[str, AudioEncoding]] = {
    tag: fmt().encoding for fmt in (PcmFormat, PcmuFormat, PcmaFormat) for tag in fmt.TAGS
}


def encoding_from_config(value: Any) -> AudioEncoding | None:
    """The encoding a GA format object (``{"type": "audio/pcmu"}``) or a beta format string
    (``"g711_ulaw"``) names; None when absent or unknown."""
    if isinstance(value, dict):
        return GA_ENCODINGS.get(value.get("type"))  # type: ignore[arg-type]
    if isinstance(value, str) and value in BetaAudioFormat.__members__.values():
        return BetaAudioFormat(value).encoding
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_audio(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


#: (input format, output format) a session configuration names; None where it names none.
Formats = tuple[AudioFormat | None, AudioFormat | None]


def _realtime_formats(session: dict[str, Any]) -> Formats:
    audio = _dict(session.get("audio"))
    found = []
    for direction, beta_key in (("input", "input_audio_format"), ("output", "output_audio_format")):
        encoding = encoding_from_config(
            _dict(audio.get(direction)).get("format")
        ) or encoding_from_config(session.get(beta_key))
        found.append(None if encoding is None else AudioFormat.default(encoding))
    return found[0], found[1]


def _live_formats(session: dict[str, Any]) -> Formats:
    """GPT-Live: one ``audio.format`` for both directions, with a required ``rate``."""
    fmt = _dict(_dict(session.get("audio")).get("format"))
    encoding = GA_ENCODINGS.get(fmt.get("type"))  # type: ignore[arg-type]
    if encoding is None:
        return None, None
    rate = fmt.get("rate")
    found = AudioFormat(
        encoding, rate if isinstance(rate, int) and rate > 0 else encoding.sample_rate
    )
    return found, found


def _realtime_response_format(response: dict[str, Any]) -> AudioFormat | None:
    fmt = _dict(_dict(response.get("audio")).get("output")).get("format")
    encoding = encoding_from_config(fmt) or encoding_from_config(
        response.get("output_audio_format")
    )
    return None if encoding is None else AudioFormat.default(encoding)


@attrs.frozen
class Dialect:
    """What rtrec needs to know of one protocol dialect (see the module docstring)."""

    #: the ``sessions.protocol`` value
    name: str
    #: ``realtime`` or ``live``: the two event vocabularies
    family: str
    #: ``primary``, ``fork`` or ``sideband`` (GPT-Live's three connections); Realtime: primary
    endpoint: str
    #: the events that carry audio in a top-level field, by type
    audio: Mapping[str, AudioField]
    #: events whose ``item.content[].audio`` may hold audio (Realtime items)
    item_audio_events: frozenset[str]
    #: events whose ``session`` object sets the audio formats
    config_events: frozenset[str]
    formats_of: Callable[[dict[str, Any]], Formats]
    #: a per-response output format (Realtime ``response.created``), or None
    response_format_of: Callable[[dict[str, Any]], AudioFormat | None] | None
    #: the events the client may send, by wire name
    client_events: EventTypes
    #: the events the server may send, by wire name
    server_events: EventTypes
    #: the formats in force before the session configuration says otherwise
    default_format: AudioFormat = PCM24
    #: the client event that streams the microphone in ``audio[input_append].key``: one
    #: continuous stream however it is chunked (playback gates on its duration, never on
    #: its chunks); None where the client sends no input audio (a GPT-Live sideband)
    input_append: str | None = None
    #: the model is chosen by the handshake's ``model`` query parameter (Realtime); GPT-Live
    #: names it in ``session.start`` instead, never in the URL (LIVE.md §1.1)
    model_in_query: bool = True

    def audio_path(self, event: Mapping[str, Any]) -> tuple[str | int, ...] | None:
        """Where the base64 audio an event carries is, as keys and list indexes: its audio
        field, or the first content part with audio of a Realtime item; None when it carries
        none (an empty string is none)."""
        event_type = event.get("type")
        field = self.audio.get(event_type)  # type: ignore[arg-type]
        if field is not None:
            return (field.key,) if _is_audio(event.get(field.key)) else None
        if event_type in self.item_audio_events:
            item = event.get("item")
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, list):
                for index, part in enumerate(content):
                    if isinstance(part, dict) and _is_audio(part.get("audio")):
                        return ("item", "content", index, "audio")
        return None

    def audio_value(self, event: Mapping[str, Any]) -> str | None:
        """The base64 audio string an event carries (at ``audio_path``), or None."""
        path = self.audio_path(event)
        if path is None:
            return None
        value: Any = event
        for key in path:
            value = value[key]
        return str(value)

    @property
    def key(self) -> str:
        """A name for each connection kind: ``ga``, ``beta``, ``live``, ``live-fork``,
        ``live-sideband`` (``name`` is the same for GPT-Live's three)."""
        return self.name if self.endpoint == "primary" else f"{self.name}-{self.endpoint}"

    def events(self, direction: Direction) -> EventTypes:
        """The event classes of one direction (``Direction.RECORDER`` rows are not events).

        Raises:
            ValueError: ``direction`` is the recorder's.
        """
        if direction is Direction.CLIENT:
            return self.client_events
        if direction is Direction.SERVER:
            return self.server_events
        raise ValueError(f"{direction.value!r} rows are not protocol events")

    def parse(
        self, direction: Direction, obj: Mapping[str, Any], *, lenient: bool = False
    ) -> Event:
        """The typed event of one decoded frame (``EventTypes.from_dict``).

        Raises:
            SchemaError: (strict mode) the object does not fit its event type.
        """
        return self.events(direction).from_dict(obj, lenient=lenient)

    def stream_for(self, event_type: str, direction: Direction) -> Stream:
        """The archive stream of the audio an event carries in this direction."""
        field = self.audio.get(event_type)
        streams = field.streams if field is not None else _BY_DIRECTION
        return streams.get(direction, _BY_DIRECTION[direction])


_REALTIME_AUDIO: Final = {
    "input_audio_buffer.append": AudioField("audio"),
    "response.output_audio.delta": AudioField("delta"),
    "response.audio.delta": AudioField("delta"),
}
_REALTIME_CONFIG: Final = frozenset(
    {
        "session.update",
        "session.created",
        "session.updated",
        "transcription_session.update",
        "transcription_session.updated",
    }
)

REALTIME_GA: Final = Dialect(
    name="ga",
    family="realtime",
    endpoint="primary",
    audio=_REALTIME_AUDIO,
    item_audio_events=frozenset({"conversation.item.create", "conversation.item.retrieved"}),
    config_events=_REALTIME_CONFIG,
    formats_of=_realtime_formats,
    response_format_of=_realtime_response_format,
    input_append="input_audio_buffer.append",
    client_events=REALTIME_EVENTS,
    server_events=REALTIME_EVENTS,
)
REALTIME_BETA: Final = attrs.evolve(REALTIME_GA, name="beta")

# LIVE.md §5.2: the fixture is PCM16 24 kHz whatever the session format; it is audio the
# client sent, so it goes to the input stream ("what the client sent"), at its own rate.
_LIVE_AUDIO: Final = {
    "session.input_audio.append": AudioField("audio"),
    "session.output_audio.delta": AudioField("delta"),
    "session.output_audio.fixture.play": AudioField("audio", fixed=PCM24),
}
_LIVE_CONFIG: Final = frozenset(
    {"session.start", "session.started", "session.updated", "session.closed"}
)

LIVE: Final = Dialect(
    name="live",
    family="live",
    endpoint="primary",
    audio=_LIVE_AUDIO,
    item_audio_events=frozenset(),
    config_events=_LIVE_CONFIG,
    formats_of=_live_formats,
    response_format_of=None,
    input_append="session.input_audio.append",
    model_in_query=False,
    client_events=EventTypes(LIVE_CLIENT_EVENTS),
    server_events=EventTypes(LIVE_SERVER_EVENTS),
)
LIVE_FORK: Final = attrs.evolve(
    LIVE, endpoint="fork", client_events=EventTypes(LIVE_FORK_CLIENT_EVENTS)
)
# A sideband observes: the primary's input is reflected to it as a server
# `session.input_audio.append`, and its output deltas are PCM16 24 kHz, whatever the session.
LIVE_SIDEBAND: Final = attrs.evolve(
    LIVE,
    endpoint="sideband",
    input_append=None,
    audio={
        "session.input_audio.append": AudioField(
            "audio", {Direction.SERVER: Stream.INPUT, Direction.CLIENT: Stream.INPUT}, PCM24
        ),
        "session.output_audio.delta": AudioField("delta", fixed=PCM24),
        "session.output_audio.fixture.play": AudioField("audio", fixed=PCM24),
    },
    client_events=EventTypes(LIVE_SIDEBAND_CLIENT_EVENTS),
    server_events=EventTypes(LIVE_SIDEBAND_SERVER_EVENTS),
)

#: Every dialect by ``Dialect.key``.
DIALECTS: Final[Mapping[str, Dialect]] = {
    d.key: d for d in (REALTIME_GA, REALTIME_BETA, LIVE, LIVE_FORK, LIVE_SIDEBAND)
}

_LIVE_PATH: Final = re.compile(r"/live/sessions(?:/(?P<id>[^/]+)/(?P<kind>attach|fork))?/?$")


def dialect_of(
    path: str, headers: Sequence[tuple[str, str]], subprotocols: Sequence[str]
) -> Dialect:
    """The dialect a WebSocket handshake asks for (PROTOCOL.md §8.10, LIVE.md §1.1)."""
    m = _LIVE_PATH.search(urlsplit(path).path)
    if m is not None:
        return {None: LIVE, "fork": LIVE_FORK, "attach": LIVE_SIDEBAND}[m.group("kind")]
    beta_header = any(k.lower() == "openai-beta" and "realtime=v1" in v for k, v in headers)
    if beta_header or "openai-beta.realtime-v1" in subprotocols:
        return REALTIME_BETA
    return REALTIME_GA


#: Each ``sessions.protocol`` value's dialect, for recordings (the endpoint comes from the path).
_BY_NAME: Final[Mapping[str, Dialect]] = {d.name: d for d in (REALTIME_GA, REALTIME_BETA, LIVE)}


def recorded_dialect(protocol: str, path: str | None) -> Dialect:
    """The dialect of a recorded session: its ``sessions.protocol`` (``ga``, ``beta``,
    ``live``) and, for GPT-Live, the endpoint its recorded request path names."""
    found = dialect_of(path or "", (), ())
    return found if found.name == protocol else _BY_NAME.get(protocol, REALTIME_GA)
