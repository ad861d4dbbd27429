"""The `voice-relay` command."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from .app import create_app
from .server import RelayServer
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-relay")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web server (relay + local backend)")
    serve.add_argument("--host", help="address to listen on (VOICE_RELAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (VOICE_RELAY_PORT)")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"voice-relay: invalid settings:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    server = RelayServer(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
