"""Monthly figures (照单结算、对账销号) per committee and per member, and their Excel export.

The month is a calendar month in China (see bot.workflow.deadlines). A case counts for a member or a
committee when it was routed or assigned to them (a Route row) during the month; cases later merged
into another case are left out (their reports count in the case they joined). Figures are as of the
month's end, or now for the current month:
- received: such cases;
- accepted: of those, cases a member accepted (接单);
- resolved: of those, cases resolved or closed;
- overdue: of those, cases that left a state after its deadline, or sit past their deadline now
  (clock not paused);
- median_reply_days: working days from filing to the first reply to the resident, over cases replied.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.routing.models import Committee, Member, Route
from bot.storage.models import Case, CaseEvent, utcnow
from bot.workflow import deadlines
from bot.workflow.states import OPEN_STATES, TRANSITIONS

# Event kinds do_transition writes: "status", or the action's own name for an in-state step (转办).
TRANSITION_KINDS = ("status", *TRANSITIONS)


@dataclass(frozen=True)
class MonthRow:
    scope: str  # committee | member
    key: str
    name: str
    received: int
    accepted: int
    resolved: int
    overdue: int
    median_reply_days: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The local calendar month as naive UTC [start, end)."""
    first = date(year, month, 1)
    after = date(year + (month == 12), month % 12 + 1, 1)
    return deadlines.local_midnight_utc(first), deadlines.local_midnight_utc(after)


@dataclass
class _CaseFacts:
    accepted: bool = False
    resolved: bool = False
    late: bool = False
    reply_days: int | None = None


def _facts(session: Session, case_ids, as_of: datetime) -> dict[int, _CaseFacts]:  # type: ignore[no-untyped-def]
    # `case_ids` is a subquery (thousands of bound ids are slow to compile and to send), and rows are
    # plain column tuples, not ORM objects: a month can hold tens of thousands of events.
    cases = {row.id: row for row in session.query(
        Case.id, Case.status, Case.created_at, Case.due_at, Case.waiting_since, Case.state_since,
    ).filter(Case.id.in_(case_ids))}
    facts = {cid: _CaseFacts() for cid in cases}
    events = (session.query(CaseEvent.case_id, CaseEvent.status, CaseEvent.details, CaseEvent.created_at)
              # Only transitions (bot.workflow.cases.do_transition) count, and carry the `late` flag.
              .filter(CaseEvent.case_id.in_(case_ids), CaseEvent.created_at < as_of,
                      CaseEvent.kind.in_(TRANSITION_KINDS))
              .order_by(CaseEvent.id))
    for case_id, status, details, created_at in events:
        f = facts[case_id]
        f.late = f.late or bool((details or {}).get("late"))
        if status == "accepted":
            f.accepted = True
        elif status in ("resolved", "closed"):
            f.resolved = True
        elif status == "replied" and f.reply_days is None:
            f.reply_days = deadlines.working_days_between(cases[case_id].created_at, created_at)
    for cid, case in cases.items():
        if (case.status in OPEN_STATES and case.waiting_since is None and case.due_at is not None
                and case.due_at < as_of and (case.state_since is None or case.state_since < as_of)):
            facts[cid].late = True
    return facts


def _row(scope: str, key: str, name: str, ids: set[int], facts: dict[int, _CaseFacts]) -> MonthRow:
    mine = [facts[i] for i in ids]
    replies = [f.reply_days for f in mine if f.reply_days is not None]
    return MonthRow(scope, key, name, received=len(mine), accepted=sum(f.accepted for f in mine),
                    resolved=sum(f.resolved for f in mine), overdue=sum(f.late for f in mine),
                    median_reply_days=float(statistics.median(replies)) if replies else None)


def month_rows(session: Session, year: int, month: int, now: datetime | None = None) -> list[MonthRow]:
    """Committee rows (by name), then member rows (by name); only those with cases this month."""
    start, end = month_bounds(year, month)
    as_of = min(end, now or utcnow())
    in_month = (select(Route.case_id).join(Case, Case.id == Route.case_id)
                .where(Route.created_at >= start, Route.created_at < end, Case.status != "merged"))
    routes = session.execute(in_month.add_columns(Route.member_id, Route.committee_id)).all()
    facts = _facts(session, in_month.scalar_subquery(), as_of)
    by_committee: dict[str, set[int]] = defaultdict(set)
    by_member: dict[str, set[int]] = defaultdict(set)
    for case_id, member_id, committee_id in routes:
        by_member[member_id].add(case_id)
        if committee_id:
            by_committee[committee_id].add(case_id)
    committees = dict(session.query(Committee.id, Committee.name))
    members = dict(session.query(Member.id, Member.name))
    rows = [_row("committee", k, committees.get(k, k), ids, facts) for k, ids in by_committee.items()]
    rows.sort(key=lambda r: r.name)
    member_rows = [_row("member", k, members.get(k, k), ids, facts) for k, ids in by_member.items()]
    return rows + sorted(member_rows, key=lambda r: r.name)


HEADERS = ("名称", "编号", "受理（件）", "接单（件）", "办结（件）", "超期（件）", "答复用时中位数（工作日）")


def export_month_xlsx(session: Session, year: int, month: int, path: str | Path,
                      now: datetime | None = None) -> Path:
    """Write the month's figures to an Excel workbook: one sheet per committee view and member view."""
    rows = month_rows(session, year, month, now)
    book = Workbook()
    first = book.active
    first.title = "专委会"
    sheets = {"committee": first, "member": book.create_sheet("委员")}
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    for scope, sheet in sheets.items():
        sheet.append([f"{year}年{month}月 社情民意办理情况（对账销号）"])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(list(HEADERS))
        for cell in sheet[2]:
            cell.font, cell.fill = Font(bold=True), header_fill
            cell.alignment = Alignment(horizontal="center", wrap_text=True)
        for r in (r for r in rows if r.scope == scope):
            sheet.append([r.name, r.key, r.received, r.accepted, r.resolved, r.overdue,
                          r.median_reply_days if r.median_reply_days is not None else "—"])
        for column, width in zip("ABCDEFG", (24, 22, 11, 11, 11, 11, 16), strict=True):
            sheet.column_dimensions[column].width = width
        sheet.freeze_panes = "A3"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    book.save(out)
    return out
