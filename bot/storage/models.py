"""Database schema. The database is the system of record; the FAISS index is derived from it.

Contact data lives in its own table so that read APIs for members never join it by accident.
Other modules add their tables to the same `Base` (see bot/storage/migrations for the history).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# Case status values and how they are shown to residents.
CASE_STATUS_LABELS: dict[str, str] = {
    "received": "已受理，等待分派",
    "assigned": "已转交相关委员/专委会",
    "accepted": "委员已接单，正在跟进",
    "in_progress": "正在办理",
    "replied": "已答复",
    "resolved": "已办结",
    "closed": "已关闭",
    "merged": "已并入其他案件",
    "reopened": "已重新办理",
}

# A case in one of these states is finished: it gains no new supporters, and a resident who reports the
# same problem again gets a new case (the problem came back, or the case was merged away).
CLOSED_STATUSES: frozenset[str] = frozenset({"resolved", "closed", "merged"})


class Case(Base):
    """One concern as members see it: one or many submissions from one or many residents."""

    __tablename__ = "cases"

    id = Column(Integer, primary_key=True)
    number = Column(String(32), unique=True, index=True)  # e.g. SL2026-000123, set after insert
    title = Column(String(200), nullable=False, default="")
    summary = Column(Text, nullable=False, default="")
    kind = Column(String(20), nullable=False, default="concern")  # concern | suggestion
    status = Column(String(20), nullable=False, default="received", index=True)
    topic = Column(String(50), index=True)
    topic_confidence = Column(Float)
    needs_review = Column(Boolean, nullable=False, default=False)
    place = Column(String(300))
    district = Column(String(100))
    street = Column(String(100))
    community = Column(String(100))
    jurisdiction = Column(String(100), index=True)  # partition key for the duplicate index
    campaign = Column(String(64), index=True)
    supporter_count = Column(Integer, nullable=False, default=1)
    merged_into_id = Column(Integer, ForeignKey("cases.id"))
    due_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)
    # Workflow (bot/workflow, migration 0007_workflow). `version` grows by one with every workflow change:
    # an edit made on a stale page names the version it saw and fails instead of overwriting.
    version = Column(Integer, nullable=False, default=1, server_default="1")
    assignee_member_id = Column(String(64), index=True)  # who holds the case now (派单/接单)
    assignee_committee_id = Column(String(64), index=True)
    department = Column(String(100))  # 转办: the department answering, followed up with 督办
    state_since = Column(DateTime)  # when the current status began; its deadline counts from here
    waiting_since = Column(DateTime)  # set while waiting for the resident: the deadline clock is paused

    submissions = relationship("Submission", back_populates="case", foreign_keys="Submission.case_id")
    events = relationship("CaseEvent", back_populates="case", order_by="CaseEvent.id")


class Submission(Base):
    """What one resident said, once. Never deleted; moved between cases on merge."""

    __tablename__ = "submissions"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    channel = Column(String(32), nullable=False, default="rest")
    sender = Column(String(64), index=True)  # pseudonym (HMAC of channel + sender id), never the raw id
    kind = Column(String(20), nullable=False, default="concern")
    text = Column(Text, nullable=False)
    title = Column(String(200))
    place = Column(String(300))
    # bot.text.places.place_parts of `place` when it names a place ({"district", "street", "community",
    # "roads", "building", "unit", "landmark", "spot", "text"}); the words themselves stay in `place`.
    place_parts = Column(JSON)
    since_when = Column(String(200))
    scope = Column(String(300))
    anonymous = Column(Boolean, nullable=False, default=False)
    campaign = Column(String(64))
    media = Column(JSON)  # list of {"type": "image", "url"/"media_id": ...}
    source = Column(String(20), nullable=False, default="live")  # live | import
    external_id = Column(String(128), unique=True)  # idempotency key (client_ref, WeChat MsgId, import id)
    label = Column(String(100))  # imported topic/cluster label, for training and evaluation
    # Duplicate handling: new | auto_merged | ask | confirmed | declined
    dedup_decision = Column(String(20))
    candidate_case_id = Column(Integer, ForeignKey("cases.id"))
    dedup_score = Column(Float)
    # One embedding per concern, stored so the FAISS index can always be rebuilt.
    embedding = Column(LargeBinary)
    embedding_model = Column(String(100))
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)

    case = relationship("Case", back_populates="submissions", foreign_keys=[case_id])
    contact = relationship("Contact", back_populates="submission", uselist=False)


class Contact(Base):
    """Personal contact data, kept apart from the concern text. Only stored with consent."""

    __tablename__ = "contacts"

    id = Column(Integer, primary_key=True)
    submission_id = Column(Integer, ForeignKey("submissions.id"), nullable=False, unique=True)
    phone = Column(String(32))
    name = Column(String(64))
    consent = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    submission = relationship("Submission", back_populates="contact")


class CaseEvent(Base):
    """Everything that happened to a case, newest last: the progress a resident can ask about."""

    __tablename__ = "case_events"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    kind = Column(String(30), nullable=False)  # created | status | note | supporter | merged | routed
    status = Column(String(20))
    note = Column(Text)  # shown to the resident when visibility is public; no personal data
    actor = Column(String(100))  # the id of who did it (account id, "routing", "system:...")
    # public: the resident may see it (progress, replies); internal: staff and members only (内部备注,
    # 催办, 退回理由). Never one field for both (migration 0007_workflow).
    visibility = Column(String(10), nullable=False, default="public", server_default="public")
    details = Column(JSON)  # structured facts of the change (from/to status, member, merge ids)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    case = relationship("Case", back_populates="events")


class Handoff(Base):
    """A resident asked for a person (转人工) or the assistant could not help."""

    __tablename__ = "handoffs"

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False, default="rest")
    sender = Column(String(64), index=True)
    reason = Column(String(30), nullable=False, default="requested")  # requested | fallback
    text = Column(Text)
    status = Column(String(20), nullable=False, default="open")
    created_at = Column(DateTime, nullable=False, default=utcnow)


Index("ix_submissions_sender_created", Submission.sender, Submission.created_at)


class CaseCounter(Base):
    """Last case number handed out per year; the row lock makes numbering safe under concurrency."""

    __tablename__ = "case_counters"

    year = Column(Integer, primary_key=True, autoincrement=False)
    last = Column(Integer, nullable=False, default=0)

