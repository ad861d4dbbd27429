"""The `voice-relay` command: `serve`, `backend` (local backend only) and `links` (demo links)."""

from __future__ import annotations

import argparse
import logging
import sys

from fastapi import FastAPI
from pydantic import ValidationError

from .app import create_app
from .cluster import cli as sessions_cli
from .links import cli as links_cli
from .realtime_guard import on_loopback
from .routes import realtime
from .server import RelayServer
from .settings import Settings

BACKEND_HOST = "127.0.0.1"
BACKEND_PORT = 8001


def create_backend_app(settings: Settings | None = None) -> FastAPI:
    """Only the embedded realtime endpoint (`/v1/realtime`), to run the local models alone."""
    app = FastAPI(title="voice-relay backend", openapi_url=None)
    app.state.settings = settings or Settings()
    app.include_router(realtime.router)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-relay")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web server (relay + local backend)")
    serve.add_argument("--host", help="address to listen on (VOICE_RELAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (VOICE_RELAY_PORT)")
    backend = commands.add_parser(
        "backend",
        help="run only the local realtime endpoint /v1/realtime (point a relay at it with "
        "VOICE_RELAY_BACKEND_URL=ws://HOST:PORT/v1/realtime)",
    )
    backend.add_argument("--host", default=BACKEND_HOST, help=f"default {BACKEND_HOST}")
    backend.add_argument("--port", type=int, default=BACKEND_PORT, help=f"default {BACKEND_PORT}")
    links_cli.add_commands(commands)
    sessions_cli.add_commands(commands)
    args = parser.parse_args(argv)

    given = (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
    overrides = {key: value for key, value in given if value is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"voice-relay: invalid settings:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "links":
        return links_cli.run(args, settings)
    if args.command == "sessions":
        return sessions_cli.run(args, settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    log_level = settings.log_level.lower()
    if args.command == "backend":
        if settings.realtime_token is None and not on_loopback(settings.host):
            print(  # noqa: T201
                f"voice-relay: listening on {settings.host} needs VOICE_RELAY_REALTIME_TOKEN",
                file=sys.stderr,
            )
            return 2
        app = create_backend_app(settings)
    else:
        app = create_app(settings, workers=settings.resolved_workers)
    RelayServer(app, host=settings.host, port=settings.port, log_level=log_level).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
