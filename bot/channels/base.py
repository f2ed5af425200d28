"""What the WeChat and WeCom input channels share: lazy helpers, request checks, dialogue plumbing.

Subclasses set `channel_name` and `platform`, build their API client in `_make_api`, answer
server verification in `_verify` and messages in `_receive`.
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
from wechatpy.events import SubscribeEvent
from wechatpy.messages import ImageMessage, LocationMessage, TextMessage, VoiceMessage

from bot.channels.delivery import ApiDelivery
from bot.channels.dialogue import (
    IMAGE_RECEIVED,
    LOCATION_INTENT,
    TEMPORARY_ERROR,
    UNSUPPORTED,
    VOICE_NOT_UNDERSTOOD,
    WELCOME,
    Inbound,
    OnNewMessage,
    run_turn,
)
from bot.channels.models import default_engine
from bot.channels.msgstore import MessageStore

logger = logging.getLogger(__name__)


class WeChatFamilyInput(ApiDelivery, InputChannel):
    """Base of the WeChat official-account and WeCom channels (same message shapes, same store)."""

    channel_name: str
    platform: str  # for log lines: "WeChat", "WeCom"

    @classmethod
    def name(cls) -> str:
        return cls.channel_name

    def _init_common(
        self, *, max_body_bytes: int, max_clock_skew: int, image_intent: str, engine: Any, api_args: tuple | None
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_clock_skew = max_clock_skew
        self.image_intent = image_intent
        self._engine = engine
        self._store: MessageStore | None = None
        self._api: Any = None
        self._api_args = api_args
        self._init_delivery()

    # --- lazily built helpers (the database may not be reachable at import time) -------------

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
    def api(self) -> Any:
        if self._api is None and self._api_args:
            self._api = self._make_api(*self._api_args)
        return self._api

    def _make_api(self, *args: Any) -> Any:
        raise NotImplementedError

    # --- request checks --------------------------------------------------------------------

    def _fresh(self, timestamp: str | None) -> bool:
        """Refuse replays of old signed requests."""
        try:
            return abs(time.time() - int(timestamp or "")) <= self.max_clock_skew
        except ValueError:
            return False

    def _too_large(self, request: Request) -> bool:
        body = request.body or b""
        declared = request.headers.get("content-length", "0")
        return len(body) > self.max_body_bytes or (declared.isdigit() and int(declared) > self.max_body_bytes)

    # --- Sanic blueprint -------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        bp = Blueprint(f"custom_webhook_{type(self).__name__}", type(self).__module__)

        @bp.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return self._verify(request)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if self._too_large(request):
                return response.text("payload too large", status=413)
            return await self._receive(request, on_new_message)

        return bp

    def _verify(self, request: Request) -> HTTPResponse:
        raise NotImplementedError

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        raise NotImplementedError

    # --- message handling ------------------------------------------------------------------

    def translate(self, msg: Any) -> Inbound | None:
        """Map a parsed message/event to what the dialogue should get (None: ignore)."""
        meta: dict[str, Any] = {"channel": self.channel_name, "msg_type": msg.type}
        inbound = translate_content(msg, meta, self.image_intent)
        if inbound is None:
            inbound = self._translate_event(msg, meta)
        if inbound is not None:
            return inbound
        if isinstance(msg, SubscribeEvent):
            return Inbound(direct_reply=WELCOME)
        if msg.type == "event":
            return None  # menu clicks, template receipts, enter_agent, ...: nothing to say
        return Inbound(direct_reply=UNSUPPORTED)

    def _translate_event(self, msg: Any, meta: dict[str, Any]) -> Inbound | None:
        """Platform-specific events; None hands the message on to the common rules."""
        return None

    @staticmethod
    def message_key(msg: Any) -> str:
        if msg.id:
            return str(msg.id)
        # Events carry no MsgId; WeChat's own advice is FromUserName + CreateTime.
        return f"{msg.source}:{msg.time}:{getattr(msg, 'event', msg.type)}"

    async def _run_and_store(self, on_new_message: OnNewMessage, key: str, sender: str, inbound: Inbound) -> None:
        if not inbound.needs_dialogue:
            replies = [inbound.direct_reply] if inbound.direct_reply else []
        else:
            try:
                replies = await run_turn(
                    on_new_message, sender=sender, inbound=inbound, input_channel=self.channel_name,
                    message_id=key,
                )
            except Exception:
                logger.exception("the dialogue failed on a %s message", self.platform)
                replies = [TEMPORARY_ERROR]
        await asyncio.to_thread(self.store.set_ready, self.channel_name, key, replies)


def translate_content(msg: Any, meta: dict[str, Any], image_intent: str) -> Inbound | None:
    """Text, voice, image and location messages (same shapes on WeChat and WeCom); None otherwise."""
    if isinstance(msg, TextMessage):
        return Inbound(text=msg.content or "", metadata=meta)
    if isinstance(msg, VoiceMessage):
        if msg.recognition:
            meta["voice"] = {"media_id": msg.media_id, "recognised": True}
            return Inbound(text=msg.recognition, metadata=meta)
        return Inbound(direct_reply=VOICE_NOT_UNDERSTOOD)
    if isinstance(msg, ImageMessage):
        meta["media"] = [{"type": "image", "url": msg.image, "media_id": msg.media_id}]
        return Inbound(text=f"/{image_intent}", metadata=meta, direct_reply=IMAGE_RECEIVED)
    if isinstance(msg, LocationMessage):
        label = (msg.label or "").strip()
        meta["location"] = {
            "latitude": msg.location_x, "longitude": msg.location_y, "scale": msg.scale, "label": label,
        }
        # An intent, not the label as text: the NLU would guess at an address alone, and the dialogue
        # opens a concern at this place (or fills the place of the one being told) from the metadata.
        return Inbound(text=f"/{LOCATION_INTENT}", metadata=meta)
    return None
