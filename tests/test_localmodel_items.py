"""Conversation items and client-requested responses of the embedded local backend.

Pins: truncate accepting only audio the user heard, text items created, retrieved and deleted,
and response.create options (modalities in either naming, instructions) checked by field.
"""

from __future__ import annotations

from typing import Any

import pytest

from .local_backend import audio_of, commit, manual_turns, realtime, serve_backend, types
from .speech import tone

pytestmark = pytest.mark.integration

HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}


async def test_truncate_accepts_heard_audio_and_rejects_the_rest() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        await manual_turns(client)
        user_id = (await commit(client, tone(1000, -20.0, 220.0)))[-1]["item"]["id"]
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        item_id = events[-1]["response"]["output"][0]["id"]

        truncated = await client.roundtrip(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 400,
            },
            "conversation.item.truncated",
        )
        assert (truncated["item_id"], truncated["content_index"]) == (item_id, 0)
        assert truncated["audio_end_ms"] == 400
        bad_cases = [
            (item_id, 500, "audio_end_ms"),  # longer than what is left after the cut
            (item_id, -1, "audio_end_ms"),
            ("item_missing", 10, "item_id"),
            (user_id, 10, "item_id"),  # only assistant audio can be truncated
        ]
        for index, (target, end_ms, param) in enumerate(bad_cases):
            event = {
                "type": "conversation.item.truncate",
                "event_id": f"bad-{index}",
                "item_id": target,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
            error = (await client.roundtrip(event, "error"))["error"]
            assert error["type"] == "invalid_request_error"
            assert (error["param"], error["event_id"]) == (param, f"bad-{index}")
        retrieved = await client.roundtrip(
            {"type": "conversation.item.retrieve", "item_id": item_id},
            "conversation.item.retrieved",
        )
    assert retrieved["item"]["content"][0]["transcript"] == ""


async def test_text_item_create_delete_and_text_response() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        created = await client.roundtrip(
            {"type": "conversation.item.create", "item": HELLO}, "conversation.item.created"
        )
        assert created["item"]["content"] == [{"type": "input_text", "text": "hello"}]
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        events = await client.recv_until("response.done")
        item_id = created["item"]["id"]
        deleted = await client.roundtrip(
            {"type": "conversation.item.delete", "item_id": item_id}, "conversation.item.deleted"
        )
        again = await client.roundtrip(
            {"type": "conversation.item.delete", "item_id": item_id}, "error"
        )
    assert "response.text.done" in types(events) and audio_of(events) == b""
    text_done = next(e for e in events if e["type"] == "response.text.done")
    assert text_done["text"] == "(echo) hello"
    assert deleted["item_id"] == item_id
    assert again["error"]["code"] == "item_not_found"


async def test_response_create_takes_ga_output_modalities() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        await client.roundtrip(
            {"type": "conversation.item.create", "item": HELLO}, "conversation.item.created"
        )
        options = {"output_modalities": ["text"], "instructions": "Be brief.", "metadata": {}}
        await client.send({"type": "response.create", "response": options})
        events = await client.recv_until("response.done")
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["modalities"] == ["text"]
    assert "response.text.done" in types(events) and audio_of(events) == b""


@pytest.mark.parametrize(
    ("response", "param"),
    [
        ({"modalities": []}, "response.modalities"),
        ({"modalities": ["video"]}, "response.modalities[0]"),
        ({"output_modalities": "text"}, "response.output_modalities"),
        ({"instructions": None}, "response.instructions"),
        (3, "response"),
    ],
    ids=["empty", "unknown-modality", "not-a-list", "null-instructions", "not-an-object"],
)
async def test_response_create_error_names_the_wrong_option(response: Any, param: str) -> None:
    event = {"type": "response.create", "event_id": "bad", "response": response}
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        error = (await client.roundtrip(event, "error"))["error"]
        # Nothing started: a plain response.create is accepted next.
        await client.send({"type": "response.create"})
        done = (await client.recv_until("response.done"))[-1]["response"]
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", param, "bad")
    assert param in error["message"]
    assert done["status"] == "completed"
