"""Who may see or do what in the console: one place to ask (`access_case`, `visible_cases`).

The workflow part (bot/workflow) owns the transition table; until it is merged the console uses the
interim table below, behind `allowed_statuses`, so switching is one import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from bot.routing.models import Route
from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case


class CaseAccessDenied(Exception):
    """The user may not open this case (403), or may not make this change."""


class CaseMissing(Exception):
    """No case with that number (404)."""


@dataclass(frozen=True)
class Actor:
    """The person acting, as the console and the API know them: loaded fresh on every request."""

    user_id: int | None
    username: str
    role: str  # admin | staff | member | api
    member_id: str | None = None
    committee_id: str | None = None
    label: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "staff", "api")

    @property
    def name(self) -> str:
        return self.label or self.username


API_ACTOR = Actor(user_id=None, username="api-token", role="api", label="接口调用")

# Interim transitions for members until bot/workflow's table is merged: a member moves their own case
# forward; staff (机关) may set any status but merged, which only a merge sets.
_MEMBER_NEXT: dict[str, tuple[str, ...]] = {
    "assigned": ("accepted",),
    "accepted": ("in_progress", "replied"),
    "in_progress": ("replied",),
    "reopened": ("in_progress", "replied"),
}


def allowed_statuses(actor: Actor, current: str) -> list[str]:
    """Statuses this actor may move a case to from `current` (not including `current`)."""
    if actor.is_staff:
        return [s for s in CASE_STATUS_LABELS if s not in (current, "merged")]
    return list(_MEMBER_NEXT.get(current, ()))


def visible_cases(actor: Actor) -> ColumnElement[bool] | None:
    """A WHERE clause limiting cases to what the actor may open; None means every case."""
    if actor.is_staff:
        return None
    conditions = []
    if actor.member_id:
        conditions.append(Route.member_id == actor.member_id)
    if actor.committee_id:
        conditions.append(Route.committee_id == actor.committee_id)
    if not conditions:
        return Case.id.is_(None)  # a member account tied to nothing sees nothing
    return exists(select(Route.id).where(Route.case_id == Case.id, or_(*conditions)))


def may_open(session: Session, actor: Actor, case: Case) -> bool:
    clause = visible_cases(actor)
    if clause is None:
        return True
    return session.execute(select(Case.id).where(Case.id == case.id, clause)).first() is not None


def access_case(session: Session, actor: Actor, number: str, *, for_update: bool = False) -> Case:
    """The case by number if the actor may open it; with `for_update` the row is locked (PostgreSQL) so
    two edits of the same case are serialised and the version check below is race-free."""
    case = repository.get_case_by_number(session, number)
    if case is None:
        raise CaseMissing(number)
    if not may_open(session, actor, case):
        raise CaseAccessDenied(number)
    if for_update:
        session.refresh(case, with_for_update=True)
    return case
