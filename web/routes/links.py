"""Demo link pages (/d/<slug>), their embeddable variant (/embed/<slug>) and the widget script."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..deps import LinksDep, SettingsDep, SignerDep
from ..links import DemoLink
from ..links.access import LinkRefused, frame_ancestors, open_link
from ..links.sharing import share
from ..settings import Settings
from ..templating import STATIC_DIR, page_config, templates

router = APIRouter(tags=["links"])


def link_config(settings: Settings, link: DemoLink, token: str | None) -> dict[str, Any]:
    config = page_config(settings)
    config.update(
        extraBody={"link": link.slug, **({"token": token} if token else {})},
        language=link.persona.language,
        model=link.model or (settings.resolved_model if link.backend is None else None),
    )
    return config


def refused_page(request: Request, refusal: LinkRefused, embedded: bool) -> HTMLResponse:
    context = {"title": refusal.heading, "heading": refusal.heading, "message": refusal.message}
    response = templates.TemplateResponse(
        request,
        "link_error.html",
        {**context, "embedded": embedded},
        status_code=refusal.status,
    )
    response.headers["Content-Security-Policy"] = frame_ancestors(None)
    return response


@router.get("/d/{slug}", response_class=HTMLResponse)
async def link_page(
    request: Request,
    slug: str,
    links: LinksDep,
    signer: SignerDep,
    settings: SettingsDep,
    token: str | None = None,
) -> Response:
    try:
        link = await open_link(links, signer, slug, token)
    except LinkRefused as refusal:
        return refused_page(request, refusal, embedded=False)
    context = {
        "title": link.title,
        "description": link.description,
        "lang": link.persona.language,
        "link": link,
        "share": share(settings.base_url(), link, token),
        "config": link_config(settings, link, token),
    }
    response = templates.TemplateResponse(request, "link.html", context)
    response.headers["Content-Security-Policy"] = frame_ancestors(None)
    return response


@router.get("/embed/{slug}", response_class=HTMLResponse)
async def embed_page(
    request: Request,
    slug: str,
    links: LinksDep,
    signer: SignerDep,
    settings: SettingsDep,
    token: str | None = None,
    lang: str | None = None,
) -> Response:
    try:
        link = await open_link(links, signer, slug, token)
    except LinkRefused as refusal:
        return refused_page(request, refusal, embedded=True)
    config = link_config(settings, link, token)
    config.update(compact=True, forceLanguage=lang if lang in ("en", "zh") else None)
    context = {"title": link.title, "lang": link.persona.language, "link": link, "config": config}
    response = templates.TemplateResponse(request, "embed.html", context)
    # Only the link's own origins may frame it.
    response.headers["Content-Security-Policy"] = frame_ancestors(link)
    return response


@router.get("/widget.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "widget.js",
        media_type="text/javascript",
        headers={
            "Cache-Control": "public, max-age=300",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )
