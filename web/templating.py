"""Jinja2 templates and the configuration a page receives (never a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
ICE_GATHER_TIMEOUT_MS = 2000


def asset_dir(name: str) -> Path:
    """`static` or `templates`: inside the package in a wheel, beside it in a checkout."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


STATIC_DIR = asset_dir("static")
TEMPLATES_DIR = asset_dir("templates")

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def page_config(settings: Settings) -> dict[str, Any]:
    """What the browser client needs: where to signal, which ICE servers, which model answers."""
    return {
        "sessionsUrl": "/api/sessions",
        "iceServers": [server.model_dump(exclude_none=True) for server in settings.ice_servers],
        "iceGatherTimeoutMs": ICE_GATHER_TIMEOUT_MS,
        "model": settings.resolved_model,
    }
