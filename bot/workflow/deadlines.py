"""Deadlines in working days (工作日), with China's public holidays and 调休 working weekends from the
chinese-calendar package.

Times in the database are naive UTC; working days are days in China (UTC+8 all year, no daylight saving;
`workflow.utc_offset_hours` in intake.yml). A deadline of N working days for a state entered at time t is
the end (local midnight) of the N-th working day after t's local date: a case assigned on Friday afternoon
with 1 day is due at the end of Monday, or of the first working day after a holiday.

The clock pauses while the case waits for the resident (`Case.waiting_since` set): such a case is never
overdue, and when the wait ends the deadline moves by the working days the wait lasted.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import lru_cache

import chinese_calendar

from bot.config import settings

log = logging.getLogger(__name__)

# Working days each open state may last before it is overdue; intake.yml workflow.deadlines overrides.
DEFAULT_DEADLINES: dict[str, int] = {
    "received": 1,  # the duty desk assigns
    "assigned": 2,  # the member accepts or declines
    "accepted": 2,  # handling starts
    "in_progress": 10,  # a reply to the resident
    "reopened": 5,
    "replied": 5,  # staff confirm it is resolved
}


def _offset() -> timedelta:
    cfg = settings().get("workflow", {}) or {}
    return timedelta(hours=float(cfg.get("utc_offset_hours", 8)))


def deadline_days(status: str) -> int | None:
    """Working days allowed in `status`, None when the state has no deadline."""
    cfg = (settings().get("workflow", {}) or {}).get("deadlines") or {}
    value = cfg.get(status, DEFAULT_DEADLINES.get(status))
    return int(value) if value is not None else None


@lru_cache(maxsize=1)
def _warn_out_of_range(year: int) -> None:
    log.warning("chinese-calendar has no holiday data for %d: counting Monday to Friday as working days "
                "(upgrade chinesecalendar once the State Council publishes that year's schedule)", year)


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    # Cached: chinese_calendar validates each date against its whole table, ~0.1 ms a call, and monthly
    # figures ask for the same few hundred days thousands of times.
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # the package only knows years whose schedule has been published
        _warn_out_of_range(day.year)
        return day.weekday() < 5


def local_time(when: datetime) -> datetime:
    """A stored (naive UTC) time as China's wall-clock time."""
    return when + _offset()


def local_date(when: datetime) -> date:
    return local_time(when).date()


def local_midnight_utc(day: date) -> datetime:
    """The start of a local day, as naive UTC."""
    return datetime(day.year, day.month, day.day) - _offset()


def add_working_days(start: datetime, days: int) -> datetime:
    """The end (as naive UTC) of the `days`-th working day after `start`'s local date."""
    day = local_date(start)
    left = max(0, days)
    while left:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return local_midnight_utc(day + timedelta(days=1))


def working_days_between(start: datetime, end: datetime) -> int:
    """Working days after `start`'s local date up to and including `end`'s (0 when end <= start)."""
    first, last = local_date(start), local_date(end)
    count, day = 0, first
    while day < last:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def due_for(status: str, since: datetime) -> datetime | None:
    days = deadline_days(status)
    return add_working_days(since, days) if days is not None else None


def extend_for_pause(due_at: datetime | None, waiting_since: datetime, now: datetime) -> datetime | None:
    """The deadline after a wait for the resident from `waiting_since` to `now`: later by the working
    days the wait covered."""
    if due_at is None:
        return None
    paused = working_days_between(waiting_since, now)
    return add_working_days(due_at - timedelta(seconds=1), paused) if paused else due_at
