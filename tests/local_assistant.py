"""The `assistant` model at a fixed time, and what its tests read from its realtime events."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from datetime import datetime

import numpy as np
import pytest

from localmodel.assistant import AssistantModel
from localmodel.models import MODEL_SPECS
from protocol.audio import PCM_RATE_HZ, SAMPLE_BYTES
from protocol.prosody import analyze_utterance

from .local_backend import Event, RealtimeClient

NOW = datetime(2025, 11, 25, 15, 5)  # a Tuesday, at 3:05 PM


def fix_assistant_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """New `assistant` sessions see NOW as the time."""
    spec = MODEL_SPECS["assistant"]
    fixed = dataclasses.replace(spec, create=lambda: AssistantModel(clock=lambda: NOW))
    monkeypatch.setitem(MODEL_SPECS, "assistant", fixed)


def user_text(text: str) -> Event:
    """conversation.item.create of a typed user message."""
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


async def collect(client: RealtimeClient, *wanted: str, timeout_s: float = 30.0) -> list[Event]:
    """Events until each of `wanted` has arrived (in any order)."""
    events: list[Event] = []
    missing = set(wanted)
    async with asyncio.timeout(timeout_s):
        while missing:
            event = await client.recv(timeout_s)
            events.append(event)
            missing.discard(event["type"])
    return events


def of(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event["type"] == kind]


def one(events: list[Event], kind: str) -> Event:
    found = of(events, kind)
    assert len(found) == 1, f"{len(found)} {kind} events"
    return found[0]


def transcript_of(events: list[Event], kind: str = "response.audio_transcript.delta") -> str:
    return "".join(event["delta"] for event in of(events, kind))


def assert_speech(pcm: bytes, min_s: float = 0.5) -> None:
    assert len(pcm) % SAMPLE_BYTES == 0
    assert len(pcm) / SAMPLE_BYTES / PCM_RATE_HZ > min_s
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    assert np.abs(samples).max() > 3000
    tone = analyze_utterance(pcm)
    assert tone.voiced_s > 0.2 * tone.duration_s and tone.loudness_dbfs > -35


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(name)]
