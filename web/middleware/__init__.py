"""Pure ASGI middleware: body limits, trusted hosts, security headers."""

from __future__ import annotations

from .body_limit import BodyLimitMiddleware
from .security_headers import SecurityHeadersMiddleware, content_security_policy
from .trusted_host import TrustedHostMiddleware

__all__ = [
    "BodyLimitMiddleware",
    "SecurityHeadersMiddleware",
    "TrustedHostMiddleware",
    "content_security_policy",
]
