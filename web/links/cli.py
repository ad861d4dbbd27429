"""`voice-relay links ...`: manage demo links in the same store the server uses."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ..settings import Settings, secret_value, tools_problem
from .model import DemoLink, LinkCreate, LinkUpdate
from .personas import seed_built_in_links
from .redis_store import RedisError, shared_state
from .sharing import share
from .store import LinkExists, LinkNotFound, LinkStore
from .tokens import MAX_TTL_S, signer_for

DURATION = re.compile(r"^(\d+)([smhdw])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(text: str) -> float:
    match = DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return int(match.group(1)) * UNIT_S[match.group(2)]


def token_ttl_s(text: str) -> float:
    ttl = duration_s(text)
    if not 1 <= ttl <= MAX_TTL_S:
        raise argparse.ArgumentTypeError(f"a token lives from 1s to {MAX_TTL_S}s, not {text!r}")
    return ttl


def tools_json(text: str) -> list[Any]:
    """`--tools`: a JSON list of tools (relay.tools), inline or `@FILE`."""
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as file:
                text = file.read()
        value = json.loads(text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--tools needs a JSON list or @FILE ({exc})") from None
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError("--tools needs a JSON list of tools")
    return value


def add_commands(commands: Any) -> None:
    links = commands.add_parser("links", help="manage demo links")
    actions = links.add_subparsers(dest="action", required=True)
    for name in ("create", "update"):
        action = actions.add_parser(name, help=f"{name} a demo link")
        action.add_argument("slug")
        action.add_argument("--title", required=name == "create")
        action.add_argument("--description")
        action.add_argument("--instructions")
        action.add_argument("--voice")
        action.add_argument("--greeting")
        action.add_argument("--language")
        action.add_argument("--backend", choices=["local", "stepfun", "openai"])
        action.add_argument("--model")
        action.add_argument("--expires-in", type=duration_s, help="e.g. 7d")
        action.add_argument("--max-session-s", type=float)
        action.add_argument("--max-concurrent", type=int)
        action.add_argument("--sessions-per-hour", type=int)
        action.add_argument("--origin", action="append", help="an origin allowed to embed it")
        action.add_argument("--private", action=argparse.BooleanOptionalAction, default=None)
        action.add_argument(
            "--tools", type=tools_json, help='JSON list like [{"kind": "web_search"}], or @FILE'
        )
    actions.add_parser("list", help="list demo links")
    show = actions.add_parser("show", help="show a link, its share URL and embed snippet")
    show.add_argument("slug")
    show.add_argument("--token-ttl", type=token_ttl_s, default=7 * 86400, help="for private links")
    revoke = actions.add_parser("revoke", help="revoke a link (visitors get 410)")
    revoke.add_argument("slug")
    for action in actions.choices.values():
        action.add_argument("--json", action="store_true", help="print JSON")


def _fields(args: argparse.Namespace, current: DemoLink | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("title", "description", "backend", "model", "private", "tools"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    persona = current.persona.model_dump() if current else {}
    for name in ("instructions", "voice", "greeting", "language"):
        if getattr(args, name) is not None:
            persona[name] = getattr(args, name)
    if persona:
        values["persona"] = persona
    limits = current.limits.model_dump() if current else {}
    if args.expires_in is not None:
        limits["expires_at"] = datetime.now(UTC) + timedelta(seconds=args.expires_in)
    for name in ("max_session_s", "max_concurrent", "sessions_per_hour"):
        if getattr(args, name) is not None:
            limits[name] = getattr(args, name)
    if limits:
        values["limits"] = limits
    if args.origin is not None:
        values["allowed_origins"] = args.origin
    return values


async def _run(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    # The server's store: Redis with VOICE_RELAY_REDIS_URL, else SQLite in the data directory.
    async with shared_state(settings) as state:
        return await _act(args, settings, state.links)


async def _act(
    args: argparse.Namespace, settings: Settings, store: LinkStore
) -> list[dict[str, Any]]:
    await seed_built_in_links(store)
    base = settings.base_url()
    if args.action == "create":
        created = LinkCreate.model_validate({"slug": args.slug, **_fields(args, None)})
        _check_tools(created, settings)
        links = [await store.create(created)]
    elif args.action == "update":
        current = await store.get(args.slug)
        change = LinkUpdate.model_validate(_fields(args, current))
        _check_tools(current.updated(change), settings)
        links = [await store.update(args.slug, change)]
    elif args.action == "revoke":
        links = [await store.revoke(args.slug)]
    elif args.action == "show":
        links = [await store.get(args.slug)]
    else:
        links = await store.list()
    out = []
    for link in links:
        token = None
        if link.private and args.action in ("create", "show"):
            signer = signer_for(secret_value(settings.secret_key), settings.data_dir)
            token = signer.issue(link.slug, getattr(args, "token_ttl", 7 * 86400))
        out.append({"link": link.model_dump(mode="json"), **share(base, link, token).model_dump()})
    return out


class ToolRefused(ValueError):
    """The link declares tools this server cannot call."""


def _check_tools(link: LinkCreate, settings: Settings) -> None:
    backend = link.backend or settings.resolved_backend
    problem = tools_problem(settings, link.tools, backend)
    if problem is not None:
        raise ToolRefused(problem)


def _state(link: dict[str, Any]) -> str:
    if link["revoked_at"]:
        return "revoked"
    expires = link["limits"]["expires_at"]
    if expires and datetime.fromisoformat(expires) <= datetime.now(UTC):
        return "expired"
    return "private" if link["private"] else "public"


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        results = asyncio.run(_run(args, settings))
    except LinkNotFound:
        print(f"voice-relay: no demo link named {args.slug!r}", file=sys.stderr)  # noqa: T201
        return 1
    except (LinkExists, ValidationError, ToolRefused) as exc:
        print(f"voice-relay: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except RedisError as exc:
        print(f"voice-relay: Redis (VOICE_RELAY_REDIS_URL) unreachable: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if args.json:
        print(json.dumps(results if args.action == "list" else results[0], indent=2))  # noqa: T201
        return 0
    for item in results:
        link = item["link"]
        print(f"{link['slug']:<24} {_state(link):<8} {link['title']}")  # noqa: T201
        if args.action != "list":
            print(f"  share URL: {item['share_url']}")  # noqa: T201
            print(f"  embed:     {item['embed_snippet']}")  # noqa: T201
    return 0
