"""CLI: `shangliang routing check|load|coverage`, `shangliang deliver [--once]`, `shangliang digest`."""

from __future__ import annotations

import argparse
import asyncio
import json


def register(sub, groups) -> None:
    routing = sub.add_parser("routing", help="routing rules and member directory")
    rsub = routing.add_subparsers(dest="routing_command", metavar="WHAT")
    check = rsub.add_parser("check", help="validate routing.yml against the taxonomy; print coverage")
    check.add_argument("--file", help="routing file (default: routing.directory in intake.yml)")
    check.set_defaults(func=cmd_check)
    load = rsub.add_parser("load", help="validate and load the directory into the database")
    load.add_argument("--file", help="routing file (default: routing.directory in intake.yml)")
    load.set_defaults(func=cmd_load)

    deliver = sub.add_parser("deliver", help="run the outbox worker (retries, backoff, dead-letter)")
    deliver.add_argument("--once", action="store_true", help="one pass over due messages, then exit")
    deliver.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    deliver.add_argument("--requeue-dead", action="store_true", help="retry dead-lettered messages first")
    deliver.set_defaults(func=cmd_deliver)

    digest = sub.add_parser("digest", help="enqueue today's digest for each member (send with `deliver`)")
    digest.set_defaults(func=cmd_digest)


def _load(path: str | None):
    from bot.routing.directory import DirectoryError, load_directory, validate
    from bot.topics.taxonomy import default_taxonomy

    taxonomy = default_taxonomy()
    try:
        directory = load_directory(path)
    except DirectoryError as exc:
        return None, taxonomy, exc.errors
    return directory, taxonomy, validate(directory, taxonomy)


def cmd_check(args: argparse.Namespace) -> int:
    from bot.routing.rules import coverage

    directory, taxonomy, errors = _load(args.file)
    for error in errors:
        print(f"error: {error}")
    result = {"ok": not errors, "errors": len(errors)}
    if directory is not None:
        result["coverage"] = coverage(directory, taxonomy)
    print(json.dumps(result, ensure_ascii=False))
    return 0 if not errors else 1


def cmd_load(args: argparse.Namespace) -> int:
    from bot.routing.directory import store_directory
    from bot.storage.db import session_scope, upgrade

    directory, taxonomy, errors = _load(args.file)
    for error in errors:
        print(f"error: {error}")
    if errors or directory is None:
        return 1
    upgrade()
    with session_scope() as session:
        counts = store_directory(session, directory, taxonomy)
    print(json.dumps(counts, ensure_ascii=False))
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from bot.delivery.outbox import requeue_dead
    from bot.delivery.worker import OutboxWorker
    from bot.storage.db import session_factory

    factory = session_factory()
    if args.requeue_dead:
        session = factory()
        try:
            print(f"requeued {requeue_dead(session)} dead-lettered messages")
        finally:
            session.close()
    worker = OutboxWorker(factory)
    if args.once:
        counts = asyncio.run(worker.run_once())
        print(json.dumps(dict(counts)))
        return 0
    try:
        asyncio.run(worker.run(interval=args.interval))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    from bot.delivery.digest import enqueue_digests
    from bot.storage.db import session_scope

    with session_scope() as session:
        counts = enqueue_digests(session)
    print(json.dumps(counts, ensure_ascii=False))
    return 0
