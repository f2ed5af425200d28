"""`shangliang serve`: the intake service alone (API, web chat page, metrics)."""

from __future__ import annotations

import argparse
import logging
import os
import sys


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
    # shutdown_timeout: requests in flight get 5 s to finish, inside the supervisor's 8 s grace.
    web.run_app(app, host=host, port=port, access_log_class=AccessLogger, shutdown_timeout=5.0,
                print=lambda msg: logging.getLogger("bot.service").info("listening on http://%s:%d", host, port))
    # Everything is closed now (index saved, database disposed). Tearing down the interpreter with torch,
    # onnxruntime and faiss loaded took 5-15 s on a busy machine, past the supervisor's grace: skip it.
    logging.getLogger("bot.service").info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("serve", help="run the intake service (REST API, web chat, metrics)")
    parser.add_argument("--host", help="listen address (default: service.host in intake.yml)")
    parser.add_argument("--port", type=int, help="port (default: service.port, 8088)")
    parser.add_argument("--no-outbox", action="store_true",
                        help="do not deliver reports from this process (another runs `shangliang deliver`)")
    parser.set_defaults(func=_serve)
