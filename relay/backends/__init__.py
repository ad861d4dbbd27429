"""Realtime model backends: one WebSocket client, one module per dialect."""

from __future__ import annotations

from .client import RealtimeClient
from .dialect import BackendConfig, Dialect
from .local import LocalDialect
from .openai import OpenAIDialect
from .stepfun import StepFunDialect

DIALECTS: dict[str, Dialect] = {
    "local": LocalDialect(),
    "stepfun": StepFunDialect(),
    "openai": OpenAIDialect(),
}


def dialect_for(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown backend dialect {name!r}") from None


__all__ = ["DIALECTS", "BackendConfig", "Dialect", "RealtimeClient", "dialect_for"]
