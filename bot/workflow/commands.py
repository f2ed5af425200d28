"""CLI: `shangliang remind` (queue today's 催办 for overdue cases; run it from cron or a timer) and
`shangliang month YEAR MONTH [--xlsx PATH]` (the month's figures as JSON, optionally as Excel) and
`shangliang bench workflow` (their speed on synthetic cases)."""

from __future__ import annotations

import argparse
import json


def register(sub, groups) -> None:  # type: ignore[no-untyped-def]
    remind = sub.add_parser("remind", help="queue today's reminders (催办) for overdue cases (send with `deliver`)")
    remind.set_defaults(func=cmd_remind)
    month = sub.add_parser("month", help="monthly figures per committee and member (对账销号)")
    month.add_argument("year", type=int)
    month.add_argument("month", type=int, choices=range(1, 13), metavar="MONTH")
    month.add_argument("--xlsx", help="also write them to this Excel file")
    month.set_defaults(func=cmd_month)
    bench = groups["bench"].add_parser("workflow", help="monthly figures, Excel export and overdue count on N cases")
    bench.add_argument("--cases", type=int, default=10000)
    bench.add_argument("--rounds", type=int, default=5)
    bench.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from bot.workflow.bench import cmd_bench

    return cmd_bench(args)


def cmd_remind(args: argparse.Namespace) -> int:
    from bot.storage.db import session_scope, upgrade
    from bot.workflow.reminders import send_reminders

    upgrade()
    with session_scope() as session:
        count = send_reminders(session)
    print(json.dumps({"reminded_cases": count}))
    return 0


def cmd_month(args: argparse.Namespace) -> int:
    from bot.storage.db import session_scope, upgrade
    from bot.workflow.monthly import export_month_xlsx, month_rows

    upgrade()
    with session_scope() as session:
        rows = month_rows(session, args.year, args.month)
        if args.xlsx:
            export_month_xlsx(session, args.year, args.month, args.xlsx)
    print(json.dumps({"year": args.year, "month": args.month, "rows": [r.to_dict() for r in rows]},
                     ensure_ascii=False))
    return 0
