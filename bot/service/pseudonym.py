"""Sender pseudonyms: members and logs never see a raw WeChat openid or web id."""

from __future__ import annotations

import hashlib
import hmac

from bot.config import secret_key


def pseudonymise(channel: str, sender: str) -> str:
    """A stable 32-hex-digit keyed hash of (channel, sender); the same person keeps one pseudonym."""
    message = f"{channel or 'rest'}\x1f{sender}".encode()
    return hmac.new(secret_key(), message, hashlib.sha256).hexdigest()[:32]
