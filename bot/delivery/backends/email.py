"""SMTP e-mail. Server settings under `delivery.smtp` in intake.yml; the channel gives `to`."""

from __future__ import annotations

import asyncio
import os
import smtplib
from email.message import EmailMessage

from bot.config import settings
from bot.delivery.backends import DeliveryError, Message


def smtp_settings() -> dict:
    return dict(settings().get("delivery", {}).get("smtp") or {})


class EmailBackend:
    name = "email"

    def __init__(self, config: dict | None = None):
        self.config = config if config is not None else smtp_settings()

    def _send_sync(self, message: Message) -> None:
        cfg = self.config
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = cfg.get("from", "shangliang@localhost")
        mail["To"] = message.target["to"]
        mail["Message-ID"] = f"<{message.key.replace(':', '.')}@shangliang>"
        mail.set_content(message.body)  # Markdown reads fine as plain text
        with smtplib.SMTP(cfg.get("host", "127.0.0.1"), int(cfg.get("port", 25)),
                          timeout=float(cfg.get("timeout", 10))) as smtp:
            if cfg.get("starttls"):
                smtp.starttls()
            if cfg.get("username"):
                smtp.login(cfg["username"], os.environ.get(cfg.get("password_env", "SHANGLIANG_SMTP_PASSWORD"), ""))
            smtp.send_message(mail)

    async def send(self, message: Message) -> None:
        try:
            await asyncio.to_thread(self._send_sync, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"smtp failed: {exc!r}") from exc
