"""Security headers on every response: a content security policy, nosniff, a referrer policy.

Pages load scripts and styles from this origin only (no inline code; the page configuration is
a JSON data block), and only this site may frame them. An embed page sets its own policy with
its link's origins as frame ancestors; a response that already has a policy keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP_HEADER = "content-security-policy"
BASE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
# Tokens of private links travel in page URLs: never tell another site the URL.
REFERRER_POLICY = "same-origin"


def content_security_policy(frame_ancestors: Sequence[str] = ()) -> str:
    """The page policy; `frame_ancestors`: origins besides this one that may frame the page."""
    ancestors = " ".join(["'self'", *frame_ancestors])
    return "; ".join([*BASE_POLICY, f"frame-ancestors {ancestors}"])


DEFAULT_POLICY = content_security_policy()


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault(CSP_HEADER, DEFAULT_POLICY)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", REFERRER_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
