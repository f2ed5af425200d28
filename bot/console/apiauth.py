"""Who is calling PATCH /api/v1/cases/{n}: the staff bearer token, or a logged-in console session (which
must send its CSRF token in the X-CSRF-Token header, so another site cannot use the cookie)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from bot.accounts.models import User
from bot.console.access import API_ACTOR, Actor
from bot.console.keys import CONSOLE_SETTINGS
from bot.console.websession import CSRF_HEADER, actor_of, csrf_ok, session_user_id
from bot.service.auth import require_token
from bot.service.errors import ApiError


async def resolve_actor(request: web.Request, load_user) -> Actor:  # type: ignore[no-untyped-def]
    """The bearer token wins when present; else the console session. `load_user(uid)` reads the account
    off the event loop. Raises 401 without either, 403 on a session without a valid CSRF header."""
    if request.headers.get("Authorization"):
        require_token(request)
        return API_ACTOR
    if CONSOLE_SETTINGS not in request.app:
        raise ApiError("unauthorized")
    session, uid, _expired = await session_user_id(request, request.app[CONSOLE_SETTINGS])
    if uid is None:
        raise ApiError("unauthorized")
    user: User | None = await load_user(uid)
    if user is None or user.disabled:
        raise ApiError("unauthorized")
    if not csrf_ok(session, request.headers.get(CSRF_HEADER)):
        raise ApiError("forbidden")
    return actor_of(user)


def load_user(session: Session, uid: int) -> User | None:
    user = session.get(User, uid)
    if user is not None:
        session.expunge(user)
    return user
