"""WeCom (企业微信) group robot: markdown messages to the robot's webhook URL."""

from __future__ import annotations

import aiohttp

from bot.delivery.backends import DeliveryError, Message

MAX_BYTES = 4096  # the robot API refuses longer markdown content


def fit(text: str, limit: int = MAX_BYTES) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 12].decode("utf-8", errors="ignore") + "\n\n……（已截断）"


class WeComRobotBackend:
    name = "wecom"

    def __init__(self, timeout: float = 10.0):
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, message: Message) -> None:
        content = fit(message.body)
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http:
                async with http.post(message.target["url"],
                                     json={"msgtype": "markdown", "markdown": {"content": content}}) as resp:
                    if resp.status >= 300:
                        raise DeliveryError(f"wecom robot answered HTTP {resp.status}")
                    data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"wecom robot unreachable: {exc!r}") from exc
        if int(data.get("errcode", -1)) != 0:
            raise DeliveryError(f"wecom robot error {data.get('errcode')}: {data.get('errmsg')}")
