"""What the console's forms and PATCH /api/v1/cases ask of bot.workflow, in one place.

The workflow owns the rules (transition table, access, versions, outbox); this module maps form fields
to its `check_*`/`do_*` calls and writes the console's audit log in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.models import AuditEntry
from bot.console.access import Actor
from bot.storage.models import Case, utcnow
from bot.workflow import cases as wf
from bot.workflow.errors import InvalidTransition, MissingText
from bot.workflow.states import Transition

# These transitions have their own forms on the case page: 派单 (choose a member), 接单/退回 (the member's
# box), 答复 (the public reply form), 转办督办 (department + note). The status select offers the rest.
OWN_FORM = frozenset({"assign", "accept", "decline", "reply", "transfer"})


def audit(session: Session, actor: Actor, action: str, case: Case | None, **detail: Any) -> None:
    session.add(AuditEntry(user_id=actor.user_id, actor=actor.id[:100], action=action,
                           case_number=case.number if case else None, detail=detail or None,
                           created_at=utcnow()))


def offered(actor: Actor, case: Case) -> list[Transition]:
    """Transitions this actor may start on this case (table order): the workflow's own answer, from the
    same refusal rules its check_transition applies."""
    return wf.allowed_actions(actor, case)


def status_choices(actor: Actor, case: Case) -> list[Transition]:
    return [t for t in offered(actor, case) if t.action not in OWN_FORM]


def can(actor: Actor, case: Case, action: str) -> bool:
    return any(t.action == action for t in offered(actor, case))


def transition_to(actor: Actor, case: Case, status: str, department: str | None = None) -> Transition:
    """The transition a target status stands for (the status select and the API send targets). From
    accepted, in_progress is either 开始办理 or 转办督办: a department given means the latter."""
    candidates = [t for t in offered(actor, case) if t.target == status and t.action != "reply"]
    if not candidates:
        raise InvalidTransition()
    for t in candidates:
        if (t.action == "transfer") == bool(department):
            return t
    return candidates[0]


@dataclass(frozen=True)
class CaseChange:
    """What one form or PATCH asks for; any subset. `version` is the case version the person saw."""

    status: str | None = None
    reason: str | None = None
    public_reply: str | None = None
    mark_replied: bool = False  # the public reply also moves the case to replied (答复)
    internal_note: str | None = None
    member_id: str | None = None
    committee: str | None = None
    department: str | None = None
    version: int | None = None


def run_transition(session: Session, actor: Actor, number: str, action: str, change: CaseChange) -> Case:
    text = change.public_reply if action == "reply" else change.reason
    request = wf.TransitionRequest(action=action, text=text,
                                   member_id=change.member_id, committee=change.committee,
                                   department=change.department,
                                   expected_version=change.version)
    case, transition = wf.check_transition(session, actor, number, request)
    wf.do_transition(session, actor, case, transition, request)
    audit(session, actor, action, case, to=transition.target)
    return case


def change_case(session: Session, actor: Actor, number: str, change: CaseChange) -> Case:
    """Apply a change: status (by target), public reply, internal note, in that order, one transaction.
    Only the first step checks the version the person saw; the later ones follow it."""
    if not (change.status or change.public_reply or change.internal_note):
        raise MissingText("没有要保存的内容。")
    case = wf.check_case_work(session, actor, number, change.version)
    version = change.version
    if change.status and change.status != case.status:
        if change.status == "replied":
            if not change.public_reply:
                raise MissingText("改为“已答复”需要填写公开答复。")
            case = run_transition(session, actor, number, "reply", change)
            change = CaseChange(internal_note=change.internal_note)
        else:
            action = transition_to(actor, case, change.status, change.department).action
            case = run_transition(session, actor, number, action, change)
        version = None
    if change.public_reply:
        if change.mark_replied:
            case = run_transition(session, actor, number, "reply",
                                  CaseChange(public_reply=change.public_reply, version=version))
        else:
            wf.do_public_reply(session, actor, case, change.public_reply, version)
            audit(session, actor, "public_reply", case, chars=len(change.public_reply))
        version = None
    if change.internal_note:
        wf.do_internal_note(session, actor, case, change.internal_note, version)
        audit(session, actor, "internal_note", case, chars=len(change.internal_note))
    session.flush()
    return case


def merge_case(session: Session, actor: Actor, number: str, target_number: str, version: int | None) -> Case:
    """Staff merge a duplicate the detector missed into `target_number`; returns the target."""
    from bot.workflow import merging

    source, target = merging.check_merge_cases(session, actor, number, target_number.strip())
    merging.do_merge_cases(session, actor, source, target, expected_versions=(version, None))
    audit(session, actor, "merge", source, into=target.number)
    return target


def undo_merge(session: Session, actor: Actor, number: str) -> Case:
    from bot.workflow import merging

    source = merging.check_undo_merge(session, actor, number)
    merging.do_undo_merge(session, actor, source)
    audit(session, actor, "undo_merge", source)
    return source


def split_report(session: Session, actor: Actor, number: str, submission_id: int) -> Case:
    """A wrongly merged report goes back to a case of its own; returns that case."""
    from bot.workflow import merging

    case, submission = merging.check_split(session, actor, number, submission_id)
    own = merging.do_split(session, actor, case, submission)
    audit(session, actor, "split", case, submission_id=submission_id, into=own.number)
    return own
