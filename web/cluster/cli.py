"""`voice-relay sessions`: the live conversations, across the cluster.

With `VOICE_RELAY_REDIS_URL` it reads the session directory in Redis (every instance); without,
it asks the local server's admin API (`GET /api/admin/sessions`, `VOICE_RELAY_ADMIN_TOKEN`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from redis.exceptions import RedisError

from ..links.redis_store import redis_client
from ..settings import Settings, secret_value
from .directory import ClusterView, RedisDirectory

ADMIN_TIMEOUT_S = 5.0


class CannotAsk(Exception):
    """The server could not be asked; the message says why."""


def add_commands(commands: Any) -> None:
    sessions = commands.add_parser(
        "sessions",
        help="list live conversations (every instance's, with VOICE_RELAY_REDIS_URL)",
    )
    sessions.add_argument(
        "--url", help="without Redis: the server to ask (default: VOICE_RELAY_HOST and _PORT)"
    )
    sessions.add_argument("--json", action="store_true", help="print JSON")


async def _from_redis(url: str) -> ClusterView:
    client = redis_client(url)
    try:
        return await RedisDirectory(client).view()
    finally:
        await client.aclose()


def _from_server(url: str, settings: Settings) -> ClusterView:
    token = secret_value(settings.admin_token)
    if token is None:
        raise CannotAsk(
            "without VOICE_RELAY_REDIS_URL this asks the server's admin API: set "
            "VOICE_RELAY_ADMIN_TOKEN (the server's)"
        )
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/admin/sessions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=ADMIN_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise CannotAsk(f"cannot reach the server at {url}: {exc}") from None
    if response.status_code != 200:
        raise CannotAsk(f"the server at {url} answered {response.status_code}: {response.text}")
    try:
        return ClusterView.model_validate_json(response.content)
    except ValidationError:
        raise CannotAsk(f"the server at {url} did not answer with a session list") from None


def _age(started_at: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - started_at).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _print(view: ClusterView) -> None:
    print(f"{'INSTANCE':<28} {'ACTIVE/MAX':<11} STATE")  # noqa: T201
    for instance in view.instances:
        state = "draining" if instance.draining else "ready"
        load = f"{instance.active}/{instance.max_sessions}"
        print(f"{instance.id:<28} {load:<11} {state}")  # noqa: T201
    print()  # noqa: T201
    print(f"{'SESSION':<18} {'INSTANCE':<28} {'LINK':<20} {'BACKEND/MODEL':<32} AGE")  # noqa: T201
    for entry in view.sessions:
        model = f"{entry.backend}/{entry.model}"
        link = entry.link or "-"
        line = (
            f"{entry.id:<18} {entry.instance:<28} {link:<20} {model:<32} {_age(entry.started_at)}"
        )
        print(line)  # noqa: T201


def run(args: argparse.Namespace, settings: Settings) -> int:
    redis_url = secret_value(settings.redis_url)
    try:
        if redis_url:
            view = asyncio.run(_from_redis(redis_url))
        else:
            view = _from_server(args.url or settings.base_url(), settings)
    except RedisError as exc:
        print(f"voice-relay: Redis (VOICE_RELAY_REDIS_URL) unreachable: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except CannotAsk as exc:
        print(f"voice-relay: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if args.json:
        print(json.dumps(view.model_dump(mode="json"), indent=2))  # noqa: T201
    else:
        _print(view)
    return 0
