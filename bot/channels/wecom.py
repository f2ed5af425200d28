"""Rasa input channel for a WeCom (企业微信) self-built application.

Webhook: `/webhooks/wecom/webhook`. WeCom callbacks are always encrypted: GET verifies the URL by
decrypting `echostr`; POST carries an encrypted message. The handler answers at once with an
empty body and the dialogue's reply goes out through WeCom's application message API, so WeCom
never times out and retries; a MsgId that does come twice still reaches the dialogue once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa.core.channels.channel import InputChannel
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.channels.base import WeChatFamilyInput
from bot.channels.dialogue import OnNewMessage, setting
from bot.channels.wechat_api import WECOM_API_BASE, TokenStore, WeComAPI
from bot.channels.xmlguard import UnsafeXML, check_xml

logger = logging.getLogger(__name__)

CHANNEL = "wecom"


class WeComInput(WeChatFamilyInput):
    """WeCom application channel. Settings come from credentials.yml or the environment."""

    channel_name = CHANNEL
    platform = "WeCom"

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
        self._crypto = WeChatCrypto(token, aes_key, corp_id) if token and aes_key and corp_id else None
        self._init_common(
            max_body_bytes=max_body_bytes, max_clock_skew=max_clock_skew, image_intent=image_intent,
            engine=engine,
            api_args=(corp_id, secret, agent_id, api_base) if corp_id and secret and agent_id else None,
        )
        if self._crypto is None:
            logger.warning("WeCom channel lacks token/AES key/corp id: every request will be refused")

    def _make_api(self, corp_id: str, secret: str, agent_id: str, base: str) -> WeComAPI:
        return WeComAPI(corp_id, secret, agent_id, TokenStore(self.engine), base_url=base)

    def _verify(self, request: Request) -> HTTPResponse:
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

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        body = request.body or b""
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
