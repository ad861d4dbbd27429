"""Jinja2 templates and the configuration a page receives (never a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
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


@jinja2.pass_context
def url_path_for(context: dict[str, Any], name: str, /, **path_params: Any) -> str:
    """`url_for` as a path: asset URLs never carry the request's Host header or scheme."""
    request: Request = context["request"]
    return str(request.app.url_path_for(name, **path_params))


templates.env.globals["url_for"] = url_path_for


def page_config(settings: Settings) -> dict[str, Any]:
    """What the browser client needs: where to signal, where to ask for ICE servers (just before
    each call: TURN credentials expire, so none are ever baked into a page), which model answers."""
    return {
        "sessionsUrl": "/api/sessions",
        "iceServersUrl": "/api/ice-servers",
        "iceGatherTimeoutMs": ICE_GATHER_TIMEOUT_MS,
        "model": settings.resolved_model,
    }
