"""Tables for routing and delivery, on the shared `Base` (migration 0002_routing)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint

from bot.storage.models import Base, utcnow


class Committee(Base):
    __tablename__ = "committees"

    id = Column(String(64), primary_key=True)
    name = Column(String(100), nullable=False)


class Member(Base):
    """A CPPCC member (委员) or a desk (值班室) that receives routed cases."""

    __tablename__ = "members"

    id = Column(String(64), primary_key=True)
    name = Column(String(100), nullable=False)
    sector = Column(String(64))  # 界别
    committee_id = Column(String(64), ForeignKey("committees.id"))
    is_duty_desk = Column(Boolean, nullable=False, default=False)
    active = Column(Boolean, nullable=False, default=True)
    channels = Column(JSON)  # [{"backend": "file"|"webhook"|"wecom"|"email", ...}]


class MemberArea(Base):
    """包联: a member follows an area (district, optionally a street, optionally a community)."""

    __tablename__ = "member_areas"

    id = Column(Integer, primary_key=True)
    member_id = Column(String(64), ForeignKey("members.id"), nullable=False, index=True)
    district = Column(String(100), nullable=False)
    street = Column(String(100))
    community = Column(String(100))


class Route(Base):
    """One routing decision: this case goes to this member, and why."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("case_id", "member_id", name="uq_routes_case_member"),)

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    member_id = Column(String(64), ForeignKey("members.id"), nullable=False, index=True)
    committee_id = Column(String(64))
    reason = Column(String(200), nullable=False)  # e.g. "topic:transport committee" / "area:..." / "duty"
    created_at = Column(DateTime, nullable=False, default=utcnow)


class OutboxMessage(Base):
    """A message waiting to be delivered. Claimed with a lease so a crash mid-delivery loses nothing:
    a stale claim (lease expired) is picked up again by the next worker pass."""

    __tablename__ = "outbox"

    id = Column(Integer, primary_key=True)
    key = Column(String(200), unique=True, nullable=False)  # idempotency: one message per purpose
    case_id = Column(Integer, ForeignKey("cases.id"), index=True)
    member_id = Column(String(64), index=True)
    kind = Column(String(20), nullable=False, default="case")  # case | digest
    backend = Column(String(20), nullable=False)  # file | webhook | wecom | email
    target = Column(JSON, nullable=False)  # backend settings: url/secret, address, ...
    subject = Column(String(300), nullable=False, default="")
    body = Column(Text, nullable=False, default="")  # Markdown
    payload = Column(JSON)  # structured report for webhook consumers
    status = Column(String(20), nullable=False, default="pending", index=True)  # pending|sending|sent|dead
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    lease_until = Column(DateTime)
    last_error = Column(Text)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    sent_at = Column(DateTime)


class DigestState(Base):
    """What a member's last digest covered, so the next one reports only what changed."""

    __tablename__ = "digest_state"

    member_id = Column(String(64), primary_key=True)
    last_sent_at = Column(DateTime)
    supporters = Column(JSON)  # {case_id: supporter_count at the last digest}
