"""Reading and checking request bodies: every problem becomes a 4xx ApiError with a Chinese message."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from bot.service.errors import ApiError

# Control characters other than tab/newline break PostgreSQL text columns and mean nothing to people.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHANNEL = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object; 413 when too large, 400 when not UTF-8 JSON or not an object."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError("body_too_large")
    raw = await request.read()  # aiohttp enforces client_max_size while reading
    if len(raw) > max_bytes:
        raise ApiError("body_too_large")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError("invalid_json") from exc
    if not isinstance(payload, dict):
        raise ApiError("invalid_body")
    return payload


def clean_text(value: str) -> str:
    return _CONTROL.sub("", value).strip()


def optional_str(payload: dict[str, Any], key: str, max_len: int, label: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError("invalid_field", f"“{label}”应是文字。")
    value = clean_text(value)
    if len(value) > max_len:
        raise ApiError("invalid_field", f"“{label}”太长了，请控制在 {max_len} 字以内。")
    return value or None


def optional_bool(payload: dict[str, Any], key: str, label: str, default: bool = False) -> bool:
    value = payload.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError("invalid_field", f"“{label}”应是 true 或 false。")
    return value


def channel_name(payload: dict[str, Any], default: str = "rest") -> str:
    value = payload.get("channel")
    if value is None:
        return default
    if not isinstance(value, str) or not _CHANNEL.match(value):
        raise ApiError("invalid_field", "“channel”格式不正确。")
    return value


def required_text(payload: dict[str, Any], key: str, max_chars: int) -> str:
    """The concern itself: present, a string, with some words in it, not over the limit."""
    value = payload.get(key)
    if value is None:
        raise ApiError("empty_text")
    if not isinstance(value, str):
        raise ApiError("invalid_field", "内容应是文字，请直接输入您想反映的问题。")
    value = clean_text(value)
    if not value:
        raise ApiError("empty_text")
    if len(value) > max_chars:
        raise ApiError("text_too_long", limit=max_chars)
    if not any(ch.isalnum() for ch in value):  # only emoji, symbols or punctuation
        raise ApiError("no_content")
    return value
