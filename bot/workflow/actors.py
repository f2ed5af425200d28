"""Who acts: the console's logged-in User, an API token's owner, or a process. Anything with these four
attributes is an Actor (the console's bot.accounts User satisfies it structurally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class Actor(Protocol):
    id: str | int
    role: str  # admin | staff | member | system
    member_id: str | None  # the directory Member this account is, for role member
    committee: str | None  # the committee (专委会) id the member belongs to


@dataclass(frozen=True)
class SimpleActor:
    id: str
    role: str
    member_id: str | None = None
    committee: str | None = None


def actor_ref(actor: Actor) -> str:
    """What the audit trail stores for an actor: its id, never a name typed into a form."""
    return str(actor.id)[:100]


def is_staff(actor: Actor) -> bool:
    return actor.role in ("admin", "staff")
