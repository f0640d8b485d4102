"""Scenarios: what the simulated model hears and says, per user turn (TOML, stdlib ``tomllib``).

A scenario is a list of turns plus defaults. A user turn is an audio turn (a committed input
buffer, or a created user message with audio) or a text turn (a created user message with
text). Audio turns take the next unused ordered turn; text turns first look for a turn whose
``text`` matches the message (case, spacing and punctuation ignored; such turns can match
again), then fall back to the next ordered turn. With no turn left, the defaults apply.
The format is documented in ``src/rtrec/fixtures/scenarios/README.md``;
``DEFAULT_SCENARIO`` makes any conversation work.

Replies are templates: ``{text}`` is the user's text (or the turn's transcript), ``{seconds}``
the user's audio duration, ``{turn}`` the 1-based user turn number, and in answers to
function calls, ``{output}`` the function output the client sent (for an MCP call, the
scripted tool output, or its error message).

MCP servers (``[[mcp]]``) script what the simulated service finds when it lists a server's
tools; a ``[[turn.call]]`` with ``server`` is a call of such a tool, run by the service.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from rtrec.schemas import RtrecError

__all__ = [
    "DEFAULT_SCENARIO",
    "Call",
    "Defaults",
    "McpServer",
    "Scenario",
    "ScenarioError",
    "Turn",
    "load_scenario",
    "normalize_text",
    "parse_scenario",
]

_PLACEHOLDERS: Final = frozenset({"text", "seconds", "turn", "output"})


class ScenarioError(RtrecError, ValueError):
    """A scenario file is not valid; the message names the file and the offending key."""


@attrs.frozen
class Call:
    """A tool call the model makes, and what it says once the output comes back.

    ``server`` names an MCP server (``[[mcp]]``): the service runs the call itself and the
    tool returns ``output``, or fails with ``error`` (a ``tool_execution_error``). Without
    ``server`` it is a call of a client-side function.
    """

    name: str
    arguments: str
    answer: str | None = None
    server: str | None = None
    output: str | None = None
    error: str | None = None


@attrs.frozen
class McpServer:
    """An MCP server as the simulated service finds it: its tools (``name``,
    ``input_schema``, ``description`` as the protocol lists them), or a listing that fails."""

    label: str
    tools: tuple[Mapping[str, Any], ...] = ()
    fail: bool = False


@attrs.frozen
class Turn:
    """One scripted user turn and the model's reaction."""

    text: str | None = None
    transcript: str | None = None
    reply: str | None = None
    calls: tuple[Call, ...] = ()


@attrs.frozen
class Defaults:
    """What the model hears and says when no turn applies."""

    transcript: str = "I spoke for {seconds} seconds."
    reply: str = (
        'You said: "{text}". This is the rtrec simulator; a scenario file scripts my answers.'
    )
    answer: str = "The function returned {output}."
    idle_reply: str = "Are you still there?"
    denied: str = "I did not run that tool, since you did not approve it."


@attrs.frozen
class Scenario:
    """A parsed scenario."""

    name: str = "default"
    description: str = ""
    turns: tuple[Turn, ...] = ()
    defaults: Defaults = Defaults()
    mcp: tuple[McpServer, ...] = ()

    def server(self, label: str) -> McpServer | None:
        """The scripted MCP server with this ``server_label``, if any."""
        return next((s for s in self.mcp if s.label == label), None)

    def match_text(self, text: str) -> Turn | None:
        """The turn whose ``text`` matches a user message, if any."""
        key = normalize_text(text)
        return next((t for t in self.turns if t.text and normalize_text(t.text) == key), None)

    def ordered(self, index: int) -> Turn | None:
        """The ``index``-th turn that has no ``text`` (turns matched by order), if any."""
        ordered = [t for t in self.turns if t.text is None]
        return ordered[index] if index < len(ordered) else None


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: how text turns match."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _check_template(value: str, where: str, allowed: frozenset[str]) -> str:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise ScenarioError(f"{where}: bad template {value!r}: {exc}") from None
    unknown = sorted(fields - allowed)
    if unknown:
        names = ", ".join("{" + f + "}" for f in sorted(allowed))
        raise ScenarioError(f"{where}: unknown placeholder {{{unknown[0]}}} (use {names})")
    return value


def _str(table: Mapping[str, Any], key: str, where: str, *, template: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return (
        _check_template(value, f"{where}.{key}", _PLACEHOLDERS - {"output"}) if template else value
    )


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _call(raw: Any, where: str) -> Call:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a table")
    _only(raw, {"name", "arguments", "answer", "server", "output", "error"}, where)
    name = _str(raw, "name", where)
    if not name:
        raise ScenarioError(f"{where}.name: required")
    arguments = raw.get("arguments", {})
    if isinstance(arguments, dict):
        # Compact JSON in the table's order, as the model writes it.
        text = orjson.dumps(arguments).decode()
    elif isinstance(arguments, str):
        text = arguments
    else:
        raise ScenarioError(f"{where}.arguments: expected a table or a JSON string")
    answer = _str(raw, "answer", where)
    if answer is not None:
        _check_template(answer, f"{where}.answer", _PLACEHOLDERS)
    server = _str(raw, "server", where)
    output, error = _str(raw, "output", where), _str(raw, "error", where)
    if server is None and (output is not None or error is not None):
        raise ScenarioError(f"{where}: output and error are for MCP calls (add server)")
    if output is not None and error is not None:
        raise ScenarioError(f"{where}: a call has an output or an error, not both")
    return Call(name=name, arguments=text, answer=answer, server=server, output=output, error=error)


def _mcp_server(raw: Any, where: str) -> McpServer:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a table")
    _only(raw, {"server_label", "tool", "fail"}, where)
    label = _str(raw, "server_label", where)
    if not label:
        raise ScenarioError(f"{where}.server_label: required")
    fail = raw.get("fail", False)
    if not isinstance(fail, bool):
        raise ScenarioError(f"{where}.fail: expected a boolean, got {type(fail).__name__}")
    tools = raw.get("tool", [])
    if not isinstance(tools, list):
        raise ScenarioError(f"{where}.tool: expected an array of tables ([[mcp.tool]])")
    listed: list[Mapping[str, Any]] = []
    for index, tool in enumerate(tools):
        at = f"{where}.tool[{index}]"
        if not isinstance(tool, dict):
            raise ScenarioError(f"{at}: expected a table")
        _only(tool, {"name", "description", "input_schema"}, at)
        if not _str(tool, "name", at):
            raise ScenarioError(f"{at}.name: required")
        _str(tool, "description", at)
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        if not isinstance(schema, dict):
            raise ScenarioError(f"{at}.input_schema: expected a table (a JSON schema)")
        listed.append({**tool, "input_schema": schema})
    return McpServer(label=label, tools=tuple(listed), fail=fail)


def _turn(raw: Any, where: str) -> Turn:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a table")
    _only(raw, {"text", "transcript", "reply", "call"}, where)
    calls = raw.get("call", [])
    if not isinstance(calls, list):
        raise ScenarioError(f"{where}.call: expected an array of tables ([[turn.call]])")
    turn = Turn(
        text=_str(raw, "text", where),
        transcript=_str(raw, "transcript", where),
        reply=_str(raw, "reply", where, template=True),
        calls=tuple(_call(c, f"{where}.call[{i}]") for i, c in enumerate(calls)),
    )
    if turn.text is not None and not normalize_text(turn.text):
        raise ScenarioError(f"{where}.text: nothing left to match once punctuation is ignored")
    return turn


def parse_scenario(source: str, *, origin: str = "<scenario>") -> Scenario:
    """Parse scenario TOML text.

    Raises:
        ScenarioError: invalid TOML, an unknown key, a wrong type or an unknown placeholder.
    """
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{origin}: invalid TOML: {exc}") from None
    _only(data, {"scenario", "default", "turn", "mcp"}, origin)
    meta = data.get("scenario", {})
    if not isinstance(meta, dict):
        raise ScenarioError(f"{origin}: [scenario] must be a table")
    _only(meta, {"name", "description"}, f"{origin}: [scenario]")
    raw_defaults = data.get("default", {})
    if not isinstance(raw_defaults, dict):
        raise ScenarioError(f"{origin}: [default] must be a table")
    where = f"{origin}: [default]"
    _only(raw_defaults, {"transcript", "reply", "answer", "idle_reply", "denied"}, where)
    base = Defaults()
    defaults = Defaults(
        transcript=_str(raw_defaults, "transcript", where, template=True) or base.transcript,
        reply=_str(raw_defaults, "reply", where, template=True) or base.reply,
        answer=(
            _check_template(raw_defaults["answer"], f"{where}.answer", _PLACEHOLDERS)
            if isinstance(raw_defaults.get("answer"), str)
            else _str(raw_defaults, "answer", where) or base.answer
        ),
        idle_reply=_str(raw_defaults, "idle_reply", where, template=True) or base.idle_reply,
        denied=_str(raw_defaults, "denied", where, template=True) or base.denied,
    )
    turns = data.get("turn", [])
    if not isinstance(turns, list):
        raise ScenarioError(f"{origin}: turn must be an array of tables ([[turn]])")
    servers = data.get("mcp", [])
    if not isinstance(servers, list):
        raise ScenarioError(f"{origin}: mcp must be an array of tables ([[mcp]])")
    return Scenario(
        name=_str(meta, "name", f"{origin}: [scenario]") or Path(origin).stem,
        description=_str(meta, "description", f"{origin}: [scenario]") or "",
        turns=tuple(_turn(t, f"{origin}: turn[{i}]") for i, t in enumerate(turns)),
        defaults=defaults,
        mcp=tuple(_mcp_server(m, f"{origin}: mcp[{i}]") for i, m in enumerate(servers)),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file.

    Raises:
        ScenarioError: the file cannot be read or is not a valid scenario.
    """
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    return parse_scenario(source, origin=str(path))


#: Used when no scenario is given: every turn gets the default transcript and reply.
DEFAULT_SCENARIO: Final = Scenario()
