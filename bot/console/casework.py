"""Changes people make to a case from the console or the API, as check/do pairs.

`check_*` validates and asks `access` whether this actor may; `do_*` changes the rows. Every change
compares the version the person saw (the case's `updated_at`) under a row lock, so a concurrent edit is
refused with a clear message instead of being overwritten, and every change writes the audit log in the
same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.accounts.models import AuditEntry
from bot.console.access import Actor, CaseAccessDenied, access_case, allowed_statuses
from bot.routing.models import Member, Route
from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case, InternalNote, utcnow

MAX_TEXT = 2000


class CaseConflict(Exception):
    """Someone else changed the case after this person opened it."""


class InvalidChange(ValueError):
    """The change is not allowed from here (bad status, empty text, ...). The message is Chinese."""


@dataclass(frozen=True)
class CaseChange:
    """What one form or PATCH asks for; any subset."""

    status: str | None = None
    public_reply: str | None = None
    internal_note: str | None = None
    version: str | None = None  # Case.updated_at as the person saw it; None skips the check (API only)


def version_of(case: Case) -> str:
    return case.updated_at.isoformat(timespec="microseconds")


def _audit(session: Session, actor: Actor, action: str, case: Case | None, **detail: Any) -> None:
    session.add(AuditEntry(user_id=actor.user_id, actor=actor.username[:100], action=action,
                           case_number=case.number if case else None, detail=detail or None,
                           created_at=utcnow()))


def _clean(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise InvalidChange(f"{what}太长了，请精简到 {MAX_TEXT} 字以内。")
    return text or None


def _check_version(case: Case, version: str | None) -> None:
    if version is not None and version != version_of(case):
        raise CaseConflict(case.number)


def check_change(session: Session, actor: Actor, number: str, change: CaseChange) -> tuple[Case, CaseChange]:
    case = access_case(session, actor, number, for_update=True)
    _check_version(case, change.version)
    cleaned = CaseChange(status=change.status or None,
                         public_reply=_clean(change.public_reply, "公开答复"),
                         internal_note=_clean(change.internal_note, "内部备注"), version=change.version)
    if cleaned.status is not None:
        if cleaned.status not in CASE_STATUS_LABELS:
            raise InvalidChange("案件状态不正确。")
        if cleaned.status != case.status and cleaned.status not in allowed_statuses(actor, case.status):
            raise CaseAccessDenied(number)
    if cleaned.status in (None, case.status) and not cleaned.public_reply and not cleaned.internal_note:
        raise InvalidChange("没有要保存的内容。")
    return case, cleaned


def do_change(session: Session, actor: Actor, case: Case, change: CaseChange) -> Case:
    """Apply a checked change. The public reply becomes a case event (what the resident's progress answer
    reads); the internal note goes to its own table, which no resident-facing view reads."""
    when = utcnow()
    if change.status is not None and change.status != case.status:
        old = case.status
        case.status = change.status
        repository.add_event(session, case, "status", status=change.status, actor=actor.name, when=when)
        _audit(session, actor, "status", case, old=old, new=change.status)
    if change.public_reply:
        repository.add_event(session, case, "reply", status=case.status, note=change.public_reply,
                             actor=actor.name, when=when)
        _audit(session, actor, "public_reply", case, chars=len(change.public_reply))
    if change.internal_note:
        session.add(InternalNote(case_id=case.id, text=change.internal_note, author=actor.name,
                                 created_at=when))
        _audit(session, actor, "internal_note", case, chars=len(change.internal_note))
    case.updated_at = when
    session.flush()
    return case


def change_case(session: Session, actor: Actor, number: str, change: CaseChange) -> Case:
    case, cleaned = check_change(session, actor, number, change)
    return do_change(session, actor, case, cleaned)


def accept_case(session: Session, actor: Actor, number: str, version: str | None) -> Case:
    """委员接单."""
    return change_case(session, actor, number, CaseChange(status="accepted", version=version))


def decline_case(session: Session, actor: Actor, number: str, reason: str, version: str | None) -> Case:
    """A member declines with a reason: their route goes, the duty desk gets the case, status back to
    received (等待分派). The reason is an internal note, never shown to the resident."""
    case = access_case(session, actor, number, for_update=True)
    _check_version(case, version)
    if actor.is_staff or not actor.member_id:
        raise InvalidChange("只有被分派的委员可以退回案件。")
    if case.status not in ("assigned", "accepted"):
        raise InvalidChange("这个案件现在不能退回。")
    reason = _clean(reason, "退回理由")
    if not reason:
        raise InvalidChange("请写明退回的理由。")
    when = utcnow()
    session.execute(delete(Route).where(Route.case_id == case.id, Route.member_id == actor.member_id))
    desks = session.execute(select(Member.id, Member.committee_id).where(
        Member.is_duty_desk.is_(True), Member.active.is_(True))).all()
    for desk_id, committee_id in desks:
        if desk_id != actor.member_id and _route_key(session, case.id, desk_id) is None:
            session.add(Route(case_id=case.id, member_id=desk_id, committee_id=committee_id,
                              reason=f"declined by {actor.username}", created_at=when))
    case.status = "received"
    repository.add_event(session, case, "status", status="received", actor=actor.name, when=when)
    session.add(InternalNote(case_id=case.id, text=f"委员退回：{reason}", author=actor.name, created_at=when))
    _audit(session, actor, "decline", case, chars=len(reason))
    case.updated_at = when
    session.flush()
    return case


def _route_key(session: Session, case_id: int, member_id: str) -> int | None:
    return session.execute(select(Route.id).where(Route.case_id == case_id, Route.member_id == member_id)
                           ).scalar_one_or_none()


def assign_case(session: Session, actor: Actor, number: str, member_id: str, version: str | None = None) -> Case:
    """派单: staff route the case to a member (their committee follows); status becomes assigned."""
    if not actor.is_staff:
        raise CaseAccessDenied(number)
    case = access_case(session, actor, number, for_update=True)
    _check_version(case, version)
    member = session.get(Member, member_id)
    if member is None or not member.active:
        raise InvalidChange("没有这位委员，或已停用。")
    when = utcnow()
    if _route_key(session, case.id, member.id) is None:
        session.add(Route(case_id=case.id, member_id=member.id, committee_id=member.committee_id,
                          reason=f"assigned by {actor.username}", created_at=when))
    if case.status in ("received", "reopened"):
        case.status = "assigned"
        repository.add_event(session, case, "status", status="assigned", actor=actor.name, when=when)
    _audit(session, actor, "assign", case, member_id=member.id)
    case.updated_at = when
    session.flush()
    return case
