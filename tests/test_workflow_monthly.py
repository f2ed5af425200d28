"""Monthly figures (对账销号) per committee and member, their Excel export read back with openpyxl, and
the `shangliang month` command — on SQLite and PostgreSQL. Working days are China's 2026 calendar."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import sessionmaker

from bot.cli import main
from bot.config import settings
from bot.storage import db
from bot.workflow.bench import run, seed
from bot.workflow.cases import TransitionRequest, check_transition, do_transition
from bot.workflow.merging import check_merge_cases, do_merge_cases
from bot.workflow.monthly import HEADERS, export_month_xlsx, month_bounds, month_rows
from tests.workflow_helpers import STAFF, SU, file_case, workflow_db


@pytest.fixture()
def wf(database_url: str) -> Iterator[sessionmaker]:
    yield from workflow_db(database_url)


def utc(local: str) -> datetime:
    return datetime.fromisoformat(local) - timedelta(hours=8)


def step(factory, actor, number: str, action: str, local: str, **kw) -> None:
    with factory() as session:
        request = TransitionRequest(action=action, **kw)
        case, transition = check_transition(session, actor, number, request)
        do_transition(session, actor, case, transition, request, now=utc(local))
        session.commit()


def handled(factory, filed: str, replied: str | None, resolved: bool) -> str:
    """A case filed and assigned to 苏文 at `filed`, accepted and started the same hour, replied at
    `replied` (local times)."""
    number = file_case(factory, when=utc(filed))
    step(factory, STAFF, number, "assign", filed, member_id="m_su_wen")
    step(factory, SU, number, "accept", filed)
    step(factory, SU, number, "start", filed)
    if replied:
        step(factory, SU, number, "reply", replied, text="已协调有关部门处理。")
        if resolved:
            step(factory, SU, number, "resolve", replied)
    return number


@pytest.fixture()
def september(wf) -> sessionmaker:
    # 苏文: replied after 3 working days and resolved; replied after 5 and left in `replied` past that
    # state's 5-day deadline (overdue now); replied after 12 working days, past in_progress's 10 (late).
    handled(wf, "2026-09-01 10:00", "2026-09-04 10:00", resolved=True)
    handled(wf, "2026-09-07 10:00", "2026-09-14 10:00", resolved=False)
    handled(wf, "2026-09-02 10:00", "2026-09-18 10:00", resolved=True)
    # 周建: assigned on 8 September, never accepted (2-day deadline).
    never = file_case(wf, when=utc("2026-09-08 10:00"))
    step(wf, STAFF, never, "assign", "2026-09-08 10:00", member_id="m_zhou_jian")
    # Outside the month: assigned on 31 August (local), so not September's.
    august = file_case(wf, when=utc("2026-08-31 10:00"))
    step(wf, STAFF, august, "assign", "2026-08-31 23:30", member_id="m_su_wen")
    # Merged away: its report counts in the case it joined, not twice.
    twin = file_case(wf, when=utc("2026-09-09 10:00"))
    step(wf, STAFF, twin, "assign", "2026-09-09 10:00", member_id="m_zhou_jian")
    with wf() as session:
        a, b = check_merge_cases(session, STAFF, twin, never)
        do_merge_cases(session, STAFF, a, b, now=utc("2026-09-09 11:00"))
        session.commit()
    return wf


EXPECTED = {
    ("committee", "education_science_health"): (3, 3, 2, 2, 5.0),
    ("committee", "urban_rural"): (1, 0, 0, 1, None),
    ("member", "m_su_wen"): (3, 3, 2, 2, 5.0),
    ("member", "m_zhou_jian"): (1, 0, 0, 1, None),
}


def test_month_bounds_are_china_local() -> None:
    assert month_bounds(2026, 9) == (datetime(2026, 8, 31, 16), datetime(2026, 9, 30, 16))
    assert month_bounds(2026, 12)[1] == datetime(2026, 12, 31, 16)


def test_month_rows_per_committee_and_member(september) -> None:
    with september() as session:
        rows = month_rows(session, 2026, 9, now=utc("2026-10-15 10:00"))
    got = {(r.scope, r.key): (r.received, r.accepted, r.resolved, r.overdue, r.median_reply_days) for r in rows}
    assert got == EXPECTED
    names = {r.key: r.name for r in rows}
    assert names["education_science_health"] == "教科卫体委员会" and names["m_su_wen"].startswith("苏文")
    assert [r.scope for r in rows] == ["committee", "committee", "member", "member"]
    with september() as session:
        # Mid-month, as of 10 September: only what had happened by then counts.
        early = {(r.scope, r.key): (r.received, r.accepted, r.resolved, r.overdue)
                 for r in month_rows(session, 2026, 9, now=utc("2026-09-10 09:00"))}
        assert early[("member", "m_su_wen")] == (3, 3, 1, 0)
        assert early[("member", "m_zhou_jian")] == (1, 0, 0, 0)


def test_export_opens_back_with_openpyxl(september, tmp_path: Path) -> None:
    path = tmp_path / "reports" / "2026-09.xlsx"
    with september() as session:
        export_month_xlsx(session, 2026, 9, path, now=utc("2026-10-15 10:00"))
    book = load_workbook(path)
    assert book.sheetnames == ["专委会", "委员"]
    members = book["委员"]
    assert "2026年9月" in members["A1"].value
    assert tuple(c.value for c in members[2]) == HEADERS
    rows = {r[1]: r[2:] for r in members.iter_rows(min_row=3, values_only=True)}
    assert rows == {"m_su_wen": (3, 3, 2, 2, 5), "m_zhou_jian": (1, 0, 0, 1, "—")}
    committees = {r[1]: r[2:] for r in book["专委会"].iter_rows(min_row=3, values_only=True)}
    assert committees["education_science_health"] == (3, 3, 2, 2, 5)


def test_month_command_prints_json_and_writes_excel(september, database_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    settings.cache_clear()
    out = tmp_path / "month.xlsx"
    assert main(["month", "2026", "9", "--xlsx", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    got = {(r["scope"], r["key"]): (r["received"], r["accepted"], r["resolved"], r["overdue"],
                                    r["median_reply_days"]) for r in result["rows"]}
    assert got == EXPECTED  # the month is over, so figures are as of its end
    assert load_workbook(out).sheetnames == ["专委会", "委员"]


def test_bench_workflow_seeds_a_month_it_then_measures(var_dir: Path) -> None:
    url = f"sqlite:///{var_dir / 'bench.db'}"
    db.upgrade(url)
    seed(url, 200)
    with db.session_scope(url) as session:
        rows = month_rows(session, 2026, 9, now=datetime(2026, 10, 15))
    members = [r for r in rows if r.scope == "member"]
    assert sum(r.received for r in members) == 200 and len(members) == 5
    assert all(r.accepted <= r.received and r.resolved <= r.accepted for r in members)
    figures = run(cases=200, rounds=1)
    assert figures["cases"] == 200 and set(figures["month_rows"]) == {"median_ms", "max_ms"}
