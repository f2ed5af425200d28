"""Clients for WeChat's official-account API and WeCom's API: access tokens, text messages, QR codes.

Access tokens are cached in the database (table channel_tokens) so every Sanic worker and every
Rasa replica uses the same one: fetching a new token invalidates the old one after a few minutes,
so per-process tokens would keep knocking each other out. The base URLs are configurable so tests
point them at a local fake (tests/fake_wechat_server.py).

Secrets (AppSecret, access tokens) never reach the logs: URLs carrying them are not logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.channels.models import ChannelToken, ensure_tables
from bot.channels.textsplit import MAX_TEXT_BYTES, split_text
from bot.storage.models import utcnow

logger = logging.getLogger(__name__)

WECHAT_API_BASE = "https://api.weixin.qq.com"
WECOM_API_BASE = "https://qyapi.weixin.qq.com"

# errcodes meaning "this access token is no longer good": fetch a new one and retry once.
TOKEN_ERRORS = {40001, 40014, 42001}
# Refresh a little before the platform's expiry so a request never carries a token that dies in flight.
EXPIRY_MARGIN = timedelta(seconds=300)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


class WeChatAPIError(RuntimeError):
    """The platform answered with a non-zero errcode (or not at all)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class TokenStore:
    """Access tokens shared through the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine)

    def get(self, name: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(ChannelToken, name)
            if row is None or row.expires_at - EXPIRY_MARGIN <= utcnow():
                return None
            return row.token

    def put(self, name: str, token: str, expires_in: int) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(ChannelToken, name)
            expires_at = utcnow() + timedelta(seconds=int(expires_in))
            if row is None:
                session.add(ChannelToken(name=name, token=token, expires_at=expires_at))
            else:
                row.token, row.expires_at, row.updated_at = token, expires_at, utcnow()

    def invalidate(self, name: str, token: str) -> None:
        """Forget `token` unless another worker already replaced it with a fresh one."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(ChannelToken).where(ChannelToken.name == name, ChannelToken.token == token)
            )

    def names(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ChannelToken.name)))


async def _request_json(method: str, url: str, *, params: dict, json: Any = None) -> dict:
    try:
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.request(method, url, params=params, json=json) as resp:
                if resp.status != 200:
                    raise WeChatAPIError(-resp.status, f"HTTP {resp.status}")
                # WeChat sometimes labels JSON as text/plain.
                data = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        # Only the error's class: aiohttp messages can quote the URL, which carries the token.
        raise WeChatAPIError(-1, f"request failed ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise WeChatAPIError(-1, "unexpected response")
    return data


class _TokenClient:
    """Common token handling: cached in the DB, fetched once per process at a time."""

    token_name: str

    def __init__(self, base_url: str, store: TokenStore) -> None:
        self.base_url = base_url.rstrip("/")
        self.store = store
        self._lock: asyncio.Lock | None = None

    async def _fetch_token(self) -> tuple[str, int]:
        raise NotImplementedError

    async def access_token(self, force: bool = False) -> str:
        if not force:
            cached = await asyncio.to_thread(self.store.get, self.token_name)
            if cached:
                return cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not force:  # another task may have refreshed while we waited
                cached = await asyncio.to_thread(self.store.get, self.token_name)
                if cached:
                    return cached
            token, expires_in = await self._fetch_token()
            await asyncio.to_thread(self.store.put, self.token_name, token, expires_in)
            logger.info("fetched a new %s access token (valid %ss)", self.token_name.split(":")[0], expires_in)
            return token

    async def call(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> dict:
        """Call an API that takes ?access_token=; refresh the token once when the platform rejects it."""
        for attempt in (1, 2):
            token = await self.access_token()
            data = await _request_json(
                method, f"{self.base_url}/{path.lstrip('/')}", params={**(params or {}), "access_token": token},
                json=json,
            )
            errcode = int(data.get("errcode", 0) or 0)
            if errcode in TOKEN_ERRORS and attempt == 1:
                logger.warning("%s access token rejected (errcode %s); refreshing", self.token_name.split(":")[0], errcode)
                await asyncio.to_thread(self.store.invalidate, self.token_name, token)
                continue
            if errcode:
                raise WeChatAPIError(errcode, str(data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")


class WeChatAPI(_TokenClient):
    """Official account (公众号): customer-service messages and parametrised QR codes."""

    def __init__(self, app_id: str, app_secret: str, store: TokenStore, base_url: str = WECHAT_API_BASE) -> None:
        super().__init__(base_url, store)
        self.app_id = app_id
        self._secret = app_secret
        self.token_name = f"wechat:{app_id}"

    async def _fetch_token(self) -> tuple[str, int]:
        data = await _request_json(
            "GET",
            f"{self.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret},
        )
        if "access_token" not in data:
            raise WeChatAPIError(int(data.get("errcode", -1)), str(data.get("errmsg", "no token")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    async def send_text(self, openid: str, text: str) -> int:
        """Send `text` as customer-service messages (split to 2048 bytes each); returns how many."""
        chunks = split_text(text, MAX_TEXT_BYTES)
        for chunk in chunks:
            await self.call(
                "POST",
                "cgi-bin/message/custom/send",
                json={"touser": openid, "msgtype": "text", "text": {"content": chunk}},
            )
        return len(chunks)

    async def create_qrcode(self, scene: str, expire_seconds: int | None = None) -> dict:
        """A QR code carrying `scene`: permanent when expire_seconds is None, else temporary (≤ 30 days)."""
        if expire_seconds is None:
            body: dict[str, Any] = {"action_name": "QR_LIMIT_STR_SCENE"}
        else:
            body = {"action_name": "QR_STR_SCENE", "expire_seconds": min(int(expire_seconds), 2592000)}
        body["action_info"] = {"scene": {"scene_str": scene}}
        data = await self.call("POST", "cgi-bin/qrcode/create", json=body)
        return {"ticket": data.get("ticket"), "url": data.get("url"), "expire_seconds": data.get("expire_seconds")}


class WeComAPI(_TokenClient):
    """WeCom (企业微信) self-built application: application text messages."""

    def __init__(
        self, corp_id: str, secret: str, agent_id: str | int, store: TokenStore, base_url: str = WECOM_API_BASE
    ) -> None:
        super().__init__(base_url, store)
        self.corp_id = corp_id
        self._secret = secret
        self.agent_id = int(agent_id) if str(agent_id).isdigit() else agent_id
        self.token_name = f"wecom:{corp_id}:{agent_id}"

    async def _fetch_token(self) -> tuple[str, int]:
        data = await _request_json(
            "GET", f"{self.base_url}/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret}
        )
        if int(data.get("errcode", 0) or 0) or "access_token" not in data:
            raise WeChatAPIError(int(data.get("errcode", -1)), str(data.get("errmsg", "no token")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    async def send_text(self, userid: str, text: str) -> int:
        chunks = split_text(text, MAX_TEXT_BYTES)
        for chunk in chunks:
            await self.call(
                "POST",
                "cgi-bin/message/send",
                json={"touser": userid, "msgtype": "text", "agentid": self.agent_id, "text": {"content": chunk}},
            )
        return len(chunks)
