"""Background replay of the action server's spool (actions/spool.py).

Submissions the intake service could not take are spooled; they used to go through only when some resident
spoke again. This task runs inside the action server process (started by actions/server.py) and flushes the
spool every few seconds, so they are filed as soon as the intake service is back. A replay is idempotent:
every payload carries its client_ref, and the intake service answers a repeated client_ref with the case it
already filed, so the replayer and an action flushing at the same moment never file a concern twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from actions import spool
from actions.intake_client import IntakeClient

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0  # seconds between looks at the spool; a look at an empty spool is one directory scan


def interval_from_env() -> float:
    try:
        return max(0.2, float(os.environ.get("SHANGLIANG_SPOOL_REPLAY_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def spool_waiting() -> bool:
    return any(spool.spool_dir().glob("*.json"))


async def replay_once(client: IntakeClient) -> int:
    """Flush the spool if anything waits in it; how many submissions went through."""
    if not spool_waiting():
        return 0
    sent = await spool.flush(client)
    if sent:
        logger.info("replayed %d spooled submission(s); %s still waiting", sent,
                    "some" if spool_waiting() else "none")
    return sent


async def replay_forever(stop: asyncio.Event, interval: float | None = None,
                         client_factory: Callable[[], IntakeClient] = IntakeClient) -> None:
    interval = interval_from_env() if interval is None else interval
    client = client_factory()
    while not stop.is_set():
        try:
            await replay_once(client)
        except Exception:  # a disk or programming error must not end the loop: the next pass tries again
            logger.exception("spool replay failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
