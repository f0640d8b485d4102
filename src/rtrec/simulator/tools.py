"""Tools: what a session offers the model, who must approve what, and forced calls.

``WEATHER_TOOL`` is the function the fixture scenarios call (src/rtrec/fixtures/scenarios/demo.toml,
weather.toml); clients that want the scripted function call put it in their session's
``tools``, since the simulator only calls functions the session declares.

``Toolbox`` is the normalised view of a session's (or a response's) ``tools``: function
schemas by name, and MCP servers by ``server_label`` with their approval policy.
``example_arguments`` writes the arguments of a call the model is forced to make
(``tool_choice: "required"`` or a named tool) when the scenario scripts none: a fixed
function of the tool's JSON schema, so the same schema always gives the same arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = ["WEATHER_TOOL", "Choice", "McpServerTool", "Toolbox", "example_arguments"]

WEATHER_TOOL: Final[dict[str, Any]] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}


@attrs.frozen
class McpServerTool:
    """An ``{"type": "mcp", ...}`` entry of ``tools``."""

    label: str
    #: ``allowed_tools`` as names (None: every listed tool)
    allowed: tuple[str, ...] | None
    require_approval: Any

    def needs_approval(self, name: str) -> bool:
        """Whether calling tool ``name`` waits for the client's ``mcp_approval_response``.

        ``"never"`` and ``"always"`` say it for every tool; the object form names tools
        under ``never`` / ``always`` (``tool_names``). Anything else, and no setting at all,
        means approval, as the service asks by default before data goes to a remote server.
        """
        policy = self.require_approval
        if policy == "never":
            return False
        if isinstance(policy, Mapping):
            never = policy.get("never")
            if isinstance(never, Mapping) and name in (never.get("tool_names") or ()):
                return False
        return True


def _allowed(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(str(v) for v in value)
    if isinstance(value, Mapping) and isinstance(value.get("tool_names"), Sequence):
        return tuple(str(v) for v in value["tool_names"])
    return None


@attrs.frozen
class Toolbox:
    """The tools the model may call in a response."""

    #: function name -> its ``parameters`` JSON schema, in declaration order
    functions: Mapping[str, Any] = attrs.Factory(dict)
    #: MCP ``server_label`` -> the server's entry
    servers: Mapping[str, McpServerTool] = attrs.Factory(dict)

    @classmethod
    def of(cls, tools: Sequence[Mapping[str, Any]] | None) -> Toolbox:
        """The toolbox of ``tools`` as JSON (the session's echo or a response's override)."""
        functions: dict[str, Any] = {}
        servers: dict[str, McpServerTool] = {}
        for tool in tools or ():
            kind = tool.get("type", "function")
            if kind == "function" and isinstance(tool.get("name"), str):
                functions[tool["name"]] = tool.get("parameters") or {}
            elif kind == "mcp" and isinstance(tool.get("server_label"), str):
                label = tool["server_label"]
                servers[label] = McpServerTool(
                    label, _allowed(tool.get("allowed_tools")), tool.get("require_approval")
                )
        return cls(functions, servers)


@attrs.frozen
class Choice:
    """``tool_choice``, normalised: ``mode`` is ``auto``, ``none``, ``required``,
    ``function`` (``name`` forced) or ``mcp`` (``server`` forced, ``name`` if given)."""

    mode: str = "auto"
    name: str | None = None
    server: str | None = None

    @classmethod
    def of(cls, value: Any) -> Choice:
        """From the JSON of ``tool_choice`` (a string or an object)."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            kind = value.get("type")
            if kind == "function":
                return cls("function", name=value.get("name"))
            if kind == "mcp":
                return cls("mcp", name=value.get("name"), server=value.get("server_label"))
        return cls()

    @property
    def forced(self) -> bool:
        """The model must call a tool in this response."""
        return self.mode in ("required", "function", "mcp")


def _example(schema: Any, name: str, depth: int) -> Any:
    """A value that ``schema`` accepts, chosen the same way every time."""
    if not isinstance(schema, Mapping) or depth > 8:
        return name
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        values = schema.get(key)
        if isinstance(values, Sequence) and not isinstance(values, str) and values:
            return values[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, Sequence) and options:
            return _example(options[0], name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        keys = required if isinstance(required, Sequence) and required else list(properties)
        return {str(k): _example(properties.get(k), str(k), depth + 1) for k in keys}
    if kind == "array":
        low = schema.get("minItems", 1)
        count = max(low if isinstance(low, int) else 1, 1)
        return [_example(schema.get("items"), name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = low if isinstance(low, int | float) and not isinstance(low, bool) else 1
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            value += 1
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return name  # a string (or an untyped value): the property's own name reads best


def example_arguments(schema: Any) -> dict[str, Any]:
    """Arguments a tool with ``schema`` (its ``parameters`` / ``input_schema``) accepts.

    Every required property (all of them when none is marked required) gets its ``const``,
    ``default``, first ``enum`` value or first example; otherwise a string is the
    property's name, a number its ``minimum`` (or 1), a boolean ``true`` and an array one
    such element. Deterministic: the same schema always gives the same arguments.
    """
    value = _example(schema, "value", 0)
    return value if isinstance(value, dict) else {}
