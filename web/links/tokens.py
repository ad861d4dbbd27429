"""Signed tokens for private demo links: HMAC-SHA256 over the slug and an expiry time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

TOKEN_VERSION = "v1"


class TokenError(ValueError):
    """The token is missing, malformed, forged or expired (the message says which)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Issues and checks `v1.<expiry>.<mac>` tokens bound to one link slug."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the link signing secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, slug: str, expires: int) -> bytes:
        message = f"{TOKEN_VERSION}:{slug}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def issue(self, slug: str, ttl_s: float, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + ttl_s)
        return f"{TOKEN_VERSION}.{expires}.{_b64(self._mac(slug, expires))}"

    def verify(self, slug: str, token: str | None, now: float | None = None) -> int:
        """Returns the expiry time; raises TokenError saying what is wrong."""
        if not token:
            raise TokenError("this link is private and needs its token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION or not parts[1].isdigit():
            raise TokenError("the link's token is malformed")
        expires = int(parts[1])
        try:
            given = _unb64(parts[2])
        except ValueError:
            raise TokenError("the link's token is malformed") from None
        if not hmac.compare_digest(given, self._mac(slug, expires)):
            raise TokenError("the link's token is not valid for this link")
        if (now if now is not None else time.time()) >= expires:
            raise TokenError("the link's token has expired")
        return expires


def load_or_create_secret(path: Path) -> bytes:
    """The server's signing secret, created once (mode 600) so tokens survive restarts."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    path.touch(mode=0o600)
    path.write_bytes(secret)
    return secret


def signer_for(secret_key: str | None, data_dir: Path) -> LinkSigner:
    """The configured secret, else one kept in the data directory."""
    if secret_key:
        return LinkSigner(secret_key.encode())
    return LinkSigner(load_or_create_secret(data_dir / "secret.key"))
