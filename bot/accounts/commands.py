"""`shangliang user add|list|disable|enable|passwd`: console accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from bot.accounts.models import ROLES


def _password(prompt: bool = True) -> str:
    """SHANGLIANG_PASSWORD, else asked twice on the terminal (never an argument: it would sit in history)."""
    env = os.environ.get("SHANGLIANG_PASSWORD")
    if env:
        return env
    if not prompt or not sys.stdin.isatty():
        raise SystemExit("set SHANGLIANG_PASSWORD or run in a terminal to be asked for the password")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ")
    return first


def _run(work) -> int:  # type: ignore[no-untyped-def]
    from bot.accounts.service import AccountError
    from bot.storage import db

    db.upgrade()
    try:
        with db.session_scope() as session:
            work(session)
    except (AccountError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add(args: argparse.Namespace) -> int:
    from bot.accounts import service

    password = _password()

    def work(session) -> None:  # type: ignore[no-untyped-def]
        user = service.create_user(session, args.name, password, args.role, member_id=args.member_id,
                                   committee_id=args.committee, display_name=args.display_name)
        print(f"user {user.username} added ({user.role})")

    return _run(work)


def _list(args: argparse.Namespace) -> int:
    from bot.accounts import service

    def work(session) -> None:  # type: ignore[no-untyped-def]
        rows = [{"username": u.username, "role": u.role, "member_id": u.member_id,
                 "committee": u.committee_id, "disabled": bool(u.disabled)} for u in service.list_users(session)]
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))

    return _run(work)


def _disable(args: argparse.Namespace) -> int:
    from bot.accounts import service

    return _run(lambda s: print(f"user {service.set_disabled(s, args.name, True).username} disabled"))


def _enable(args: argparse.Namespace) -> int:
    from bot.accounts import service

    return _run(lambda s: print(f"user {service.set_disabled(s, args.name, False).username} enabled"))


def _passwd(args: argparse.Namespace) -> int:
    from bot.accounts import service

    password = _password()
    return _run(lambda s: print(f"password of {service.set_password(s, args.name, password).username} changed"))


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("user", help="console accounts (admin, staff, member)")
    user_sub = parser.add_subparsers(dest="user_command", metavar="WHAT")
    add = user_sub.add_parser("add", help="add an account; password from SHANGLIANG_PASSWORD or a prompt")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--member-id", help="the member (routing.yml id) a member account acts for")
    add.add_argument("--committee", help="committee id: a member also sees this committee's cases")
    add.add_argument("--display-name", help="name shown in the console and the timeline")
    add.set_defaults(func=_add)
    user_sub.add_parser("list", help="one JSON line per account").set_defaults(func=_list)
    for name, func, help_text in (("disable", _disable, "refuse further logins"),
                                  ("enable", _enable, "allow logins again"),
                                  ("passwd", _passwd, "set a new password (SHANGLIANG_PASSWORD or a prompt)")):
        one = user_sub.add_parser(name, help=help_text)
        one.add_argument("name")
        one.set_defaults(func=func)
