"""rtrec's data model of the OpenAI Realtime protocol: typed, lossless, no I/O.

``from_dict`` / ``from_json`` turn a decoded event into its class and ``to_dict`` turns it
back into exactly the JSON object it came from, unknown types and fields included. GPT-Live's
classes live in ``live_events`` / ``live_objects`` and are parsed through their dialect
(``rtrec.schemas.dialects``: ``dialect.parse(direction, obj)``), whose ``EventTypes`` say
which class a wire name means on that connection in that direction.
"""

from rtrec.schemas.base import (
    UNSET,
    ClientEvent,
    Event,
    JsonObject,
    Opt,
    SchemaObject,
    ServerEvent,
    UnknownEvent,
    UnknownObject,
    Unset,
)
from rtrec.schemas.converter import (
    REALTIME_EVENTS,
    EventTypes,
    event_types,
    from_dict,
    from_json,
    make_converter,
    structure,
    to_dict,
    to_json,
)
from rtrec.schemas.enums import (
    AudioEncoding,
    BetaAudioFormat,
    ContentType,
    ItemStatus,
    ItemType,
    Modality,
    ResponseStatus,
    Role,
    StatusReason,
)
from rtrec.schemas.errors import RtrecError, SchemaError
from rtrec.schemas.events import *  # noqa: F403 (the event classes are the API)
from rtrec.schemas.events import __all__ as _events_all
from rtrec.schemas.objects import *  # noqa: F403 (the object classes are the API)
from rtrec.schemas.objects import __all__ as _objects_all

__all__ = [
    "REALTIME_EVENTS",
    "UNSET",
    "AudioEncoding",
    "BetaAudioFormat",
    "ClientEvent",
    "ContentType",
    "Event",
    "EventTypes",
    "ItemStatus",
    "ItemType",
    "JsonObject",
    "Modality",
    "Opt",
    "ResponseStatus",
    "Role",
    "RtrecError",
    "SchemaError",
    "SchemaObject",
    "ServerEvent",
    "StatusReason",
    "UnknownEvent",
    "UnknownObject",
    "Unset",
    "event_types",
    "from_dict",
    "from_json",
    "make_converter",
    "structure",
    "to_dict",
    "to_json",
]
__all__ += _events_all + _objects_all
