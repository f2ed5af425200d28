"""`shangliang serve`: the intake service alone (API, web chat page, metrics)."""

from __future__ import annotations

import argparse
import logging


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.config import settings
    from bot.service.app import AccessLogger, create_app

    service = settings()["service"]
    host = args.host or str(service.get("host", "127.0.0.1"))
    port = int(args.port or service.get("port", 8088))
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    # The routing sweep always runs here: routing happens in this process (see bot/service/sweep.py).
    app = create_app(run_outbox=not args.no_outbox, run_sweep=True)
    web.run_app(app, host=host, port=port, access_log_class=AccessLogger,
                print=lambda msg: logging.getLogger("bot.service").info("listening on http://%s:%d", host, port))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("serve", help="run the intake service (REST API, web chat, metrics)")
    parser.add_argument("--host", help="listen address (default: service.host in intake.yml)")
    parser.add_argument("--port", type=int, help="port (default: service.port, 8088)")
    parser.add_argument("--no-outbox", action="store_true",
                        help="do not deliver reports from this process (another runs `shangliang deliver`)")
    parser.set_defaults(func=_serve)
