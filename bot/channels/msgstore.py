"""Inbound message bookkeeping shared by every worker: MsgId de-duplication and late replies.

WeChat retries a message up to three times (same MsgId) when it gets no answer within 5 s. The
first worker to insert (channel, msg_key) owns the message and runs the dialogue; everybody else
only waits for the stored reply. A reply moves processing -> ready -> delivered, and the move to
delivered is a conditional UPDATE, so exactly one path (passive reply or API send) delivers it.
Replies that could not be sent stay `ready`/`failed` and are retried by `due_for_resend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.models import ChannelMessage, ensure_tables
from bot.storage.models import utcnow

PROCESSING, READY, DELIVERED, FAILED = "processing", "ready", "delivered", "failed"


@dataclass(frozen=True)
class MessageRecord:
    channel: str
    msg_key: str
    recipient: str
    status: str
    replies: list[str]
    delivered_via: str | None
    attempts: int


def _record(row: ChannelMessage) -> MessageRecord:
    return MessageRecord(
        row.channel, row.msg_key, row.recipient, row.status, list(row.replies or []), row.delivered_via,
        row.attempts,
    )


class MessageStore:
    """SQL-backed store (SQLite or PostgreSQL) for inbound message state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine)

    def claim(self, channel: str, msg_key: str, recipient: str) -> tuple[bool, MessageRecord]:
        """Register a message. Returns (True, record) for the first claim, (False, existing) after."""
        try:
            with Session(self.engine) as session, session.begin():
                row = ChannelMessage(channel=channel, msg_key=msg_key, recipient=recipient, status=PROCESSING)
                session.add(row)
                session.flush()
                return True, _record(row)
        except IntegrityError:
            existing = self.get(channel, msg_key)
            if existing is None:  # deleted between the insert and the read: treat as ours
                return self.claim(channel, msg_key, recipient)
            return False, existing

    def get(self, channel: str, msg_key: str) -> MessageRecord | None:
        with Session(self.engine) as session:
            row = session.scalar(
                select(ChannelMessage).where(ChannelMessage.channel == channel, ChannelMessage.msg_key == msg_key)
            )
            return _record(row) if row is not None else None

    def set_ready(self, channel: str, msg_key: str, replies: list[str]) -> None:
        """Store the dialogue's reply. An empty reply needs no delivery and is marked delivered."""
        status, via = (READY, None) if replies else (DELIVERED, "none")
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(ChannelMessage)
                .where(
                    ChannelMessage.channel == channel,
                    ChannelMessage.msg_key == msg_key,
                    ChannelMessage.status == PROCESSING,
                )
                .values(status=status, replies=replies, delivered_via=via, updated_at=utcnow())
            )

    def take(self, channel: str, msg_key: str, via: str) -> list[str] | None:
        """Atomically mark a ready (or failed) reply delivered by `via`; the replies if this caller won."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(ChannelMessage)
                .where(
                    ChannelMessage.channel == channel,
                    ChannelMessage.msg_key == msg_key,
                    ChannelMessage.status.in_([READY, FAILED]),
                )
                .values(status=DELIVERED, delivered_via=via, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return None
            row = session.scalar(
                select(ChannelMessage).where(ChannelMessage.channel == channel, ChannelMessage.msg_key == msg_key)
            )
            return list(row.replies or [])

    def mark_failed(self, channel: str, msg_key: str, error: str) -> None:
        """An API send failed after `take`: put the reply back so it is retried later, not lost."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(
                select(ChannelMessage).where(ChannelMessage.channel == channel, ChannelMessage.msg_key == msg_key)
            )
            if row is not None:
                row.status, row.delivered_via = FAILED, None
                row.attempts = (row.attempts or 0) + 1
                row.last_error = error[:300]
                row.updated_at = utcnow()

    def due_for_resend(
        self, channel: str, older_than: timedelta, max_attempts: int = 5, limit: int = 20
    ) -> list[MessageRecord]:
        """Replies that nobody delivered (worker died, API down): candidates for an API send."""
        cutoff = utcnow() - older_than
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ChannelMessage)
                .where(
                    ChannelMessage.channel == channel,
                    ChannelMessage.status.in_([READY, FAILED]),
                    ChannelMessage.updated_at < cutoff,
                    ChannelMessage.attempts < max_attempts,
                )
                .order_by(ChannelMessage.id)
                .limit(limit)
            )
            return [_record(r) for r in rows]

    def purge(self, older_than: timedelta) -> int:
        """Drop bookkeeping older than WeChat's retry and 48-hour reply windows."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                delete(ChannelMessage).where(ChannelMessage.created_at < utcnow() - older_than)
            )
            return int(result.rowcount or 0)
