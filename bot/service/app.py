"""The aiohttp application of the intake service: start-up (schema upgrade, background model load,
index catch-up), middlewares, routes, /health and /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text

from bot.config import settings
from bot.console.routes import setup_console
from bot.service import api, webchat
from bot.service.analysis import Analysis
from bot.service.errors import error_middleware
from bot.service.intake import IntakePipeline
from bot.service.keys import (
    ANALYSIS,
    BACKGROUND,
    DATABASE_URL,
    METRICS,
    OUTBOX_STOP,
    OUTBOX_TASK,
    PIPELINE,
    RUN_OUTBOX,
    RUN_SWEEP,
    SETTINGS,
    SWEEP_STOP,
    SWEEP_TASK,
    UPGRADE_DB,
)
from bot.service.metrics import Metrics, metrics_middleware
from bot.storage import db, repository
from bot.text.redact import install_log_redaction

log = logging.getLogger(__name__)



class AccessLogger(AbstractAccessLogger):
    """Method, path without the query string (it may hold a sender id), status and time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %.0fms", request.method, request.path, response.status, time * 1000)


def create_app(*, encoder_factory: Callable[[], Any] | None = None,
               classifier_factory: Callable[[], Any] | None = None, upgrade_db: bool = True,
               database_url: str | None = None, run_outbox: bool = False,
               run_sweep: bool = False) -> web.Application:
    """The intake service. The factories replace index.encoder.default_encoder and
    bot.topics.classifier.default_classifier (tests use tiny fakes). `run_outbox` starts the outbox
    worker, `run_sweep` the routing sweep (bot/service/sweep.py); `shangliang serve` starts both."""
    install_log_redaction(warm=True)  # no resident's phone or name reaches var/logs from this process
    config = settings()
    max_body = int(config["service"].get("max_body_bytes", 262144))
    metrics = Metrics()
    app = web.Application(client_max_size=max_body,
                          middlewares=[metrics_middleware(metrics), error_middleware])
    app[SETTINGS] = config
    app[METRICS] = metrics
    app[DATABASE_URL] = database_url
    factory = db.session_factory(database_url)
    analysis = Analysis(factory, encoder_factory, classifier_factory)
    app[ANALYSIS] = analysis
    app[PIPELINE] = IntakePipeline(analysis, factory, metrics)
    app[UPGRADE_DB] = upgrade_db
    app[RUN_OUTBOX] = run_outbox
    app[RUN_SWEEP] = run_sweep

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_endpoint)
    api.add_routes(app)
    webchat.add_routes(app)
    setup_console(app)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


async def _startup(app: web.Application) -> None:
    loop = asyncio.get_running_loop()
    if app[UPGRADE_DB]:
        await loop.run_in_executor(None, db.upgrade, app[DATABASE_URL])
    # The encoder takes a while to load: /health and storage answer meanwhile.
    app[BACKGROUND] = asyncio.create_task(_load_models(app))
    if app[RUN_OUTBOX]:
        # Reports go out from the database outbox; a stop mid-delivery leaves the row to be re-claimed.
        from bot.delivery.worker import OutboxWorker

        stop = asyncio.Event()
        app[OUTBOX_STOP] = stop
        worker = OutboxWorker(app[PIPELINE].session_factory)
        interval = float(app[SETTINGS].get("delivery", {}).get("poll_seconds", 5))
        app[OUTBOX_TASK] = asyncio.create_task(worker.run(interval=interval, stop=stop))
    if app[RUN_SWEEP]:
        # Cases left unrouted by a crash between the case commit and routing are routed now and then.
        from bot.service.sweep import RoutingSweep, SweepPolicy

        app[SWEEP_STOP] = asyncio.Event()
        sweep = RoutingSweep(app[PIPELINE], SweepPolicy.from_settings(app[SETTINGS]))
        app[SWEEP_TASK] = asyncio.create_task(sweep.run(app[SWEEP_STOP]))


async def _load_models(app: web.Application) -> None:
    loop = asyncio.get_running_loop()
    analysis: Analysis = app[ANALYSIS]
    await loop.run_in_executor(None, analysis.load)
    try:
        await loop.run_in_executor(None, app[PIPELINE].backfill_vectors)
    except Exception:
        log.exception("encoding stored concerns failed; will retry at next start")
    # After the backfill, so rows it just encoded are not counted as another encoder's.
    await loop.run_in_executor(None, analysis.warn_outdated_vectors)


async def _cleanup(app: web.Application) -> None:
    if OUTBOX_STOP in app:
        app[OUTBOX_STOP].set()
        await asyncio.wait_for(app[OUTBOX_TASK], timeout=30)
    if SWEEP_STOP in app:
        app[SWEEP_STOP].set()
        await asyncio.wait_for(app[SWEEP_TASK], timeout=30)
    task = app.get(BACKGROUND)
    if task is not None and not task.done():
        # The executor thread cannot be interrupted; wait for it so the database is closed cleanly.
        await asyncio.shield(task)
    store = app[ANALYSIS].store
    for name in ("close", "save"):
        method = getattr(store, name, None)
        if callable(method):
            try:
                with app[ANALYSIS].write_lock:
                    method()
            except Exception:
                log.exception("index %s failed at shutdown", name)
            break
    db.dispose_engines()


def _encoder_state(analysis: Analysis) -> str:
    if analysis.encoder is not None:
        return "ready"
    return "loading" if not analysis.ready.is_set() else "unavailable"


async def health(request: web.Request) -> web.Response:
    analysis: Analysis = request.app[ANALYSIS]
    pipeline = request.app[PIPELINE]

    def ping() -> bool:
        try:
            with pipeline.session_factory() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:
            log.exception("database health check failed")
            return False

    database_ok = await asyncio.get_running_loop().run_in_executor(None, ping)
    body = {
        "status": "ok" if database_ok else "degraded",
        "database": "ok" if database_ok else "error",
        "encoder": _encoder_state(analysis),
        "index": analysis.store is not None,
        "topics": analysis.classifier is not None,
        "models": "ready" if analysis.ready.is_set() else "loading",
    }
    return web.json_response(body, status=200 if database_ok else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    analysis: Analysis = request.app[ANALYSIS]
    pipeline = request.app[PIPELINE]

    def read_counts() -> dict[str, Any]:
        with pipeline.session_factory() as session:
            return repository.counts(session)

    totals = await asyncio.get_running_loop().run_in_executor(None, read_counts)
    gauges = [("shangliang_submissions_stored", "Submissions in the database.", {}, totals["submissions"])]
    gauges += [("shangliang_cases", "Cases in the database by status.", {"status": status}, count)
               for status, count in sorted(totals["cases_by_status"].items())]
    gauges.append(("shangliang_encoder_ready", "1 when the encoder is loaded.", {},
                   1 if analysis.encoder is not None else 0))
    body = request.app[METRICS].render(gauges)
    return web.Response(text=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
