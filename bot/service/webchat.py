"""The web chat page (GET /chat) and its proxy to Rasa's REST channel (POST /chat/send)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.service.errors import ApiError
from bot.service.keys import DATABASE_URL, SETTINGS
from bot.service.ratelimit import LIMITS
from bot.service.responses import json_response
from bot.service.validation import read_json

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
_SENDER = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_MESSAGE_CHARS = 2000
CLIENT = web.AppKey("rasa_client", aiohttp.ClientSession)


async def chat_page(request: web.Request) -> web.Response:
    html = (TEMPLATES / "chat.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


async def send(request: web.Request) -> web.Response:
    """Forward one message to Rasa and return its replies: [{"text"?, "image"?, "buttons"?}]."""
    payload = await read_json(request, 64 * 1024)
    sender = payload.get("sender")
    message = payload.get("message")
    if not isinstance(sender, str) or not _SENDER.match(sender):
        raise ApiError("invalid_field", "会话标识不正确，请刷新页面后再试。")
    if not isinstance(message, str) or not message.strip():
        raise ApiError("empty_text", "请先输入想说的话。")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ApiError("text_too_long", limit=MAX_MESSAGE_CHARS)
    # Public endpoint: a flood from one page or one address is refused before it reaches Rasa.
    request.app[LIMITS].check("chat", request, sender)
    url = str(request.app[SETTINGS]["rasa"]["url"]).rstrip("/") + "/webhooks/rest/webhook"
    try:
        async with request.app[CLIENT].post(url, json={"sender": f"web-{sender}", "message": message}) as resp:
            if resp.status != 200:
                log.warning("Rasa answered HTTP %d", resp.status)
                raise ApiError("rasa_unavailable")
            replies = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        log.warning("Rasa unreachable: %s", type(exc).__name__)
        raise ApiError("rasa_unavailable") from exc
    return json_response({"replies": [_reply(r) for r in replies or [] if isinstance(r, dict)]})


def _reply(raw: dict[str, Any]) -> dict[str, Any]:
    """Only what the page renders: text, an image URL, buttons (title + payload)."""
    out: dict[str, Any] = {}
    if isinstance(raw.get("text"), str):
        out["text"] = raw["text"]
    if isinstance(raw.get("image"), str):
        out["image"] = raw["image"]
    buttons = raw.get("buttons")
    if isinstance(buttons, list):
        out["buttons"] = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", b.get("title", "")))}
                          for b in buttons if isinstance(b, dict)]
    return out


async def _client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app[CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await app[CLIENT].close()


async def campaign_info(request: web.Request) -> web.Response:
    """Opening text of a campaign (专题商量) for /chat?campaign=<scene>."""
    from bot.channels.campaigns import get_campaign
    from bot.storage.db import get_engine

    scene = request.match_info["scene"]
    info = await asyncio.get_running_loop().run_in_executor(
        None, get_campaign, get_engine(request.app[DATABASE_URL]), scene)
    if info is None:
        raise ApiError("not_found", "没有找到这个专题商量，可能链接有误。您也可以直接说想反映的问题。")
    if not info.is_open():
        return json_response({"scene": info.scene, "open": False,
                              "text": f"专题商量「{info.title}」目前不在征集时间内。您仍可以直接反映其他问题。"})
    return json_response({"scene": info.scene, "open": True, "text": info.opening_text()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/chat", chat_page)
    app.router.add_get("/chat/campaign/{scene}", campaign_info)
    app.router.add_post("/chat/send", send)
    app.router.add_static("/static/", STATIC, name="static")
    app.cleanup_ctx.append(_client_ctx)
