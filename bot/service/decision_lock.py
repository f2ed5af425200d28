"""One duplicate decision at a time per jurisdiction across intake services sharing a PostgreSQL database.

Two services that receive the same concern at the same moment would each search an index without the
other's submission and both open a case. `lock_decision` takes a transaction-scoped advisory lock keyed by
the jurisdiction in the session that will insert the submission, so catch-up + decide + insert of one
service ends (commit releases the lock) before the next service's catch-up starts. SQLite has one writer
and one intake service per file: there it is a no-op.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

LOCK_CLASS = 0x5111  # first key of the two-key advisory lock: "duplicate decision"; second: hashtext(area)
# A submission with a lower id can commit after a higher one; rows this recent are re-checked at catch-up.
CATCH_UP_WINDOW = timedelta(minutes=5)


def lock_decision(session: Session, jurisdiction: str | None) -> bool:
    """Block until this transaction holds the decision lock of `jurisdiction` (None: unknown area).
    True when the database is shared (PostgreSQL) and the caller should catch its index up first."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:area))"),
                    {"cls": LOCK_CLASS, "area": jurisdiction or ""})
    return True
