"""催办: a reminder to whoever holds an overdue case, through the outbox.

At most one reminder per case, state and local day: the outbox key carries all three, so running the
sweep twice (two service replicas, a cron job and a restart) sends nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.config import settings
from bot.routing.models import Route
from bot.storage.models import Case, utcnow
from bot.workflow import deadlines
from bot.workflow.cases import record_event
from bot.workflow.notify import case_subject, duty_desk_id, notify_member
from bot.workflow.overdue import overdue_filter
from bot.workflow.states import state_label

log = logging.getLogger(__name__)


def reminder_recipients(session: Session, case: Case) -> list[str]:
    """The member holding the case; else everyone it was routed to; else the duty desk."""
    if case.assignee_member_id:
        return [case.assignee_member_id]
    routed = sorted({m for (m,) in session.query(Route.member_id).filter(Route.case_id == case.id)})
    if routed and case.status != "received":
        return routed
    desk = duty_desk_id(session)
    return [desk] if desk else routed


def reminder_time(now: datetime | None = None) -> bool:
    """Whether a periodic sweep should send reminders now: on working days, from
    `workflow.reminder_hour` (local, default 9) on, so nobody is chased at midnight or on a holiday."""
    now = now or utcnow()
    hour = int((settings().get("workflow", {}) or {}).get("reminder_hour", 9))
    local = deadlines.local_time(now)
    return deadlines.is_working_day(local.date()) and local.hour >= hour


def send_reminders(session: Session, now: datetime | None = None) -> int:
    """Queue today's reminders for every overdue case; returns how many cases were reminded now."""
    now = now or utcnow()
    day = deadlines.local_date(now)
    reminded = 0
    for case in session.query(Case).filter(overdue_filter(now)).order_by(Case.id):
        # due_at is the midnight after the last allowed day; count late days from that last day.
        days_late = max(1, deadlines.working_days_between(case.due_at - timedelta(seconds=1), now))
        added = 0
        for member_id in reminder_recipients(session, case):
            added += notify_member(
                session, member_id, case, key=f"remind:{case.id}:{case.status}:{day:%Y%m%d}:{member_id}",
                subject=f"【催办】{case_subject(case)}（{case.number}）", kind="reminder",
                lines=[f"当前状态：{state_label(case.status)}", f"办理期限：{due_day_text(case)}",
                       f"已超期 {days_late} 个工作日，请尽快处理。"])
        if added:
            reminded += 1
            record_event(session, case, "reminder", "system:reminders", visibility="internal",
                         status=case.status, note=f"已向承办人发送催办（{state_label(case.status)}超期）",
                         details={"day": day.isoformat(), "status": case.status}, when=now)
    session.flush()
    if reminded:
        log.info("reminders queued for %d overdue cases", reminded)
    return reminded


def due_day_text(case: Case) -> str:
    """The last working day allowed, as staff read it (due_at is the local midnight after it)."""
    if case.due_at is None:
        return "未设定"
    return deadlines.local_date(case.due_at - timedelta(seconds=1)).isoformat()
