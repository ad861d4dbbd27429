"""HTML pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..deps import SettingsDep
from ..templating import page_config, templates

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
async def talk_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "talk.html", {"config": page_config(settings), "title": "voice-relay"}
    )


@router.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}
