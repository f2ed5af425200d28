"""Typed keys for what the console keeps on the application object."""

from __future__ import annotations

import jinja2
from aiohttp import web

from bot.console.websession import ConsoleSettings

CONSOLE_SETTINGS = web.AppKey("console_settings", ConsoleSettings)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
