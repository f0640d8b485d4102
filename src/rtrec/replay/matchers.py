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
    "DEFAULT_TOLERANCES",
    "MATCHERS",
    "VOLATILE_PATHS",
    "AudioMode",
    "Candidate",
    "MatchSpec",
    "Matcher",
    "field_diff",
    "parse_matchers",
    "parse_tolerance",
]

#: A matcher: raises AssertionError (with the difference) when ``live`` does not match.
Matcher = Callable[[Mapping[str, Any], Mapping[str, Any]], None]

#: Fields that differ on every run by nature: the client's own event ids.
VOLATILE_PATHS: Final = ("event_id",)

#: Fields a client computes from its own clock, and how far (in their unit, ms) a live
#: value may be from the recorded one and still match. ``conversation.item.truncate``'s
#: ``audio_end_ms`` is how much of the reply the client had played when the user barged
#: in: measured 2 ms apart on one client and 51 ms on another (issue 14), and a client
#: that plays through a device buffer is off by that buffer (100-300 ms). 500 ms keeps
#: those and still fails a client that truncates at the wrong place (a reply is seconds).
DEFAULT_TOLERANCES: Final = (("audio_end_ms", 500.0),)


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


def _tolerate(recorded: Any, live: Any, parts: Sequence[str], limit: float) -> Any:
    """``live`` with the numbers at ``parts`` that are within ``limit`` of the recorded
    ones set to the recorded values (``*`` matches any key or index)."""
    if not parts:
        numbers = (int, float)
        if (
            isinstance(recorded, numbers)
            and isinstance(live, numbers)
            and not isinstance(recorded, bool)
            and not isinstance(live, bool)
            and abs(recorded - live) <= limit
        ):
            return recorded
        return live
    head, rest = parts[0], parts[1:]
    if isinstance(recorded, dict) and isinstance(live, dict):
        keys = [k for k in live if k in recorded] if head == "*" else [head]
        out = dict(live)
        for key in keys:
            if key in out and key in recorded:
                out[key] = _tolerate(recorded[key], out[key], rest, limit)
        return out
    if isinstance(recorded, list) and isinstance(live, list):
        n = min(len(recorded), len(live))
        indices = range(n) if head == "*" else [int(head)] if head.isdigit() else []
        out_list = list(live)
        for i in indices:
            if i < n:
                out_list[i] = _tolerate(recorded[i], out_list[i], rest, limit)
        return out_list
    return live


def parse_tolerance(text: str) -> tuple[str, float]:
    """``PATH=MS`` (``audio_end_ms=250``) as a (path, limit) pair.

    Raises:
        ValueError: not of that form.
    """
    path, sep, amount = text.rpartition("=")
    try:
        limit = float(amount)
    except ValueError:
        limit = -1.0
    if not sep or not path or not limit >= 0:
        raise ValueError(f"tolerance {text!r}: give PATH=MS, for example audio_end_ms=250")
    return path, limit


@attrs.frozen
class PayloadMatcher:
    """The payloads are equal once volatile fields (``event_id`` and ``ignore``) are
    removed, and numbers at the ``tolerances`` paths are within their limits."""

    ignore: tuple[str, ...] = ()
    tolerances: tuple[tuple[str, float], ...] = DEFAULT_TOLERANCES

    def __call__(self, recorded: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        paths = (*VOLATILE_PATHS, *self.ignore)
        a, b = without(recorded, paths), without(live, paths)
        for path, limit in self.tolerances:
            b = _tolerate(a, b, _split(path), limit)
        if a != b:
            lines = list(field_diff(a, b))
            raise AssertionError("; ".join(lines[:8]) + (" ..." if len(lines) > 8 else ""))


#: Tolerances by path (``PATH=MS``), as ``parse_tolerance`` gives them.
Tolerances = tuple[tuple[str, float], ...]

MATCHERS: Final[Mapping[str, Callable[[tuple[str, ...], Tolerances], Matcher]]] = {
    "type": lambda _ignore, _tolerances: match_type,
    "payload": lambda ignore, tolerances: PayloadMatcher(ignore, tolerances),
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
    tolerances: Sequence[tuple[str, float]] = (),
) -> MatchSpec:
    """A ``MatchSpec`` from a comma-separated list of matcher names (``"type,payload"``).

    ``tolerances`` (path, limit) are added to ``DEFAULT_TOLERANCES``; a path given again
    replaces its default.

    Raises:
        ValueError: an unknown matcher name (the message lists the known ones) or audio mode.
    """
    chosen: list[tuple[str, Matcher]] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in MATCHERS:
            raise ValueError(f"unknown matcher {name!r}; choose from {', '.join(MATCHERS)}")
        given = dict(tolerances)
        merged = tuple((p, given.pop(p, limit)) for p, limit in DEFAULT_TOLERANCES)
        chosen.append((name, MATCHERS[name](tuple(ignore), merged + tuple(given.items()))))
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
