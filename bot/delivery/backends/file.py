"""Local Markdown files under var/outbox/<member>/ (the default backend: works with no network)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import resolve_path, settings
from bot.delivery.backends import Message


def outbox_dir() -> Path:
    return resolve_path(settings().get("delivery", {}).get("outbox_dir", "var/outbox"))


class FileBackend:
    name = "file"

    def __init__(self, directory: Path | None = None):
        self.directory = directory

    async def send(self, message: Message) -> None:
        base = self.directory or outbox_dir()
        folder = base / re.sub(r"[^\w.-]", "_", message.member_id or "_unrouted")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^\w.-]", "_", message.key) + ".md")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(message.body, encoding="utf-8")
        tmp.replace(path)  # same key -> same file: a retried delivery overwrites, never duplicates
