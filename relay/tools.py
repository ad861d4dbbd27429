"""Tools a conversation may call: what an operator declares, their shape per API, and the calls
in flight.

Kinds: `web_search` and `retrieval` are StepFun built-ins (StepFun runs them); `server` tools are
webhooks the relay calls (relay.webhook); `client` tools run on the page. `ToolCalls` is pure
logic like relay.turns: server events and results in, actions out. A call is taken from
`response.function_call_arguments.done` or from `response.output_item.done` with a
`function_call` item, whichever comes first (StepFun may send both); each result goes back as a
`function_call_output` item, and once no call is pending and no response is in flight the model
is asked for the next response.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.events import ClientEvent, Event, ServerEvent

from .actions import SendToModel, SendToPage
from .events import ErrorCode, PageEvent, error_event

logger = logging.getLogger(__name__)

MAX_TOOLS = 16
MAX_PARAMETERS_BYTES = 8 * 1024  # a tool's JSON schema
MAX_ARGUMENT_BYTES = 16 * 1024  # what the model passes to one call
MAX_OUTPUT_BYTES = 16 * 1024  # what goes back to the model for one call
MAX_PENDING_CALLS = 4  # calls of one session running at once; more are answered with an error
MAX_TRACKED = 64  # call ids and names remembered for de-duplication
CLIENT_CALL_TIMEOUT_S = 15.0
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # StepFun's rule for function names [S1]


class _Tool(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebSearchTool(_Tool):
    """StepFun's built-in web search: `{"type": "web_search"}`, run by StepFun."""

    kind: Literal["web_search"]

    @property
    def name(self) -> str:
        return self.kind


class RetrievalTool(_Tool):
    """StepFun's built-in search of a knowledge base (vector store) it hosts."""

    kind: Literal["retrieval"]
    description: str = Field(..., min_length=1, max_length=1000)
    vector_store_id: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,100}$")
    # Placeholders {{knowledge}} and {{query}}; StepFun's default applies when None.
    prompt_template: str | None = Field(None, max_length=2000)

    @property
    def name(self) -> str:
        return self.kind


class _FunctionTool(_Tool):
    name: str = Field(..., pattern=NAME_PATTERN)
    description: str = Field("", max_length=1000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _json_schema_object(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError('parameters must be a JSON schema with "type": "object"')
        if len(json.dumps(schema)) > MAX_PARAMETERS_BYTES:
            raise ValueError(f"parameters exceed {MAX_PARAMETERS_BYTES} bytes of JSON")
        return schema


class ServerTool(_FunctionTool):
    """A webhook: the relay POSTs the arguments to `url` and gives the model the answer."""

    kind: Literal["server"]
    url: str = Field(..., max_length=2000)

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{url!r} is not an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("a webhook URL may not carry a user name or password")
        return url


class ClientTool(_FunctionTool):
    """Run by the page that embeds the conversation (a `tool_call` it must answer)."""

    kind: Literal["client"]


Tool = Annotated[
    WebSearchTool | RetrievalTool | ServerTool | ClientTool, Field(discriminator="kind")
]
FunctionTool = ServerTool | ClientTool
BUILT_IN_KINDS = ("web_search", "retrieval")


def check_tools(tools: Sequence[Tool]) -> None:
    """Raises ValueError unless the list can be declared as a whole."""
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"at most {MAX_TOOLS} tools")
    names = [tool.name for tool in tools if isinstance(tool, FunctionTool)]
    names += {tool.kind for tool in tools if not isinstance(tool, FunctionTool)}
    doubles = sorted({name for name in names if names.count(name) > 1})
    if doubles:
        raise ValueError(f"tool names must be unique: {', '.join(doubles)}")
    if sum(isinstance(tool, WebSearchTool) for tool in tools) > 1:
        raise ValueError("web_search is declared once")


# -- shapes per API ----------------------------------------------------------------------------


def stepfun_tools(tools: Sequence[Tool]) -> list[Event]:
    """StepFun's shapes: nested functions, `{"type": "web_search"}`, retrieval with options
    (API reference realtime/chat and the realtime developer guide, docs/backends.md#tools)."""
    shaped: list[Event] = []
    for tool in tools:
        if isinstance(tool, WebSearchTool):
            shaped.append({"type": "web_search"})
        elif isinstance(tool, RetrievalTool):
            options: Event = {"vector_store_id": tool.vector_store_id}
            if tool.prompt_template is not None:
                options["prompt_template"] = tool.prompt_template
            function = {"description": tool.description, "options": options}
            shaped.append({"type": "retrieval", "function": function})
        else:
            function = {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            }
            shaped.append({"type": "function", "function": function})
    return shaped


def flat_function_tools(tools: Sequence[Tool]) -> list[Event]:
    """OpenAI's flat function shape (GA and beta; the local backend too). Built-ins have no
    equivalent there and are left out (declaring them for such a backend is refused earlier)."""
    return [
        {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
        for tool in tools
        if isinstance(tool, FunctionTool)
    ]


# -- page events -------------------------------------------------------------------------------

ToolStatus = Literal["started", "done", "failed"]


def tool_event(call_id: str, name: str, kind: str, status: ToolStatus) -> PageEvent:
    """Tool activity, for the transcript ("searching the web…", "calling book_table")."""
    return {"type": "tool", "call_id": call_id, "name": name, "kind": kind, "status": status}


def tool_call_event(call_id: str, name: str, arguments: dict[str, Any]) -> PageEvent:
    """A client tool call the page must answer with a `tool_result`."""
    return {"type": "tool_call", "call_id": call_id, "name": name, "arguments": arguments}


def error_output(message: str) -> str:
    """A failed call as the model sees it."""
    return json.dumps({"error": message})


# -- calls in flight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    tool: FunctionTool
    arguments: dict[str, Any]


@dataclass(frozen=True)
class RunTool:
    """Start a server call (webhook) or a client call's deadline; its result comes back through
    `ToolCalls.result`."""

    call: ToolCall


ToolAction = SendToModel | SendToPage | RunTool


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ToolCalls:
    """One session's function calls: taken once each, bounded, answered, then the next response."""

    def __init__(self, tools: Sequence[Tool], label: str = "ToolCalls") -> None:
        self._functions = {t.name: t for t in tools if isinstance(t, FunctionTool)}
        self._built_ins = {t.kind for t in tools if not isinstance(t, FunctionTool)}
        self._label = label
        self._seen: deque[str] = deque(maxlen=MAX_TRACKED)
        self._names: dict[str, str] = {}  # call/item id -> function name (OpenAI's done has none)
        self._pending: dict[str, ToolCall] = {}
        self._built_in_calls: list[tuple[str, str]] = []  # (call id, kind) until response.done
        self._active_response: str | None = None
        self._owed_response = False  # outputs were sent that the model has not answered yet
        self.calls = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def server_event(self, event: Event) -> list[ToolAction]:
        kind = event.get("type")
        if kind == ServerEvent.RESPONSE_CREATED:
            response = event.get("response")
            self._active_response = str(response.get("id")) if isinstance(response, dict) else "?"
            return []
        if kind == ServerEvent.RESPONSE_DONE:
            return self._response_done()
        if kind in (ServerEvent.OUTPUT_ITEM_ADDED, ServerEvent.ITEM_CREATED):
            self._remember_name(event.get("item"))
            return []
        if kind == ServerEvent.FUNCTION_CALL_ARGUMENTS_DELTA:
            call_id, name = _text(event.get("call_id")), _text(event.get("name"))
            if call_id is not None and name is not None:  # StepFun names the call in each delta
                self._name(call_id, name)
            return []
        if kind == ServerEvent.FUNCTION_CALL_ARGUMENTS_DONE:
            name = _text(event.get("name"))
            call_id = _text(event.get("call_id"))
            if name is None:
                name = self._names.get(call_id or "") or self._names.get(
                    _text(event.get("item_id")) or ""
                )
            return self._take(call_id, name, event.get("arguments"))
        if kind == ServerEvent.OUTPUT_ITEM_DONE:
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                return self._take(
                    _text(item.get("call_id")), _text(item.get("name")), item.get("arguments")
                )
        return []

    def _remember_name(self, item: object) -> None:
        if isinstance(item, dict) and item.get("type") == "function_call":
            name = _text(item.get("name"))
            for key in (_text(item.get("call_id")), _text(item.get("id"))):
                if key is not None and name is not None:
                    self._name(key, name)

    def _name(self, key: str, name: str) -> None:
        self._names[key] = name
        while len(self._names) > MAX_TRACKED:
            del self._names[next(iter(self._names))]

    def _take(self, call_id: str | None, name: str | None, arguments: object) -> list[ToolAction]:
        if call_id is None or call_id in self._seen:
            return []
        self._seen.append(call_id)
        if name in self._built_ins and name not in self._functions:
            # StepFun runs its built-ins itself; the page is shown the activity only.
            assert name is not None
            self._built_in_calls.append((call_id, name))
            return [SendToPage(tool_event(call_id, name, name, "started"))]
        tool = self._functions.get(name or "")
        if tool is None:
            return self._refuse(call_id, None, f"no tool named {name!r}")
        if len(self._pending) >= MAX_PENDING_CALLS:
            return self._refuse(call_id, tool, f"more than {MAX_PENDING_CALLS} tool calls at once")
        parsed = _arguments(arguments)
        if isinstance(parsed, str):
            return self._refuse(call_id, tool, parsed)
        call = ToolCall(call_id, tool, parsed)
        self._pending[call_id] = call
        self.calls += 1
        actions: list[ToolAction] = [
            SendToPage(tool_event(call_id, tool.name, tool.kind, "started"))
        ]
        if isinstance(tool, ClientTool):
            actions.append(SendToPage(tool_call_event(call_id, tool.name, parsed)))
        actions.append(RunTool(call))
        return actions

    def _refuse(self, call_id: str, tool: FunctionTool | None, message: str) -> list[ToolAction]:
        """An error result at once; the page sees it for a declared tool only."""
        logger.info("%s refused a tool call: %s", self._label, message)
        self.failures += 1
        self._owed_response = True
        shown = [] if tool is None else [tool_event(call_id, tool.name, tool.kind, "failed")]
        return [
            *(SendToPage(event) for event in shown),
            SendToModel(_output_item(call_id, error_output(message))),
            *self._maybe_ask(),
        ]

    def result(self, call_id: str, output: str | None, error: str | None) -> list[ToolAction]:
        """A pending call's result (`output`, JSON text) or failure; late or unknown: ignored."""
        call = self._pending.pop(call_id, None)
        if call is None:
            return []
        if error is None and output is not None and len(output.encode()) > MAX_OUTPUT_BYTES:
            error = f"the tool's output exceeds {MAX_OUTPUT_BYTES} bytes"
        status: ToolStatus = "done"
        if error is not None or output is None:
            status, output = "failed", error_output(error or "no output")
            self.failures += 1
            logger.info("%s tool %s failed: %s", self._label, call.tool.name, error)
        self._owed_response = True
        return [
            SendToPage(tool_event(call_id, call.tool.name, call.tool.kind, status)),
            SendToModel(_output_item(call_id, output)),
            *self._maybe_ask(),
        ]

    def page_result(self, call_id: str, output: str | None, error: str | None) -> list[ToolAction]:
        """The page's `tool_result`: accepted only for a pending client call of this session."""
        call = self._pending.get(call_id)
        if call is None or not isinstance(call.tool, ClientTool):
            detail = f"no pending client tool call {call_id!r}"
            return [SendToPage(error_event(ErrorCode.INVALID_CLIENT_EVENT, detail))]
        return self.result(call_id, output, error)

    def _response_done(self) -> list[ToolAction]:
        self._active_response = None
        actions: list[ToolAction] = [
            SendToPage(tool_event(call_id, kind, kind, "done"))
            for call_id, kind in self._built_in_calls
        ]
        self._built_in_calls.clear()
        return [*actions, *self._maybe_ask()]

    def _maybe_ask(self) -> list[ToolAction]:
        # One response for all the outputs, once the one that called them has ended
        # (StepFun: only after its speech, or it answers "ongoing response already exists").
        if not self._owed_response or self._pending or self._active_response is not None:
            return []
        self._owed_response = False
        return [SendToModel({"type": ClientEvent.RESPONSE_CREATE})]


def _output_item(call_id: str, output: str) -> Event:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return {"type": ClientEvent.ITEM_CREATE, "item": item}


def _arguments(arguments: object) -> dict[str, Any] | str:
    """The call's arguments as an object, or what is wrong with them."""
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        return "the arguments are not a JSON string"
    if len(arguments.encode()) > MAX_ARGUMENT_BYTES:
        return f"the arguments exceed {MAX_ARGUMENT_BYTES} bytes"
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return "the arguments are not valid JSON"
    if not isinstance(parsed, dict):
        return "the arguments are not a JSON object"
    return parsed
