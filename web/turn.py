"""ICE servers for pages and for the server, and TURN REST API credentials (coturn's
`use-auth-secret`): a username `<expiry>:<id>` and its HMAC-SHA1 under the shared secret.

A page gets credentials minted for it just before each call (GET /api/ice-servers), never in
the page itself. The server uses only the STUN servers: its answer needs no TURN of its own
(the client's relay candidate reaches it), and aioice would wait for a TURN allocation before
every answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from relay import IceServerConfig

from .settings import IceServer, Settings, secret_value


def turn_credentials(secret: str, ttl_s: int, now_s: float) -> tuple[str, str]:
    """(username, credential) that coturn accepts until `now_s + ttl_s`."""
    username = f"{int(now_s) + ttl_s}:{secrets.token_hex(8)}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def page_ice_servers(settings: Settings, now_s: float) -> list[dict[str, Any]]:
    """What a page's RTCPeerConnection gets: the static servers, then TURN with fresh
    credentials when a secret is configured."""
    servers = [server.model_dump(exclude_none=True) for server in settings.ice_servers]
    secret = secret_value(settings.turn_secret)
    if secret is not None and settings.turn_urls:
        username, credential = turn_credentials(secret, settings.turn_ttl_s, now_s)
        servers.append({"urls": settings.turn_urls, "username": username, "credential": credential})
    return servers


def stun_urls(server: IceServer) -> list[str]:
    urls = [server.urls] if isinstance(server.urls, str) else server.urls
    return [url for url in urls if url.startswith("stun:")]


def server_ice_servers(settings: Settings) -> list[IceServerConfig]:
    """The STUN servers of VOICE_RELAY_ICE_SERVERS, for server-reflexive candidates."""
    return [IceServerConfig(urls) for s in settings.ice_servers if (urls := stun_urls(s))]
