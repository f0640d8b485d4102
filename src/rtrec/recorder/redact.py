"""Redaction: secrets are replaced before anything is written (issue 4, "Redaction").

Each function takes what the proxy saw and returns what may be stored. They are applied to
copies (the frames forwarded between client and server are never changed) and only to what
goes to disk: headers, the request path, subprotocols and frame payloads.

What counts as a secret: the Authorization header (and the other credential headers below),
``openai-insecure-api-key.<KEY>`` subprotocols (whatever the key's shape, wherever the
value appears: the ``Sec-WebSocket-Protocol`` header, marks, close reasons), credential query
parameters, any token shaped like an OpenAI key (``sk-…``, ``ek_…``, ``rk-…``), and
``client_secret`` values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

__all__ = [
    "REDACTED",
    "PathRedactor",
    "contains_secret_marker",
    "redact_headers",
    "redact_path",
    "redact_subprotocols",
    "redact_text",
]

REDACTED: Final = "[REDACTED]"

_SECRET_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "openai-api-key",
        "x-api-key",
        "cookie",
        "set-cookie",
    }
)
_SECRET_PARAMS: Final = frozenset(
    {"key", "api_key", "apikey", "api-key", "token", "access_token", "client_secret", "secret"}
)
_KEY_RE: Final = re.compile(r"\b(sk|ek|rk)([-_])[A-Za-z0-9_\-]{6,}")
_CLIENT_SECRET_RE: Final = re.compile(
    r'("client_secret"\s*:\s*(?:\{[^{}]*?"value"\s*:\s*)?)"(?:[^"\\]|\\.)*"'
)
_INSECURE_KEY_PREFIX: Final = "openai-insecure-api-key."
# The browser's subprotocol credential ends where a subprotocol list item ends (a comma,
# white space) or where a JSON string does (a quote or backslash).
_INSECURE_KEY_RE: Final = re.compile(r"(openai-insecure-api-key\.)[^\s,\"\\]+")


def contains_secret_marker(text: str) -> bool:
    """Cheap pre-check: could ``text`` hold something ``redact_text`` would change?"""
    return (
        "sk-" in text
        or "ek_" in text
        or "rk-" in text
        or "client_secret" in text
        or _INSECURE_KEY_PREFIX in text
    )


def redact_text(text: str) -> str:
    """Replace key-shaped tokens, subprotocol keys and ``client_secret`` values in a text."""
    if not contains_secret_marker(text):
        return text
    text = _CLIENT_SECRET_RE.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    text = _INSECURE_KEY_RE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _KEY_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers with credential values replaced (the scheme of Authorization is kept)."""
    out = []
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = (
                f"{scheme} {REDACTED}"
                if rest and name.lower().endswith("authorization")
                else REDACTED
            )
        else:
            value = redact_text(value)
        out.append((name, value))
    return out


def redact_path(path: str) -> str:
    """A request path with credential query parameters replaced."""
    parts = urlsplit(path)
    if not parts.query:
        return redact_text(path)
    query = [
        (k, REDACTED if k.lower() in _SECRET_PARAMS else redact_text(v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def redact_subprotocols(subprotocols: Sequence[str]) -> list[str]:
    """Subprotocols with the browser's ``openai-insecure-api-key.<KEY>`` key replaced."""
    return [
        _INSECURE_KEY_PREFIX + REDACTED if p.startswith(_INSECURE_KEY_PREFIX) else redact_text(p)
        for p in subprotocols
    ]


class PathRedactor:
    """User redaction rules (``--redact JSONPATH``), e.g. ``$.session.instructions`` or
    ``$.item.content[*].text``: the values they match are replaced by ``"[REDACTED]"``.

    A frame they change is stored re-serialised, so it is no longer byte-exact: that is
    the point of redacting it.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = [self._parse(p) for p in paths]
        # The first key of each path must appear in a frame's text for the path to match.
        self._needles = tuple({f'"{steps[0]}"' for steps in self._paths})

    @staticmethod
    def _parse(path: str) -> list[str | int | None]:
        if not path.startswith("$."):
            raise ValueError(f"redaction path must start with '$.': {path!r}")
        steps: list[str | int | None] = []
        for token in re.findall(r"\.([^.\[\]]+)|\[(\*|\d+)\]", path[1:]) if path != "$." else []:
            key, index = token
            if key:
                steps.append(key)
            else:
                steps.append(None if index == "*" else int(index))
        if not steps or not isinstance(steps[0], str):
            raise ValueError(f"redaction path must start with a key: {path!r}")
        return steps

    def __bool__(self) -> bool:
        return bool(self._paths)

    def apply(self, text: str) -> str:
        """Return ``text`` with the matched values replaced (unchanged if none match)."""
        if not any(n in text for n in self._needles):
            return text
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        changed = False
        for steps in self._paths:
            changed |= _replace(obj, steps)
        return orjson.dumps(obj).decode() if changed else text


def _replace(node: Any, steps: Sequence[str | int | None]) -> bool:
    if not steps:
        return False
    step, rest = steps[0], steps[1:]
    children: list[tuple[Any, Any]]
    if isinstance(step, str) and isinstance(node, dict) and step in node:
        children = [(node, step)]
    elif step is None and isinstance(node, list):
        children = [(node, i) for i in range(len(node))]
    elif isinstance(step, int) and isinstance(node, list) and step < len(node):
        children = [(node, step)]
    else:
        return False
    changed = False
    for parent, key in children:
        if rest:
            changed |= _replace(parent[key], rest)
        elif parent[key] != REDACTED:
            parent[key] = REDACTED
            changed = True
    return changed
