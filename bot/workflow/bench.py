"""`shangliang bench workflow`: monthly figures, their Excel export and the overdue count over N synthetic
cases routed in one month, in a throw-away SQLite database. Prints a JSON object of figures last."""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.routing.models import Member, Route
from bot.storage import db
from bot.storage.models import Case, CaseEvent
from bot.workflow.monthly import export_month_xlsx, month_rows
from bot.workflow.overdue import overdue_filter

STEPS = ("assigned", "accepted", "in_progress", "replied", "resolved")


def seed(url: str, cases: int, seed_value: int = 7) -> None:
    """`cases` cases routed during September 2026 to five members, each some way along the workflow."""
    rng = random.Random(seed_value)
    members = [(f"bench_m{i}", f"bench_c{i % 3}") for i in range(5)]
    start = datetime(2026, 8, 31, 16)  # 1 September, China
    case_rows, route_rows, event_rows = [], [], []
    for i in range(1, cases + 1):
        filed = start + timedelta(minutes=rng.randrange(60 * 24 * 29))
        last = rng.randrange(len(STEPS))
        case_rows.append(dict(id=i, number=f"SL2026-{i:06d}", title="", summary="", kind="concern",
                              status=STEPS[last], supporter_count=1, created_at=filed, updated_at=filed,
                              version=1, state_since=filed, due_at=filed + timedelta(days=rng.randrange(1, 20))))
        member, committee = rng.choice(members)
        route_rows.append(dict(case_id=i, member_id=member, committee_id=committee, reason="bench", created_at=filed))
        for k, status in enumerate(STEPS[:last + 1]):
            event_rows.append(dict(case_id=i, kind="status", status=status, visibility="public", actor="bench",
                                   created_at=filed + timedelta(days=2 * k),
                                   details={"action": status, "late": rng.random() < 0.1}))
    with db.session_scope(url) as session:
        session.execute(Member.__table__.insert(), [dict(id=m, name=m, committee_id=None, is_duty_desk=False,
                                                         active=True, channels=[]) for m, _ in members])
        session.execute(Case.__table__.insert(), case_rows)
        session.execute(Route.__table__.insert(), route_rows)
        session.execute(CaseEvent.__table__.insert(), event_rows)


def _time(url: str, work: Callable[[Any], object], rounds: int) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        with db.session_scope(url) as session:
            began = time.perf_counter()
            work(session)
            times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def run(cases: int, rounds: int) -> dict[str, Any]:
    now = datetime(2026, 10, 15)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db.upgrade(url)
        seed(url, cases)
        out = Path(tmp) / "month.xlsx"
        figures = {
            "cases": cases,
            "month_rows": _time(url, lambda s: month_rows(s, 2026, 9, now=now), rounds),
            "export_month_xlsx": _time(url, lambda s: export_month_xlsx(s, 2026, 9, out, now=now), rounds),
            "overdue_count": _time(url, lambda s: s.query(Case).filter(overdue_filter(now)).count(), rounds),
        }
        db.dispose_engines()
    return figures


def cmd_bench(args) -> int:  # type: ignore[no-untyped-def]
    print(json.dumps(run(args.cases, args.rounds)))
    return 0
