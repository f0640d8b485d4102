"""Ids the client chooses, mapped between a recording and a live client (issue 14).

Frameworks create items under their own random ids (``item_<uuid>``), tag
``response.create`` with ``metadata.client_event_id`` and send ``event_id``s; the server
echoes those ids back, and the client waits for *its* ids. A playback server replaying the
recorded ids would never give the live client what it waits for. So playback learns, from
each matched live event, which live id stands for which recorded one, and substitutes the
live ids in every server frame it sends afterwards.

Which recorded values are ids the client chose: a string at an id field (``ID_KEYS``, at
any depth) or anywhere under a response's ``metadata`` (``response.create``'s
``response.metadata``, such as ``client_event_id``) in a client event, that no earlier frame
of the recording held (an id the server made, such as the ``item_id`` of a
``conversation.item.retrieve``, was sent before the client used it; it must match exactly).

Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

__all__ = [
    "ID_KEYS",
    "IdMap",
    "id_strings",
    "learn",
    "rewrite_frame",
    "substitute",
]

#: Fields that hold ids a client may choose (PROTOCOL.md: event ids, item ids and the
#: references to them, call ids of function calls the client creates).
ID_KEYS: Final = frozenset({"event_id", "id", "item_id", "previous_item_id", "call_id"})
_METADATA: Final = "metadata"


def id_strings(value: Any, *, under_metadata: bool = False, parent: str = "") -> Iterator[str]:
    """Every string of ``value`` at an id field, or under a response's ``metadata``."""
    if isinstance(value, dict):
        for key, item in value.items():
            inside = under_metadata or (key == _METADATA and parent == "response")
            if isinstance(item, str):
                if inside or key in ID_KEYS:
                    yield item
            else:
                yield from id_strings(item, under_metadata=inside, parent=key)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                if under_metadata:
                    yield item
            else:
                yield from id_strings(item, under_metadata=under_metadata, parent=parent)


class IdMap:
    """Recorded id -> the live client's id, one to one."""

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self._backward: dict[str, str] = {}
        #: JSON string token of each recorded id that differs -> the live id's token
        self.tokens: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.forward)

    def add(self, recorded: str, live: str) -> None:
        """Map ``recorded`` to ``live`` (a pair ``learn`` vetted)."""
        self.forward[recorded] = live
        self._backward[live] = recorded
        if recorded != live:
            self.tokens[_token(recorded)] = _token(live)

    def offer(self, recorded: str, live: str) -> None:
        """Map ``recorded`` to ``live`` unless either is mapped already."""
        if recorded not in self.forward and live not in self._backward:
            self.add(recorded, live)

    def taken(self, live: str) -> str | None:
        """The recorded id ``live`` already stands for, if any."""
        return self._backward.get(live)

    @property
    def changed(self) -> dict[str, str]:
        """The pairs whose ids differ (the ones that change a frame)."""
        return {a: b for a, b in self.forward.items() if a != b}


def substitute(value: Any, mapping: Mapping[str, str]) -> Any:
    """``value`` with every string that is a key of ``mapping`` replaced (a copy)."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {key: substitute(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, mapping) for item in value]
    return value


def learn(
    recorded: Any, live: Any, chosen: frozenset[str], ids: IdMap, found: dict[str, str]
) -> Any:
    """``recorded`` with the client-chosen ids (``chosen``) replaced by the live event's
    values at the same places, which are added to ``found`` (recorded -> live).

    A value stays as recorded where the live event has no string there, or where the live
    string already stands for another recorded id: then the matchers see the difference.
    """
    if isinstance(recorded, str):
        if recorded in chosen and recorded not in ids.forward and isinstance(live, str):
            prior = found.get(recorded)
            if prior == live or (
                prior is None and ids.taken(live) is None and live not in found.values()
            ):
                found[recorded] = live
                return live
        return recorded
    if isinstance(recorded, dict) and isinstance(live, dict):
        return {
            key: learn(item, live.get(key), chosen, ids, found) for key, item in recorded.items()
        }
    if isinstance(recorded, list) and isinstance(live, list):
        return [
            learn(item, live[i] if i < len(live) else None, chosen, ids, found)
            for i, item in enumerate(recorded)
        ]
    return recorded


#: A JSON string token, escapes included (the unrolled form runs in one pass over long
#: base64 strings instead of one alternation per character).
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def rewrite_frame(message: str | bytes, ids: IdMap) -> str | bytes:
    """A recorded server frame with each recorded id of ``ids`` replaced by the live one.

    The frame's text is kept byte for byte but for those ids: a JSON string token equal to
    a recorded id (``"item_abc"`` as a whole string, never part of another) becomes the
    live id's token. Ids are long random strings in practice; a client that chose an id
    also used as an ordinary value elsewhere would see that value replaced too
    (docs/playback.md, "Ids the client chose").
    """
    tokens = ids.tokens
    if not tokens or not isinstance(message, str):
        return message
    return _STRING.sub(lambda m: tokens.get(m.group(0), m.group(0)), message)


def _token(value: str) -> str:
    return orjson.dumps(value).decode()
