"""A local aiohttp fake of the WeChat / WeCom HTTP APIs that records what it receives.

Covers what the channels call: cgi-bin/token (公众号), cgi-bin/gettoken (WeCom),
cgi-bin/message/custom/send, cgi-bin/message/send and cgi-bin/qrcode/create. Tokens are
`tok-1`, `tok-2`, ... in order of issue; `expire_token()` makes the current one answer 40001.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeWeChat:
    app_id: str = "wx-test-app"
    app_secret: str = "test-app-secret"
    corp_id: str = "ww-test-corp"
    corp_secret: str = "test-corp-secret"
    token_requests: int = 0
    custom_messages: list[dict] = field(default_factory=list)  # 公众号 customer-service sends
    wecom_messages: list[dict] = field(default_factory=list)
    qrcode_requests: list[dict] = field(default_factory=list)
    rejected_tokens: set[str] = field(default_factory=set)
    fail_sends: int = 0  # answer this many sends with a system error (errcode -1)
    _counter: Any = field(default_factory=lambda: itertools.count(1))
    _valid: set[str] = field(default_factory=set)
    runner: web.AppRunner | None = None
    base_url: str = ""

    def expire_token(self) -> None:
        self.rejected_tokens |= self._valid
        self._valid.clear()

    def _issue(self) -> dict:
        self.token_requests += 1
        token = f"tok-{next(self._counter)}"
        self._valid.add(token)
        return {"access_token": token, "expires_in": 7200}

    def _check_token(self, request: web.Request) -> dict | None:
        token = request.query.get("access_token", "")
        if token in self.rejected_tokens:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if token not in self._valid:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("appid") != self.app_id or q.get("secret") != self.app_secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        return web.json_response(self._issue())

    async def gettoken(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("corpid") != self.corp_id or q.get("corpsecret") != self.corp_secret:
            return web.json_response({"errcode": 40001, "errmsg": "invalid secret"})
        return web.json_response({"errcode": 0, "errmsg": "ok", **self._issue()})

    async def _send(self, request: web.Request, into: list[dict]) -> web.Response:
        error = self._check_token(request)
        if error:
            return web.json_response(error)
        if self.fail_sends > 0:
            self.fail_sends -= 1
            return web.json_response({"errcode": -1, "errmsg": "system error"})
        into.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def custom_send(self, request: web.Request) -> web.Response:
        return await self._send(request, self.custom_messages)

    async def wecom_send(self, request: web.Request) -> web.Response:
        return await self._send(request, self.wecom_messages)

    async def qrcode_create(self, request: web.Request) -> web.Response:
        error = self._check_token(request)
        if error:
            return web.json_response(error)
        body = await request.json()
        self.qrcode_requests.append(body)
        n = len(self.qrcode_requests)
        return web.json_response(
            {"ticket": f"ticket-{n}", "expire_seconds": body.get("expire_seconds"), "url": f"http://weixin.qq.com/q/fake{n}"}
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        app.router.add_post("/cgi-bin/message/custom/send", self.custom_send)
        app.router.add_post("/cgi-bin/message/send", self.wecom_send)
        app.router.add_post("/cgi-bin/qrcode/create", self.qrcode_create)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def wait_for(self, what: str, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until `count` messages arrived in `custom_messages` or `wecom_messages`."""
        items: list[dict] = getattr(self, what)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(items) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return items


class ChannelServer:
    """Serves one Rasa input channel's blueprint on a real local port, like `rasa run` mounts it.

    `on_new_message` stands in for Rasa's agent (the real server is covered by the `stack` tests).
    """

    _count = itertools.count()

    def __init__(self, channel: Any, on_new_message: Any) -> None:
        from sanic import Sanic

        # Several apps in one process: test mode makes Sanic's touch-up start from the original methods.
        Sanic.test_mode = True
        self.channel = channel
        self.app = Sanic(f"channel_test_{next(self._count)}")
        self.app.blueprint(channel.blueprint(on_new_message), url_prefix=f"/webhooks/{channel.name()}")
        self.server: Any = None
        self.url = ""

    async def start(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.server = await self.app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await self.server.startup()
        await self.server.start_serving()
        self.url = f"http://127.0.0.1:{port}/webhooks/{self.channel.name()}/webhook"
        return self.url

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# Settings the end-to-end stack passes to the Rasa server so tests can talk to its WeChat/WeCom
# webhooks (add them to the `stack` fixture's extra_env). Test values only, never real ones.
E2E_ENV = {
    "WECHAT_TOKEN": "shangliang-test-token",
    "WECHAT_APP_ID": "wx-test-app",
    "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_TOKEN": "shangliang-wecom-token",
    "WECOM_CORP_ID": "ww-test-corp",
    "WECOM_AES_KEY": "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut",
    "WECOM_AGENT_ID": "1000002",
}
