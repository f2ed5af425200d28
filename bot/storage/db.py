"""Engine and session helpers, and the Alembic upgrade that runs at start-up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.config import database_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker] = {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers run while one writer commits; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy 1.4 defaults to NullPool for SQLite files: every session would reconnect and rerun
        # the PRAGMAs (~10x slower per message). A small pool keeps connections open.
        pool = {} if path in ("", ":memory:") else {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: bot.config.database_url())."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
        return engine


def session_factory(url: str | None = None) -> sessionmaker:
    """A sessionmaker bound to the engine; objects stay readable after commit."""
    url = url or database_url()
    engine = get_engine(url)
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = _factories[url] = sessionmaker(bind=engine, expire_on_commit=False)
        return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    """Alembic configuration built in code, so no working directory or ini file is needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for configparser (URLs may hold %-encoded options).
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Bring the schema up to date (`alembic upgrade heads`; every part's branch is applied)."""
    from alembic import command

    cfg = alembic_config(url)
    engine = get_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    log.info("database schema is up to date (%s)", engine.url.get_backend_name())


def dispose_engines() -> None:
    """Close every pooled connection (service shutdown, tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()
