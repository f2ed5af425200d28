"""Keep this intake service's FAISS index in step with submissions other services store (PostgreSQL).

The database is the source of truth. A service that stores a submission sends `NOTIFY` on
`CHANNEL` in the same transaction (PostgreSQL delivers it at commit, never for a rolled-back insert);
every service LISTENs and catches its index up (`Analysis.catch_up_recent`: ids above the highest it
has, plus rows of the last few minutes, since a lower id can commit after a higher one). A notification
missed while the listening connection was down is covered by a catch-up at each (re)connect and by a
periodic catch-up. Duplicate decisions do not rely on this (they catch up under the area's advisory lock,
`bot/service/decision_lock.py`); it keeps searches, progress views and the next decision cheap and fresh.
On SQLite (one service per file) nothing here runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.service.decision_lock import CATCH_UP_WINDOW
from bot.storage.models import utcnow

log = logging.getLogger(__name__)

CHANNEL = "shangliang_submissions"


def notify_stored(session: Session, submission_id: int) -> None:
    """Tell the other services (at commit) that a submission with a vector was stored."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": str(int(submission_id))})


class IndexListener:
    """LISTENs on `CHANNEL` with its own psycopg2 connection, read on the event loop (`add_reader`).

    `catch_up(since)` runs in the default executor, never two at once; notifications that arrive during
    one are folded into one more pass. The connection is re-opened with backoff when it drops.
    """

    def __init__(self, dsn: str, catch_up: Callable[[datetime], object], *, periodic_seconds: float = 60.0,
                 reconnect_max_seconds: float = 30.0) -> None:
        self.dsn = dsn
        self.catch_up = catch_up
        self.periodic_seconds = periodic_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self.notifications = 0
        self.passes = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen_forever()), asyncio.create_task(self._catch_up_loop())]

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- catching up -------------------------------------------------------------------------------
    async def _catch_up_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.periodic_seconds)
            except asyncio.TimeoutError:
                pass  # the periodic pass: nothing is missed for long even if notifications are
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                await loop.run_in_executor(None, self.catch_up, utcnow() - CATCH_UP_WINDOW)
                self.passes += 1
            except Exception:  # the next notification or period tries again
                log.exception("index catch-up after a notification failed")

    # ---- listening ---------------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                await self._listen_once()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for other services' submissions failed (%s); again in %.0f s",
                            type(exc).__name__, delay)
            if self._stop.is_set():
                return
            await asyncio.sleep(delay)
            delay = min(self.reconnect_max_seconds, delay * 2)

    async def _listen_once(self) -> None:
        import psycopg2
        import psycopg2.extensions

        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(None, psycopg2.connect, self.dsn)
        dropped = asyncio.Event()
        try:
            conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")

            def readable() -> None:
                try:
                    conn.poll()
                except Exception:  # the server went away: reconnect
                    dropped.set()
                    return
                if conn.notifies:
                    self.notifications += len(conn.notifies)
                    conn.notifies.clear()
                    self._wake.set()

            loop.add_reader(conn.fileno(), readable)
            self._wake.set()  # whatever was stored while we were not listening
            log.info("listening for submissions stored by other intake services")
            try:
                while not dropped.is_set() and not self._stop.is_set():
                    try:
                        await asyncio.wait_for(dropped.wait(), timeout=30)
                    except asyncio.TimeoutError:
                        # A quiet connection can die without the socket saying so: ask it.
                        await loop.run_in_executor(None, _ping, conn)
                        if conn.notifies:  # read along with the ping's answer
                            self.notifications += len(conn.notifies)
                            conn.notifies.clear()
                            self._wake.set()
            finally:
                loop.remove_reader(conn.fileno())
            if dropped.is_set():
                raise ConnectionError("LISTEN connection dropped")
        finally:
            conn.close()


def _ping(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")


def libpq_dsn(database_url: str) -> str:
    """A SQLAlchemy URL as psycopg2 takes it (driver suffix dropped)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
