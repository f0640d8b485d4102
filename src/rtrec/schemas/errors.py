"""Errors of the schema layer, and the root of rtrec's error tree."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["RtrecError", "SchemaError", "describe_error"]


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


def describe_error(exc: BaseException, *, timeout: float | None = None) -> str:
    """``exc`` as one non-empty line for a reason or a message: ``"Type: message"``.

    Several exceptions carry no message (trio's ``TooSlowError``, a bare ``OSError``), and
    ``"Type: "`` says nothing: a timeout is described with ``timeout`` (the seconds it
    allowed), any other empty message by the type's name alone. An exception raised
    ``from`` another is followed by that cause, since wrappers often say least: trio's
    ``all attempts to connect to HOST:PORT failed`` (from each attempt's ``Connection
    refused``) and a bare ``BrokenResourceError`` (from the TLS error) name no reason.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            # the distinct reasons of its leaves, e.g. one connection refused per address
            leaves = dict.fromkeys(describe_error(e, timeout=timeout) for e in current.exceptions)
            parts.append("; ".join(leaves))
            break
        parts.append(_describe_one(current, timeout))
        current = current.__cause__
    return ": ".join(parts)


def _describe_one(exc: BaseException, timeout: float | None) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if name == "TooSlowError" and not text:  # trio's, whose message is always empty
        return "timed out" if timeout is None else f"timed out after {timeout:g} s"
    return f"{name}: {text}" if text else name
