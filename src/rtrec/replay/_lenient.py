"""Reading an event's decoded JSON leniently: a value of the wrong type counts as absent.

The reducer reads nested objects from the decoded frame rather than from typed events (the
raw frame is the truth, STYLE.md principle 4), so what the state keeps is frozen here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = ["as_int", "as_obj", "as_str", "frozen"]


def as_str(value: Any) -> str | None:
    """``value`` if it is a string, else None."""
    return value if value.__class__ is str else None


def as_int(value: Any) -> int | None:
    """``value`` if it is an integer (not a bool), else None."""
    return value if value.__class__ is int else None


def as_obj(value: Any) -> dict[str, Any] | None:
    """``value`` if it is a JSON object, else None."""
    return value if isinstance(value, dict) else None


def frozen(value: Any) -> Any:
    """A JSON value with every object made read-only and every array a tuple, so that what
    the state holds cannot be changed behind its back."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    return value
