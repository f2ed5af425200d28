"""`shangliang db upgrade`: apply every Alembic migration (all parts' branches: `upgrade heads`)."""

from __future__ import annotations

import argparse


def _upgrade(args: argparse.Namespace) -> int:
    from bot.storage.db import upgrade

    upgrade()
    print("database schema is up to date")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("db", help="database maintenance")
    db_sub = parser.add_subparsers(dest="db_command", metavar="WHAT")
    up = db_sub.add_parser("upgrade", help="create or migrate the schema (alembic upgrade heads)")
    up.set_defaults(func=_upgrade)
