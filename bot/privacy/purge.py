"""Retention: delete what residents typed once it is older than `privacy.retention_days`.

- Rasa's SQL tracker store (endpoints.yml `tracker_store`, SQLite var/rasa_tracker.db by default):
  every event older than the cut-off. Conversations hold every number a resident typed, and slots such
  as the phone; cases and submissions, the system of record, are not touched.
- Hand-offs (转人工) in the intake database: their text is cleared; the row stays for counting.
- The channels' inbound-message log (channel_messages): delivered replies older than the cut-off
  (the read-back in a reply repeats the resident's phone number).
- Spooled submissions the intake service refused (var/spool/rejected/).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL

from bot.config import REPO_ROOT, resolve_path, settings, var_dir

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 90


@dataclass
class PurgeResult:
    older_than_days: float
    tracker_events: int = 0
    handoff_texts: int = 0
    channel_messages: int = 0
    rejected_spool_files: int = 0


def retention_days() -> float:
    return float((settings().get("privacy") or {}).get("retention_days", DEFAULT_RETENTION_DAYS))


def tracker_store_url(endpoints: Path | None = None) -> str | None:
    """SQLAlchemy URL of Rasa's SQL tracker store as endpoints.yml configures it (None when the
    tracker store is not SQL). The same fields Rasa's SQLTrackerStore reads."""
    path = endpoints or REPO_ROOT / "endpoints.yml"
    with open(path, encoding="utf-8") as fh:
        config: dict[str, Any] = (yaml.safe_load(fh) or {}).get("tracker_store") or {}
    if str(config.get("type", "")).lower() != "sql":
        return None
    dialect = str(config.get("dialect") or "sqlite")
    db = str(config.get("db") or "rasa.db")
    if dialect == "sqlite":
        return f"sqlite:///{resolve_path(db)}"
    return str(URL.create(dialect, username=config.get("username"), password=config.get("password"),
                          host=config.get("url"), port=config.get("port"), database=db))


def _purge_tracker(url: str, cutoff: datetime) -> int:
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table("events"):
            return 0
        with engine.begin() as conn:
            # Rasa stores each event's time as a UNIX timestamp (float seconds).
            result = conn.execute(sa.text("DELETE FROM events WHERE timestamp < :cutoff"),
                                  {"cutoff": cutoff.replace(tzinfo=timezone.utc).timestamp()})
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def _purge_intake(url: str, cutoff: datetime) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        handoffs = messages = 0
        with engine.begin() as conn:
            if "handoffs" in tables:
                handoffs = conn.execute(
                    sa.text("UPDATE handoffs SET text = NULL WHERE created_at < :cutoff AND text IS NOT NULL"),
                    {"cutoff": cutoff}).rowcount or 0
            if "channel_messages" in tables:
                # A message still being answered is kept whatever its age: the sweeper may still send it.
                messages = conn.execute(
                    sa.text("DELETE FROM channel_messages WHERE updated_at < :cutoff AND status = 'delivered'"),
                    {"cutoff": cutoff}).rowcount or 0
        return int(handoffs), int(messages)
    finally:
        engine.dispose()


def _purge_rejected_spool(cutoff: datetime) -> int:
    folder = var_dir() / "spool" / "rejected"
    if not folder.is_dir():
        return 0
    limit = cutoff.replace(tzinfo=timezone.utc).timestamp()
    removed = 0
    for path in folder.glob("*.json"):
        if path.stat().st_mtime < limit:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def purge(older_than_days: float | None = None, *, tracker_url: str | None = None,
          database_url: str | None = None, now: datetime | None = None) -> PurgeResult:
    """Delete or clear personal data older than the retention period (see the module docstring)."""
    from bot.config import database_url as configured_database_url

    days = retention_days() if older_than_days is None else float(older_than_days)
    if days < 0:
        raise ValueError("older_than_days must be >= 0")
    cutoff = (now or datetime.now(timezone.utc).replace(tzinfo=None)) - timedelta(days=days)
    result = PurgeResult(older_than_days=days)
    url = tracker_url or tracker_store_url()
    if url:
        result.tracker_events = _purge_tracker(url, cutoff)
    result.handoff_texts, result.channel_messages = _purge_intake(database_url or configured_database_url(), cutoff)
    result.rejected_spool_files = _purge_rejected_spool(cutoff)
    log.info("purged personal data older than %.1f days: %s", days, asdict(result))
    return result
