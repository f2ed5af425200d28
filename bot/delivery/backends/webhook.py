"""HTTP webhook: the report as JSON, signed with HMAC-SHA256 over the raw body.

Headers: `X-Shangliang-Signature: sha256=<hex>` (key: the channel's `secret`, or the environment variable
named by `secret_env`), `X-Shangliang-Timestamp`, `X-Shangliang-Delivery` (the stable message key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import aiohttp

from bot.delivery.backends import DeliveryError, Message


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header or "")


def _secret(target: dict) -> str:
    if target.get("secret_env"):
        return os.environ.get(str(target["secret_env"]), "")
    return str(target.get("secret", ""))


class WebhookBackend:
    name = "webhook"

    def __init__(self, timeout: float = 10.0):
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, message: Message) -> None:
        body = json.dumps({
            "delivery": message.key, "kind": message.kind, "member": message.member_id,
            "subject": message.subject, "markdown": message.body, "report": message.payload,
        }, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Shangliang-Delivery": message.key,
                   "X-Shangliang-Timestamp": str(int(time.time()))}
        secret = _secret(message.target)
        if secret:
            headers["X-Shangliang-Signature"] = sign(secret, body)
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http:
                async with http.post(message.target["url"], data=body, headers=headers) as resp:
                    if resp.status >= 300:
                        raise DeliveryError(f"webhook answered HTTP {resp.status}: {(await resp.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"webhook unreachable: {exc!r}") from exc
