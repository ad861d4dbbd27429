"""How a link is shared: its URL, a private URL with a token, and the embed snippet."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from pydantic import BaseModel

from .model import DemoLink


class LinkShare(BaseModel):
    share_url: str
    embed_snippet: str


def share_url(base_url: str, slug: str, token: str | None = None) -> str:
    url = f"{base_url}/d/{quote(slug)}"
    return f"{url}?token={quote(token)}" if token else url


def embed_snippet(base_url: str, slug: str, token: str | None = None) -> str:
    token_attr = f' data-token="{escape(token)}"' if token else ""
    return (
        f'<script src="{escape(base_url)}/widget.js" data-link="{escape(slug)}"'
        f"{token_attr} async></script>"
    )


def share(base_url: str, link: DemoLink, token: str | None = None) -> LinkShare:
    return LinkShare(
        share_url=share_url(base_url, link.slug, token),
        embed_snippet=embed_snippet(base_url, link.slug, token),
    )
