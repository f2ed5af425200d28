"""`shangliang purge [--older-than DAYS]`: delete conversations and hand-off texts past retention."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def _run(args: argparse.Namespace) -> int:
    from bot.privacy.purge import purge

    result = purge(args.older_than, tracker_url=args.tracker_url)
    print(json.dumps(asdict(result), ensure_ascii=False))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("purge", help="delete Rasa tracker events and hand-off texts past retention")
    parser.add_argument("--older-than", type=float, metavar="DAYS",
                        help="retention in days (default: privacy.retention_days in intake.yml)")
    parser.add_argument("--tracker-url", help="SQLAlchemy URL of Rasa's tracker store (default: endpoints.yml)")
    parser.set_defaults(func=_run)
