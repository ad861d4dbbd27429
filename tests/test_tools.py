"""Tools: declarations and their shape per API, and the calls in flight (pure logic).

Pins: StepFun's web_search, retrieval and nested function shapes and OpenAI GA's flat function
shape in session.update; a function call is taken once from either the arguments' done event or
the output item (beta and GA sequences), bounded (arguments, pending calls, output), answered
with a function_call_output and one response.create after the calling response; page
`tool_result` messages parsed. Through the whole app: tests/test_tools_app.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from relay.actions import SendToModel, SendToPage
from relay.errors import PolicyViolation
from relay.policy import ToolResult, parse_page_message
from relay.tools import (
    MAX_ARGUMENT_BYTES,
    MAX_PENDING_CALLS,
    RunTool,
    ToolCalls,
    check_tools,
    flat_function_tools,
    stepfun_tools,
)

from .conftest import live_app
from .media import ClientPeer
from .realtime_server import recording_server
from .tools_support import DECLARED, PARAMS, TOOLS, ga_call

# -- declarations and shapes ------------------------------------------------------------------


def test_stepfun_shapes_as_its_api_reference_gives_them() -> None:
    assert stepfun_tools(TOOLS.validate_python(DECLARED)) == [
        {"type": "web_search"},
        {
            "type": "retrieval",
            "function": {
                "description": "Answers questions about the hotel",
                "options": {
                    "vector_store_id": "164643690285936640",
                    "prompt_template": "从文档{{knowledge}}中找到问题{{query}}的答案。",
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "book_table",
                "description": "Books a table",
                "parameters": PARAMS,
            },
        },
    ]


def test_openai_flat_function_shape_leaves_out_stepfun_built_ins() -> None:
    assert flat_function_tools(TOOLS.validate_python(DECLARED)) == [
        {
            "type": "function",
            "name": "book_table",
            "description": "Books a table",
            "parameters": PARAMS,
        }
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "client", "name": "has space"},
        {"kind": "client", "name": "x", "parameters": {"type": "string"}},
        {"kind": "server", "name": "x", "url": "http://hooks.example.org/x"},
        {"kind": "server", "name": "x", "url": "https://user:pw@hooks.example.org/x"},
        {"kind": "retrieval", "description": "kb"},  # no vector_store_id
        {"kind": "shell", "name": "x"},
        {"kind": "web_search", "extra": 1},
    ],
)
def test_bad_declarations_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TOOLS.validate_python([bad])


def test_names_are_unique() -> None:
    twice = TOOLS.validate_python([DECLARED[2], DECLARED[2]])
    with pytest.raises(ValueError, match="unique: book_table"):
        check_tools(twice)


# -- calls in flight (pure logic) -------------------------------------------------------------


def calls(*tools: dict[str, Any]) -> ToolCalls:
    return ToolCalls(TOOLS.validate_python(list(tools) or DECLARED))


def to_model(actions: list[Any]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, SendToModel)]


def to_page(actions: list[Any]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, SendToPage)]


def feed(tools: ToolCalls, events: list[dict[str, Any]]) -> list[Any]:
    return [action for event in events for action in tools.server_event(event)]


def test_a_call_is_taken_once_and_answered_after_its_response() -> None:
    tools = calls()
    actions = feed(tools, [{"type": "response.created", "response": {"id": "r1"}}])
    actions += feed(tools, ga_call("c1", "book_table", '{"table": 4}'))
    runs = [a for a in actions if isinstance(a, RunTool)]
    assert [(r.call.call_id, r.call.arguments) for r in runs] == [("c1", {"table": 4})]
    assert to_page(actions) == [
        {
            "type": "tool",
            "call_id": "c1",
            "name": "book_table",
            "kind": "client",
            "status": "started",
        },
        {"type": "tool_call", "call_id": "c1", "name": "book_table", "arguments": {"table": 4}},
    ]
    answered = tools.result("c1", '{"booked": true}', None)
    output = {"type": "function_call_output", "call_id": "c1", "output": '{"booked": true}'}
    # The calling response is still in flight: no response.create yet.
    assert to_model(answered) == [{"type": "conversation.item.create", "item": output}]
    done = tools.server_event({"type": "response.done", "response": {"id": "r1"}})
    assert to_model(done) == [{"type": "response.create"}]
    assert tools.result("c1", "{}", None) == []  # a late second answer changes nothing


def test_unknown_tools_and_bad_arguments_get_error_results() -> None:
    tools = calls()
    unknown = feed(tools, ga_call("c1", "launch_rockets", "{}"))
    huge = feed(tools, ga_call("c2", "book_table", json.dumps({"x": "y" * MAX_ARGUMENT_BYTES})))
    not_object = feed(tools, ga_call("c3", "book_table", "[1, 2]"))
    for actions, words in (
        (unknown, "no tool named 'launch_rockets'"),
        (huge, f"exceed {MAX_ARGUMENT_BYTES} bytes"),
        (not_object, "not a JSON object"),
    ):
        assert not [a for a in actions if isinstance(a, RunTool)]
        item = to_model(actions)[0]["item"]
        assert words in json.loads(item["output"])["error"]
    assert to_page(unknown) == []  # the page is told about declared tools only
    assert [e["status"] for e in to_page(huge) + to_page(not_object)] == ["failed", "failed"]
    assert tools.failures == 3


def test_pending_calls_are_bounded_and_one_response_answers_them_all() -> None:
    tools = calls()
    for n in range(MAX_PENDING_CALLS + 1):
        feed(tools, ga_call(f"c{n}", "book_table", "{}"))
    assert tools.pending == MAX_PENDING_CALLS
    asked = []
    for n in range(MAX_PENDING_CALLS):
        asked += to_model(tools.result(f"c{n}", "{}", None))
    assert [e["type"] for e in asked].count("response.create") == 1
    assert asked[-1] == {"type": "response.create"}  # after the last output


def test_stepfun_built_in_activity_is_shown_and_not_answered() -> None:
    tools = calls()
    actions = feed(tools, [{"type": "response.created", "response": {"id": "r1"}}])
    actions += feed(tools, ga_call("s1", "web_search", '{"query": "weather"}'))
    actions += tools.server_event({"type": "response.done", "response": {"id": "r1"}})
    assert to_model(actions) == []
    assert [e["status"] for e in to_page(actions)] == ["started", "done"]
    assert to_page(actions)[0]["kind"] == "web_search"


def test_page_answers_only_its_own_pending_client_calls() -> None:
    server = {"kind": "server", "name": "lookup", "url": "https://hooks.example.org/x"}
    tools = calls(DECLARED[2], server)
    feed(tools, ga_call("c1", "lookup", "{}"))
    for call_id in ("c1", "nope"):
        [error] = tools.page_result(call_id, "{}", None)
        assert isinstance(error, SendToPage) and error.event["code"] == "invalid_client_event"
    assert tools.pending == 1


def test_page_tool_result_messages() -> None:
    ok = parse_page_message(json.dumps({"type": "tool_result", "call_id": "c", "output": {"a": 1}}))
    text = parse_page_message(json.dumps({"type": "tool_result", "call_id": "c", "output": "hi"}))
    failed = parse_page_message(json.dumps({"type": "tool_result", "call_id": "c", "error": "no"}))
    assert ok == ToolResult("c", '{"a": 1}', None)
    assert text == ToolResult("c", "hi", None)
    assert failed == ToolResult("c", None, "no")
    for bad in (
        {"type": "tool_result", "output": 1},
        {"type": "tool_result", "call_id": "c"},
        {"type": "tool_result", "call_id": "c", "output": 1, "error": "x"},
        {"type": "tool_result", "call_id": "c", "error": 5},
    ):
        with pytest.raises(PolicyViolation):
            parse_page_message(json.dumps(bad))


# -- through the app: session.update shapes, locked link tools, client tools on the page ------


async def test_stepfun_session_update_carries_web_search_retrieval_and_functions() -> None:
    async with (
        recording_server("stepfun") as backend,
        live_app(
            backend="stepfun", backend_url=backend.url, tools=DECLARED, stepfun_api_key="sk-t"
        ) as live,
        live.http() as http,
    ):
        client = ClientPeer()
        await client.connect(http)
        update = await backend.wait_for("session.update")
        await client.close()
    assert update["session"]["tools"] == stepfun_tools(TOOLS.validate_python(DECLARED))
    assert update["session"]["tools"][0] == {"type": "web_search"}


def test_built_ins_need_stepfun() -> None:
    from web.settings import Settings

    with pytest.raises(ValueError, match="need backend stepfun"):
        Settings(_env_file=None, backend="openai", openai_api_key="sk-t", tools=DECLARED[:1])  # type: ignore[call-arg]
