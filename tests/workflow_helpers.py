"""Shared set-up for the workflow tests: a migrated database (every Alembic head, so 0007_workflow runs)
with the member directory of routing.yml, actors for each role, and a way to file a case."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy.orm import sessionmaker

from bot.routing.dispatch import current_directory, reset_directory_cache
from bot.storage import db, repository
from bot.topics.taxonomy import default_taxonomy
from bot.workflow.actors import SimpleActor

ADMIN = SimpleActor("u-admin", "admin")
STAFF = SimpleActor("u-staff", "staff")
SYSTEM = SimpleActor("system:feedback", "system")
# Two members of one committee, one of another.
SU = SimpleActor("u-su", "member", member_id="m_su_wen", committee="education_science_health")
BAI = SimpleActor("u-bai", "member", member_id="m_bai_zhi", committee="education_science_health")
ZHOU = SimpleActor("u-zhou", "member", member_id="m_zhou_jian", committee="urban_rural")


def workflow_db(database_url: str) -> Iterator[sessionmaker]:
    """Sessions over a database migrated by `alembic upgrade heads`, holding routing.yml's directory.
    Each test module wraps it in its own `wf` fixture (`yield from workflow_db(database_url)`)."""
    db.upgrade(database_url)
    reset_directory_cache()
    factory = db.session_factory(database_url)
    with factory() as session:
        current_directory(session, default_taxonomy())
        session.commit()
    yield factory
    reset_directory_cache()
    db.dispose_engines()


def file_case(factory: sessionmaker, text: str = "小区门口的路灯坏了一个多月，晚上很黑。",
              when: datetime | None = None, place: str | None = "东湖区清河街道",
              topic: str | None = "urban_construction") -> str:
    """A resident's report stored as a new case (status received, topic already classified, so routing
    needs no classifier); returns its number."""
    with factory() as session:
        submission = repository.create_submission(session, text=text, place=place, created_at=when,
                                                  sender="pseudo-1", topic=topic, topic_confidence=0.9)
        number = submission.case.number
        session.commit()
    return number
