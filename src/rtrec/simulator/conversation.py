"""The default conversation as the server holds it: ordered items, with their audio.

Order is what ``previous_item_id`` expresses (PROTOCOL.md §4.2): an item goes after a given
predecessor, first (``"root"``), or last. Every insertion is announced the way the protocol
does it: GA ``conversation.item.added`` (and ``conversation.item.done`` once the item is
final), beta ``conversation.item.created`` once.
"""

from __future__ import annotations

import attrs

from rtrec.schemas import (
    AssistantMessageItem,
    AudioEncoding,
    ConversationItemAdded,
    ConversationItemCreated,
    ConversationItemDone,
    FunctionCallItem,
    FunctionCallOutputItem,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    McpCallItem,
    McpListToolsItem,
    SystemMessageItem,
    UserMessageItem,
)
from rtrec.simulator.config import ClientError
from rtrec.simulator.timeline import Timeline

__all__ = ["CLIENT_ITEMS", "KNOWN_ITEMS", "Conversation", "KnownItem", "Stored"]

#: The items the simulator creates or accepts from clients (MCP items: GA only).
KnownItem = (
    SystemMessageItem
    | UserMessageItem
    | AssistantMessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | McpListToolsItem
    | McpCallItem
    | McpApprovalRequestItem
    | McpApprovalResponseItem
)
KNOWN_ITEMS = (
    SystemMessageItem,
    UserMessageItem,
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    McpListToolsItem,
    McpCallItem,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
)
#: Of those, the ones a client may create (``conversation.item.create``), per protocol.
CLIENT_ITEMS = {
    "ga": (*KNOWN_ITEMS[:5], McpApprovalResponseItem),
    "beta": KNOWN_ITEMS[:5],
}


@attrs.define(eq=False)
class Stored:
    """An item as echoed (never with audio) plus the audio of its parts as wire bytes."""

    item: KnownItem
    audio: dict[int, tuple[bytes, AudioEncoding]] = attrs.Factory(dict)

    @property
    def id(self) -> str:
        """The item's id (always set on stored items)."""
        assert isinstance(self.item.id, str)
        return self.item.id


class Conversation:
    """Items in conversation order."""

    def __init__(self, timeline: Timeline, *, ga: bool) -> None:
        self._timeline = timeline
        self._ga = ga
        self._items: dict[str, Stored] = {}
        self._order: list[str] = []

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def stored(self) -> list[Stored]:
        """Every item, in order."""
        return [self._items[i] for i in self._order]

    def last(self) -> str | None:
        """The id of the last item, if any."""
        return self._order[-1] if self._order else None

    def previous(self, item_id: str) -> str | None:
        """The id of the item before ``item_id`` (None if it is first)."""
        index = self._order.index(item_id)
        return self._order[index - 1] if index else None

    def get(self, item_id: str) -> Stored | None:
        """The stored item, if present."""
        return self._items.get(item_id)

    def lookup(self, item_id: str) -> Stored:
        """The stored item.

        Raises:
            ClientError: no such item.
        """
        stored = self._items.get(item_id)
        if stored is None:
            raise ClientError(
                "invalid_value", f"Item with item_id not found: {item_id}.", "item_id"
            )
        return stored

    def insert(self, stored: Stored, *, after: str | None = None, first: bool = False) -> None:
        """Place an item (last unless ``after`` or ``first``) without announcing it."""
        if first:
            self._order.insert(0, stored.id)
        elif after is None:
            self._order.append(stored.id)
        else:
            self._order.insert(self._order.index(after) + 1, stored.id)
        self._items[stored.id] = stored

    def announce_added(self, stored: Stored) -> None:
        """GA ``conversation.item.added`` / beta ``conversation.item.created``."""
        cls = ConversationItemAdded if self._ga else ConversationItemCreated
        self._timeline.emit(cls, previous_item_id=self.previous(stored.id), item=stored.item)

    def announce_done(self, stored: Stored) -> None:
        """GA ``conversation.item.done`` (beta has no such event)."""
        if self._ga:
            self._timeline.emit(
                ConversationItemDone, previous_item_id=self.previous(stored.id), item=stored.item
            )

    def add(self, stored: Stored, *, after: str | None = None, first: bool = False) -> None:
        """Insert a complete item and announce it (GA: added then done at once)."""
        self.insert(stored, after=after, first=first)
        self.announce_added(stored)
        self.announce_done(stored)

    def delete(self, item_id: str) -> None:
        """Remove an item (it must exist)."""
        del self._items[item_id]
        self._order.remove(item_id)
