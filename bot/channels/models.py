"""Tables of the chat channels: message de-duplication, shared access tokens, campaigns.

They live on the shared `Base` so Alembic (revision 0003_channels) creates them with the rest of
the schema. `ensure_tables()` also creates them on demand, because the Rasa server may start before
the intake service has run `alembic upgrade heads`.
"""

from __future__ import annotations

import weakref
from functools import lru_cache

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
)
from sqlalchemy.engine import Engine

from bot.storage.models import Base, utcnow


class ChannelMessage(Base):
    """One inbound platform message (keyed by MsgId) and what became of its reply."""

    __tablename__ = "channel_messages"
    __table_args__ = (UniqueConstraint("channel", "msg_key", name="uq_channel_messages_key"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(16), nullable=False)
    msg_key = Column(String(128), nullable=False)
    # Raw platform user id (openid/userid): needed to send a late reply. Never shown to members.
    recipient = Column(String(128), nullable=False)
    # processing -> ready -> delivered; ready/failed replies are retried by the sweeper.
    status = Column(String(16), nullable=False, default="processing", index=True)
    replies = Column(JSON)  # list of reply texts, in order
    delivered_via = Column(String(16))  # passive | api
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(300))
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class ChannelToken(Base):
    """A platform access token shared by every worker and replica."""

    __tablename__ = "channel_tokens"

    name = Column(String(64), primary_key=True)  # e.g. "wechat:<appid>"
    token = Column(String(512), nullable=False)
    expires_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class Campaign(Base):
    """A themed consultation (专题商量) residents join by scanning its QR code or opening its link."""

    __tablename__ = "campaigns"

    id = Column(Integer, primary_key=True)
    scene = Column(String(64), nullable=False, unique=True)  # QR scene_str and ?campaign= value
    title = Column(String(200), nullable=False)
    question = Column(Text, nullable=False)  # opening question asked to each resident
    opens_at = Column(DateTime)
    closes_at = Column(DateTime)
    qr_ticket = Column(String(256))
    qr_url = Column(String(512))
    created_at = Column(DateTime, nullable=False, default=utcnow)


CHANNEL_TABLES = [ChannelMessage.__table__, ChannelToken.__table__, Campaign.__table__]


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return create_engine(url, future=True, pool_pre_ping=True)


def default_engine() -> Engine:
    """The project's engine (bot.storage.db) when available, else one built from settings."""
    try:
        from bot.storage.db import get_engine
    except ImportError:
        from bot.config import database_url

        return _engine_for(database_url())
    return get_engine()


_ENSURED: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_tables(engine: Engine) -> None:
    """Create this module's tables if missing (idempotent; Alembic does the same in 0003_channels).
    Checked once per engine: callers use it on every lookup, and the check costs a round trip per table."""
    if engine in _ENSURED:
        return
    Base.metadata.create_all(engine, tables=CHANNEL_TABLES, checkfirst=True)
    _ENSURED.add(engine)
