"""Outbox operations: enqueue, claim with a lease, complete, fail with exponential backoff.

Claims are conditional UPDATEs (compare-and-set on status and lease), so two workers never send the same
row at once, on SQLite and PostgreSQL alike. A worker that dies mid-delivery leaves its rows `sending`
with a lease in the past; the next claim takes them again. Delivery is therefore at-least-once, and every
message carries its stable `key` so receivers can drop repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update

from bot.config import settings
from bot.routing.models import OutboxMessage
from bot.storage.models import utcnow


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 30.0
    max_seconds: float = 3600.0
    lease_seconds: float = 120.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the given number of failed attempts: base, 2x base, 4x base, ... capped."""
        return min(self.max_seconds, self.base_seconds * (2 ** max(0, attempts - 1)))

    @staticmethod
    def from_settings() -> RetryPolicy:
        cfg = settings().get("delivery", {}) or {}
        return RetryPolicy(
            max_attempts=int(cfg.get("max_attempts", 6)),
            base_seconds=float(cfg.get("backoff_base_seconds", 30)),
            max_seconds=float(cfg.get("backoff_max_seconds", 3600)),
            lease_seconds=float(cfg.get("lease_seconds", 120)),
        )


def enqueue(session, *, key: str, backend: str, target: dict, subject: str, body: str,
            payload: dict | None = None, case_id: int | None = None, member_id: str | None = None,
            kind: str = "case") -> OutboxMessage | None:
    """Add a message unless one with the same key exists (idempotent). Returns the new row or None."""
    if session.query(OutboxMessage.id).filter_by(key=key).first():
        return None
    row = OutboxMessage(key=key, backend=backend, target=target, subject=subject, body=body, payload=payload,
                        case_id=case_id, member_id=member_id, kind=kind, status="pending", attempts=0,
                        next_attempt_at=utcnow())
    session.add(row)
    session.flush()
    return row


def claim(session, limit: int, policy: RetryPolicy, now: datetime | None = None) -> list[int]:
    """Take up to `limit` due messages (pending and due, or sending with an expired lease)."""
    now = now or utcnow()
    due = or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
    )
    candidates = (session.query(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
                  .filter(due).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit).all())
    claimed = []
    lease = now + timedelta(seconds=policy.lease_seconds)
    for row_id, status, attempts in candidates:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == status,
                   OutboxMessage.attempts == attempts)
            .values(status="sending", lease_until=lease, attempts=attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(row_id)
    session.commit()  # the claim must be durable before anything is sent
    return claimed


def complete(session, row_id: int, now: datetime | None = None) -> None:
    session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id)
                    .values(status="sent", sent_at=now or utcnow(), lease_until=None, last_error=None)
                    .execution_options(synchronize_session=False))
    session.commit()


def fail(session, row_id: int, error: str, policy: RetryPolicy, now: datetime | None = None) -> str:
    """Record a failed attempt: back off and retry, or dead-letter after max_attempts. Returns the status."""
    now = now or utcnow()
    row = session.get(OutboxMessage, row_id)
    if row.attempts >= policy.max_attempts:
        row.status = "dead"
        row.next_attempt_at = now
    else:
        row.status = "pending"
        row.next_attempt_at = now + timedelta(seconds=policy.delay(row.attempts))
    row.lease_until = None
    row.last_error = error[:2000]
    session.commit()
    return row.status


def requeue_dead(session, row_ids: list[int] | None = None) -> int:
    """Give dead-lettered messages a fresh start (after fixing an endpoint)."""
    query = session.query(OutboxMessage).filter(OutboxMessage.status == "dead")
    if row_ids:
        query = query.filter(OutboxMessage.id.in_(row_ids))
    count = 0
    for row in query:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        count += 1
    session.commit()
    return count
