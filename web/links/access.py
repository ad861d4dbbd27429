"""Whether a visitor may use a link: it exists, is live, and (if private) the token is good."""

from __future__ import annotations

from urllib.parse import urlsplit

from .model import DemoLink
from .store import LinkNotFound, LinkStore
from .tokens import LinkSigner, TokenError


class LinkRefused(Exception):
    """A visitor cannot use this link; the fields say why, in plain words."""

    def __init__(self, status: int, code: str, heading: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.heading = heading
        self.message = message


async def open_link(store: LinkStore, signer: LinkSigner, slug: str, token: str | None) -> DemoLink:
    try:
        link = await store.get(slug)
    except LinkNotFound:
        raise LinkRefused(
            404, "link_not_found", "Demo not found", f"There is no demo called “{slug}”."
        ) from None
    if link.revoked:
        raise LinkRefused(
            410, "link_revoked", "This demo has ended", "Its owner has switched this demo off."
        )
    if link.expired():
        raise LinkRefused(410, "link_expired", "This demo has expired", "Its time is up.")
    if link.private:
        try:
            signer.verify(slug, token)
        except TokenError as exc:
            raise LinkRefused(
                403, "bad_token", "This demo link is not valid", f"{str(exc).capitalize()}."
            ) from None
    return link


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(link: DemoLink, origin: str | None, own_origins: set[str]) -> bool:
    """Browsers send Origin on cross-site requests: only the link's origins and our own pass.

    Requests without an Origin come from non-browser clients, which could forge it anyway; the
    per-link and per-address limits still apply to them.
    """
    if origin is None:
        return True
    origin = origin.lower()
    return origin in own_origins or origin in link.allowed_origins
