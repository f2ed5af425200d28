"""The intake service as a process for the console's browser tests: the real app, database and HTTP
server, with a tiny deterministic encoder instead of the e5 model (the console never encodes).

    python -m tests.console_server --port 8123 --database-url sqlite:////tmp/x.db
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bot.service.app import create_app
from tests.fakes import FakeEncoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    app = create_app(encoder_factory=FakeEncoder, classifier_factory=lambda: None,
                     database_url=args.database_url)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
