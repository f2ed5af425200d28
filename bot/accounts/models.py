"""Tables for console accounts (migration 0005_console), on the shared `Base`."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, String

from bot.storage.models import Base, utcnow

# admin: everything, users and routing; staff (机关): every case, assignment, 督办;
# member (委员): the cases routed to them or to their committee.
ROLES: tuple[str, ...] = ("admin", "staff", "member")
ROLE_LABELS: dict[str, str] = {"admin": "管理员", "staff": "机关工作人员", "member": "委员"}


class User(Base):
    __tablename__ = "users"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(100))
    password_hash = Column(String(200), nullable=False)  # argon2id, parameters inside the hash
    role = Column(String(16), nullable=False)
    member_id = Column(String(64))  # bot.routing.models.Member.id, for role member
    committee_id = Column(String(64))  # bot.routing.models.Committee.id
    disabled = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    last_login_at = Column(DateTime)

    @property
    def label(self) -> str:
        return self.display_name or self.username


class AuditEntry(Base):
    """One action by a logged-in person (or the API token): who, what, on which case, when."""

    __tablename__ = "audit_log"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer)  # None for the shared API token
    actor = Column(String(100), nullable=False)  # username, or "api-token"
    action = Column(String(40), nullable=False)
    case_number = Column(String(32), index=True)
    detail = Column(JSON)  # no resident personal data: field names, statuses, lengths
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)


class LoginFailure(Base):
    """A failed login, counted per username and per client address to throttle guessing."""

    __tablename__ = "login_failures"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False)
    address = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)


Index("ix_login_failures_username_created", LoginFailure.username, LoginFailure.created_at)
Index("ix_login_failures_address_created", LoginFailure.address, LoginFailure.created_at)
