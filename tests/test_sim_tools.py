"""The simulator's MCP servers, approval flow, forced tool calls and transcription-only
sessions, driven through the sans-IO core (``simkit.Core``): every server event is checked
against the official SDK's model of its type and rtrec's strict schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rtrec.simulator import WEATHER_TOOL, ScenarioError, load_scenario, parse_scenario
from rtrec.simulator.tools import Choice, McpServerTool, Toolbox, example_arguments

from .simkit import SCENARIOS, Core, first, silence, speech, types, user_text

MCP = load_scenario(SCENARIOS / "mcp.toml")


def docs_server(**overrides: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "docs", "server_url": "https://d.example"} | overrides


def mcp_core(**server: Any) -> Core:
    """A GA text session on the MCP scenario with the docs server configured."""
    core = Core("ga", scenario=MCP)
    session = {"type": "realtime", "output_modalities": ["text"], "tools": [docs_server(**server)]}
    core.send({"type": "session.update", "session": session})
    return core


def ask(core: Core, text: str = "What is the weather like in Paris today?") -> list[dict[str, Any]]:
    core.send(user_text(text))
    core.send({"type": "response.create"})
    return core.drain()


def outputs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


# --------------------------------------------------------------------------- listing


def test_a_new_mcp_server_is_listed_once_with_the_scenario_tools() -> None:
    """Adding an MCP tool lists its server (added, in progress, completed, done with the
    tools); an update that keeps it does not list it again."""
    core = Core("ga", scenario=MCP)
    session = {"type": "realtime", "tools": [docs_server(allowed_tools=["search_docs"])]}
    events = core.send({"type": "session.update", "session": session})
    assert types(events) == [
        "session.updated",
        "conversation.item.added",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "conversation.item.done",
    ]
    assert events[1]["item"]["tools"] == []
    listed = events[-1]["item"]
    assert listed["server_label"] == "docs"
    assert [t["name"] for t in listed["tools"]] == ["search_docs"]  # allowed_tools
    again = core.send({"type": "session.update", "session": {"type": "realtime"}})
    assert types(again) == ["session.updated"]


def test_a_listing_the_scenario_fails_fails() -> None:
    """``fail = true`` in ``[[mcp]]``: mcp_list_tools.failed, no tools, and no calls."""
    scenario = parse_scenario(
        '[[mcp]]\nserver_label = "docs"\nfail = true\n'
        '[[turn]]\ntext = "go"\n[[turn.call]]\nserver = "docs"\nname = "x"\noutput = "y"\n'
    )
    core = Core("ga", scenario=scenario)
    session = {"type": "realtime", "output_modalities": ["text"], "tools": [docs_server()]}
    events = core.send({"type": "session.update", "session": session})
    assert "mcp_list_tools.failed" in types(events)
    assert events[-1]["item"]["tools"] == []
    assert [o["type"] for o in outputs(ask(core, "go"))] == ["message"]


def test_beta_sessions_refuse_mcp_tools() -> None:
    """MCP is GA only: a beta session refuses an MCP tool, in the session or a response."""
    core = Core("beta", scenario=MCP)
    (error,) = core.send({"type": "session.update", "session": {"tools": [docs_server()]}})
    assert (error["error"]["param"], error["error"]["message"]) == (
        "session.tools[0].type",
        "Invalid value: 'mcp'. Supported values are: 'function'.",
    )
    (error,) = core.send({"type": "response.create", "response": {"tools": [docs_server()]}})
    assert error["error"]["param"] == "response.tools[0].type"


# --------------------------------------------------------------------------- calls


def test_a_call_without_approval_runs_in_the_response() -> None:
    """``require_approval: "never"``: the preamble, the mcp_call (argument deltas, done, in
    progress, completed, its output in the item) and the answer, in one response."""
    events = ask(mcp_core(require_approval="never"))
    preamble, call, answer = outputs(events)
    assert preamble["content"][0]["text"] == "Let me search the docs."
    assert call["type"] == "mcp_call"
    assert call["output"].startswith("The docs have no weather")
    assert call["error"] is None
    assert call["approval_request_id"] is None
    assert answer["content"][0]["text"] == f"The docs say: {call['output']}"
    mine = [e["type"] for e in events if e.get("item_id") == call["id"]]
    assert mine[0] == "response.mcp_call_arguments.delta"
    assert mine[-3:] == [
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
    ]
    done = first(events, "response.done")["response"]
    assert [o["id"] for o in done["output"]] == [preamble["id"], call["id"], answer["id"]]


def test_a_failed_call_carries_the_scenario_error() -> None:
    """A scripted ``error``: response.mcp_call.failed and a tool_execution_error item."""
    events = ask(mcp_core(require_approval="never"), "Look up the changelog")
    call = next(o for o in outputs(events) if o["type"] == "mcp_call")
    assert call["output"] is None
    assert call["error"] == {
        "type": "tool_execution_error",
        "message": "The changelog server timed out.",
    }
    assert "response.mcp_call.failed" in types(events)


def test_a_denied_request_is_declined_in_words() -> None:
    """The default policy asks; a refusal makes the next response say ``[default].denied``
    and run nothing, and the same request cannot be answered twice."""
    core = mcp_core()
    request = outputs(ask(core))[-1]
    assert request["type"] == "mcp_approval_request"
    answer = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": False,
    }
    core.send({"type": "conversation.item.create", "item": answer})
    core.send({"type": "response.create"})
    (said,) = outputs(core.drain())
    assert said["content"][0]["text"] == MCP.defaults.denied
    again = core.send({"type": "conversation.item.create", "item": answer})
    assert again[0]["error"]["param"] == "item.approval_request_id"


def test_an_approval_response_needs_approve() -> None:
    """``approve`` is required; nothing is stored without it."""
    core = mcp_core()
    request = outputs(ask(core))[-1]
    item = {"type": "mcp_approval_response", "approval_request_id": request["id"]}
    (error,) = core.send({"type": "conversation.item.create", "item": item})
    assert (error["error"]["code"], error["error"]["param"]) == (
        "missing_required_parameter",
        "item.approve",
    )


def test_beta_refuses_mcp_items() -> None:
    """A beta client cannot create an MCP item: invalid_value naming the beta item types."""
    core = Core("beta")
    item = {"type": "mcp_approval_response", "approval_request_id": "x", "approve": True}
    (error,) = core.send({"type": "conversation.item.create", "item": item})
    assert error["error"]["param"] == "item.type"
    assert "'mcp_approval_response'" in error["error"]["message"]
    assert "'function_call_output'" in error["error"]["message"]


# --------------------------------------------------------------------------- tool_choice


def text_core(protocol: str = "ga", **session: Any) -> Core:
    core = Core(protocol)
    key = "output_modalities" if protocol == "ga" else "modalities"
    body = {key: ["text"], **session} | ({"type": "realtime"} if protocol == "ga" else {})
    core.send({"type": "session.update", "session": body})
    return core


SCHEMA_TOOL = {
    "type": "function",
    "name": "book",
    "parameters": {
        "type": "object",
        "properties": {
            "room": {"type": "string", "enum": ["blue", "red"]},
            "people": {"type": "integer", "minimum": 2},
            "notes": {"type": "string"},
        },
        "required": ["room", "people"],
    },
}


@pytest.mark.parametrize("protocol", ["ga", "beta"])
def test_a_named_function_is_called_with_arguments_from_its_schema(protocol: str) -> None:
    """``tool_choice: {"type": "function", "name"}`` calls that function, even when the
    session lists others first; the arguments satisfy its schema's required properties."""
    core = text_core(protocol, tools=[WEATHER_TOOL, SCHEMA_TOOL])
    choice = {"type": "function", "name": "book"}
    core.send({"type": "response.create", "response": {"tool_choice": choice}})
    (call,) = outputs(core.drain())
    assert call["name"] == "book"
    assert orjson.loads(call["arguments"]) == {"room": "blue", "people": 2}


def test_required_in_the_session_forces_every_response() -> None:
    """``tool_choice: "required"`` in the session: the answer to a function output calls
    again, as the service would; ``"none"`` on a response calls nothing."""
    core = text_core(tools=[WEATHER_TOOL], tool_choice="required")
    call = outputs(ask(core, "hi"))[-1]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "{}"}
    core.send({"type": "conversation.item.create", "item": output})
    core.send({"type": "response.create"})
    assert [o["type"] for o in outputs(core.drain())] == ["message", "function_call"]
    core.send({"type": "response.create", "response": {"tool_choice": "none"}})
    assert [o["type"] for o in outputs(core.drain())] == ["message"]


def test_a_named_mcp_tool_is_forced_too() -> None:
    """``tool_choice: {"type": "mcp", "server_label", "name"}`` with no scripted call runs
    that listed tool with arguments from its input schema."""
    core = mcp_core(require_approval="never")
    choice = {"type": "mcp", "server_label": "docs", "name": "search_docs"}
    core.send({"type": "response.create", "response": {"tool_choice": choice}})
    call = next(o for o in outputs(core.drain()) if o["type"] == "mcp_call")
    assert (call["name"], orjson.loads(call["arguments"])) == ("search_docs", {"query": "query"})


def test_example_arguments_are_a_fixed_function_of_the_schema() -> None:
    """const, default, enum and examples win; types give a name, a minimum, true, one
    element; every property counts when none is required; nested objects too."""
    schema = {
        "type": "object",
        "properties": {
            "a": {"const": 7},
            "b": {"type": "string", "default": "x"},
            "c": {"type": ["null", "number"], "exclusiveMinimum": 0.5},
            "d": {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
            "e": {"type": "object", "properties": {"f": {"examples": ["g"]}}},
            "h": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    }
    expected = {"a": 7, "b": "x", "c": 1.5, "d": [True, True], "e": {"f": "g"}, "h": 1}
    assert example_arguments(schema) == expected
    assert example_arguments(schema) == example_arguments(schema)
    assert example_arguments(None) == {}


def test_approval_policy_and_choice_parsing() -> None:
    """``require_approval``: never, always, per tool under ``never``; default asks."""
    assert not McpServerTool("s", None, "never").needs_approval("t")
    assert McpServerTool("s", None, "always").needs_approval("t")
    assert McpServerTool("s", None, None).needs_approval("t")
    per_tool = McpServerTool("s", None, {"never": {"tool_names": ["t"]}})
    assert (per_tool.needs_approval("t"), per_tool.needs_approval("u")) == (False, True)
    assert Choice.of({"type": "mcp", "server_label": "s"}) == Choice("mcp", None, "s")
    box = Toolbox.of([WEATHER_TOOL, docs_server(allowed_tools={"tool_names": ["a"]})])
    assert list(box.functions) == ["get_weather"]
    assert box.servers["docs"].allowed == ("a",)


def test_scenario_mcp_keys_are_checked() -> None:
    """An MCP output on a function call, or an output and an error together, is refused."""
    with pytest.raises(ScenarioError, match="add server"):
        parse_scenario('[[turn]]\n[[turn.call]]\nname = "x"\noutput = "y"\n')
    with pytest.raises(ScenarioError, match="not both"):
        parse_scenario(
            '[[turn]]\n[[turn.call]]\nserver = "s"\nname = "x"\noutput = "y"\nerror = "z"\n'
        )
    with pytest.raises(ScenarioError, match="server_label: required"):
        parse_scenario("[[mcp]]\n")


# --------------------------------------------------------------------------- transcription


VAD = {"type": "server_vad", "silence_duration_ms": 500}


def test_a_ga_session_becomes_a_transcription_session_before_it_starts() -> None:
    """A GA ``session.update`` of type ``transcription`` turns a fresh realtime session into
    a transcription session; once it has items, it is refused."""
    core = Core("ga")
    update = {"type": "session.update", "session": {"type": "transcription"}}
    (updated,) = core.send(update)
    assert updated["session"]["object"] == "realtime.transcription_session"
    late = Core("ga")
    late.send(user_text("hi"))
    (error,) = late.send(update)
    assert error["error"]["param"] == "session.type"


def test_transcription_sessions_refuse_realtime_fields_and_events() -> None:
    """A transcription session's update takes input settings only (``audio.output``,
    ``instructions``: unknown_parameter; type ``realtime``: invalid_value); the beta
    session refuses ``session.update``."""
    core = Core("ga", intent="transcription")
    bad = [
        {"type": "transcription", "audio": {"output": {"voice": "ash"}}},
        {"type": "transcription", "instructions": "x"},
        {"type": "realtime"},
    ]
    codes = [core.send({"type": "session.update", "session": s})[0]["error"] for s in bad]
    assert [(e["code"], e["param"]) for e in codes] == [
        ("unknown_parameter", "session.audio.output"),
        ("unknown_parameter", "session.instructions"),
        ("invalid_value", "session.type"),
    ]
    beta = Core("beta", intent="transcription")
    (error,) = beta.send({"type": "session.update", "session": {}})
    assert "transcription_session.update" in error["error"]["message"]
    realtime = Core("beta")
    (error,) = realtime.send({"type": "transcription_session.update", "session": {}})
    assert error["error"]["param"] == "type"


def test_a_transcription_session_transcribes_and_never_answers() -> None:
    """Speech in a transcription session: committed, announced, transcribed (streamed
    deltas, tokens usage); no response, no rate limits."""
    core = Core("ga", intent="transcription")
    session = {"type": "transcription", "audio": {"input": {"turn_detection": VAD}}}
    core.send({"type": "session.update", "session": session})
    core.stream(speech("hello") + silence(1000))
    core.drain()
    kinds = types(core.log)
    assert kinds.count("conversation.item.input_audio_transcription.completed") == 1
    assert kinds.count("conversation.item.input_audio_transcription.delta") > 1
    assert not [k for k in kinds if k.startswith(("response.", "rate_limits"))]
    completed = first(core.log, "conversation.item.input_audio_transcription.completed")
    assert completed["usage"]["type"] == "tokens"
