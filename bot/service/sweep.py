"""The routing sweep: route live cases that are still waiting for routing after a grace period.

Each pass also queues the day's reminders (催办) for overdue cases (bot/workflow/reminders.py) on working
days from `workflow.reminder_hour`.

The intake service routes each new case right after committing it, in a second transaction; a crash
between the two leaves a `received` case that nothing would route. The sweep runs at start and then
periodically (like the outbox worker) and hands such cases to `IntakePipeline.route`, which claims the
case row with a conditional UPDATE first: a case is never routed twice, by two sweeps or by a sweep and
the intake itself. Imported history (`shangliang import`) is never routed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select

from bot.service.intake import IntakePipeline
from bot.storage.models import Case, Submission, utcnow
from bot.workflow.reminders import reminder_time, send_reminders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPolicy:
    grace_seconds: float = 60.0  # younger cases are still being routed by the request that filed them
    interval_seconds: float = 60.0
    batch: int = 100

    @staticmethod
    def from_settings(config: dict[str, Any]) -> SweepPolicy:
        cfg = (config.get("routing") or {}).get("sweep") or {}
        return SweepPolicy(grace_seconds=float(cfg.get("grace_seconds", 60)),
                           interval_seconds=float(cfg.get("interval_seconds", 60)),
                           batch=int(cfg.get("batch", 100)))


def unrouted_case_ids(session: Any, older_than: datetime, after_id: int = 0, limit: int = 100) -> list[int]:
    """Cases filed live before `older_than` that are still `received` and have no route, by id."""
    try:
        from bot.routing.models import Route
    except ModuleNotFoundError:  # routing is not installed: nothing is ever routed
        return []
    live = exists().where(Submission.case_id == Case.id, Submission.source == "live")
    routed = exists().where(Route.case_id == Case.id)
    stmt = (select(Case.id)
            .where(Case.status == "received", Case.created_at <= older_than, Case.id > after_id, live, ~routed)
            .order_by(Case.id).limit(limit))
    return [int(case_id) for case_id in session.execute(stmt).scalars()]


class RoutingSweep:
    def __init__(self, pipeline: IntakePipeline, policy: SweepPolicy | None = None) -> None:
        self.pipeline = pipeline
        self.policy = policy or SweepPolicy()

    def run_once(self, now: datetime | None = None) -> int:
        """Blocking: route every overdue unrouted case. Returns how many this pass routed."""
        older_than = (now or utcnow()) - timedelta(seconds=self.policy.grace_seconds)
        routed, after_id = 0, 0
        while True:
            with self.pipeline.session_factory() as session:
                ids = unrouted_case_ids(session, older_than, after_id, self.policy.batch)
            if not ids:
                break
            after_id = ids[-1]
            for case_id in ids:
                if self.pipeline.route(case_id):
                    routed += 1
                    log.debug("routing sweep: routed case id %d", case_id)
        if routed:
            log.info("routing sweep: routed %d case(s) left unrouted", routed)
        self._remind(now or utcnow())
        return routed

    def _remind(self, now: datetime) -> None:
        """催办 for overdue cases, once per case, state and day (idempotent across passes and replicas)."""
        if not reminder_time(now):
            return
        with self.pipeline.session_factory() as session:
            send_reminders(session, now)
            session.commit()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await loop.run_in_executor(None, self.run_once)
            except Exception:  # the database may be away for a moment: try again next pass
                log.exception("routing sweep failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(1.0, self.policy.interval_seconds))
            except asyncio.TimeoutError:
                pass
