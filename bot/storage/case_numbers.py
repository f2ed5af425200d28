"""Case numbers: `SL2026-000123`, one counter per year, allocated inside the caller's transaction."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import case_number_prefix
from bot.storage.models import CaseCounter

# Years follow China Standard Time, so a concern filed at 00:30 on 1 January counts for the new year.
CHINA_OFFSET = timedelta(hours=8)


def prefix() -> str:
    return case_number_prefix()


def format_number(year: int, serial: int) -> str:
    return f"{prefix()}{year}-{serial:06d}"


def normalize_number(raw: str) -> str:
    """Tolerate lowercase, full-width characters, spaces and a missing or odd dash: ` sl2026 000123`."""
    text = unicodedata.normalize("NFKC", raw or "").upper()
    text = re.sub(r"\s+", "", text)
    match = re.fullmatch(r"([A-Z]+)(\d{4})[-_—–－.]?(\d{1,9})", text)
    if not match:
        return text
    letters, year, serial = match.groups()
    return f"{letters}{year}-{int(serial):06d}"


def _upsert(session: Session, year: int):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database: {dialect}")
    stmt = insert(CaseCounter).values(year=year, last=1)
    return stmt.on_conflict_do_update(index_elements=[CaseCounter.year], set_={"last": CaseCounter.last + 1})


def allocate_number(session: Session, when: datetime) -> str:
    """Next number for the year of `when` (UTC). The upsert locks the counter row (PostgreSQL) or
    takes SQLite's write lock until the caller commits, so two transactions never get the same one."""
    year = (when + CHINA_OFFSET).year
    session.execute(_upsert(session, year))
    serial = session.execute(select(CaseCounter.last).where(CaseCounter.year == year)).scalar_one()
    return format_number(year, int(serial))
