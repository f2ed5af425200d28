"""What is overdue: an open case, its clock not paused, past its deadline. One definition for queues,
digests, reminders and the monthly figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_

from bot.storage.models import Case, utcnow
from bot.workflow.states import OPEN_STATES


def is_overdue(case: Case, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (case.status in OPEN_STATES and case.waiting_since is None and case.due_at is not None
            and case.due_at < now)


def overdue_filter(now: datetime | None = None):  # type: ignore[no-untyped-def]
    """SQL condition on Case matching is_overdue."""
    now = now or utcnow()
    return and_(Case.status.in_(sorted(OPEN_STATES)), Case.waiting_since.is_(None), Case.due_at.isnot(None),
                Case.due_at < now)
