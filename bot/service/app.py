"""The aiohttp application of the intake service: start-up (schema upgrade, background model load,
index catch-up), middlewares, routes, /health and /metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text

from bot.config import database_url as db_url
from bot.config import settings, var_dir
from bot.console.routes import setup_console
from bot.service import api, webchat
from bot.service.analysis import Analysis
from bot.service.errors import error_middleware
from bot.service.intake import IntakePipeline
from bot.service.keys import (
    ANALYSIS,
    BACKGROUND,
    DATABASE_URL,
    INDEX_LISTENER,
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
from bot.service.ratelimit import LIMITS, Limits
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
    app[LIMITS] = Limits(config.get("rate_limits"))
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
    app.on_shutdown.append(_stop_loops)
    app.on_cleanup.append(_cleanup)
    return app


async def _upgrade_when_reachable(url: str | None, max_wait: float = 30.0) -> None:
    """The schema upgrade, retried while the database cannot be reached (it may start after us), with a
    log line that says why; the URL is logged without its password."""
    from sqlalchemy.exc import OperationalError

    loop = asyncio.get_running_loop()
    delay = 1.0
    while True:
        try:
            await loop.run_in_executor(None, db.upgrade, url)
            return
        except OperationalError as exc:
            where = db.get_engine(url).url.render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            log.error("database %s unreachable (%s); trying again in %.0f s", where, reason, delay)
            await asyncio.sleep(delay)
            delay = min(max_wait, delay * 2)


async def _startup(app: web.Application) -> None:
    if app[UPGRADE_DB]:
        await _upgrade_when_reachable(app[DATABASE_URL])
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
    url = app[DATABASE_URL] or db_url()
    if url.startswith("postgresql"):
        # Other intake services may share this database: index what they store as they store it.
        from bot.service.index_sync import IndexListener, libpq_dsn

        periodic = float(app[SETTINGS].get("index", {}).get("sync_seconds", 60))
        listener = IndexListener(libpq_dsn(url), app[ANALYSIS].catch_up_recent, periodic_seconds=periodic)
        listener.start()
        app[INDEX_LISTENER] = listener


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


async def _stop_loops(app: web.Application) -> None:
    """on_shutdown, not on_cleanup: aiohttp's run_app waits (up to its shutdown_timeout) for every task
    started after start-up before it runs on_cleanup, so loops stopped only there kept a SIGTERM waiting
    for the whole timeout and the supervisor killed the service."""
    if INDEX_LISTENER in app:
        await app[INDEX_LISTENER].stop()
    for stop_key, task_key in ((OUTBOX_STOP, OUTBOX_TASK), (SWEEP_STOP, SWEEP_TASK)):
        if stop_key in app:
            app[stop_key].set()
            try:
                # A pass in progress finishes (an outbox row mid-delivery is re-claimed later anyway).
                await asyncio.wait_for(asyncio.shield(app[task_key]), timeout=5)
            except asyncio.TimeoutError:
                log.warning("%s still running at shutdown; leaving it", task_key)


async def _cleanup(app: web.Application) -> None:
    await _stop_loops(app)
    task = app.get(BACKGROUND)
    if task is not None and not task.done():
        # The executor thread cannot be interrupted. Loading writes nothing that matters (the index is
        # caught up from the database at every start), so a stop does not wait long for it.
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=3)
        except asyncio.TimeoutError:
            log.warning("models still loading at shutdown; stopping without saving the index")
            db.dispose_engines()
            return
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


def supervised_processes() -> dict[str, str]:
    """The other processes' states as `shangliang run` last wrote them (bot/supervisor.py), or {} when
    no live supervisor wrote the file (the service runs alone or under systemd)."""
    path = var_dir() / "run" / "processes.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(body["supervisor_pid"]), 0)  # a file left by a supervisor that is gone says nothing
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    processes = body.get("processes")
    if not isinstance(processes, dict):
        return {}
    # This process answers, so it is up whatever the file says (it is rewritten a moment later).
    return {str(name): str(state) for name, state in processes.items() if name != "intake"}


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
    others = supervised_processes()
    all_up = all(state == "up" for state in others.values())
    body = {
        "status": "ok" if database_ok and all_up else "degraded",
        "database": "ok" if database_ok else "error",
        "encoder": _encoder_state(analysis),
        "index": analysis.store is not None,
        "topics": analysis.classifier is not None,
        "models": "ready" if analysis.ready.is_set() else "loading",
    }
    if others:
        body["processes"] = others  # 200 still: this service works, the dialogue in front of it does not
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
    if analysis.store is not None:
        gauges.append(("shangliang_index_vectors", "Submissions in this service's FAISS index.", {},
                       len(analysis.store)))
    listener = request.app.get(INDEX_LISTENER)
    if listener is not None:
        gauges.append(("shangliang_index_notifications", "Submissions other intake services announced.", {},
                       listener.notifications))
    body = request.app[METRICS].render(gauges)
    return web.Response(text=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
