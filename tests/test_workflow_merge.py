"""Merge, split and undo with history, on SQLite and PostgreSQL: supporters follow the reports, every
step is an event on both cases, only staff may do it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import sessionmaker

from bot.routing.models import Route
from bot.storage import repository
from bot.storage.models import Case, CaseEvent, Submission
from bot.workflow.cases import TransitionRequest, check_transition, do_transition
from bot.workflow.errors import MergeError, PermissionDenied
from bot.workflow.merging import (
    check_merge_cases,
    check_split,
    check_undo_merge,
    do_merge_cases,
    do_split,
    do_undo_merge,
    merge_history,
)
from bot.workflow.models import CaseMerge
from tests.workflow_helpers import STAFF, SU, file_case, workflow_db


@pytest.fixture()
def wf(database_url: str) -> Iterator[sessionmaker]:
    yield from workflow_db(database_url)


def join(factory, number: str, text: str) -> int:
    """Another resident's report filed under an existing case (the detector's automatic merge)."""
    with factory() as session:
        case = repository.get_case_by_number(session, number)
        submission = repository.create_submission(session, text=text, case_id=case.id, sender="pseudo-2")
        session.commit()
        return submission.id


def case_of(factory, number: str) -> tuple[Case, list[int]]:
    with factory() as session:
        case = repository.get_case_by_number(session, number)
        ids = [s for (s,) in session.query(Submission.id).filter_by(case_id=case.id).order_by(Submission.id)]
        return case, ids


def merge(factory, actor, source: str, target: str) -> CaseMerge:
    with factory() as session:
        a, b = check_merge_cases(session, actor, source, target)
        row = do_merge_cases(session, actor, a, b)
        session.commit()
        return row


def undo(factory, actor, source: str) -> list[int]:
    with factory() as session:
        case = check_undo_merge(session, actor, source)
        back = do_undo_merge(session, actor, case)
        session.commit()
        return back


def test_merge_moves_supporters_and_undo_restores_them(wf) -> None:
    source = file_case(wf, "清河街道柳岸社区3号楼前的路灯不亮。")
    join(wf, source, "柳岸社区那盏路灯一直不亮。")
    target = file_case(wf, "柳岸社区路灯坏了。")
    with wf() as session:
        request = TransitionRequest(action="assign", member_id="m_su_wen")
        case, transition = check_transition(session, STAFF, source, request)
        do_transition(session, STAFF, case, transition, request)
        session.commit()
    (_, source_ids), (_, target_ids) = case_of(wf, source), case_of(wf, target)

    with pytest.raises(PermissionDenied):
        merge(wf, SU, source, target)  # members do not merge
    row = merge(wf, STAFF, source, target)
    assert row.submission_ids == source_ids and row.source_status == "assigned" and row.actor == "u-staff"
    merged, now_in_source = case_of(wf, source)
    grown, now_in_target = case_of(wf, target)
    assert merged.status == "merged" and merged.merged_into_id == grown.id and now_in_source == []
    assert grown.supporter_count == 3 and now_in_target == sorted(target_ids + source_ids)
    with pytest.raises(MergeError):
        merge(wf, STAFF, source, target)  # already merged

    assert undo(wf, STAFF, source) == source_ids
    restored, ids = case_of(wf, source)
    shrunk, _ = case_of(wf, target)
    assert restored.status == "assigned" and restored.merged_into_id is None and ids == source_ids
    assert restored.supporter_count == 2 and shrunk.supporter_count == 1
    with wf() as session:
        kinds = [e.kind for e in merge_history(session, restored)]
        assert kinds == ["merged", "unmerged"]
        assert [e.kind for e in merge_history(session, shrunk)] == ["merged_in", "unmerged_out"]
        assert all(e.actor == "u-staff" for e in merge_history(session, shrunk))
        assert session.get(CaseMerge, row.id).undone_by == "u-staff"
    with pytest.raises(MergeError):
        undo(wf, STAFF, source)  # nothing left to undo


def test_merge_into_a_finished_case_is_refused(wf) -> None:
    source, target = file_case(wf, "公交站台的顶棚破了。"), file_case(wf, "站台顶棚漏雨。")
    with wf() as session:
        case = repository.get_case_by_number(session, target)
        case.status = "resolved"
        session.commit()
    with pytest.raises(MergeError):
        merge(wf, STAFF, source, target)
    with pytest.raises(MergeError):
        merge(wf, STAFF, source, source)
    assert case_of(wf, source)[0].status == "received"


def test_split_a_wrongly_merged_report_into_its_own_routed_case(wf) -> None:
    number = file_case(wf, "东湖区清河街道的路灯坏了。")
    wrong = join(wf, number, "东湖区清河街道菜市场门口污水横流，气味很大。")
    with pytest.raises(PermissionDenied):
        with wf() as session:
            check_split(session, SU, number, wrong)
    with wf() as session:
        case, submission = check_split(session, STAFF, number, wrong)
        own = do_split(session, STAFF, case, submission)
        session.commit()
        own_number = own.number
    assert own_number != number
    old, old_ids = case_of(wf, number)
    new, new_ids = case_of(wf, own_number)
    assert new_ids == [wrong] and wrong not in old_ids
    assert old.supporter_count == 1 and new.supporter_count == 1
    with wf() as session:
        assert new.status == "assigned" and session.query(Route).filter_by(case_id=new.id).count() >= 1
        assert new.due_at is not None  # its 接单 clock runs
        assert session.get(Submission, wrong).dedup_decision == "split"
        assert [e.kind for e in merge_history(session, old)] == ["split_out"]
        split = session.query(CaseEvent).filter_by(case_id=new.id, kind="split").one()
        assert split.details == {"source": number, "case": own_number, "submission": wrong}
    with pytest.raises(MergeError):
        with wf() as session:
            check_split(session, STAFF, number, old_ids[0])  # a single report has nothing to split from


def test_undo_a_resident_confirmed_merge(wf) -> None:
    target = file_case(wf, "柳岸社区垃圾站每天都满出来。")
    mine = file_case(wf, "柳岸社区的垃圾站清运不及时。")
    _, (submission_id,) = case_of(wf, mine)
    with wf() as session:
        repository.merge_submission(session, submission_id, repository.get_case_by_number(session, target).id)
        session.commit()
    assert case_of(wf, mine)[0].status == "merged" and case_of(wf, target)[0].supporter_count == 2
    assert undo(wf, STAFF, mine) == [submission_id]
    revived, ids = case_of(wf, mine)
    assert revived.status == "received" and ids == [submission_id] and revived.supporter_count == 1
    assert case_of(wf, target)[0].supporter_count == 1
