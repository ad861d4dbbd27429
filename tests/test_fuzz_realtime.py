"""Generated input for /v1/realtime, against `voice-relay serve` in a child process.

Hypothesis sends each example's frames (text, binary, JSON of any shape, and the client events
the server knows with fields of random shapes) on a new connection, then a probe event. Pins:
every frame that cannot be an event gets an `error`; no error is the server's own
(`server_error`); the probe is answered, so the connection survives; the health check answers;
and the server logs no error or traceback.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from benchmarks.fleet import ROOT, child_env, free_port
from protocol.events import ClientEvent

pytestmark = pytest.mark.integration

Frame = str | bytes
# Sent after each example's frames: its answer is an error naming it, so it marks the end of
# the answers to what came before (generated ids are shorter than its id).
PROBE_ID = "end-of-example-probe"
PROBE = {"type": "conversation.item.retrieve", "item_id": PROBE_ID, "event_id": PROBE_ID}
ANSWER_TIMEOUT_S = 10.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def objects(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects with some of `keys`, each with a value drawn from `values`."""
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


base64_audio = st.binary(max_size=4800).map(lambda pcm: base64.b64encode(pcm).decode())
audio = base64_audio | st.text(max_size=64) | json_values
ids = st.text(max_size=12) | json_values
content_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "text", "input_audio", "output_text", "audio"])},
    optional={"text": st.text(max_size=32) | json_values, "audio": audio, "transcript": ids},
)
item = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "type": st.sampled_from(["message", "function_call_output", "function_call"]) | ids,
        "role": st.sampled_from(["user", "assistant", "system"]) | ids,
        "content": st.lists(content_part | json_values, max_size=3) | json_values,
        "call_id": ids,
        "output": ids,
    },
)
vad_keys = ["type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response"]
turn_detection = st.none() | objects(vad_keys, json_values | st.floats(-1, 20_000))
session_keys = [
    "type", "modalities", "output_modalities", "instructions", "voice", "input_audio_format",
    "output_audio_format", "input_audio_transcription", "temperature", "tools", "audio",
]  # fmt: skip
session = objects(session_keys, json_values) | st.fixed_dictionaries(
    {}, optional={"turn_detection": turn_detection, "type": st.just("realtime")}
)
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    ClientEvent.SESSION_UPDATE: {"session": session | json_values},
    ClientEvent.INPUT_AUDIO_APPEND: {"audio": audio},
    ClientEvent.INPUT_AUDIO_COMMIT: {},
    ClientEvent.INPUT_AUDIO_CLEAR: {},
    ClientEvent.ITEM_CREATE: {"item": item | json_values, "previous_item_id": ids},
    ClientEvent.ITEM_RETRIEVE: {"item_id": ids},
    ClientEvent.ITEM_TRUNCATE: {
        "item_id": ids,
        "content_index": json_values,
        "audio_end_ms": json_values,
    },
    ClientEvent.ITEM_DELETE: {"item_id": ids},
    ClientEvent.RESPONSE_CREATE: {
        "response": objects(["instructions", "modalities"], ids) | json_values
    },
    ClientEvent.RESPONSE_CANCEL: {"response_id": ids},
}
known_events = st.one_of(
    *(
        st.fixed_dictionaries({"type": st.just(str(kind))}, optional={**fields, "event_id": ids})
        for kind, fields in FIELDS.items()
    )
).map(json.dumps)
frames = st.one_of(
    known_events,
    st.binary(max_size=256),
    st.text(max_size=64),
    json_values.map(json.dumps),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(json.dumps),
)


def cannot_be_an_event(frame: Frame) -> bool:
    """Whether the server must refuse `frame` whatever state the session is in."""
    if isinstance(frame, bytes):
        return True
    try:
        event = json.loads(frame)
    except ValueError:
        return True
    return not isinstance(event, dict) or event.get("type") not in set(ClientEvent)


@dataclass
class Served:
    url: str
    log: Path
    http: httpx.Client

    def healthy(self) -> bool:
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def log_size(self) -> int:
        return self.log.stat().st_size

    def problems_since(self, offset: int) -> list[str]:
        """What the server logged as an error, or a traceback, after `offset`."""
        with self.log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        return [line for line in lines if "Traceback" in line or "ERROR" in line]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="voice-relay-fuzz-") as data:
        log = Path(data) / "server.log"
        env = child_env(
            VOICE_RELAY_BACKEND="local", VOICE_RELAY_MODEL="echo", VOICE_RELAY_DATA_DIR=data
        )
        cmd = [sys.executable, "-m", "web.cli", "serve", "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=2) as http:
                server = Served(url, log, http)
                deadline = time.monotonic() + 60
                while not server.healthy():
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
                yield server
        finally:
            process.terminate()
            process.wait(10)


def is_probe_answer(event: dict[str, Any]) -> bool:
    return event["type"] == "error" and bool(event["error"].get("event_id") == PROBE_ID)


def answers_until_probe(ws: ClientConnection) -> list[dict[str, Any]]:
    """The server's events up to the probe's answer, which is left out."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while True:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert isinstance(message, str), "the server sends text frames only"
        event = json.loads(message)
        assert isinstance(event, dict) and isinstance(event.get("type"), str), event
        if is_probe_answer(event):
            return events
        events.append(event)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(model=st.sampled_from(["echo", "loopback"]), sent=st.lists(frames, min_size=1, max_size=6))
def test_generated_input_gets_errors_and_the_endpoint_stays_usable(
    served: Served, model: str, sent: list[Frame]
) -> None:
    logged = served.log_size()
    ws_url = served.url.replace("http", "ws", 1) + f"/v1/realtime?model={model}"
    events: list[dict[str, Any]] = []
    dropped = None
    try:
        with connect(ws_url, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
            for frame in sent:
                ws.send(frame)
            ws.send(json.dumps(PROBE))
            events = answers_until_probe(ws)
    except ConnectionClosed as exc:  # wherever it shows (send or recv), one failure
        dropped = str(exc)
    assert dropped is None, f"the server dropped the connection ({dropped}) after {sent!r}"
    errors = [event["error"] for event in events if event["type"] == "error"]
    for error in errors:
        assert error["type"] == "invalid_request_error", error
        assert isinstance(error["code"], str) and error["message"], error
    refusable = [frame for frame in sent if cannot_be_an_event(frame)]
    assert len(errors) >= len(refusable), f"{refusable!r} got only {errors!r}"
    assert served.healthy()
    problems = served.problems_since(logged)
    assert not problems, "\n".join(problems)
