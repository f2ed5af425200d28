"""Console sessions: encrypted cookie (aiohttp-session + Fernet), idle and absolute expiry, CSRF tokens,
and the logged-in person as an `Actor`, reloaded from the database on every request so a disabled
account stops working at once."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.accounts.models import User
from bot.accounts.service import Throttle
from bot.config import secret_key, settings
from bot.console.access import Actor

COOKIE = "sl_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class ConsoleSettings:
    idle_seconds: int = 1800
    max_age_seconds: int = 12 * 3600
    secure_cookie: bool = False  # set true behind HTTPS (deploy/nginx)
    throttle: Throttle = Throttle()

    @classmethod
    def load(cls) -> ConsoleSettings:
        section: dict[str, Any] = settings().get("console", {}) or {}
        idle = int(os.environ.get("SHANGLIANG_CONSOLE_IDLE_SECONDS") or section.get("session_idle_seconds", 1800))
        throttle = Throttle(per_user=int(section.get("login_failures_per_user", 5)),
                            per_address=int(section.get("login_failures_per_address", 20)))
        return cls(idle_seconds=idle, max_age_seconds=int(section.get("session_max_age_seconds", 12 * 3600)),
                   secure_cookie=bool(section.get("secure_cookie", False)), throttle=throttle)


def _cookie_key() -> bytes:
    # Derived from the service secret so replicas sharing SHANGLIANG_SECRET accept each other's cookies,
    # while the pseudonymisation key itself is never used for anything else.
    return hmac.new(secret_key(), b"shangliang console session v1", hashlib.sha256).digest()


def session_middleware_for(config: ConsoleSettings) -> Any:
    storage = EncryptedCookieStorage(_cookie_key(), cookie_name=COOKIE,
                                     max_age=config.max_age_seconds, httponly=True, samesite="Lax",
                                     secure=config.secure_cookie, path="/")
    return session_middleware(storage)


def safe_next(target: str | None) -> str:
    """Only a path inside the console may be a post-login destination (no open redirect)."""
    if not target:
        return "/console/cases"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/") or target.startswith("//"):
        return "/console/cases"
    return target


def login_url(request: web.Request) -> str:
    here = request.path_qs if request.method == "GET" else request.headers.get("Referer", request.path)
    here = urlsplit(here)._replace(scheme="", netloc="").geturl() if here else request.path
    return "/console/login?next=" + quote(safe_next(here), safe="")


async def start_session(request: web.Request, user: User) -> Session:
    session = await new_session(request)  # a fresh identifier after login: no session fixation
    now = int(time.time())
    session["uid"] = user.id
    session["started"] = now
    session["seen"] = now
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session


async def session_user_id(request: web.Request, config: ConsoleSettings) -> tuple[Session, int | None, bool]:
    """(session, user id or None, expired?)."""
    session = await get_session(request)
    uid = session.get("uid")
    if uid is None:
        return session, None, False
    now = int(time.time())
    if now - int(session.get("seen", 0)) > config.idle_seconds or \
            now - int(session.get("started", 0)) > config.max_age_seconds:
        session.invalidate()
        return session, None, True
    if now - int(session.get("seen", 0)) >= 30:  # refresh the idle clock without a cookie per request
        session["seen"] = now
    return session, int(uid), False


def actor_of(user: User) -> Actor:
    return Actor(id=user.username, role=user.role, member_id=user.member_id, committee=user.committee_id,
                 user_id=user.id, label=user.label)


def csrf_token(session: Session) -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return str(token)


def csrf_ok(session: Session, supplied: str | None) -> bool:
    expected = session.get(CSRF_FIELD)
    return bool(expected and supplied) and hmac.compare_digest(str(expected), str(supplied))
