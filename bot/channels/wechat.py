"""Rasa input channel for a WeChat official account (公众号), plain and safe (AES) mode.

Webhook: `/webhooks/wechat/webhook` (GET: server verification, POST: messages and events).
WeChat waits 5 s for an answer and retries up to 3 times with the same MsgId. A reply that is
ready within `reply_timeout` (default 4 s) goes back passively in the HTTP response; otherwise the
handler answers "success" and the reply goes out through the customer-service message API once
Rasa has it. The message store (database) makes sure each MsgId reaches the dialogue once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from rasa.core.channels.channel import InputChannel
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import ScanEvent, SubscribeScanEvent, UnsubscribeEvent
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from bot.channels import campaigns
from bot.channels.base import WeChatFamilyInput
from bot.channels.dialogue import (
    CAMPAIGN_CLOSED,
    WELCOME,
    Inbound,
    OnNewMessage,
    campaign_intent,
    setting,
)
from bot.channels.msgstore import DELIVERED, FAILED, READY
from bot.channels.textsplit import MAX_TEXT_BYTES, pack_replies
from bot.channels.wechat_api import WECHAT_API_BASE, TokenStore, WeChatAPI
from bot.channels.xmlguard import UnsafeXML, check_xml

logger = logging.getLogger(__name__)

CHANNEL = "wechat"
SUCCESS = "success"  # tells WeChat "received, no passive reply" (it then does not retry)


class WeChatInput(WeChatFamilyInput):
    """WeChat official account channel. Settings come from credentials.yml or the environment."""

    channel_name = CHANNEL
    platform = "WeChat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        c = credentials or {}
        return cls(
            token=setting(c, "token", "WECHAT_TOKEN", ""),
            app_id=setting(c, "app_id", "WECHAT_APP_ID", ""),
            app_secret=setting(c, "app_secret", "WECHAT_APP_SECRET", ""),
            aes_key=setting(c, "encoding_aes_key", "WECHAT_AES_KEY", ""),
            api_base=setting(c, "api_base", "WECHAT_API_BASE", WECHAT_API_BASE),
            reply_timeout=float(setting(c, "reply_timeout", "WECHAT_REPLY_TIMEOUT", 4.0)),
            max_body_bytes=int(setting(c, "max_body_bytes", "WECHAT_MAX_BODY_BYTES", 65536)),
            max_clock_skew=int(setting(c, "max_clock_skew", "WECHAT_MAX_CLOCK_SKEW", 900)),
            image_intent=setting(c, "image_intent", "WECHAT_IMAGE_INTENT", "share_media"),
        )

    def __init__(
        self,
        *,
        token: str,
        app_id: str = "",
        app_secret: str = "",
        aes_key: str = "",
        api_base: str = WECHAT_API_BASE,
        reply_timeout: float = 4.0,
        max_body_bytes: int = 65536,
        max_clock_skew: int = 900,
        image_intent: str = "share_media",
        engine: Any = None,
    ) -> None:
        self._token = token
        self.app_id = app_id
        self.reply_timeout = reply_timeout
        self._crypto = WeChatCrypto(token, aes_key, app_id) if aes_key and app_id else None
        self._init_common(
            max_body_bytes=max_body_bytes, max_clock_skew=max_clock_skew, image_intent=image_intent,
            engine=engine, api_args=(app_id, app_secret, api_base) if app_id and app_secret else None,
        )
        if not token:
            logger.warning("WeChat channel has no token (WECHAT_TOKEN): every request will be refused")

    def _make_api(self, app_id: str, secret: str, base: str) -> WeChatAPI:
        return WeChatAPI(app_id, secret, TokenStore(self.engine), base_url=base)

    # --- request checks --------------------------------------------------------------------

    def _signed(self, request: Request) -> bool:
        args = request.args
        signature, timestamp, nonce = args.get("signature"), args.get("timestamp"), args.get("nonce")
        if not (self._token and signature and timestamp and nonce):
            return False
        return signature_ok(self._token, signature, timestamp, nonce) and self._fresh(timestamp)

    # --- webhook ------------------------------------------------------------------------

    def _verify(self, request: Request) -> HTTPResponse:
        if not self._signed(request):
            return response.text("forbidden", status=403)
        return response.text(request.args.get("echostr", ""))

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        body = request.body or b""
        if not self._signed(request):
            return response.text("forbidden", status=403)
        try:
            check_xml(body)
        except UnsafeXML as exc:
            logger.warning("refused a WeChat POST: %s", exc)
            return response.text("bad request", status=400)

        args = request.args
        encrypted = args.get("encrypt_type") == "aes"
        timestamp, nonce = args.get("timestamp"), args.get("nonce")
        if encrypted:
            if self._crypto is None:
                return response.text("bad request", status=400)
            try:
                plain = self._crypto.decrypt_message(body, args.get("msg_signature", ""), timestamp, nonce)
            except InvalidSignatureException:
                return response.text("forbidden", status=403)
            except Exception:  # bad base64/padding/app id: not from WeChat
                return response.text("bad request", status=400)
            try:
                check_xml(plain)
            except UnsafeXML:
                return response.text("bad request", status=400)
        else:
            plain = body
        try:
            msg = parse_message(plain)
        except Exception:
            return response.text("bad request", status=400)
        if msg is None or not msg.source:
            return response.text("bad request", status=400)

        self._maybe_sweep()
        text = await self.handle(msg, on_new_message)
        if not text:
            return response.text(SUCCESS)
        # wechatpy wraps the text in CDATA without escaping: split any "]]>" so it cannot end it early.
        safe_text = text.replace("]]>", "]]]]><![CDATA[>")
        xml = TextReply(source=msg.target, target=msg.source, content=safe_text).render()
        if encrypted:
            xml = self._crypto.encrypt_message(xml, nonce, timestamp)
        return response.text(xml, content_type="application/xml")

    # --- message handling ------------------------------------------------------------------

    def _translate_event(self, msg: Any, meta: dict[str, Any]) -> Inbound | None:
        if isinstance(msg, (SubscribeScanEvent, ScanEvent)):
            return self._campaign_inbound(str(msg.scene_id or ""), meta, subscribed=isinstance(msg, ScanEvent))
        if isinstance(msg, UnsubscribeEvent):
            logger.info("a follower unsubscribed")
        return None

    def _campaign_inbound(self, scene: str, meta: dict, *, subscribed: bool) -> Inbound | None:
        campaign = campaigns.get_campaign(self.engine, scene)
        if campaign is None:
            return None if subscribed else Inbound(direct_reply=WELCOME)
        if not campaign.is_open():
            return Inbound(direct_reply=CAMPAIGN_CLOSED)
        meta["campaign"] = campaign.scene
        return Inbound(text=campaign_intent(campaign.scene), metadata=meta, prefix=campaign.opening_text())

    async def handle(self, msg: Any, on_new_message: OnNewMessage) -> str | None:
        """Run the message through the dialogue once; the passive reply text, or None."""
        inbound = self.translate(msg)
        if inbound is None:
            return None
        if not inbound.needs_dialogue:
            return inbound.direct_reply
        key, openid = self.message_key(msg), msg.source
        owned, _ = await asyncio.to_thread(self.store.claim, CHANNEL, key, openid)
        if not owned:
            return await self._reply_for_retry(key)

        task = asyncio.create_task(self._run_and_store(on_new_message, key, openid, inbound))
        self._keep(task)
        done, _ = await asyncio.wait({task}, timeout=self.reply_timeout)
        if not done:
            logger.info("reply for a WeChat message is late; it will go out via the customer-service API")
            self._keep(asyncio.create_task(self._deliver_when_done(task, key, openid)))
            return None
        return await self._take_passive(key, openid)

    def _passive(self, replies: list[str] | None, openid: str) -> str | None:
        """First platform-sized chunk goes back passively; any rest via the customer-service API."""
        chunks = pack_replies(replies or [], MAX_TEXT_BYTES)
        if not chunks:
            return None
        if len(chunks) > 1:
            self._keep(asyncio.create_task(self._send_api(openid, "\n".join(chunks[1:]))))
        return chunks[0]

    async def _take_passive(self, key: str, openid: str) -> str | None:
        """The passive reply for `key`: delivered now, or the same text again if it already went passively.

        Answering every copy of a retried message alike is safe: WeChat keeps one response per MsgId
        (the earlier connections are the ones it gave up on). A reply sent by the API is not repeated.
        """
        replies = await asyncio.to_thread(self.store.take, CHANNEL, key, "passive")
        if replies is not None:
            return self._passive(replies, openid)
        record = await asyncio.to_thread(self.store.get, CHANNEL, key)
        if record is None or record.delivered_via != "passive":
            return None
        chunks = pack_replies(record.replies, MAX_TEXT_BYTES)
        return chunks[0] if chunks else None

    async def _reply_for_retry(self, key: str) -> str | None:
        """A retry of a message already being handled: wait for its reply, never run it again."""
        deadline = time.monotonic() + self.reply_timeout
        while True:
            record = await asyncio.to_thread(self.store.get, CHANNEL, key)
            if record is None:
                return None
            if record.status in (READY, FAILED, DELIVERED):
                return await self._take_passive(key, record.recipient)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)


def signature_ok(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """WeChat's SHA1 signature over the sorted token/timestamp/nonce, compared in constant time."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return hmac.compare_digest(signer.signature.encode(), str(signature).encode())
