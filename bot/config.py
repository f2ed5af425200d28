"""Settings: `intake.yml` at the repository root, overridden by environment variables."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# Environment variable -> (section, key) in intake.yml.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "SHANGLIANG_HOST": ("service", "host"),
    "SHANGLIANG_PORT": ("service", "port"),
    "SHANGLIANG_PUBLIC_URL": ("service", "public_url"),
    "SHANGLIANG_RASA_URL": ("rasa", "url"),
    "DATABASE_URL": ("storage", "database_url"),
    "SHANGLIANG_ENCODER_PATH": ("encoder", "model_path"),
    "SHANGLIANG_ENCODER_THREADS": ("encoder", "threads"),
    "SHANGLIANG_ENCODER_RUNTIME": ("encoder", "runtime"),
    "SHANGLIANG_INDEX_PATH": ("index", "path"),
    "SHANGLIANG_OUTBOX_DIR": ("delivery", "outbox_dir"),
}


# Every process of ours runs with these unless the caller says otherwise: one OpenMP thread (parse latency on
# 2 cores goes from ~24 to ~100 ms without it), quiet TensorFlow, no telemetry, no model-hub look-ups.
QUIET_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "RASA_TELEMETRY_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}


def apply_quiet_env() -> None:
    """Set QUIET_ENV in this process where the environment does not already say otherwise."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def var_dir() -> Path:
    """Runtime files (database, models, index, logs). SHANGLIANG_VAR moves it, e.g. for tests."""
    path = Path(os.environ.get("SHANGLIANG_VAR", REPO_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_path(value: str | os.PathLike[str]) -> Path:
    """Paths in intake.yml are relative to the repository root; `var/...` follows SHANGLIANG_VAR."""
    path = Path(value)
    if path.is_absolute():
        return path
    if path.parts and path.parts[0] == "var":
        return var_dir().joinpath(*path.parts[1:])
    return REPO_ROOT / path


def _config_file() -> Path:
    return Path(os.environ.get("SHANGLIANG_CONFIG", REPO_ROOT / "intake.yml"))


@lru_cache(maxsize=1)
def settings() -> dict[str, Any]:
    """The merged settings. Call `settings.cache_clear()` after changing the environment in tests."""
    with open(_config_file(), encoding="utf-8") as fh:
        data: dict[str, Any] = yaml.safe_load(fh) or {}
    for env, (section, key) in ENV_OVERRIDES.items():
        if env in os.environ:
            value: Any = os.environ[env]
            if isinstance(data.get(section, {}).get(key), int):
                value = int(value)
            data.setdefault(section, {})[key] = value
    return data


def case_number_prefix() -> str:
    """The letters before a case number (intake.yml `case_numbers.prefix`, "SL" by default)."""
    return str((settings().get("case_numbers") or {}).get("prefix", "SL")).upper()


def database_url() -> str:
    url = str(settings()["storage"]["database_url"])
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # Relative SQLite paths live under var/ (or SHANGLIANG_VAR).
        url = "sqlite:///" + str(resolve_path(url[len("sqlite:///"):]))
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return url


def secret_key() -> bytes:
    """Key for pseudonymising sender ids: SHANGLIANG_SECRET, else one generated once under var/."""
    env = os.environ.get("SHANGLIANG_SECRET")
    if env:
        return env.encode("utf-8")
    path = var_dir() / "secret.key"
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip().encode("utf-8")
