"""Case workflow actions: status transitions, public replies, internal notes, waiting for the resident.

`check_*` validates the request and asks access (bot.workflow.access); `do_*` changes the rows, records
the event with the actor's id and queues outbox messages, all in the caller's transaction (callers
commit, e.g. bot.storage.db.session_scope). Every `do_*` first claims the case's `version` with a
compare-and-set UPDATE: of two edits made from the same page, the second fails with ConcurrentEdit
instead of silently overwriting the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.routing.models import Member, Route
from bot.storage.models import CASE_STATUS_LABELS, Case, CaseEvent, utcnow
from bot.workflow import deadlines
from bot.workflow.access import access_case
from bot.workflow.actors import Actor, actor_ref
from bot.workflow.errors import (
    ConcurrentEdit,
    InvalidTransition,
    MissingText,
    PermissionDenied,
    WorkflowError,
)
from bot.workflow.notify import case_subject, duty_desk_id, notify_member
from bot.workflow.overdue import is_overdue
from bot.workflow.states import TRANSITIONS, WORKERS, Transition, is_open, state_label

MAX_TEXT = 5000


def record_event(session: Session, case: Case, kind: str, actor: Actor | str, *, visibility: str,
                 status: str | None = None, note: str | None = None, details: dict[str, Any] | None = None,
                 when: datetime | None = None) -> CaseEvent:
    """Append to the case's timeline. `visibility` is "public" (the resident may read it) or "internal"."""
    if visibility not in ("public", "internal"):
        raise ValueError(f"visibility must be public or internal, not {visibility!r}")
    event = CaseEvent(case_id=case.id, kind=kind, status=status, note=note, visibility=visibility,
                      actor=actor if isinstance(actor, str) else actor_ref(actor), details=details,
                      created_at=when or utcnow())
    session.add(event)
    session.flush()
    return event


def claim_version(session: Session, case: Case, expected_version: int | None = None,
                  when: datetime | None = None) -> None:
    """Move the case to its next version, provided it is still at `expected_version` (the version the
    editor saw; default: the one this session read). Raises ConcurrentEdit otherwise.

    One conditional UPDATE: on PostgreSQL a concurrent claimer blocks on the row and then finds the
    version changed; on SQLite writers are serialised. Runs before any other change to the case."""
    expected = case.version if expected_version is None else expected_version
    session.flush()
    result = session.execute(
        update(Case).where(Case.id == case.id, Case.version == expected)
        .values(version=Case.version + 1, updated_at=when or utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentEdit()
    session.refresh(case)


def start_clock(case: Case, when: datetime) -> None:
    """The case entered its current status at `when`: its deadline counts from now."""
    case.state_since = when
    case.waiting_since = None
    case.due_at = deadlines.due_for(case.status, when) if is_open(case.status) else None


def _clean(text: str | None, what: str) -> str:
    value = (text or "").strip()
    if not value:
        raise MissingText(f"请填写{what}。")
    if len(value) > MAX_TEXT:
        raise MissingText(f"{what}太长了，请控制在{MAX_TEXT}字以内。")
    return value


# ---------------------------------------------------------------- status transitions

@dataclass(frozen=True)
class TransitionRequest:
    """What the console's status form or the API sends, parsed."""

    action: str
    text: str | None = None  # reason (退回, 重新办理), the public reply (答复) or the 督办 note (转办)
    member_id: str | None = None  # 派单 to this member
    committee: str | None = None  # 派单 to this committee (with or without a member)
    department: str | None = None  # 转办 to this department
    expected_version: int | None = None


def _refusal(actor: Actor, case: Case, transition: Transition) -> WorkflowError | None:
    """Why `actor` may not take `transition` on `case` now (access to the case already granted)."""
    if actor.role not in transition.roles:
        return PermissionDenied(f"您的角色不能进行“{transition.label}”操作。")
    if case.status not in transition.sources:
        return InvalidTransition(f"案件当前为“{state_label(case.status)}”，不能进行“{transition.label}”操作。")
    if actor.role == "member":
        # A case held by one member is theirs alone; one routed to several (or to a committee) without a
        # holder may be taken by any of them: the first 接单 wins, the others then find it held.
        held_by_other = case.assignee_member_id is not None and case.assignee_member_id != actor.member_id
        if held_by_other or (transition.assignee_only and case.assignee_member_id is None):
            return PermissionDenied(f"这个案件由其他委员承办，您不能进行“{transition.label}”操作。")
    return None


def allowed_actions(actor: Actor, case: Case) -> list[Transition]:
    """The transitions `actor` may take on a case they can see (the case page's buttons), table order."""
    return [t for t in TRANSITIONS.values() if _refusal(actor, case, t) is None]


def check_transition(session: Session, actor: Actor, number: str,
                     request: TransitionRequest) -> tuple[Case, Transition]:
    """Validate a transition request and ask access. Raises a WorkflowError (see bot.workflow.errors)."""
    transition = TRANSITIONS.get(request.action)
    if transition is None:
        raise InvalidTransition("未知的操作。")
    if actor.role not in transition.roles:
        raise PermissionDenied(f"您的角色不能进行“{transition.label}”操作。")
    case = access_case(session, actor, number, for_update=True)
    if request.expected_version is not None and case.version != request.expected_version:
        raise ConcurrentEdit()
    refusal = _refusal(actor, case, transition)
    if refusal is not None:
        raise refusal
    if transition.needs_text == "reason":
        _clean(request.text, "理由")
    elif transition.needs_text == "public_reply":
        _clean(request.text, "答复内容")
    if transition.action == "assign":
        if not (request.member_id or request.committee):
            raise MissingText("请选择承办委员或专委会。")
        if request.member_id and session.get(Member, request.member_id) is None:
            raise MissingText("没有找到这位委员。")
    if transition.action == "transfer":
        _clean(request.department, "承办部门")
    return case, transition


def do_transition(session: Session, actor: Actor, case: Case, transition: Transition,
                  request: TransitionRequest, now: datetime | None = None) -> CaseEvent:
    """Apply a checked transition; returns the public status event."""
    now = now or utcnow()
    claim_version(session, case, request.expected_version, now)
    before, late = case.status, is_overdue(case, now)
    action = transition.action
    text = (request.text or "").strip() or None
    details: dict[str, Any] = {"action": action, "from": before, "to": transition.target, "late": late}

    if action == "assign":
        _assign(session, actor, case, request.member_id, request.committee, now)
        details.update(member=request.member_id, committee=case.assignee_committee_id)
    elif action == "accept":
        case.assignee_member_id = actor.member_id or case.assignee_member_id
        if actor.committee:
            case.assignee_committee_id = actor.committee
        details["member"] = case.assignee_member_id
    elif action == "decline":
        desk = duty_desk_id(session)
        record_event(session, case, "declined", actor, visibility="internal", note=text,
                     details={"member": actor.member_id}, when=now)
        case.assignee_member_id, case.assignee_committee_id = desk, None
        if desk:
            notify_member(session, desk, case, key=f"declined:{case.id}:{case.version}",
                          subject=f"【退回】{case_subject(case)}（{case.number}）",
                          lines=[f"退回理由：{text}", "请重新派单。"])
    elif action == "transfer":
        case.department = (request.department or "").strip()[:100]
        details["department"] = case.department
        if text:
            record_event(session, case, "supervision", actor, visibility="internal", note=text,
                         details={"department": case.department}, when=now)
    elif action == "reopen":
        record_event(session, case, "reopen_reason", actor, visibility="internal", note=text, when=now)

    case.status = transition.target
    start_clock(case, now)  # 转办 restarts in_progress's clock too: the department gets its full time
    note = "已转交相关部门办理，政协将跟踪督办" if action == "transfer" else CASE_STATUS_LABELS.get(case.status)
    event = record_event(session, case, "status" if before != case.status else action, actor,
                         visibility="public", status=case.status, note=note, details=details, when=now)
    if action == "reply":
        # After the status event, so the latest public event (the progress answer) is the reply itself.
        record_event(session, case, "public_reply", actor, visibility="public", note=text, when=now)
    session.flush()
    return event


def _assign(session: Session, actor: Actor, case: Case, member_id: str | None, committee: str | None,
            now: datetime) -> None:
    """派单: the member (and committee) now hold the case; a Route records it, so access, digests and
    monthly figures see it like any routed case."""
    member = session.get(Member, member_id) if member_id else None
    case.assignee_member_id = member.id if member else None
    case.assignee_committee_id = committee or (member.committee_id if member else None)
    if member is not None:
        exists = session.query(Route.id).filter_by(case_id=case.id, member_id=member.id).first()
        if not exists:
            session.add(Route(case_id=case.id, member_id=member.id, committee_id=case.assignee_committee_id,
                              reason=f"assign:{actor_ref(actor)}", created_at=now))
        notify_member(session, member.id, case, key=f"assign:{case.id}:{member.id}:{case.version}",
                      subject=f"【派单】{case_subject(case)}（{case.number}）",
                      lines=[f"地点：{case.place or '未注明'}", f"反映人数：{case.supporter_count} 人",
                             f"请在 {deadlines.deadline_days('assigned')} 个工作日内接单或退回。"])
    elif case.assignee_committee_id:
        for (mid,) in session.query(Member.id).filter(Member.committee_id == case.assignee_committee_id,
                                                      Member.active.is_(True)):
            notify_member(session, mid, case, key=f"assign:{case.id}:{mid}:{case.version}",
                          subject=f"【派单】{case_subject(case)}（{case.number}）",
                          lines=[f"地点：{case.place or '未注明'}", "已派给您所在的专委会，请安排接单。"])


# ---------------------------------------------------------------- replies, notes, waiting

def check_case_work(session: Session, actor: Actor, number: str,
                    expected_version: int | None = None) -> Case:
    """A worker (admin, staff, member with access) may write on this case."""
    if actor.role not in WORKERS:
        raise PermissionDenied()
    case = access_case(session, actor, number, for_update=True)
    if expected_version is not None and case.version != expected_version:
        raise ConcurrentEdit()
    return case


def do_public_reply(session: Session, actor: Actor, case: Case, text: str,
                    expected_version: int | None = None) -> CaseEvent:
    """A reply the resident sees (progress answers, issue 13's messages). Keeps the status."""
    body = _clean(text, "答复内容")
    claim_version(session, case, expected_version)
    return record_event(session, case, "public_reply", actor, visibility="public", note=body)


def do_internal_note(session: Session, actor: Actor, case: Case, text: str,
                     expected_version: int | None = None) -> CaseEvent:
    """A note for staff and members only; never shown or sent to the resident."""
    body = _clean(text, "内部备注")
    claim_version(session, case, expected_version)
    return record_event(session, case, "internal_note", actor, visibility="internal", note=body)


def do_wait_for_resident(session: Session, actor: Actor, case: Case, note: str | None = None,
                         expected_version: int | None = None, now: datetime | None = None) -> CaseEvent:
    """Pause the deadline clock: the case waits for the resident (more facts, a visit date)."""
    now = now or utcnow()
    if not is_open(case.status):
        raise InvalidTransition("已办结或已关闭的案件无需等待群众回复。")
    if case.waiting_since is not None:
        raise InvalidTransition("这个案件已经在等待群众回复。")
    claim_version(session, case, expected_version, now)
    case.waiting_since = now
    return record_event(session, case, "waiting", actor, visibility="internal", note=(note or "").strip() or None,
                        details={"due_at": case.due_at.isoformat() if case.due_at else None}, when=now)


def do_resume_clock(session: Session, actor: Actor, case: Case, expected_version: int | None = None,
                    now: datetime | None = None) -> CaseEvent:
    """The resident answered: the clock runs again, the deadline later by the working days waited."""
    now = now or utcnow()
    if case.waiting_since is None:
        raise InvalidTransition("这个案件没有在等待群众回复。")
    claim_version(session, case, expected_version, now)
    paused = deadlines.working_days_between(case.waiting_since, now)
    case.due_at = deadlines.extend_for_pause(case.due_at, case.waiting_since, now)
    case.waiting_since = None
    return record_event(session, case, "resumed", actor, visibility="internal",
                        details={"paused_working_days": paused,
                                 "due_at": case.due_at.isoformat() if case.due_at else None}, when=now)


def public_events(session: Session, case: Case) -> list[CaseEvent]:
    """The timeline a resident may see, oldest first."""
    return (session.query(CaseEvent).filter(CaseEvent.case_id == case.id, CaseEvent.visibility == "public")
            .order_by(CaseEvent.id).all())
