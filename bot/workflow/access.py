"""Who may see which case: one question, asked in one place.

Admin and staff see every case. A member sees a case routed to them (a Route row, written by routing and
by 派单) or to their committee, or one they hold. Everyone else sees nothing.
"""

from __future__ import annotations

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Query, Session

from bot.routing.models import Route
from bot.storage.case_numbers import normalize_number
from bot.storage.models import Case
from bot.workflow.actors import Actor, is_staff
from bot.workflow.errors import CaseNotFound, PermissionDenied


def member_filter(actor: Actor):  # type: ignore[no-untyped-def]
    """SQL condition on Case: the cases this member may see."""
    routed_to = [Route.member_id == actor.member_id] if actor.member_id else []
    if actor.committee:
        routed_to.append(Route.committee_id == actor.committee)
    held = [Case.assignee_member_id == actor.member_id] if actor.member_id else []
    if actor.committee:
        held.append(Case.assignee_committee_id == actor.committee)
    if not routed_to:
        return Case.id.is_(None)  # a member account not linked to the directory sees nothing
    return or_(exists().where(Route.case_id == Case.id, or_(*routed_to)), *held)


def visible_cases(session: Session, actor: Actor) -> Query:
    """A query of the cases `actor` may see, for queues and lists (callers add filters and order)."""
    query = session.query(Case)
    if is_staff(actor) or actor.role == "system":
        return query
    if actor.role == "member":
        return query.filter(member_filter(actor))
    return query.filter(Case.id.is_(None))


def can_see(session: Session, actor: Actor, case: Case) -> bool:
    if is_staff(actor) or actor.role == "system":
        return True
    if actor.role != "member":
        return False
    return bool(session.execute(
        select(Case.id).where(Case.id == case.id, member_filter(actor))
    ).first())


def access_case(session: Session, actor: Actor, number: str, for_update: bool = False) -> Case:
    """The case with this number if `actor` may see it. CaseNotFound (404) when there is none,
    PermissionDenied (403) when it is not theirs. `for_update` locks the row until the transaction
    ends (PostgreSQL; SQLite serialises writers anyway)."""
    normalized = normalize_number(number)
    if not normalized:
        raise CaseNotFound()
    stmt = select(Case).where(Case.number == normalized)
    if for_update:
        stmt = stmt.with_for_update()
    case = session.execute(stmt).scalar_one_or_none()
    if case is None:
        raise CaseNotFound()
    if not can_see(session, actor, case):
        raise PermissionDenied()
    return case
