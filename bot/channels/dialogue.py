"""What the WeChat and WeCom channels share: settings lookup, inbound translation, one dialogue turn."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

# Resident-facing texts (warm, plain Simplified Chinese).
WELCOME = (
    "您好，欢迎来到“码上商量”！\n"
    "身边有什么烦心事、好建议，直接打字告诉我就行，比如在哪里、出了什么问题、持续多久了。"
    "我会整理好转给相关的政协委员跟进。"
)
VOICE_NOT_UNDERSTOOD = "抱歉，我暂时还听不懂语音。麻烦您打字告诉我，好吗？"
IMAGE_RECEIVED = "照片收到了，我会把它和您反映的问题放在一起。"
UNSUPPORTED = "抱歉，这类消息我暂时看不了。请用文字、照片或位置告诉我，好吗？"
CAMPAIGN_CLOSED = "这个专题商量已经结束了，感谢关注！您有其他想反映的事，也可以直接告诉我。"
TEMPORARY_ERROR = "抱歉，系统有点忙，请稍后再发一次，谢谢您的耐心。"
# A location message reaches Rasa as this intent with metadata.location (label, coordinates).
LOCATION_INTENT = "share_location"


def setting(credentials: dict | None, key: str, env: str, default: Any = None) -> Any:
    """A channel setting: credentials.yml first, then the environment, then the default."""
    value = (credentials or {}).get(key)
    if value in (None, ""):
        value = os.environ.get(env, default)
    return value


@dataclass
class Inbound:
    """What to do with one platform message."""

    text: str | None = None  # sent to Rasa; None means no dialogue turn
    metadata: dict = field(default_factory=dict)
    direct_reply: str | None = None  # the channel's own reply (without Rasa, or as a fallback)
    prefix: str | None = None  # channel text to put before Rasa's reply (campaign opening)

    @property
    def needs_dialogue(self) -> bool:
        return self.text is not None


def campaign_intent(scene: str) -> str:
    """Rasa's `/intent{entities}` shortcut: sets the `campaign` slot without NLU guessing."""
    return "/start_campaign" + json.dumps({"campaign": scene}, ensure_ascii=False)


def message_texts(messages: list[dict]) -> list[str]:
    """Texts of the bot's messages collected from Rasa, with buttons listed as numbered options."""
    out: list[str] = []
    for message in messages:
        parts = []
        if message.get("text"):
            parts.append(str(message["text"]))
        for i, button in enumerate(message.get("buttons") or [], start=1):
            parts.append(f"{i}. {button.get('title', '')}")
        if message.get("image"):
            parts.append(str(message["image"]))
        if parts:
            out.append("\n".join(parts))
    return out


async def run_turn(
    on_new_message: OnNewMessage, *, sender: str, inbound: Inbound, input_channel: str, message_id: str
) -> list[str]:
    """Send one message to Rasa and return the reply texts, with the channel's prefix/fallback."""
    collector = CollectingOutputChannel()
    await on_new_message(
        UserMessage(
            inbound.text,
            collector,
            sender,
            input_channel=input_channel,
            message_id=message_id,
            metadata=inbound.metadata or None,
        )
    )
    texts = message_texts(collector.messages)
    if not texts and inbound.direct_reply:
        texts = [inbound.direct_reply]
    if inbound.prefix:
        texts = [inbound.prefix, *texts]
    return texts
