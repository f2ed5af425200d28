"""Who is acting in the console or the API, as bot.workflow sees an actor. Who may see or do what is
decided by bot.workflow (access_case, the transition table); this module only adapts accounts to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.sql import ColumnElement

from bot.routing.models import Route
from bot.storage.models import Case
from bot.workflow.actors import is_staff


@dataclass(frozen=True)
class Actor:
    """A logged-in account (or the staff API token), loaded fresh on every request. Satisfies
    bot.workflow.actors.Actor: `id` is what the timeline and audit store (the username: unique, stable,
    and never typed into a form), `committee` the committee id."""

    id: str
    role: str  # admin | staff | member
    member_id: str | None = None
    committee: str | None = None
    user_id: int | None = None
    label: str = ""

    @property
    def username(self) -> str:
        return self.id

    @property
    def is_staff(self) -> bool:
        return is_staff(self)

    @property
    def name(self) -> str:
        return self.label or self.id


# The shared bearer token is the operator's credential (scripts, integrations): it acts as admin, inside
# the same transition table as everyone; the timeline and audit log name it as "api-token".
API_ACTOR = Actor(id="api-token", role="admin", label="接口调用")


def visible_cases(actor: Actor) -> ColumnElement[bool] | None:
    """A WHERE clause limiting queue queries to the cases the actor may open; None means every case.

    The same set as bot.workflow.access.member_filter (tests/test_console_api.py checks they agree), in
    the `IN (SELECT case_id FROM routes ...)` form: SQLite then reads the member's routes once instead of
    probing them for every case, which keeps a member's queue fast at 10,000 cases. Opening a case still
    goes through bot.workflow.access.access_case."""
    if actor.is_staff:
        return None
    if not actor.member_id and not actor.committee:
        return Case.id.is_(None)  # a member account not linked to the directory sees nothing
    routed = [Route.member_id == actor.member_id] if actor.member_id else []
    held = [Case.assignee_member_id == actor.member_id] if actor.member_id else []
    if actor.committee:
        routed.append(Route.committee_id == actor.committee)
        held.append(Case.assignee_committee_id == actor.committee)
    return or_(Case.id.in_(select(Route.case_id).where(or_(*routed))), *held)
