"""Demo link pages (/d/<slug>), their embeddable variant (/embed/<slug>) and the widget script."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..deps import LinksDep, SettingsDep, SignerDep
from ..links import DemoLink
from ..links.access import LinkRefused, open_link
from ..links.sharing import share
from ..middleware import content_security_policy
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
    # No policy of its own: SecurityHeadersMiddleware lets only this site frame it.
    return templates.TemplateResponse(
        request,
        "link_error.html",
        {**context, "embedded": embedded},
        status_code=refusal.status,
    )


@dataclass(frozen=True)
class LinkVisit:
    """A visit to a link's page: the link if the visitor may use it, else why not."""

    request: Request
    settings: Settings
    token: str | None
    opened: DemoLink | LinkRefused

    def page(
        self, template: str, context: Callable[[DemoLink], dict[str, Any]], *, embedded: bool
    ) -> Response:
        """The link's page from `template`, or the refused page.

        Only an embedded page may be framed by the link's own origins; the others (and every
        refused page) only by this site.
        """
        if isinstance(self.opened, LinkRefused):
            return refused_page(self.request, self.opened, embedded)
        link = self.opened
        response = templates.TemplateResponse(self.request, template, context(link))
        frame_ancestors = link.allowed_origins if embedded else []
        response.headers["Content-Security-Policy"] = content_security_policy(frame_ancestors)
        return response


async def visit_link(
    request: Request,
    slug: str,
    links: LinksDep,
    signer: SignerDep,
    settings: SettingsDep,
    token: str | None = None,
) -> LinkVisit:
    try:
        opened: DemoLink | LinkRefused = await open_link(links, signer, slug, token)
    except LinkRefused as refusal:
        opened = refusal
    return LinkVisit(request, settings, token, opened)


VisitDep = Annotated[LinkVisit, Depends(visit_link)]


@router.get("/d/{slug}", response_class=HTMLResponse)
async def link_page(visit: VisitDep) -> Response:
    def context(link: DemoLink) -> dict[str, Any]:
        return {
            "title": link.title,
            "description": link.description,
            "lang": link.persona.language,
            "link": link,
            "share": share(visit.settings.base_url(), link, visit.token),
            "config": link_config(visit.settings, link, visit.token),
        }

    return visit.page("link.html", context, embedded=False)


@router.get("/embed/{slug}", response_class=HTMLResponse)
async def embed_page(visit: VisitDep, lang: str | None = None) -> Response:
    def context(link: DemoLink) -> dict[str, Any]:
        config = link_config(visit.settings, link, visit.token)
        # hostOrigins: where the iframe may send client tool calls and take their results from.
        config.update(
            compact=True,
            forceLanguage=lang if lang in ("en", "zh") else None,
            hostOrigins=link.allowed_origins,
        )
        return {"title": link.title, "lang": link.persona.language, "link": link, "config": config}

    return visit.page("embed.html", context, embedded=True)


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
