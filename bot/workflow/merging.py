"""Merge and split with history (staff only).

- Merge a case into another: its submissions (each one resident, one supporter) move to the target, the
  target gains their supporters, the source becomes `merged` pointing at the target. A CaseMerge row
  records exactly what moved.
- Undo a merge: the submissions that moved (and are still in the target) go back, both supporter counts
  follow, the source gets its old status back. A resident-confirmed or automatic merge of a single
  report (bot.storage.repository.merge_submission) has no CaseMerge row; undoing it revives the
  report's own provisional case.
- Split: one submission leaves a case that holds several (a wrong merge by the detector) and becomes a
  case of its own again: its provisional case when it had one, else a new case, routed like any new case.
Every step is recorded as events on both cases.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.orm import Session

from bot.routing.dispatch import on_case_filed
from bot.routing.models import Route
from bot.storage import repository
from bot.storage.models import CLOSED_STATUSES, Case, CaseEvent, Submission, utcnow
from bot.workflow.access import access_case
from bot.workflow.actors import Actor, actor_ref, is_staff
from bot.workflow.cases import claim_version, record_event, start_clock
from bot.workflow.errors import MergeError, PermissionDenied
from bot.workflow.models import CaseMerge


def _require_staff(actor: Actor) -> None:
    if not is_staff(actor):
        raise PermissionDenied("只有机关工作人员可以合并或拆分案件。")


def _submission_ids(session: Session, case: Case) -> list[int]:
    return [sid for (sid,) in session.query(Submission.id).filter(Submission.case_id == case.id)
            .order_by(Submission.id)]


# ---------------------------------------------------------------- merge

def check_merge_cases(session: Session, actor: Actor, source_number: str,
                      target_number: str) -> tuple[Case, Case]:
    _require_staff(actor)
    source = access_case(session, actor, source_number)
    target = access_case(session, actor, target_number)
    # Lock both rows in id order: two people merging A into B and B into A at once must not deadlock.
    (session.query(Case).filter(Case.id.in_({source.id, target.id})).order_by(Case.id)
     .with_for_update().populate_existing().all())
    if source.id == target.id:
        raise MergeError("不能把案件合并到它自己。")
    if source.status == "merged":
        raise MergeError(f"{source.number} 已经并入其他案件。")
    if target.status in CLOSED_STATUSES:
        raise MergeError(f"{target.number} 已办结或已合并，不能再并入其他案件。")
    return source, target


def do_merge_cases(session: Session, actor: Actor, source: Case, target: Case,
                   expected_versions: tuple[int | None, int | None] = (None, None),
                   now: datetime | None = None) -> CaseMerge:
    now = now or utcnow()
    claim_version(session, source, expected_versions[0], now)
    claim_version(session, target, expected_versions[1], now)
    moved = _submission_ids(session, source)
    if not moved:
        raise MergeError(f"{source.number} 没有可合并的群众反映。")
    merge = CaseMerge(source_case_id=source.id, target_case_id=target.id, submission_ids=moved,
                      source_status=source.status, supporters=len(moved), actor=actor_ref(actor),
                      created_at=now)
    session.add(merge)
    session.query(Submission).filter(Submission.id.in_(moved)).update(
        {Submission.case_id: target.id}, synchronize_session=False)
    target.supporter_count = (target.supporter_count or 0) + len(moved)
    source.status, source.merged_into_id = "merged", target.id
    start_clock(source, now)
    session.flush()
    details = {"merge_id": merge.id, "source": source.number, "target": target.number,
               "submissions": moved}
    record_event(session, source, "merged", actor, visibility="public", status="merged",
                 note=f"已并入 {target.number}", details=details, when=now)
    record_event(session, target, "merged_in", actor, visibility="internal",
                 note=f"{source.number} 并入本案，反映人数 +{len(moved)}", details=details, when=now)
    return merge


# ---------------------------------------------------------------- undo

def check_undo_merge(session: Session, actor: Actor, source_number: str) -> Case:
    _require_staff(actor)
    source = access_case(session, actor, source_number, for_update=True)
    if source.status != "merged" or source.merged_into_id is None:
        raise MergeError(f"{source.number} 没有被合并，无需撤销。")
    return source


def do_undo_merge(session: Session, actor: Actor, source: Case, now: datetime | None = None) -> list[int]:
    """Undo the latest merge of `source`; returns the submission ids that went back."""
    now = now or utcnow()
    merge = (session.query(CaseMerge).filter(CaseMerge.source_case_id == source.id,
                                             CaseMerge.undone_at.is_(None))
             .order_by(CaseMerge.id.desc()).first())
    target = repository.live_case(session, session.get(Case, source.merged_into_id))
    if merge is not None:
        wanted, restore = list(merge.submission_ids), merge.source_status
    else:
        routed = session.query(Route.id).filter(Route.case_id == source.id).first() is not None
        wanted, restore = _provisional_submission(session, source, target), "assigned" if routed else "received"
    back = [sid for (sid,) in session.query(Submission.id).filter(Submission.id.in_(wanted),
                                                                  Submission.case_id == target.id)]
    if not back:
        raise MergeError("合并进去的群众反映都已移走，无法撤销。")
    claim_version(session, source, None, now)
    claim_version(session, target, None, now)
    session.query(Submission).filter(Submission.id.in_(back)).update(
        {Submission.case_id: source.id}, synchronize_session=False)
    target.supporter_count = max(1, (target.supporter_count or 0) - len(back))
    source.supporter_count = len(back)
    source.status, source.merged_into_id = restore, None
    start_clock(source, now)
    if merge is not None:
        merge.undone_at, merge.undone_by = now, actor_ref(actor)
    details = {"merge_id": merge.id if merge else None, "source": source.number, "target": target.number,
               "submissions": back}
    record_event(session, source, "unmerged", actor, visibility="public", status=source.status,
                 note=f"已从 {target.number} 中分出，单独办理", details=details, when=now)
    record_event(session, target, "unmerged_out", actor, visibility="internal",
                 note=f"撤销合并：{source.number} 移出，反映人数 -{len(back)}", details=details, when=now)
    session.flush()
    return back


def _provisional_submission(session: Session, source: Case, target: Case) -> list[int]:
    """The report a resident-confirmed merge moved out of `source`: repository.open_case gives a report's
    own case the report's creation time, and the merge left the case empty."""
    if session.query(func.count(Submission.id)).filter(Submission.case_id == source.id).scalar():
        return []
    return [sid for (sid,) in session.query(Submission.id).filter(
        Submission.case_id == target.id, Submission.created_at == source.created_at)]


# ---------------------------------------------------------------- split

def check_split(session: Session, actor: Actor, number: str, submission_id: int) -> tuple[Case, Submission]:
    _require_staff(actor)
    case = access_case(session, actor, number, for_update=True)
    submission = session.get(Submission, submission_id)
    if submission is None or submission.case_id != case.id:
        raise MergeError("这条群众反映不在这个案件中。")
    if session.query(func.count(Submission.id)).filter(Submission.case_id == case.id).scalar() < 2:
        raise MergeError("案件只有这一条群众反映，无需拆分。")
    return case, submission


def do_split(session: Session, actor: Actor, case: Case, submission: Submission, route: bool = True,
             now: datetime | None = None) -> Case:
    """Move one submission out into its own case; returns that case (routed when `route`)."""
    now = now or utcnow()
    claim_version(session, case, None, now)
    own = (session.query(Case).filter(Case.merged_into_id == case.id, Case.status == "merged",
                                      Case.created_at == submission.created_at).first())
    if own is not None and not _submission_ids(session, own):
        claim_version(session, own, None, now)
        own.merged_into_id, own.status = None, "received"
    else:
        own = repository.open_case(session, text=submission.text, kind=submission.kind, title=submission.title,
                                   place=submission.place, campaign=submission.campaign, topic=case.topic,
                                   topic_confidence=case.topic_confidence, jurisdiction=case.jurisdiction,
                                   created_at=now)
    submission.case_id = own.id
    submission.dedup_decision = "split"
    own.supporter_count = 1
    case.supporter_count = max(1, (case.supporter_count or 1) - 1)
    start_clock(own, now)
    session.flush()
    details = {"source": case.number, "case": own.number, "submission": submission.id}
    record_event(session, case, "split_out", actor, visibility="internal",
                 note=f"一条群众反映拆分为 {own.number}，反映人数 -1", details=details, when=now)
    record_event(session, own, "split", actor, visibility="public", status=own.status,
                 note="已作为单独案件受理", details=details, when=now)
    if route:
        on_case_filed(session, own.id)
    session.flush()
    return own


def merge_history(session: Session, case: Case) -> list[CaseEvent]:
    """Merge, undo and split events on this case, oldest first (the case page's history)."""
    kinds = ("merged", "merged_in", "unmerged", "unmerged_out", "split", "split_out")
    return (session.query(CaseEvent).filter(CaseEvent.case_id == case.id, CaseEvent.kind.in_(kinds))
            .order_by(CaseEvent.id).all())
