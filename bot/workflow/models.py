"""Workflow tables on the shared `Base` (migration 0007_workflow)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String

from bot.storage.models import Base, utcnow


class CaseMerge(Base):
    """One staff merge of a case into another: what moved, so it can be undone exactly."""

    __tablename__ = "case_merges"

    id = Column(Integer, primary_key=True)
    source_case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    target_case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    submission_ids = Column(JSON, nullable=False)  # the submissions that moved from source to target
    source_status = Column(String(20), nullable=False)  # restored on undo
    supporters = Column(Integer, nullable=False)  # how many supporters the target gained
    actor = Column(String(100), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    undone_at = Column(DateTime)
    undone_by = Column(String(100))
