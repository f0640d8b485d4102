"""Playback matchers: named, composable checks of a live client event against a recorded one.

In vcrpy's style (STYLE.md principle 11) a matcher is a plain ``(recorded, live) -> None``
function that raises ``AssertionError`` saying what differs; ``MATCHERS`` registers them by
name so the command line and the pytest plugin can pick them (``--match type,payload``).
Audio appends are not matched event by event (a client may chunk its audio differently
from the recording): the playback server compares the concatenated audio instead, by
samples or by duration, as ``AudioMode`` says.

Nothing here does I/O: the playback server calls these, and tests call them directly.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import orjson

__all__ = [
    "MATCHERS",
    "VOLATILE_PATHS",
    "AudioMode",
    "Candidate",
    "MatchSpec",
    "Matcher",
    "field_diff",
    "parse_matchers",
]

#: A matcher: raises AssertionError (with the difference) when ``live`` does not match.
Matcher = Callable[[Mapping[str, Any], Mapping[str, Any]], None]

#: Fields that differ on every run by nature: the client's own event ids.
VOLATILE_PATHS: Final = ("event_id",)


class AudioMode(enum.StrEnum):
    """How a live client's appended audio is compared with the recording's."""

    #: the same samples, byte for byte, however the client chunks them
    SAMPLES = "samples"
    #: the same amount of audio within a tolerance
    DURATION = "duration"
    #: appended audio is neither compared nor awaited
    IGNORE = "ignore"


def _split(path: str) -> list[str]:
    return [p for p in path.removeprefix("$").strip(".").split(".") if p]


def _drop(value: Any, parts: Sequence[str]) -> Any:
    """``value`` without the field at ``parts`` (``*`` matches any key or index)."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head]
        out = dict(value)
        for key in keys:
            if key in out:
                if rest:
                    out[key] = _drop(out[key], rest)
                else:
                    del out[key]
        return out
    if isinstance(value, list):
        out_list = list(value)
        indices = range(len(out_list)) if head == "*" else [int(head)] if head.isdigit() else []
        for i in indices:
            if i < len(out_list):
                out_list[i] = _drop(out_list[i], rest) if rest else None
        return out_list
    return value


def without(event: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A copy of ``event`` with the fields at ``paths`` (dotted JSON paths) removed."""
    out: Any = dict(event)
    for path in paths:
        out = _drop(out, _split(path))
    return dict(out)


def field_diff(recorded: Any, live: Any, path: str = "$") -> Iterator[str]:
    """Field-level differences, one line each: ``$.item.output: '{"c":14}' != '{"c":15}'``."""
    if isinstance(recorded, dict) and isinstance(live, dict):
        for key in sorted(set(recorded) | set(live), key=str):
            here = f"{path}.{key}"
            if key not in live:
                yield f"{here}: missing in the live event (recorded {_show(recorded[key])})"
            elif key not in recorded:
                yield f"{here}: not in the recording (live {_show(live[key])})"
            else:
                yield from field_diff(recorded[key], live[key], here)
    elif isinstance(recorded, list) and isinstance(live, list):
        for i, (a, b) in enumerate(zip(recorded, live, strict=False)):
            yield from field_diff(a, b, f"{path}[{i}]")
        if len(recorded) != len(live):
            yield f"{path}: {len(recorded)} elements recorded, {len(live)} live"
    elif recorded != live or type(recorded) is not type(live):
        yield f"{path}: recorded {_show(recorded)} != live {_show(live)}"


def _show(value: Any, limit: int = 80) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def match_type(recorded: Mapping[str, Any], live: Mapping[str, Any]) -> None:
    """The event types are equal."""
    if recorded.get("type") != live.get("type"):
        raise AssertionError(f"type {live.get('type')!r} != recorded {recorded.get('type')!r}")


@attrs.frozen
class PayloadMatcher:
    """The payloads are equal once volatile fields (``event_id`` and ``ignore``) are removed."""

    ignore: tuple[str, ...] = ()

    def __call__(self, recorded: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        paths = (*VOLATILE_PATHS, *self.ignore)
        a, b = without(recorded, paths), without(live, paths)
        if a != b:
            lines = list(field_diff(a, b))
            raise AssertionError("; ".join(lines[:8]) + (" ..." if len(lines) > 8 else ""))


MATCHERS: Final[Mapping[str, Callable[[tuple[str, ...]], Matcher]]] = {
    "type": lambda _ignore: match_type,
    "payload": lambda ignore: PayloadMatcher(ignore),
}


@attrs.frozen
class MatchSpec:
    """Which matchers apply to non-audio client events, and how audio is compared."""

    matchers: tuple[tuple[str, Matcher], ...] = (
        ("type", match_type),
        ("payload", PayloadMatcher()),
    )
    audio: AudioMode = AudioMode.SAMPLES
    #: for ``AudioMode.DURATION``: how much more or less audio still matches
    audio_tolerance_ms: float = 100.0

    def verdicts(
        self, recorded: Mapping[str, Any], live: Mapping[str, Any]
    ) -> list[tuple[str, str | None]]:
        """Each matcher's name and its failure (None when it passed)."""
        out: list[tuple[str, str | None]] = []
        for name, matcher in self.matchers:
            try:
                matcher(recorded, live)
            except AssertionError as exc:
                out.append((name, str(exc) or "failed"))
            else:
                out.append((name, None))
        return out


def parse_matchers(
    names: str,
    *,
    ignore: Sequence[str] = (),
    audio: AudioMode | str = AudioMode.SAMPLES,
    audio_tolerance_ms: float = 100.0,
) -> MatchSpec:
    """A ``MatchSpec`` from a comma-separated list of matcher names (``"type,payload"``).

    Raises:
        ValueError: an unknown matcher name (the message lists the known ones) or audio mode.
    """
    chosen: list[tuple[str, Matcher]] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in MATCHERS:
            raise ValueError(f"unknown matcher {name!r}; choose from {', '.join(MATCHERS)}")
        chosen.append((name, MATCHERS[name](tuple(ignore))))
    try:
        mode = AudioMode(audio)
    except ValueError:
        modes = ", ".join(m.value for m in AudioMode)
        raise ValueError(f"unknown audio mode {audio!r}; choose from {modes}") from None
    return MatchSpec(tuple(chosen), mode, audio_tolerance_ms)


@attrs.frozen
class Candidate:
    """A recorded client event weighed against a live one, for the mismatch report."""

    seq: int
    recorded: Mapping[str, Any]
    verdicts: tuple[tuple[str, str | None], ...]
    distance: int  # recorded client events between the expected one and this one

    @property
    def passed(self) -> int:
        """How many matchers passed."""
        return sum(1 for _, failure in self.verdicts if failure is None)

    @property
    def matches(self) -> bool:
        """Whether every matcher passed."""
        return all(failure is None for _, failure in self.verdicts)
