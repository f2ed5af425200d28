"""Mount the console on the intake service: templates, session middleware, static files, routes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.console import views
from bot.console.keys import CONSOLE_SETTINGS, TEMPLATES
from bot.console.websession import ConsoleSettings, session_middleware_for

HERE = Path(__file__).parent


def _when(value: datetime | None, with_time: bool = True) -> str:
    """Times are stored in UTC; the office reads Beijing time."""
    if value is None:
        return ""
    from datetime import timedelta

    local = value + timedelta(hours=8)
    return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def setup_console(app: web.Application, config: ConsoleSettings | None = None) -> None:
    """Call before the application starts (it adds a middleware)."""
    config = config or ConsoleSettings.load()
    app[CONSOLE_SETTINGS] = config
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                               autoescape=jinja2.select_autoescape(["html"], default=True), app_key=TEMPLATES)
    env.filters["when"] = _when
    env.filters["day"] = lambda v: _when(v, with_time=False)
    app.middlewares.append(session_middleware_for(config))
    r = app.router
    r.add_get("/console", views.index)
    r.add_get("/console/", views.index)
    r.add_get("/console/login", views.login_page)
    r.add_post("/console/login", views.login_submit)
    r.add_post("/console/logout", views.logout)
    r.add_get("/console/cases", views.cases_page)
    r.add_post("/console/cases/bulk", views.bulk_action)
    r.add_get("/console/cases/{number}", views.case_page)
    r.add_post("/console/cases/{number}/status", views.case_status)
    r.add_post("/console/cases/{number}/reply", views.case_reply)
    r.add_post("/console/cases/{number}/note", views.case_note)
    r.add_post("/console/cases/{number}/accept", views.case_accept)
    r.add_post("/console/cases/{number}/decline", views.case_decline)
    r.add_post("/console/cases/{number}/assign", views.case_assign)
    r.add_post("/console/cases/{number}/transfer", views.case_transfer)
    r.add_post("/console/cases/{number}/merge", views.case_merge)
    r.add_post("/console/cases/{number}/unmerge", views.case_unmerge)
    r.add_post("/console/cases/{number}/split", views.case_split)
    r.add_get("/console/monthly", views.monthly_page)
    r.add_get("/console/monthly.xlsx", views.monthly_xlsx)
    r.add_static("/console/static", HERE / "static", append_version=True)
