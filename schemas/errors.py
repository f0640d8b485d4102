"""Errors of the schema layer, and the root of rtrec's error tree."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["RtrecError", "SchemaError"]


class RtrecError(Exception):
    """Base of every error rtrec raises on purpose."""


class SchemaError(RtrecError, ValueError):
    """A JSON value does not fit the Realtime protocol's schema.

    ``problems`` lists every problem found as ``(json_path, message)`` pairs, e.g.
    ``("$.response.usage.input_tokens", "expected int, got str")``; ``str()`` of the error
    starts with the first of them.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        text = "; ".join(f"{path}: {msg}" for path, msg in self.problems)
        super().__init__(text or "invalid event")
