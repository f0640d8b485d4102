"""Deterministic identifiers in the service's formats.

The service's ids are a prefix and 21 random base62 characters (``event_Ct1OIR8Clv8slJvNREs4s``,
``item_...``, ``resp_...``, ``sess_...``, ``conv_...``), call ids 16 (``call_MPqMAZJTYaCaJbmo``).
Each prefix draws from its own RNG seeded by ``(seed, prefix)``, so a session's item ids do not
shift when, say, one more event is emitted: the n-th item of a session always has the same id.
``random.Random`` seeded with a string is stable across runs, platforms and
``PYTHONHASHSEED`` (the string is hashed with SHA-512).
"""

from __future__ import annotations

import random
import string
from typing import Final

__all__ = ["IdFactory"]

_BASE62: Final = string.ascii_letters + string.digits


class IdFactory:
    """Makes ``prefix_XXXX`` ids from a seed; the same seed gives the same sequence."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._taken: set[str] = set()

    def _stream(self, name: str) -> random.Random:
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(f"rtrec-sim/{self._seed}/{name}")
        return rng

    def new(self, prefix: str, length: int = 21) -> str:
        """The next id with this prefix, e.g. ``new("item")`` -> ``item_3GkQ...``; never one
        that ``take`` was told about."""
        while True:
            made = f"{prefix}_{''.join(self._stream(prefix).choices(_BASE62, k=length))}"
            if made not in self._taken:
                return made

    def take(self, taken: str) -> None:
        """An id a client chose (``conversation.item.create`` with an ``id``, a
        ``call_id``): the service never hands it out again. A client that seeds a
        conversation recorded from this simulator (record mode new_episodes) names the ids
        this seed makes first."""
        self._taken.add(taken)

    def token(self, stream: str, min_length: int, max_length: int) -> str:
        """A random base62 string of varying length (for GA's ``obfuscation`` padding)."""
        rng = self._stream(stream)
        return "".join(rng.choices(_BASE62, k=rng.randint(min_length, max_length)))
