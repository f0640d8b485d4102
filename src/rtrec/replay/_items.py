"""The conversation's items and their order while a fold runs, with the deltas not yet
merged into them.

Deltas go to per-item accumulators (``PendingDeltas``) that are merged into the frozen item
when something else touches it, and at the end: a voice session sends an audio delta every
few tens of milliseconds, and rebuilding the item for each would cost more than the rest of
the fold.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, final

import attrs

from rtrec.replay import _rules as rules
from rtrec.replay._findings import Findings, Where
from rtrec.replay._lenient import as_str, frozen
from rtrec.replay._rules import AnomalyKind, Predecessor
from rtrec.replay._state import AudioRef, ConversationState, Item, Part, Placement, TextValue
from rtrec.schemas.base import UNSET, Unset
from rtrec.schemas.storage import FrameRecord, Stream

__all__ = [
    "KEEP",
    "AudioAcc",
    "ItemsDraft",
    "Keep",
    "PendingDeltas",
    "merge_part",
    "order_items",
    "set_text",
    "with_part",
]

_MISSING: Final = object()
_ITEM_KEYS: Final = frozenset(
    {"id", "object", "type", "role", "status", "content", "name", "call_id", "arguments", "output"}
)
_PART_KEYS: Final = frozenset({"type", "text", "transcript", "audio"})


class Keep(enum.Enum):
    """The type of ``KEEP``: "this event does not place the item"."""

    KEEP = "KEEP"


KEEP: Final = Keep.KEEP


# --------------------------------------------------------------------------- ordering


def order_items(items: Mapping[str, Item]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Conversation order from the placements, and the orphans among the placed items.

    The conversation is a linked list (PROTOCOL.md §4.2): an item placed after P goes right
    after P, ahead of items placed after P earlier. So the order is a depth-first walk from
    the root (``previous_item_id`` null) visiting each item's successors newest first.
    Deleted items are walked (their successors keep their place) but not listed. Items
    whose predecessor the log never placed (a log that starts mid-session) follow, oldest
    first, and are the orphans; anything still unvisited (a cycle in a malformed log) last.
    """
    placed = {i.id: i for i in items.values() if i.placement is not None}
    children: dict[str | None, list[Item]] = {}
    orphan_roots: list[Item] = []
    for item in placed.values():
        assert item.placement is not None
        prev = item.placement.previous_item_id
        if prev is not None and prev not in placed:
            orphan_roots.append(item)
        else:
            children.setdefault(prev, []).append(item)
    for kids in children.values():
        kids.sort(key=lambda i: i.placement.seq if i.placement else 0, reverse=True)

    order: list[str] = []
    seen: set[str] = set()

    def walk(start: Item) -> None:
        stack = [start]
        while stack:
            item = stack.pop()
            if item.id in seen:
                continue
            seen.add(item.id)
            if item.deleted_seq is None:
                order.append(item.id)
            # reversed, so that the newest successor is popped (and listed) first
            stack.extend(reversed(children.get(item.id, ())))

    for root in children.get(None, ()):
        walk(root)
    orphan_roots.sort(key=lambda i: i.placement.seq if i.placement else 0)
    for root in orphan_roots:
        walk(root)
    orphans = [i.id for i in orphan_roots if i.deleted_seq is None]
    for item in sorted(placed.values(), key=lambda i: i.placement.seq if i.placement else 0):
        if item.id not in seen:
            orphans.append(item.id)
            walk(item)
    return tuple(order), tuple(orphans)


# --------------------------------------------------------------------------- parts


def with_part(item: Item, part: Part) -> Item:
    """``item`` with ``part`` added or replaced at its index."""
    parts = {p.index: p for p in item.parts}
    parts[part.index] = part
    return attrs.evolve(item, parts=tuple(parts[i] for i in sorted(parts)))


def set_text(part: Part, field: str, value: TextValue) -> Part:
    """``part`` with its ``text`` or ``transcript`` (``field``) replaced."""
    if field == "text":
        return attrs.evolve(part, text=value)
    return attrs.evolve(part, transcript=value)


def merge_part(part: Part, raw: Mapping[str, Any]) -> Part:
    """A part with a snapshot of it (its JSON object) merged in; the same part if the
    snapshot says nothing new."""
    changes: dict[str, Any] = {}
    kind = as_str(raw.get("type"))
    if kind is not None:
        kind = rules.PART_TYPE_ALIASES.get(kind, kind)
        if kind != part.type:
            changes["type"] = kind
    for field in ("text", "transcript"):
        value = as_str(raw.get(field))
        current: TextValue = getattr(part, field)
        if value is not None and value != current.snapshot:
            changes[field] = attrs.evolve(current, snapshot=value)
    fields = {k: v for k, v in raw.items() if k not in _PART_KEYS}
    if fields and any(part.fields.get(k, _MISSING) != v for k, v in fields.items()):
        changes["fields"] = frozen({**part.fields, **fields})
    return attrs.evolve(part, **changes) if changes else part


def _concat_audio(head: tuple[AudioRef, ...], tail: list[AudioRef]) -> tuple[AudioRef, ...]:
    """``head + tail``, merging the stretches that meet (contiguous in the same stream)."""
    if not tail:
        return head
    if head:
        last, first = head[-1], tail[0]
        if (
            last.stream == first.stream
            and last.sample_rate == first.sample_rate
            and last.end == first.offset
        ):
            merged = attrs.evolve(last, samples=last.samples + first.samples)
            return (*head[:-1], merged, *tail[1:])
    return (*head, *tail)


# --------------------------------------------------------------------------- pending deltas


@final
class AudioAcc:
    """Audio of one part gathered during a fold: closed stretches plus one open stretch.

    A delta that continues the open stretch only adds to ``samples`` (the caller checks
    that, where it is cheapest); any other starts a new stretch with ``start``.
    """

    __slots__ = ("closed", "offset", "rate", "samples", "stream")

    def __init__(self) -> None:
        self.closed: list[AudioRef] = []
        self.stream: Stream | None = None
        self.rate = 0
        self.offset = 0
        self.samples = 0

    def start(self, stream: Stream, rate: int, offset: int, samples: int) -> None:
        """Close the open stretch and open one of ``samples`` at ``offset``."""
        if self.stream is not None:
            self.closed.append(
                AudioRef(
                    stream=self.stream,
                    sample_rate=self.rate,
                    offset=self.offset,
                    samples=self.samples,
                )
            )
        self.stream, self.rate, self.offset, self.samples = stream, rate, offset, samples

    def refs(self) -> list[AudioRef]:
        if self.stream is None:
            return list(self.closed)
        return [
            *self.closed,
            AudioRef(
                stream=self.stream, sample_rate=self.rate, offset=self.offset, samples=self.samples
            ),
        ]


@final
class PendingDeltas:
    """Everything deltas added to one item during a fold, not yet merged into the item."""

    __slots__ = ("args", "audio", "text")

    def __init__(self) -> None:
        self.audio: dict[int, AudioAcc] = {}
        #: (content_index, "text" | "transcript") -> chunks; None: the text is final, drop
        self.text: dict[tuple[int, str], list[str] | None] = {}
        #: argument chunks; None until a delta opens them (or while they are final)
        self.args: list[str] | None = None


# --------------------------------------------------------------------------- the items


@final
class ItemsDraft:
    """Owns the state's ``items``, ``order`` and ``orphans`` while a fold runs, and the
    deltas not yet merged into the items (``pending``).

    ``by_id`` may hold an item older than its pending deltas: read an item through ``get``
    (which merges them) unless, as a delta opening a part does, only its parts matter.
    """

    __slots__ = ("by_id", "findings", "order", "order_dirty", "orphans", "pending")

    def __init__(self, base: ConversationState, findings: Findings) -> None:
        self.findings = findings
        self.by_id: dict[str, Item] = dict(base.items)
        self.order: list[str] = list(base.order)
        self.orphans: list[str] = list(base.orphans)
        #: the order needs a walk (``order_items``) before it is read
        self.order_dirty = False
        #: never rebound: the draft keeps a reference for its hot paths
        self.pending: dict[str, PendingDeltas] = {}

    # ------------------------------------------------------------------ reading, creating

    def get(self, item_id: str) -> Item | None:
        """The item with every pending delta merged in (None if the log has not shown it)."""
        if item_id in self.pending:
            self._flush(item_id)
        return self.by_id.get(item_id)

    def put(self, item: Item) -> None:
        """Store ``item`` (a new version of it, or a new item, not yet placed)."""
        self.by_id[item.id] = item

    def new(
        self,
        at: Where,
        item_id: str,
        *,
        type: str | None = None,
        role: str | None = None,
        response_id: str | None = None,
        origin: str | None = None,
    ) -> Item:
        """A new item first seen at row ``at`` (not stored: ``put`` it)."""
        return Item(
            id=item_id,
            type=type,
            role=role,
            response_id=response_id,
            origin=origin,
            first_seq=at.seq,
            first_t_ns=at.t_ns,
        )

    def get_or_new(self, at: Where, item_id: str, **kwargs: Any) -> Item:
        """``get``, or ``new`` with ``kwargs`` if the log has not shown the item."""
        item = self.get(item_id)
        return item if item is not None else self.new(at, item_id, **kwargs)

    def _flush(self, item_id: str) -> None:
        acc = self.pending.pop(item_id)
        item = self.by_id[item_id]
        parts = {p.index: p for p in item.parts}
        for index, audio in acc.audio.items():
            part = parts[index]
            parts[index] = attrs.evolve(part, audio=_concat_audio(part.audio, audio.refs()))
        for (index, field), chunks in acc.text.items():
            if not chunks:
                continue
            part = parts[index]
            value: TextValue = getattr(part, field)
            grown = attrs.evolve(value, deltas=(value.deltas or "") + "".join(chunks))
            parts[index] = set_text(part, field, grown)
        changes: dict[str, Any] = {"parts": tuple(parts[i] for i in sorted(parts))}
        if acc.args:
            args = item.arguments
            changes["arguments"] = attrs.evolve(
                args, deltas=(args.deltas or "") + "".join(acc.args)
            )
        self.by_id[item_id] = attrs.evolve(item, **changes)

    # ------------------------------------------------------------------ deltas opening

    def _pending(self, item_id: str) -> PendingDeltas:
        acc = self.pending.get(item_id)
        if acc is None:
            acc = self.pending[item_id] = PendingDeltas()
        return acc

    def _ensure_part(
        self, at: Where, item_id: str, index: int, field: str, response_id: str | None
    ) -> Part:
        """The part a delta addresses; a shell item and part when the log has none yet
        (deltas may come before their item, PROTOCOL.md §8).

        It reads the item without merging its pending deltas: opening one accumulator must
        not flush the others, or interleaved audio and transcript deltas would rebuild the
        item at every step. Adding a part or a response id does not touch what is pending.
        """
        item = self.by_id.get(item_id)
        if item is None:
            self.findings.anomaly(at, AnomalyKind.ITEM_NOT_SEEN, f"{field} delta for {item_id}")
            item = self.new(
                at,
                item_id,
                type="message",
                role="assistant",
                response_id=response_id,
                origin="response",
            )
        part = item.part(index)
        if part is None:
            part = Part(index=index, type=rules.DELTA_PART_TYPES[field])
            item = with_part(item, part)
        if item.response_id is None and response_id is not None:
            item = attrs.evolve(item, response_id=response_id)
        self.by_id[item_id] = item
        return part

    def open_audio(self, at: Where, item_id: str, index: int, response_id: str | None) -> AudioAcc:
        """The accumulator for the audio of part ``index``, opened by a delta at ``at``."""
        self._ensure_part(at, item_id, index, "audio", response_id)
        audio = self._pending(item_id).audio[index] = AudioAcc()
        return audio

    def open_text(
        self, at: Where, item_id: str, index: int, field: str, response_id: str | None
    ) -> list[str] | None:
        """The chunks of ``field`` of part ``index``, opened by a delta at ``at``; None if
        that text is already final (deltas after it are dropped)."""
        part = self._ensure_part(at, item_id, index, field, response_id)
        value: TextValue = getattr(part, field)
        chunks: list[str] | None = None if value.final is not None else []
        self._pending(item_id).text[(index, field)] = chunks
        return chunks

    def open_args(
        self, at: Where, item_id: str, response_id: str | None, kind: str
    ) -> list[str] | None:
        """The argument chunks of a call item, opened by a delta at ``at``; None if the
        arguments are already final."""
        item = self.by_id.get(item_id)  # without a flush, as in _ensure_part
        if item is None:
            self.findings.anomaly(at, AnomalyKind.ITEM_NOT_SEEN, f"arguments for {item_id}")
            item = self.new(at, item_id, type=kind, response_id=response_id, origin="response")
            self.by_id[item_id] = item
        if item.arguments.final is not None:
            return None
        acc = self._pending(item_id)
        acc.args = []
        return acc.args

    # ------------------------------------------------------------------ snapshots, order

    def merge_snapshot(
        self,
        rec: FrameRecord,
        data: Any,
        *,
        response_id: str | None = None,
        origin: str | None = None,
        place: str | Unset | Keep | None = KEEP,
    ) -> Item | None:
        """Merge an item as an event states it (its JSON object) into the rebuilt item.

        PROTOCOL.md §8: merge, never overwrite accumulated audio or non-null text with nulls.
        ``place`` is the event's ``previous_item_id`` when the event places the item (see
        ``PREDECESSOR_RULES``); the item is placed if it is not already, in the same step.
        """
        if not isinstance(data, dict):
            self.findings.anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type}: item is not an object")
            return None
        item_id = as_str(data.get("id"))
        if item_id is None:
            self.findings.anomaly(rec, AnomalyKind.MALFORMED, f"{rec.type}: item without an id")
            return None
        item = self.get_or_new(rec, item_id)
        changes: dict[str, Any] = {}
        for key in ("type", "role", "name", "call_id", "output"):
            value = as_str(data.get(key))
            if value is not None and value != getattr(item, key):
                changes[key] = value
        status = rules.final_status(item.status, as_str(data.get("status")))
        if status != item.status:
            changes["status"] = status
        arguments = as_str(data.get("arguments"))
        if arguments is not None and arguments != item.arguments.snapshot:
            changes["arguments"] = attrs.evolve(item.arguments, snapshot=arguments)
        if item.response_id is None and response_id is not None:
            changes["response_id"] = response_id
        if item.origin is None and origin is not None:
            changes["origin"] = origin
        content = data.get("content")
        if isinstance(content, list) and content:
            parts = {p.index: p for p in item.parts}
            for index, raw in enumerate(content):
                if isinstance(raw, dict):
                    parts[index] = merge_part(parts.get(index) or Part(index=index), raw)
            merged = tuple(parts[i] for i in sorted(parts))
            if merged != item.parts:
                changes["parts"] = merged
        fields = {k: v for k, v in data.items() if k not in _ITEM_KEYS}
        if fields and any(item.fields.get(k, _MISSING) != v for k, v in fields.items()):
            changes["fields"] = frozen({**item.fields, **fields})
        placed: str | Keep | None = KEEP
        if not isinstance(place, Keep) and item.placement is None and item.deleted_seq is None:
            previous = place if place is not UNSET else item.declared_previous
            placed = self._predecessor(rec, item_id, previous)
            changes["placement"] = Placement(previous_item_id=placed, seq=rec.seq)
        if changes:
            item = attrs.evolve(item, **changes)
        self.by_id[item_id] = item
        if not isinstance(placed, Keep):
            self._note_placed(item_id, placed)
        return item

    def delete(self, at: Where, item: Item) -> None:
        """Mark ``item`` deleted at row ``at``: it keeps its place in the walk, unlisted."""
        self.by_id[item.id] = attrs.evolve(item, deleted_seq=at.seq)
        if item.placement is not None and not self.order_dirty:
            if item.id in self.order:
                self.order.remove(item.id)
            if item.id in self.orphans:
                self.orphans.remove(item.id)

    def _predecessor(self, at: Where, item_id: str, previous: str | Unset | None) -> str | None:
        """The item a declared predecessor puts ``item_id`` after (``Predecessor`` rules)."""
        kind = rules.predecessor(previous, isinstance(previous, str) and self._placed(previous))
        if kind is Predecessor.APPEND:
            return self._last_item()
        if kind is Predecessor.UNKNOWN:
            self.findings.anomaly(
                at, AnomalyKind.UNKNOWN_PREDECESSOR, f"{item_id} after unknown {previous}"
            )
        return previous if isinstance(previous, str) else None

    def _note_placed(self, item_id: str, previous: str | None) -> None:
        # The common case, appending after the last item, needs no walk: the walk would list
        # the new item right after its predecessor, which is last.
        if (
            not self.order_dirty
            and not self.orphans
            and previous == (self.order[-1] if self.order else None)
        ):
            self.order.append(item_id)
        else:
            self.order_dirty = True

    def _placed(self, item_id: str) -> bool:
        item = self.by_id.get(item_id)
        return item is not None and item.placement is not None

    def _last_item(self) -> str | None:
        self._settle_order()
        return self.order[-1] if self.order else None

    def _settle_order(self) -> None:
        if self.order_dirty:
            order, orphans = order_items(self.by_id)
            self.order, self.orphans = list(order), list(orphans)
            self.order_dirty = False

    def freeze(
        self,
    ) -> tuple[Mapping[str, Item], tuple[str, ...], tuple[str, ...]]:
        """The items, their order and the orphans as they stand; the draft stays usable."""
        for item_id in list(self.pending):
            self._flush(item_id)
        self._settle_order()
        return MappingProxyType(dict(self.by_id)), tuple(self.order), tuple(self.orphans)
