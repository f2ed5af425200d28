"""Outbox operations: enqueue, claim with a lease, complete, fail with exponential backoff.

Claims are conditional UPDATEs (compare-and-set on status and lease), so two workers never send the same
row at once, on SQLite and PostgreSQL alike. A worker that dies mid-delivery leaves its rows `sending`
with a lease in the past; the next claim takes them again. Delivery is therefore at-least-once, and every
message carries its stable `key` so receivers can drop repeats.

A claim hands out a `Lease`: the attempt number and lease expiry it wrote. `complete` and `fail` are
conditional UPDATEs on that lease, so a worker whose lease expired and whose row was claimed again cannot
overwrite the outcome of the worker that holds the row now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update

from bot.config import settings
from bot.routing.models import OutboxMessage
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Lease:
    """One claim of one row. Every claim increments `attempts`, so (attempt, until) names this claim only."""

    row_id: int
    attempt: int
    until: datetime


def claim_leases(session, limit: int, policy: RetryPolicy, now: datetime | None = None) -> list[Lease]:
    """Take up to `limit` due messages (pending and due, or sending with an expired lease)."""
    now = now or utcnow()
    due = or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
    )
    candidates = (session.query(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
                  .filter(due).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit).all())
    leases = []
    until = now + timedelta(seconds=policy.lease_seconds)
    for row_id, status, attempts in candidates:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == status,
                   OutboxMessage.attempts == attempts)
            .values(status="sending", lease_until=until, attempts=attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            leases.append(Lease(row_id, attempts + 1, until))
    session.commit()  # the claim must be durable before anything is sent
    return leases


def claim(session, limit: int, policy: RetryPolicy, now: datetime | None = None) -> list[int]:
    """`claim_leases`, row ids only."""
    return [lease.row_id for lease in claim_leases(session, limit, policy, now)]


def _settle(session, lease: Lease, what: str, **values) -> bool:
    """Write an outcome only while the row is still under this lease (compare-and-set, race-free)."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == lease.row_id, OutboxMessage.status == "sending",
               OutboxMessage.attempts == lease.attempt, OutboxMessage.lease_until == lease.until)
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:
        log.warning("outbox row %d: attempt %d no longer holds the lease (expired and re-claimed by another "
                    "worker, or already settled); %s not recorded", lease.row_id, lease.attempt, what)
        return False
    return True


def complete(session, lease: Lease, now: datetime | None = None) -> bool:
    """Mark the message sent. False (row unchanged) when this lease no longer holds the row."""
    return _settle(session, lease, "sent", status="sent", sent_at=now or utcnow(), last_error=None)


def fail(session, lease: Lease, error: str, policy: RetryPolicy, now: datetime | None = None) -> str | None:
    """Record a failed attempt: back off and retry, or dead-letter after max_attempts. Returns the new
    status, or None (row unchanged) when this lease no longer holds the row."""
    now = now or utcnow()
    if lease.attempt >= policy.max_attempts:
        status, next_at = "dead", now
    else:
        status, next_at = "pending", now + timedelta(seconds=policy.delay(lease.attempt))
    ok = _settle(session, lease, f"failure ({status})", status=status, next_attempt_at=next_at,
                 last_error=error[:2000])
    return status if ok else None


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
