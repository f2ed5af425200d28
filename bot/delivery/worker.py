"""The outbox worker: claim due messages, send each through its backend, record the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from bot.delivery import outbox
from bot.delivery.backends import DeliveryError, Message
from bot.delivery.backends.email import EmailBackend
from bot.delivery.backends.file import FileBackend
from bot.delivery.backends.webhook import WebhookBackend
from bot.delivery.backends.wecom import WeComRobotBackend
from bot.routing.models import OutboxMessage

log = logging.getLogger(__name__)


def default_backends() -> dict:
    return {"file": FileBackend(), "webhook": WebhookBackend(), "wecom": WeComRobotBackend(),
            "email": EmailBackend()}


class OutboxWorker:
    """`session_factory()` returns a new SQLAlchemy session. One pass: `await run_once()`."""

    def __init__(self, session_factory: Callable, backends: dict | None = None,
                 policy: outbox.RetryPolicy | None = None, batch: int = 20, clock: Callable | None = None):
        self.session_factory = session_factory
        self.backends = backends if backends is not None else default_backends()
        self.policy = policy or outbox.RetryPolicy.from_settings()
        self.batch = batch
        self.clock = clock  # tests move time forward instead of sleeping through backoff

    def _now(self):
        return self.clock() if self.clock else None

    async def run_once(self) -> Counter:
        """Deliver every message due now. Returns counts of sent / retry / dead / lost (lease lost)."""
        counts: Counter = Counter()
        session = self.session_factory()
        try:
            for lease in outbox.claim_leases(session, self.batch, self.policy, now=self._now()):
                row = session.get(OutboxMessage, lease.row_id)
                message = Message(id=row.id, key=row.key, kind=row.kind, member_id=row.member_id,
                                  case_id=row.case_id, target=dict(row.target or {}), subject=row.subject,
                                  body=row.body, payload=row.payload)
                backend = self.backends.get(row.backend)
                try:
                    if backend is None:
                        raise DeliveryError(f"no backend {row.backend!r}")
                    await backend.send(message)
                except DeliveryError as exc:
                    status = outbox.fail(session, lease, str(exc), self.policy, now=self._now())
                    if status is not None:  # None: another worker holds the row now (outbox logged it)
                        log.warning("delivery %s (%s) failed, attempt %d: %s -> %s",
                                    row.key, row.backend, lease.attempt, exc, status)
                except Exception as exc:  # a bug in a backend must not kill the worker or lose the row
                    log.exception("delivery %s crashed", row.key)
                    status = outbox.fail(session, lease, f"unexpected: {exc!r}", self.policy, now=self._now())
                else:
                    status = "sent" if outbox.complete(session, lease, now=self._now()) else None
                # lost: the lease expired mid-send and another worker re-claimed the row
                counts["lost" if status is None else "retry" if status == "pending" else status] += 1
        finally:
            session.close()
        return counts

    async def run(self, interval: float = 5.0, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            counts = await self.run_once()
            if counts:
                log.info("outbox pass: %s", dict(counts))
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
