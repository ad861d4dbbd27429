"""HTML pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..deps import LinksDep, SettingsDep
from ..links import LinkPublic
from ..templating import page_config, templates

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
async def talk_page(request: Request, settings: SettingsDep, links: LinksDep) -> HTMLResponse:
    # Only public, live links are listed; private ones are reached through their signed URL.
    demos = [LinkPublic.of(link) for link in await links.list() if link.usable and not link.private]
    context = {"config": page_config(settings), "title": "voice-relay", "demos": demos}
    return templates.TemplateResponse(request, "talk.html", context)


@router.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}
