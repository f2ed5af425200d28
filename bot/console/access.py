"""Who is acting in the console or the API, as bot.workflow sees an actor. Who may see or do what is
decided by bot.workflow (access_case, the transition table); this module only adapts accounts to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.sql import ColumnElement

from bot.workflow.access import member_filter
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
    """A WHERE clause limiting cases to what the actor may open; None means every case."""
    if actor.is_staff:
        return None
    return member_filter(actor)
