"""Test-side handle on the running processes (see bot/supervisor.py)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.supervisor import Stack
from bot.tokens import token


@dataclass
class RunningStack:
    stack: Stack

    @property
    def rasa_url(self) -> str:
        return self.stack.rasa_url

    @property
    def action_url(self) -> str:
        return self.stack.action_url

    @property
    def intake_url(self) -> str:
        return self.stack.intake_url

    @property
    def database_url(self) -> str:
        return self.stack.database_url or f"sqlite:///{self.stack.var_dir / 'shangliang.db'}"

    @property
    def service_token(self) -> str:
        return self.stack.service_token

    @property
    def rasa_token(self) -> str:
        return self.stack.rasa_token

    @property
    def staff_token(self) -> str:
        return self.stack.extra_env.get("SHANGLIANG_API_TOKEN") or token("api", self.stack.var_dir)

    def service_headers(self, sender: str | None = None, channel: str = "rest") -> dict[str, str]:
        """What the action server sends: the service token, and the resident it acts for."""
        headers = {"Authorization": f"Bearer {self.service_token}"}
        if sender:
            headers.update({"X-Shangliang-Sender": sender, "X-Shangliang-Channel": channel})
        return headers

    def staff_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token}"}

    def post_json(self, url: str, payload: dict[str, Any], timeout: float = 60.0,
                  headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json", **(headers or {})}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def get_json(self, url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One user turn through Rasa's REST channel; returns the bot's messages."""
        payload: dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        return self.post_json(f"{self.rasa_url}/webhooks/rest/webhook", payload)

    def say(self, sender: str, text: str) -> list[str]:
        """The bot's text replies to one user turn."""
        return [m["text"] for m in self.send(sender, text) if m.get("text")]

    def logs(self, name: str) -> str:
        return self.stack.tail(name, lines=200)
