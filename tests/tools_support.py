"""What the tool tests share: declarations, the admin header, OpenAI's function-call sequence."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from relay.tools import Tool

TOOLS = TypeAdapter(list[Tool])
PARAMS = {"type": "object", "properties": {"table": {"type": "integer"}}}
DECLARED: list[dict[str, Any]] = [
    {"kind": "web_search"},
    {
        "kind": "retrieval",
        "description": "Answers questions about the hotel",
        "vector_store_id": "164643690285936640",
        "prompt_template": "从文档{{knowledge}}中找到问题{{query}}的答案。",
    },
    {"kind": "client", "name": "book_table", "description": "Books a table", "parameters": PARAMS},
]
ADMIN = {"Authorization": "Bearer admin-token-0123456789"}


def ga_call(call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    """OpenAI's sequence: the item names the function, the done event does not."""
    item = {"id": f"item_{call_id}", "type": "function_call", "call_id": call_id, "name": name}
    ids = {"call_id": call_id, "item_id": item["id"]}
    return [
        {"type": "response.output_item.added", "item": item},
        {"type": "response.function_call_arguments.delta", "delta": arguments} | ids,
        {"type": "response.function_call_arguments.done", "arguments": arguments} | ids,
        {"type": "response.output_item.done", "item": item | {"arguments": arguments}},
    ]
