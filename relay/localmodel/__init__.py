"""The embedded offline backend: local models behind the realtime protocol."""

from __future__ import annotations

from .channel import MessageChannel
from .models import MODEL_SPECS, UnknownModelError, preload_model
from .server import serve_realtime

LOCAL_MODELS: tuple[str, ...] = tuple(MODEL_SPECS)

__all__ = ["LOCAL_MODELS", "MessageChannel", "UnknownModelError", "preload_model", "serve_realtime"]
