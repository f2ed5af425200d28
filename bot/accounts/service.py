"""Account operations on a session: create, change password, disable, log in with throttling, audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.accounts.models import ROLES, AuditEntry, LoginFailure, User
from bot.accounts.passwords import hash_password, verify_password
from bot.storage.models import utcnow


class AccountError(ValueError):
    """A request the account rules refuse (unknown role, duplicate name, ...)."""


@dataclass(frozen=True)
class Throttle:
    """At most `per_user` failed logins per username and `per_address` per client address in `window`."""

    per_user: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


def create_user(session: Session, username: str, password: str, role: str, *, member_id: str | None = None,
                committee_id: str | None = None, display_name: str | None = None) -> User:
    username = username.strip()
    if not username:
        raise AccountError("username is empty")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if role == "member" and not (member_id or committee_id):
        raise AccountError("a member account needs --member-id or --committee")
    if session.execute(select(User.id).where(User.username == username)).first():
        raise AccountError(f"user {username!r} exists")
    user = User(username=username, password_hash=hash_password(password), role=role, member_id=member_id,
                committee_id=committee_id, display_name=display_name, disabled=False, created_at=utcnow())
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User | None:
    return session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()


def require_user(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def set_password(session: Session, username: str, password: str) -> User:
    user = require_user(session, username)
    user.password_hash = hash_password(password)
    session.flush()
    return user


def set_disabled(session: Session, username: str, disabled: bool = True) -> User:
    user = require_user(session, username)
    user.disabled = disabled
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.username)).scalars())


def is_throttled(session: Session, username: str, address: str, throttle: Throttle) -> bool:
    since = utcnow() - throttle.window
    by_user = session.execute(select(func.count(LoginFailure.id)).where(
        LoginFailure.username == username, LoginFailure.created_at >= since)).scalar_one()
    if by_user >= throttle.per_user:
        return True
    by_address = session.execute(select(func.count(LoginFailure.id)).where(
        LoginFailure.address == address, LoginFailure.created_at >= since)).scalar_one()
    return by_address >= throttle.per_address


def authenticate(session: Session, username: str, password: str, address: str,
                 throttle: Throttle) -> tuple[User | None, str]:
    """(user, "ok") or (None, "throttled" | "invalid"). A throttled name is refused even with the right
    password, so guessing gains nothing from going on."""
    username = username.strip()[:64]
    if is_throttled(session, username, address, throttle):
        audit(session, None, "login_throttled", detail={"username": username})
        return None, "throttled"
    user = get_user(session, username) if username else None
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        session.add(LoginFailure(username=username, address=address[:64], created_at=utcnow()))
        audit(session, None, "login_failed", detail={"username": username})
        return None, "invalid"
    user.last_login_at = utcnow()
    audit(session, user, "login")
    return user, "ok"


def audit(session: Session, user: User | None, action: str, case_number: str | None = None,
          detail: dict[str, Any] | None = None, actor: str | None = None) -> AuditEntry:
    entry = AuditEntry(user_id=user.id if user else None,
                       actor=(user.username if user else actor or "anonymous")[:100], action=action,
                       case_number=case_number, detail=detail, created_at=utcnow())
    session.add(entry)
    session.flush()
    return entry
