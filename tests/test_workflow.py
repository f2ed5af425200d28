"""Workflow transitions, access and audit on SQLite and PostgreSQL: the state table, who may see and do
what, public replies versus internal notes, and edits from a stale page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from bot.routing.models import OutboxMessage, Route
from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case, CaseEvent
from bot.workflow.access import access_case, visible_cases
from bot.workflow.actors import SimpleActor
from bot.workflow.cases import (
    TransitionRequest,
    allowed_actions,
    check_case_work,
    check_transition,
    do_internal_note,
    do_public_reply,
    do_transition,
    public_events,
)
from bot.workflow.errors import (
    CaseNotFound,
    ConcurrentEdit,
    InvalidTransition,
    MissingText,
    PermissionDenied,
)
from bot.workflow.states import OPEN_STATES, STATES, TRANSITIONS, transitions_from
from tests.workflow_helpers import ADMIN, BAI, STAFF, SU, SYSTEM, ZHOU, file_case, workflow_db


@pytest.fixture()
def wf(database_url: str) -> Iterator[sessionmaker]:
    yield from workflow_db(database_url)


NOW = datetime(2026, 9, 7, 2, 0)  # Monday 10:00 in China


def act(factory, actor, number: str, action: str, **kw) -> CaseEvent:
    """check_* then do_* in one transaction, committed: what the console does for one form post."""
    with factory() as session:
        request = TransitionRequest(action=action, **kw)
        case, transition = check_transition(session, actor, number, request)
        event = do_transition(session, actor, case, transition, request, now=NOW)
        session.commit()
        return event


def case_row(factory, number: str) -> Case:
    with factory() as session:
        return repository.get_case_by_number(session, number)


def test_state_table_is_consistent() -> None:
    for transition in TRANSITIONS.values():
        assert transition.target in STATES and transition.sources <= set(STATES), transition.action
        assert transition.roles <= {"admin", "staff", "member", "system"}
    assert {s for s in STATES if s not in OPEN_STATES} == {"resolved", "closed", "merged"}
    assert all(state.label for state in STATES.values())
    assert set(STATES) <= set(CASE_STATUS_LABELS)  # every state has a resident-facing label too
    assert [t.action for t in transitions_from("assigned", "member")] == ["accept", "decline"]
    assert "assign" not in [t.action for t in transitions_from("received", "member")]
    assert [t.action for t in transitions_from("resolved", "system")] == ["reopen", "close"]


def test_migration_adds_workflow_columns(wf) -> None:
    inspector = sa.inspect(wf.kw["bind"])
    case_columns = {c["name"] for c in inspector.get_columns("cases")}
    assert {"version", "assignee_member_id", "assignee_committee_id", "department", "state_since",
            "waiting_since"} <= case_columns
    assert {"visibility", "details"} <= {c["name"] for c in inspector.get_columns("case_events")}
    assert "case_merges" in inspector.get_table_names()


def test_member_sees_only_cases_routed_to_them_or_their_committee(wf) -> None:
    school, road = file_case(wf, "学校门口早上堵车严重。"), file_case(wf, "东湖区清河路的井盖松了。")
    act(wf, STAFF, school, "assign", member_id="m_su_wen")
    act(wf, STAFF, road, "assign", member_id="m_zhou_jian")
    with wf() as session:
        assert access_case(session, SU, school).number == school
        assert access_case(session, BAI, school).number == school  # same committee (education)
        with pytest.raises(PermissionDenied):
            access_case(session, ZHOU, school)
        with pytest.raises(PermissionDenied):
            access_case(session, SU, road)
        assert [c.number for c in visible_cases(session, ZHOU)] == [road]
        assert {c.number for c in visible_cases(session, STAFF)} == {school, road}
        unlinked = SimpleActor("u-new", "member")
        assert visible_cases(session, unlinked).count() == 0
        with pytest.raises(PermissionDenied):
            access_case(session, unlinked, school)
        with pytest.raises(CaseNotFound):
            access_case(session, STAFF, "SL2026-999999")
        assert access_case(session, ADMIN, school.lower().replace("-", " - ")).number == school


def test_role_refusals(wf) -> None:
    number = file_case(wf)
    with pytest.raises(PermissionDenied):
        act(wf, SU, number, "assign", member_id="m_su_wen")  # members do not 派单
    act(wf, STAFF, number, "assign", member_id="m_su_wen")
    with pytest.raises(PermissionDenied):
        act(wf, STAFF, number, "accept")  # 接单 is the member's
    with pytest.raises(InvalidTransition):
        act(wf, SU, number, "resolve")  # not from assigned
    with pytest.raises(MissingText):
        act(wf, SU, number, "decline", text="  ")  # a decline needs its reason
    with pytest.raises(PermissionDenied):
        act(wf, BAI, number, "accept")  # sees the case (committee), but it was assigned to 苏文
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        assert [t.action for t in allowed_actions(SU, case)] == ["accept", "decline"]
        assert allowed_actions(BAI, case) == []
        assert [t.action for t in allowed_actions(STAFF, case)] == ["assign"]
    act(wf, SU, number, "accept")
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        assert [t.action for t in allowed_actions(SU, case)] == ["decline", "start", "reply"]
        assert [t.action for t in allowed_actions(STAFF, case)] == ["start", "transfer", "reply"]  # on behalf
    with pytest.raises(PermissionDenied):
        act(wf, BAI, number, "reply", text="已联系")  # nor may he reply on it
    with pytest.raises(PermissionDenied):
        act(wf, BAI, number, "decline", text="不归我管")  # nor send it back
    with pytest.raises(PermissionDenied):
        act(wf, ZHOU, number, "start")  # not routed to him at all
    with pytest.raises(MissingText):
        act(wf, SU, number, "reply", text="")
    with pytest.raises(PermissionDenied):
        act(wf, SU, number, "transfer", department="区住建局")  # 转办督办 is the office's
    with pytest.raises(PermissionDenied):
        with wf() as session:
            check_case_work(session, ZHOU, number)  # nor may he write notes on it
    assert case_row(wf, number).status == "accepted"  # the refusals changed nothing


def test_whole_loop_records_every_actor(wf) -> None:
    number = file_case(wf)
    act(wf, STAFF, number, "assign", member_id="m_su_wen")
    act(wf, SU, number, "accept")
    act(wf, SU, number, "start")
    act(wf, STAFF, number, "transfer", department="东湖区住建局", text="请一周内书面答复")
    act(wf, SU, number, "reply", text="住建局已安排本周内维修路灯。")
    act(wf, SU, number, "resolve")
    act(wf, SYSTEM, number, "reopen", text="灯还是不亮")
    act(wf, SU, number, "start")
    act(wf, SU, number, "reply", text="已更换灯具，今晚起恢复照明。")
    act(wf, SU, number, "resolve")
    act(wf, SYSTEM, number, "close")
    case = case_row(wf, number)
    assert case.status == "closed" and case.due_at is None
    assert case.assignee_member_id == "m_su_wen" and case.department == "东湖区住建局"
    assert case.version == 12  # 1 + eleven changes
    with wf() as session:
        events = session.query(CaseEvent).filter_by(case_id=case.id).order_by(CaseEvent.id).all()
        statuses = [e.status for e in events if e.kind == "status"]
        assert statuses == ["assigned", "accepted", "in_progress", "replied", "resolved", "reopened",
                            "in_progress", "replied", "resolved", "closed"]
        workflow_events = [e for e in events if e.kind != "created"]
        assert all(e.actor in {"u-staff", "u-su", "system:feedback"} for e in workflow_events)
        internal = {(e.kind, e.note) for e in events if e.visibility == "internal"}
        assert internal == {("supervision", "请一周内书面答复"), ("reopen_reason", "灯还是不亮")}
        replies = [e.note for e in public_events(session, case) if e.kind == "public_reply"]
        assert replies == ["住建局已安排本周内维修路灯。", "已更换灯具，今晚起恢复照明。"]
    with wf() as session:  # right after a reply, the progress answer is the reply itself
        number = file_case(wf)
        act(wf, STAFF, number, "assign", member_id="m_su_wen")
        act(wf, SU, number, "accept")
        act(wf, SU, number, "reply", text="已约社区明早现场查看。")
        case = repository.get_case_by_number(session, number)
        assert case.status == "replied"
        assert repository.last_update(session, case).note == "已约社区明早现场查看。"
        assert session.query(OutboxMessage).filter(OutboxMessage.key.like(f"assign:{case.id}:m_su_wen:%")).count() == 1


def test_decline_goes_back_to_the_duty_desk(wf) -> None:
    number = file_case(wf)
    act(wf, STAFF, number, "assign", member_id="m_zhou_jian")
    act(wf, ZHOU, number, "decline", text="不属于我包联的片区")
    case = case_row(wf, number)
    assert case.status == "received" and case.assignee_member_id == "duty_office"
    with wf() as session:
        reason = session.query(CaseEvent).filter_by(case_id=case.id, kind="declined").one()
        assert reason.visibility == "internal" and reason.actor == "u-zhou"
        desk = session.query(OutboxMessage).filter_by(member_id="duty_office", case_id=case.id).one()
        assert "不属于我包联的片区" in desk.body and desk.subject.startswith("【退回】")
    act(wf, STAFF, number, "assign", committee="education_science_health")  # 派单 to a committee
    act(wf, BAI, number, "accept")
    case = case_row(wf, number)
    assert case.status == "accepted" and case.assignee_member_id == "m_bai_zhi"


def test_internal_note_never_reaches_the_resident(wf) -> None:
    number = file_case(wf)
    act(wf, STAFF, number, "assign", member_id="m_su_wen")
    with wf() as session:
        case = check_case_work(session, SU, number)
        do_public_reply(session, SU, case, "已经联系社区，明天上午去现场查看。")
        do_internal_note(session, SU, case, "社区主任电话不通，改约周三。")
        session.commit()
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        latest = repository.last_update(session, case)
        assert latest.note == "已经联系社区，明天上午去现场查看。"  # the later note is internal
        assert all("电话" not in (e.note or "") for e in public_events(session, case))
        note = session.query(CaseEvent).filter_by(case_id=case.id, kind="internal_note").one()
        assert note.visibility == "internal" and note.actor == "u-su"


def test_stale_edit_fails_with_a_clear_message(wf) -> None:
    number = file_case(wf)
    act(wf, STAFF, number, "assign", member_id="m_su_wen")
    seen = case_row(wf, number).version  # both people open the case page at this version
    act(wf, SU, number, "accept", expected_version=seen)
    with pytest.raises(ConcurrentEdit) as refused:
        act(wf, STAFF, number, "assign", member_id="m_zhou_jian", expected_version=seen)
    assert "刷新" in refused.value.message and refused.value.http_status == 409
    # Same race without a version from the page: the second session read the row before the first
    # committed; its compare-and-set finds the version moved and refuses instead of overwriting.
    first, second = wf(), wf()
    try:
        mine = access_case(second, SU, number)  # a plain read: no row lock held
        case = check_case_work(first, SU, number)
        do_internal_note(first, SU, case, "先到先得")
        first.commit()
        with pytest.raises(ConcurrentEdit):
            do_public_reply(second, SU, mine, "后来的答复")
        second.rollback()
    finally:
        first.close()
        second.close()
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        assert case.status == "accepted" and case.assignee_member_id == "m_su_wen"
        assert session.query(CaseEvent).filter_by(case_id=case.id, kind="public_reply").count() == 0
        assert session.query(Route).filter_by(case_id=case.id, member_id="m_zhou_jian").count() == 0


def test_two_simultaneous_edits_one_wins(wf) -> None:
    """Two people press "派单" on the same page at the same moment: one edit lands, the other is told."""
    number = file_case(wf)
    seen = case_row(wf, number).version
    barrier, outcomes = threading.Barrier(2), []

    def press(member_id: str) -> None:
        barrier.wait()
        try:
            act(wf, STAFF, number, "assign", member_id=member_id, expected_version=seen)
            outcomes.append(("ok", member_id))
        except ConcurrentEdit:
            outcomes.append(("refused", member_id))

    threads = [threading.Thread(target=press, args=(m,)) for m in ("m_su_wen", "m_zhou_jian")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"]
    winner = next(member for kind, member in outcomes if kind == "ok")
    case = case_row(wf, number)
    assert case.assignee_member_id == winner and case.version == seen + 1
    with wf() as session:
        assert session.query(Route).filter_by(case_id=case.id).count() == 1


def test_member_messages_carry_no_personal_data(wf) -> None:
    number = file_case(wf, "我叫王小明，电话13812345678，我家楼下的路灯坏了一个月。")
    act(wf, STAFF, number, "assign", member_id="m_su_wen")
    with wf() as session:
        case = repository.get_case_by_number(session, number)
        message = session.query(OutboxMessage).filter_by(case_id=case.id, member_id="m_su_wen").one()
        text = message.subject + message.body
        assert message.subject.startswith("【派单】") and number in message.subject
        assert "13812345678" not in text and "王小明" not in text
