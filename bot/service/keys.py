"""Typed keys for what the application object carries (aiohttp AppKey)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bot.service.analysis import Analysis
from bot.service.intake import IntakePipeline
from bot.service.metrics import Metrics

SETTINGS = web.AppKey("settings", dict[str, Any])
METRICS = web.AppKey("metrics", Metrics)
ANALYSIS = web.AppKey("analysis", Analysis)
PIPELINE = web.AppKey("pipeline", IntakePipeline)
DATABASE_URL = web.AppKey("database_url", str)
UPGRADE_DB = web.AppKey("upgrade_db", bool)
BACKGROUND = web.AppKey("background", asyncio.Task)
RUN_OUTBOX = web.AppKey("run_outbox", bool)
OUTBOX_STOP = web.AppKey("outbox_stop", asyncio.Event)
OUTBOX_TASK = web.AppKey("outbox_task", asyncio.Task)
RUN_SWEEP = web.AppKey("run_sweep", bool)
SWEEP_STOP = web.AppKey("sweep_stop", asyncio.Event)
SWEEP_TASK = web.AppKey("sweep_task", asyncio.Task)
INDEX_LISTENER = web.AppKey("index_listener", object)  # bot.service.index_sync.IndexListener
