"""Background sending of replies through a platform API, without losing any.

Shared by the WeChat and WeCom channels: keeps references to background tasks, marks failed
sends in the message store and resends them later (`resend_pending`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from bot.channels.msgstore import MessageStore

logger = logging.getLogger(__name__)

KEEP_RECORDS = timedelta(days=3)


class ApiDelivery:
    """Mixin: needs `channel_name`, a `store` (MessageStore) and an `api` with `send_text(to, text)`."""

    channel_name: str
    store: MessageStore
    api: Any

    def _init_delivery(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._last_sweep = 0.0

    def _keep(self, task: asyncio.Task) -> None:
        # Hold a reference so background deliveries are not garbage-collected mid-flight.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background deliveries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _send_api(self, recipient: str, text: str, key: str | None = None) -> bool:
        api = self.api
        try:
            if api is None:
                raise RuntimeError(f"no API credentials configured for {self.channel_name}")
            await api.send_text(recipient, text)
            return True
        except Exception as exc:  # keep the reply for resend_pending instead of losing it
            logger.warning("%s reply not sent through the API: %s", self.channel_name, exc)
            if key is not None:
                await asyncio.to_thread(self.store.mark_failed, self.channel_name, key, str(exc))
            return False

    async def _deliver_when_done(self, task: asyncio.Task, key: str, recipient: str) -> None:
        await task
        replies = await asyncio.to_thread(self.store.take, self.channel_name, key, "api")
        if replies:
            await self._send_api(recipient, "\n\n".join(replies), key=key)

    def _maybe_sweep(self, every: float = 60.0) -> None:
        """Now and then, resend replies nobody delivered (a worker died, the API was down)."""
        now = time.monotonic()
        if self.api is None or now - self._last_sweep < every:
            return
        self._last_sweep = now
        self._keep(asyncio.create_task(self.resend_pending()))
        # Bookkeeping is only needed for WeChat's retries and the 48-hour customer-service window.
        self._keep(asyncio.create_task(asyncio.to_thread(self.store.purge, KEEP_RECORDS)))

    async def resend_pending(self, older_than: timedelta = timedelta(seconds=30)) -> int:
        """Send stored replies still waiting for delivery; returns how many went out."""
        sent = 0
        records = await asyncio.to_thread(self.store.due_for_resend, self.channel_name, older_than)
        for record in records:
            replies = await asyncio.to_thread(self.store.take, self.channel_name, record.msg_key, "api")
            if replies and await self._send_api(record.recipient, "\n\n".join(replies), key=record.msg_key):
                sent += 1
        return sent
