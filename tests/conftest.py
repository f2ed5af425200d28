"""Shared fixtures. Heavy ones (trained model, running processes) are session-scoped: built once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from bot.config import apply_quiet_env, settings
from tests.harness import RunningStack

apply_quiet_env()

POSTGRES_URL = os.environ.get("SHANGLIANG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private var/ for one test; settings are re-read with it."""
    path = tmp_path / "var"
    path.mkdir()
    monkeypatch.setenv("SHANGLIANG_VAR", str(path))
    settings.cache_clear()
    yield path
    settings.cache_clear()


@pytest.fixture(scope="session")
def encoder_model_path() -> Path:
    """The offline encoder folder (built once, cached under the repository's var/)."""
    from index.build_model import build_default_model

    return build_default_model()


@pytest.fixture(scope="session")
def rasa_model() -> Path:
    """The trained Rasa model for the current data (trained once, cached by data hash)."""
    from bot.commands.train import ensure_model

    return ensure_model()


def postgres_available(url: str = POSTGRES_URL) -> bool:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def postgres_schema(base: str = POSTGRES_URL) -> Iterator[str]:
    """A URL whose connections use a fresh private schema of the PostgreSQL test database; the schema is
    dropped afterwards. Skips the test (with the reason) when PostgreSQL does not answer."""
    import sqlalchemy as sa

    from bot.storage import db

    admin = sa.create_engine(base, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {base}: {type(exc).__name__}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        db.dispose_engines()  # pooled connections of the test go before their schema does
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, var_dir: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file under the test's var/, then (second run of the
    test) a private schema on PostgreSQL, skipped when it does not answer."""
    if request.param == "sqlite":
        yield f"sqlite:///{var_dir / 'test.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture()
def db_factory(database_url: str) -> Iterator[sessionmaker]:
    """A sessionmaker over `database_url` with every table (the service's own engine settings)."""
    import bot.channels.models  # noqa: F401  (every part's tables on Base)
    import bot.routing.models  # noqa: F401
    from bot.routing.dispatch import reset_directory_cache
    from bot.storage import db
    from bot.storage.models import Base

    Base.metadata.create_all(db.get_engine(database_url))
    reset_directory_cache()
    yield db.session_factory(database_url)
    db.dispose_engines()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, rasa_model: Path, encoder_model_path: Path) -> Iterator[RunningStack]:
    """Rasa server, action server and intake service as real processes on free ports."""
    from bot.supervisor import Ports, Stack

    var = tmp_path_factory.mktemp("stack-var")
    # The encoder folder is shared, not rebuilt, for the test deployment.
    from tests.fake_wechat_server import E2E_ENV

    extra_env = {
        "SHANGLIANG_ENCODER_PATH": str(encoder_model_path),
        "SHANGLIANG_API_TOKEN": "test-token",
        **E2E_ENV,  # test-only WeChat/WeCom credentials so the channel tests can talk to this stack
    }
    running = Stack(var_dir=var, model_path=rasa_model, ports=Ports.free(), echo=False, extra_env=extra_env)
    running.start()
    try:
        yield RunningStack(running)
    finally:
        running.stop()
