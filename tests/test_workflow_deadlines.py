"""Working-day deadlines across a holiday and a 调休 working weekend, the clock paused while waiting for
the resident, overdue lists, reminders (催办) never doubled, and overdue cases in the daily digest — on
SQLite and PostgreSQL. Holidays are China's 2026 schedule as the chinesecalendar package publishes it
(国庆 1-7 October with Sunday 20 September and Saturday 10 October worked; 中秋 25-27 September)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import sessionmaker

from bot.config import REPO_ROOT, settings
from bot.delivery.digest import build_digest
from bot.routing.models import OutboxMessage
from bot.service.analysis import Analysis
from bot.service.intake import IntakePipeline
from bot.service.metrics import Metrics
from bot.service.sweep import RoutingSweep
from bot.storage import repository
from bot.storage.models import Case, CaseEvent
from bot.workflow import deadlines
from bot.workflow.cases import (
    TransitionRequest,
    check_case_work,
    check_transition,
    do_resume_clock,
    do_transition,
    do_wait_for_resident,
)
from bot.workflow.errors import InvalidTransition
from bot.workflow.overdue import is_overdue, overdue_filter
from bot.workflow.reminders import reminder_time, send_reminders
from tests.workflow_helpers import STAFF, SU, file_case, workflow_db


@pytest.fixture()
def wf(database_url: str) -> Iterator[sessionmaker]:
    yield from workflow_db(database_url)


def utc(local: str) -> datetime:
    """A China local time 'YYYY-MM-DD HH:MM' as the naive UTC the database stores."""
    return datetime.fromisoformat(local) - (datetime(2000, 1, 1, 8) - datetime(2000, 1, 1))


def end_of(day: str) -> datetime:
    """The deadline instant for a last allowed day: local midnight after it, as UTC."""
    return utc(f"{day} 00:00") + (datetime(2000, 1, 2) - datetime(2000, 1, 1))


def test_working_days_skip_holidays_and_count_adjusted_weekends() -> None:
    assert deadlines.add_working_days(utc("2026-09-24 10:00"), 1) == end_of("2026-09-28")  # over 中秋
    assert deadlines.add_working_days(utc("2026-09-30 16:00"), 2) == end_of("2026-10-09")  # over 国庆
    assert deadlines.add_working_days(utc("2026-09-19 09:00"), 1) == end_of("2026-09-20")  # 调休 Sunday
    assert deadlines.add_working_days(utc("2026-10-09 15:00"), 1) == end_of("2026-10-10")  # 调休 Saturday
    # The day is China's: 01:00 on Friday 25 September local is still 24 September in UTC.
    assert deadlines.add_working_days(datetime(2026, 9, 24, 17, 0), 1) == end_of("2026-09-28")
    assert deadlines.working_days_between(utc("2026-09-24 10:00"), utc("2026-10-08 10:00")) == 4
    assert deadlines.working_days_between(utc("2026-10-08 10:00"), utc("2026-10-01 10:00")) == 0


def test_years_without_holiday_data_fall_back_to_weekdays() -> None:
    assert deadlines.is_working_day(date(2030, 1, 7))  # a Monday
    assert not deadlines.is_working_day(date(2030, 1, 5))  # a Saturday


def test_deadlines_come_from_intake_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load((REPO_ROOT / "intake.yml").read_text(encoding="utf-8"))
    config["workflow"]["deadlines"]["assigned"] = 5
    path = tmp_path / "intake.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("SHANGLIANG_CONFIG", str(path))
    settings.cache_clear()
    try:
        assert deadlines.deadline_days("assigned") == 5
        # Five working days from Monday 21 September: 22, 23, 24, (中秋 25-27) 28, 29.
        assert deadlines.due_for("assigned", utc("2026-09-21 10:00")) == end_of("2026-09-29")
        assert deadlines.due_for("resolved", utc("2026-09-21 10:00")) is None
    finally:
        monkeypatch.delenv("SHANGLIANG_CONFIG")
        settings.cache_clear()


def step(factory, actor, number: str, action: str, when: datetime, **kw) -> Case:
    with factory() as session:
        request = TransitionRequest(action=action, **kw)
        case, transition = check_transition(session, actor, number, request)
        do_transition(session, actor, case, transition, request, now=when)
        session.commit()
        return case


def in_progress(factory, when: datetime) -> str:
    number = file_case(factory, when=when)
    step(factory, STAFF, number, "assign", when, member_id="m_su_wen")
    step(factory, SU, number, "accept", when)
    step(factory, SU, number, "start", when)
    return number


def test_clock_pauses_while_waiting_for_the_resident(wf) -> None:
    monday = utc("2026-09-21 10:00")
    number = in_progress(wf, monday)
    # 10 working days from Monday 21 September: 22-24, 28-30 September, 8, 9, 10 (调休), 12 October.
    with wf() as session:
        assert repository.get_case_by_number(session, number).due_at == end_of("2026-10-12")
    with wf() as session:
        case = check_case_work(session, SU, number)
        do_wait_for_resident(session, SU, case, "请群众补充具体楼栋", now=utc("2026-09-22 10:00"))
        session.commit()
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        later = utc("2026-10-14 10:00")  # past the deadline, but the clock is paused
        assert not is_overdue(case, later)
        assert session.query(Case).filter(overdue_filter(later)).count() == 0
        with pytest.raises(InvalidTransition):
            do_wait_for_resident(session, SU, case)
    with wf() as session:
        case = check_case_work(session, SU, number)
        do_resume_clock(session, SU, case, now=utc("2026-09-29 10:00"))  # waited 23, 24, 28, 29 September
        session.commit()
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        assert case.waiting_since is None and case.due_at == end_of("2026-10-16")
        resumed = session.query(CaseEvent).filter_by(case_id=case.id, kind="resumed").one()
        assert resumed.details["paused_working_days"] == 4 and resumed.visibility == "internal"
        assert is_overdue(case, utc("2026-10-17 09:00")) and not is_overdue(case, utc("2026-10-16 18:00"))


def test_reminders_once_per_case_state_and_day(wf) -> None:
    late = in_progress(wf, utc("2026-09-21 10:00"))  # due at the end of 12 October
    paused = in_progress(wf, utc("2026-09-21 10:00"))
    with wf() as session:
        case = check_case_work(session, SU, paused)
        do_wait_for_resident(session, SU, case, now=utc("2026-10-09 10:00"))
        session.commit()
    first_day = utc("2026-10-13 10:00")
    with wf() as session:
        assert send_reminders(session, first_day) == 1
        session.commit()
    for again in (first_day, utc("2026-10-13 23:30")):  # a second sweep, a restart the same day
        with wf() as session:
            assert send_reminders(session, again) == 0
            session.commit()
    with wf() as session:
        assert send_reminders(session, utc("2026-10-14 09:00")) == 1
        session.commit()
    with wf() as session:
        late_case = repository.get_case_by_number(session, late)
        rows = session.query(OutboxMessage).filter(OutboxMessage.kind == "reminder").order_by(OutboxMessage.id).all()
        assert [(r.case_id, r.member_id) for r in rows] == [(late_case.id, "m_su_wen")] * 2
        assert rows[0].subject.startswith("【催办】") and "已超期 1 个工作日" in rows[0].body
        assert "已超期 2 个工作日" in rows[1].body
        events = session.query(CaseEvent).filter_by(case_id=late_case.id, kind="reminder").all()
        assert len(events) == 2 and all(e.visibility == "internal" for e in events)
        paused_case = repository.get_case_by_number(session, paused)
        assert session.query(OutboxMessage).filter_by(case_id=paused_case.id, kind="reminder").count() == 0


def test_digest_lists_overdue_cases_but_not_paused_ones(wf) -> None:
    late = in_progress(wf, utc("2026-09-21 10:00"))
    paused = in_progress(wf, utc("2026-09-21 10:00"))
    with wf() as session:
        case = check_case_work(session, SU, paused)
        do_wait_for_resident(session, SU, case, now=utc("2026-10-09 10:00"))
        session.commit()
    with wf() as session:
        digest = build_digest(session, "m_su_wen", now=utc("2026-10-13 10:00"))
        assert [row["number"] for row in digest.overdue] == [late]
        assert build_digest(session, "m_su_wen", now=utc("2026-10-12 10:00")).overdue == []


def test_periodic_reminders_wait_for_working_hours() -> None:
    assert not reminder_time(utc("2026-10-12 08:59")) and reminder_time(utc("2026-10-12 09:00"))
    assert reminder_time(utc("2026-10-10 10:00"))  # 调休 Saturday: a working day
    assert not reminder_time(utc("2026-10-11 10:00"))  # Sunday
    assert not reminder_time(utc("2026-10-05 10:00"))  # 国庆


def test_the_intake_sweep_sends_the_days_reminders(wf) -> None:
    late = in_progress(wf, utc("2026-09-21 10:00"))  # due at the end of 12 October
    sweep = RoutingSweep(IntakePipeline(Analysis(wf), wf, Metrics()))
    sweep.run_once(utc("2026-10-13 08:00"))  # before working hours: nothing yet
    with wf() as session:
        assert session.query(OutboxMessage).filter_by(kind="reminder").count() == 0
    for minute in ("09:00", "09:01", "15:30"):  # every pass of the day after 9:00; one reminder
        sweep.run_once(utc(f"2026-10-13 {minute}"))
    with wf() as session:
        rows = session.query(OutboxMessage).filter_by(kind="reminder").all()
        assert [(r.member_id, r.payload["case_number"]) for r in rows] == [("m_su_wen", late)]
