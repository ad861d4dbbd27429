"""The embedded offline backend: local models behind the realtime protocol."""

from __future__ import annotations

from .channel import MessageChannel
from .models import MODEL_SPECS, UnknownModelError
from .server import serve_realtime

LOCAL_MODELS: tuple[str, ...] = tuple(MODEL_SPECS)

__all__ = ["LOCAL_MODELS", "MessageChannel", "UnknownModelError", "serve_realtime"]
