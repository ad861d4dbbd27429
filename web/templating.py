"""Jinja2 templates and the configuration a page receives (never a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from .settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "static"
TEMPLATES_DIR = ROOT / "templates"
ICE_GATHER_TIMEOUT_MS = 2000

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def page_config(settings: Settings) -> dict[str, Any]:
    """What the browser client needs: where to signal, which ICE servers, which model answers."""
    return {
        "sessionsUrl": "/api/sessions",
        "iceServers": [server.model_dump(exclude_none=True) for server in settings.ice_servers],
        "iceGatherTimeoutMs": ICE_GATHER_TIMEOUT_MS,
        "model": settings.resolved_model,
    }
