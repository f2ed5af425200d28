"""Who is calling the intake API: the public, the action server (service token, vouching for one
resident), or staff (bearer token). Every handler asks here; none reads the Authorization header itself.

- Staff and members: `Authorization: Bearer <api token>` (SHANGLIANG_API_TOKEN, else var/api_token).
- The action server: `Authorization: Bearer <service token>` (SHANGLIANG_SERVICE_TOKEN, else
  var/service_token), plus `X-Shangliang-Sender` / `X-Shangliang-Channel` naming the resident of the
  conversation it acts for. Only a service caller's vouch is believed.
- Anyone else is the public. A malformed or wrong token is refused (401), never taken as the public.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from bot.service.errors import ApiError
from bot.service.pseudonym import pseudonymise
from bot.service.validation import channel_name
from bot.tokens import api_token, service_token

__all__ = ["Caller", "api_token", "caller", "require_service", "require_token", "service_token"]

SENDER_HEADER = "X-Shangliang-Sender"
CHANNEL_HEADER = "X-Shangliang-Channel"
MAX_SENDER_CHARS = 256


@dataclass(frozen=True)
class Caller:
    role: str  # "public" | "service" | "staff"
    # (channel, pseudonym) of the resident the action server acts for; None otherwise.
    resident: tuple[str, str] | None = None

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def is_service(self) -> bool:
        return self.role == "service"


def _same(given: str, expected: str) -> bool:
    # Header text may hold any bytes a client sent: compare bytes, constant time, never raise.
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _bearer(request: web.Request) -> str | None:
    """The bearer token, None without an Authorization header; 401 when the header is malformed."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError("unauthorized")
    return value.strip()


def _resident(request: web.Request) -> tuple[str, str] | None:
    sender = (request.headers.get(SENDER_HEADER) or "").strip()
    if not sender:
        return None
    if len(sender) > MAX_SENDER_CHARS:
        raise ApiError("invalid_field", "用户标识格式不正确。")
    channel = channel_name({"channel": (request.headers.get(CHANNEL_HEADER) or "").strip() or None})
    return channel, pseudonymise(channel, sender)


def caller(request: web.Request) -> Caller:
    """Who sent this request (raises 401 for a malformed or unknown token)."""
    token = _bearer(request)
    if token is None:
        return Caller("public")
    if _same(token, api_token()):
        return Caller("staff")
    if _same(token, service_token()):
        return Caller("service", _resident(request))
    raise ApiError("unauthorized")


def require_service(request: web.Request) -> Caller:
    """The action server (or staff); 401 for the public."""
    who = caller(request)
    if who.role == "public":
        raise ApiError("unauthorized")
    return who


def require_token(request: web.Request) -> None:
    """Raise 401 unless the request carries the staff bearer token."""
    if not caller(request).is_staff:
        raise ApiError("unauthorized")
