"""session.created and session.update of the embedded local backend, over a real WebSocket.

Pins: the session it starts with; partial updates in the beta and StepFun shapes; the GA naming
taking over after a GA session.update; and that a wrong field gets an `error` whose `param` is
its dotted path, with nothing of the update applied.
"""

from __future__ import annotations

from typing import Any

import pytest

from .local_backend import (
    DELTA_TYPES,
    audio_of,
    commit,
    manual_turns,
    realtime,
    serve_backend,
    types,
)
from .speech import tone

pytestmark = pytest.mark.integration


async def test_session_created_describes_pcm16_server_vad() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        session = client.session["session"]
    assert session["object"] == "realtime.session" and session["id"]
    assert session["model"] == "echo"
    assert session["modalities"] == ["text", "audio"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    assert isinstance(session["instructions"], str) and isinstance(session["voice"], str)
    detection = session["turn_detection"]
    assert detection["type"] == "server_vad"
    assert (detection["prefix_padding_ms"], detection["silence_duration_ms"]) == (300, 500)
    assert detection["threshold"] == 0.5


async def test_ga_session_update_switches_event_names() -> None:
    ga_session = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
    }
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        updated = await client.roundtrip(
            {"type": "session.update", "session": ga_session}, "session.updated"
        )
        session = updated["session"]
        assert session["type"] == "realtime" and session["audio"]["output"]["voice"] == "marin"
        assert session["audio"]["input"]["turn_detection"] is None
        await client.append(tone(500, -20.0, 220.0))
        await client.send({"type": "input_audio_buffer.commit"})
        committed = await client.recv_until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        flat = await client.roundtrip(
            {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}}, "error"
        )
        assert flat["error"]["param"] == "session.voice"
        bad_rate = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
        error = (await client.roundtrip({"type": "session.update", "session": bad_rate}, "error"))[
            "error"
        ]

    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert types(events) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    delta_types = {e["type"] for e in events if e["type"] in DELTA_TYPES}
    assert delta_types == {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    assert audio_of(events, "response.output_audio.delta") == tone(500, -20.0, 220.0)
    assert events[-1]["response"]["output"][0]["content"][0]["type"] == "output_audio"
    assert error["param"] == "session.audio.input.format.rate"


async def test_session_update_merges_partial_updates() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        first = await client.roundtrip(
            {"type": "session.update", "session": {"instructions": "Be brief."}},
            "session.updated",
        )
        assert first["session"]["turn_detection"] == client.session["session"]["turn_detection"]
        second = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": {"threshold": 0.7}}},
            "session.updated",
        )
        stepfun = await client.roundtrip(
            {
                "type": "session.update",
                "session": {"turn_detection": {"energy_awakeness_threshold": 1000}},
            },
            "session.updated",
        )
        bad_format = await client.roundtrip(
            {"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}}, "error"
        )
        bad_threshold = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": {"threshold": 2}}}, "error"
        )
    session = second["session"]
    assert session["instructions"] == "Be brief."
    assert session["turn_detection"]["threshold"] == 0.7
    assert session["turn_detection"]["prefix_padding_ms"] == 300
    assert stepfun["session"]["turn_detection"]["threshold"] == pytest.approx(0.2)
    assert bad_format["error"]["param"] == "session.input_audio_format"
    assert bad_threshold["error"]["param"] == "session.turn_detection.threshold"


async def test_ga_session_update_takes_voice_objects_and_ignores_unused_fields() -> None:
    ga_session = {
        "type": "realtime",
        "output_modalities": ["text"],
        "max_output_tokens": 200,
        "tracing": "auto",
        "audio": {
            "input": {"noise_reduction": {"type": "near_field"}, "transcription": {"model": "x"}},
            "output": {"voice": {"id": "cedar"}, "speed": 1.2},
        },
    }
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        updated = await client.roundtrip(
            {"type": "session.update", "session": ga_session}, "session.updated"
        )
    session = updated["session"]
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["output_modalities"] == ["text"] and session["max_output_tokens"] == 200
    assert session["audio"]["input"]["transcription"] == {"model": "x"}
    # Turn detection is untouched by an update that does not name it.
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500


@pytest.mark.parametrize(
    ("session", "code", "param", "words"),
    [
        (
            {"turn_detection": {"silence_duration_ms": 20_000}},
            "invalid_value",
            "session.turn_detection.silence_duration_ms",
            "less than or equal to 10000",
        ),
        (
            {"turn_detection": {"type": "semantic_vad"}},
            "invalid_value",
            "session.turn_detection.type",
            "'server_vad'",
        ),
        (
            {"turn_detection": {"create_response": 1}},
            "invalid_value",
            "session.turn_detection.create_response",
            "boolean",
        ),
        ({"temperature": True}, "invalid_value", "session.temperature", "number"),
        ({"modalities": ["audio"]}, "invalid_value", "session.modalities", "['text']"),
        (
            {"max_response_output_tokens": 0},
            "invalid_value",
            "session.max_response_output_tokens",
            "'inf'",
        ),
        ({"tools": [1]}, "invalid_value", "session.tools[0]", "object"),
        ({"voice": None}, "invalid_value", "session.voice", "string"),
        (
            {"type": "realtime", "temperature": 0.8},
            "unknown_parameter",
            "session.temperature",
            "session.audio",
        ),
        (
            {"type": "realtime", "output_modalities": ["text", "audio"]},
            "invalid_value",
            "session.output_modalities",
            "at most 1",
        ),
        (
            {"audio": {"output": {"format": {"type": "audio/pcmu"}}}},
            "invalid_value",
            "session.audio.output.format.type",
            "'audio/pcm'",
        ),
        (
            {"audio": {"input": {"turn_detection": {"threshold": -0.5}}}},
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
            "greater than or equal to 0",
        ),
        (None, "missing_required_parameter", "session", "Missing"),
    ],
    ids=[
        "vad-ms",
        "vad-type",
        "vad-bool",
        "temperature-bool",
        "audio-only",
        "tokens",
        "tools",
        "voice-null",
        "ga-beta-field",
        "ga-modalities",
        "ga-format",
        "ga-vad",
        "no-session",
    ],
)
async def test_session_update_error_names_the_wrong_field_and_changes_nothing(
    session: dict[str, Any] | None, code: str, param: str, words: str
) -> None:
    event: dict[str, Any] = {"type": "session.update", "event_id": "bad"}
    if session is not None:
        # A valid field beside the wrong one must not be applied either.
        event["session"] = {**session, "instructions": "changed"}
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        error = (await client.roundtrip(event, "error"))["error"]
        after = await client.roundtrip({"type": "session.update", "session": {}}, "session.updated")
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert error["event_id"] == "bad"
    assert param in error["message"] and words in error["message"]
    assert after["type"] == "session.updated"
    assert after["session"]["instructions"] == client.session["session"]["instructions"]
    assert after["session"]["turn_detection"] == client.session["session"]["turn_detection"]


async def test_voice_is_fixed_once_the_model_has_spoken() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        before = await client.roundtrip(
            {"type": "session.update", "session": {"voice": "alloy"}}, "session.updated"
        )
        await manual_turns(client)
        await commit(client, tone(300, -20.0, 220.0))
        await client.send({"type": "response.create"})
        await client.recv_until("response.done")
        error = await client.roundtrip(
            {"type": "session.update", "session": {"voice": "marin"}}, "error"
        )
        same = await client.roundtrip(
            {"type": "session.update", "session": {"voice": "alloy"}}, "session.updated"
        )
    assert before["session"]["voice"] == "alloy"
    assert (error["error"]["code"], error["error"]["param"]) == ("invalid_value", "session.voice")
    assert same["session"]["voice"] == "alloy"
