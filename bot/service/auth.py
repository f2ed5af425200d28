"""Bearer token for staff/member write endpoints: SHANGLIANG_API_TOKEN, else one generated under var/."""

from __future__ import annotations

import hmac
import os
import secrets

from aiohttp import web

from bot.config import var_dir
from bot.service.errors import ApiError


def api_token() -> str:
    env = os.environ.get("SHANGLIANG_API_TOKEN")
    if env:
        return env
    path = var_dir() / "api_token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def require_token(request: web.Request) -> None:
    """Raise 401 unless the request carries the right bearer token (constant-time comparison)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("unauthorized")
    if not hmac.compare_digest(token.strip().encode(), api_token().encode()):
        raise ApiError("unauthorized")
