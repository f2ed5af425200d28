"""Shared secrets of one deployment, each from its environment variable or else generated once under var/.

- api token (SHANGLIANG_API_TOKEN, var/api_token): staff and members calling the intake API.
- service token (SHANGLIANG_SERVICE_TOKEN, var/service_token): the action server calling the intake API.
- Rasa token (SHANGLIANG_RASA_TOKEN, var/rasa_token): Rasa's HTTP API (`rasa run --auth-token`).

Ground floor: no web framework here, so the supervisor and the action server can read the same values.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from bot.config import var_dir

TOKENS: dict[str, tuple[str, str]] = {
    "api": ("SHANGLIANG_API_TOKEN", "api_token"),
    "service": ("SHANGLIANG_SERVICE_TOKEN", "service_token"),
    "rasa": ("SHANGLIANG_RASA_TOKEN", "rasa_token"),
    # The pseudonym key of bot.config.secret_key(); listed so the supervisor creates it before the
    # intake service and the action server (which both pseudonymise) start and race to write it.
    "secret": ("SHANGLIANG_SECRET", "secret.key"),
}


def _generate(path: Path) -> None:
    """Create the file with a fresh token unless it exists. O_EXCL: when several processes start at once,
    exactly one writes and the others read its value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(32))


def token(kind: str, var: Path | None = None) -> str:
    """The token of `kind` ("api", "service", "rasa", "secret"); `var` overrides the var/ directory (the supervisor
    prepares a deployment's tokens before its processes start)."""
    env, filename = TOKENS[kind]
    value = os.environ.get(env, "").strip()
    if value:
        return value
    path = (var or var_dir()) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    _generate(path)
    for _ in range(50):
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
        time.sleep(0.01)  # another process created the file a moment ago and is still writing it
    raise RuntimeError(f"{path} is empty; delete it to generate a new token")


def api_token() -> str:
    return token("api")


def service_token() -> str:
    return token("service")


def rasa_token() -> str:
    return token("rasa")
