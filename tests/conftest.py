"""Shared fixtures. Heavy ones (trained model, running processes) are session-scoped: built once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
