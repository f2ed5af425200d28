"""Rasa input channel for a WeCom (企业微信) self-built application.

Webhook: `/webhooks/wecom/webhook`. WeCom callbacks are always encrypted: GET verifies the URL by
decrypting `echostr`; POST carries an encrypted message. The handler answers at once with an
empty body and the dialogue's reply goes out through WeCom's application message API, so WeCom
never times out and retries; a MsgId that does come twice still reaches the dialogue once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.events import SubscribeEvent
from wechatpy.exceptions import InvalidSignatureException

from bot.channels.delivery import ApiDelivery
from bot.channels.dialogue import (
    TEMPORARY_ERROR,
    UNSUPPORTED,
    WELCOME,
    Inbound,
    OnNewMessage,
    run_turn,
    setting,
)
from bot.channels.models import default_engine
from bot.channels.msgstore import MessageStore
from bot.channels.wechat import translate_content
from bot.channels.wechat_api import WECOM_API_BASE, TokenStore, WeComAPI
from bot.channels.xmlguard import UnsafeXML, check_xml

logger = logging.getLogger(__name__)

CHANNEL = "wecom"


class WeComInput(ApiDelivery, InputChannel):
    """WeCom application channel. Settings come from credentials.yml or the environment."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        c = credentials or {}
        return cls(
            token=setting(c, "token", "WECOM_TOKEN", ""),
            corp_id=setting(c, "corp_id", "WECOM_CORP_ID", ""),
            secret=setting(c, "secret", "WECOM_SECRET", ""),
            agent_id=str(setting(c, "agent_id", "WECOM_AGENT_ID", "")),
            aes_key=setting(c, "encoding_aes_key", "WECOM_AES_KEY", ""),
            api_base=setting(c, "api_base", "WECOM_API_BASE", WECOM_API_BASE),
            max_body_bytes=int(setting(c, "max_body_bytes", "WECOM_MAX_BODY_BYTES", 65536)),
            max_clock_skew=int(setting(c, "max_clock_skew", "WECOM_MAX_CLOCK_SKEW", 900)),
            image_intent=setting(c, "image_intent", "WECOM_IMAGE_INTENT", "share_media"),
        )

    def __init__(
        self,
        *,
        token: str,
        corp_id: str,
        aes_key: str,
        secret: str = "",
        agent_id: str = "",
        api_base: str = WECOM_API_BASE,
        max_body_bytes: int = 65536,
        max_clock_skew: int = 900,
        image_intent: str = "share_media",
        engine: Any = None,
    ) -> None:
        self.channel_name = CHANNEL
        self._crypto = WeChatCrypto(token, aes_key, corp_id) if token and aes_key and corp_id else None
        self.max_body_bytes = max_body_bytes
        self.max_clock_skew = max_clock_skew
        self.image_intent = image_intent
        self._engine = engine
        self._store: MessageStore | None = None
        self._api: WeComAPI | None = None
        self._api_args = (corp_id, secret, agent_id, api_base) if corp_id and secret and agent_id else None
        self._init_delivery()
        if self._crypto is None:
            logger.warning("WeCom channel lacks token/AES key/corp id: every request will be refused")

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = default_engine()
        return self._engine

    @property
    def store(self) -> MessageStore:
        if self._store is None:
            self._store = MessageStore(self.engine)
        return self._store

    @property
    def api(self) -> WeComAPI | None:
        if self._api is None and self._api_args:
            corp_id, secret, agent_id, base = self._api_args
            self._api = WeComAPI(corp_id, secret, agent_id, TokenStore(self.engine), base_url=base)
        return self._api

    def _fresh(self, timestamp: str | None) -> bool:
        try:
            return abs(time.time() - int(timestamp or "")) <= self.max_clock_skew
        except ValueError:
            return False

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        bp = Blueprint("custom_webhook_WeComInput", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            args = request.args
            if self._crypto is None or not self._fresh(args.get("timestamp")):
                return response.text("forbidden", status=403)
            try:
                echo = self._crypto.check_signature(
                    args.get("msg_signature", ""), args.get("timestamp"), args.get("nonce", ""),
                    args.get("echostr", ""),
                )
            except InvalidSignatureException:
                return response.text("forbidden", status=403)
            except Exception:
                return response.text("bad request", status=400)
            return response.text(echo)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        return bp

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        body = request.body or b""
        declared = request.headers.get("content-length", "0")
        if len(body) > self.max_body_bytes or (declared.isdigit() and int(declared) > self.max_body_bytes):
            return response.text("payload too large", status=413)
        args = request.args
        if self._crypto is None or not args.get("msg_signature") or not self._fresh(args.get("timestamp")):
            return response.text("forbidden", status=403)
        try:
            check_xml(body)
            plain = self._crypto.decrypt_message(
                body, args.get("msg_signature"), args.get("timestamp"), args.get("nonce", "")
            )
            check_xml(plain)
            msg = parse_message(plain)
        except InvalidSignatureException:
            return response.text("forbidden", status=403)
        except UnsafeXML as exc:
            logger.warning("refused a WeCom POST: %s", exc)
            return response.text("bad request", status=400)
        except Exception:  # bad base64/padding/corp id, missing fields
            return response.text("bad request", status=400)
        if msg is None or not msg.source:
            return response.text("bad request", status=400)
        self._maybe_sweep()
        await self.handle(msg, on_new_message)
        return response.text("")

    def translate(self, msg: Any) -> Inbound | None:
        meta: dict[str, Any] = {"channel": CHANNEL, "msg_type": msg.type}
        inbound = translate_content(msg, meta, self.image_intent)
        if inbound is not None:
            return inbound
        if isinstance(msg, SubscribeEvent):
            return Inbound(direct_reply=WELCOME)
        if msg.type == "event":
            return None  # enter_agent, unsubscribe, menu clicks: nothing to say
        return Inbound(direct_reply=UNSUPPORTED)

    @staticmethod
    def message_key(msg: Any) -> str:
        if msg.id:
            return str(msg.id)
        return f"{msg.source}:{msg.time}:{getattr(msg, 'event', msg.type)}"

    async def handle(self, msg: Any, on_new_message: OnNewMessage) -> None:
        """Start the dialogue turn (once per MsgId); its reply is sent through the API."""
        inbound = self.translate(msg)
        if inbound is None:
            return
        key, userid = self.message_key(msg), msg.source
        owned, _ = await asyncio.to_thread(self.store.claim, CHANNEL, key, userid)
        if not owned:
            return
        task = asyncio.create_task(self._run_and_store(on_new_message, key, userid, inbound))
        self._keep(task)
        self._keep(asyncio.create_task(self._deliver_when_done(task, key, userid)))

    async def _run_and_store(self, on_new_message: OnNewMessage, key: str, userid: str, inbound: Inbound) -> None:
        if not inbound.needs_dialogue:
            replies = [inbound.direct_reply] if inbound.direct_reply else []
        else:
            try:
                replies = await run_turn(
                    on_new_message, sender=userid, inbound=inbound, input_channel=CHANNEL, message_id=key
                )
            except Exception:
                logger.exception("the dialogue failed on a WeCom message")
                replies = [TEMPORARY_ERROR]
        await asyncio.to_thread(self.store.set_ready, CHANNEL, key, replies)
