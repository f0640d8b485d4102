"""Building blocks shared by every schema class: the UNSET sentinel and the base classes.

The wire is the truth (STYLE.md principle 4). A typed object must give back the exact JSON
object it came from, so three things are modelled explicitly:

- a field that was absent on the wire is ``UNSET`` (and is omitted again), which is not the
  same as a field that was ``null`` (``None``, written back as ``null``);
- keys the schema does not know are kept, in arrival order, in ``extra``;
- an event or nested object whose ``type`` the schema does not know is kept whole
  (``UnknownEvent`` / ``UnknownObject``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeAlias, TypeVar, Union

import attrs

__all__ = [
    "UNSET",
    "ClientEvent",
    "Event",
    "JsonObject",
    "Opt",
    "SchemaObject",
    "ServerEvent",
    "UnknownEvent",
    "UnknownObject",
    "Unset",
]


class Unset(enum.Enum):
    """The type of ``UNSET``: a field that was not present on the wire."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

T = TypeVar("T")

#: An optional protocol field: a value, ``null`` on the wire, or absent (``UNSET``).
Opt: TypeAlias = Union[T, Unset, None]  # noqa: UP007 (a generic alias needs Union)

#: A JSON object whose content the protocol leaves open (JSON schemas, metadata, ...).
JsonObject: TypeAlias = Mapping[str, Any]

EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class SchemaObject:
    """Base of every typed protocol object.

    ``extra`` holds the keys that arrived on the wire but that this schema does not declare
    (for example ``obfuscation`` on GA deltas), so that nothing is lost when the object is
    written back.
    """

    #: Wire ``type`` values (or ``type/role`` for messages) that select this class in a union.
    TAGS: ClassVar[tuple[str, ...]] = ()

    extra: Mapping[str, Any] = attrs.field(default=EMPTY, repr=False)


@attrs.frozen(kw_only=True)
class UnknownObject(SchemaObject):
    """A nested object whose ``type`` (or shape) this schema does not know, kept whole."""

    raw: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class Event(SchemaObject):
    """Base of every Realtime event, client or server.

    ``type`` is always the name that was on the wire: a beta name parsed into a beta class
    keeps it, and so does an unknown event.
    """

    type: str


@attrs.frozen(kw_only=True)
class ClientEvent(Event):
    """An event a client sends to the Realtime server."""

    event_id: Opt[str] = UNSET


@attrs.frozen(kw_only=True)
class ServerEvent(Event):
    """An event the Realtime server sends to a client."""

    event_id: str


@attrs.frozen(kw_only=True)
class UnknownEvent(Event):
    """An event whose ``type`` this schema does not know (newer servers send such events).

    ``raw`` is the whole JSON object as received; it is written back unchanged.
    """

    raw: Mapping[str, Any]
