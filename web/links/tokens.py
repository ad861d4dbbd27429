"""Signed tokens for private demo links: itsdangerous' timestamp signer, one key per link.

A token is `v2.<ttl>.<issued>.<signature>`: the lifetime in seconds and the time of issue, signed
(HMAC-SHA256) with a key derived from the server's secret and the link's slug.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from pathlib import Path

from itsdangerous import BadData, SignatureExpired, TimestampSigner

TOKEN_VERSION = "v2"
# Checked before itsdangerous sees the token: ASCII digits only and bounded lengths, so no
# token of any shape reaches int() or base64 with something it would choke on.
TOKEN_SHAPE = re.compile(r"v2\.(?P<ttl>[0-9]{1,9})\.[A-Za-z0-9_-]{1,12}\.[A-Za-z0-9_-]{43}")
MAX_TTL_S = 999_999_999


class TokenError(ValueError):
    """The token is missing, malformed, forged or expired (the message says which)."""


class _LinkTimestampSigner(TimestampSigner):
    """Signs for one slug, at a given time (`now`) or the current one."""

    def __init__(self, secret: bytes, slug: str, now: float | None) -> None:
        super().__init__(secret, salt=f"voice-relay.link:{slug}", digest_method=hashlib.sha256)
        self._now = now

    def get_timestamp(self) -> int:
        return int(self._now) if self._now is not None else super().get_timestamp()


class LinkSigner:
    """Issues and checks tokens bound to one link slug."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the link signing secret must be at least 16 bytes")
        self._secret = secret

    def issue(self, slug: str, ttl_s: float, now: float | None = None) -> str:
        """A token good for `ttl_s` seconds (rounded up to whole ones, at most MAX_TTL_S)."""
        ttl = math.ceil(ttl_s)
        if not 1 <= ttl <= MAX_TTL_S:
            raise ValueError(f"a token's lifetime must be 1 to {MAX_TTL_S} seconds")
        signer = _LinkTimestampSigner(self._secret, slug, now)
        return signer.sign(f"{TOKEN_VERSION}.{ttl}").decode("ascii")

    def verify(self, slug: str, token: str | None, now: float | None = None) -> int:
        """Returns the expiry time; raises TokenError saying what is wrong."""
        if not token:
            raise TokenError("this link is private and needs its token")
        shape = TOKEN_SHAPE.fullmatch(token)
        if shape is None:
            raise TokenError("the link's token is malformed")
        ttl = int(shape["ttl"])
        signer = _LinkTimestampSigner(self._secret, slug, now)
        try:
            # itsdangerous refuses an age above max_age; at issue + ttl the token has expired.
            _, issued = signer.unsign(token, max_age=ttl - 1, return_timestamp=True)
        except SignatureExpired:
            raise TokenError("the link's token has expired") from None
        except BadData:
            raise TokenError("the link's token is not valid for this link") from None
        return int(issued.timestamp()) + ttl


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
