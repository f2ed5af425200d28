"""`shangliang bench console`: queue page time with N cases (default 10,000) on a fresh SQLite database.

The intake service app runs in this process behind a real HTTP server on loopback. Two timings per
request: `server` from the first middleware until the response is ready (session, SQL, redaction of 50
titles, template), and `round_trip` at the client (adds transfer and client parsing). Prints a JSON
object last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

QUERIES = ["", "?status=received", "?status=open&sort=supporters", "?q=路灯", "?area=西湖区",
           "?overdue=1", "?topic=transport&sort=oldest", "?page=100", "?committee=transport",
           "?supporters=3&from=2026-01-01"]
PLACES = ["西湖区文三路", "拱墅区和睦街道", "上城区清波街道", "滨江区长河街道", "余杭区良渚街道"]
PROBLEMS = ["路灯不亮", "下水道堵塞", "红绿灯故障", "垃圾清运不及时", "噪音扰民", "占道经营"]
STATUSES = ["received", "assigned", "accepted", "in_progress", "replied", "resolved", "closed"]
TOPICS = ["transport", "environment", "urban_construction", "social_security", "health"]


def _seed(url: str, n: int) -> None:
    import bot.accounts.models  # noqa: F401
    from bot.accounts.service import create_user
    from bot.routing.models import Committee, Member, Route
    from bot.storage import db
    from bot.storage.models import Case, utcnow

    db.upgrade(url)
    rng = random.Random(7)
    now = utcnow()
    with db.session_scope(url) as session:
        session.add_all([Committee(id="transport", name="交通专委会"), Committee(id="env", name="环境专委会")])
        session.add_all([Member(id=f"m{i}", name=f"委员{i}", committee_id="transport" if i % 2 else "env",
                                is_duty_desk=False, active=True) for i in range(20)])
        session.flush()
        cases = []
        for i in range(n):
            created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 365))
            place = rng.choice(PLACES)
            status = rng.choice(STATUSES)
            cases.append({"number": f"SL2026-{i + 1:06d}", "title": f"{place}{rng.choice(PROBLEMS)}，电话13912345678",
                          "summary": f"{place}附近{rng.choice(PROBLEMS)}已经很久了，希望尽快处理。", "kind": "concern",
                          "status": status, "topic": rng.choice(TOPICS), "place": place, "district": place[:3],
                          "jurisdiction": place[:3], "supporter_count": rng.choice([1, 1, 1, 2, 3, 5, 8]),
                          "needs_review": False, "created_at": created, "updated_at": created,
                          "due_at": created + timedelta(days=15)})
        session.execute(Case.__table__.insert(), cases)
        ids = [row[0] for row in session.execute(Case.__table__.select().with_only_columns(Case.id))]
        session.execute(Route.__table__.insert(), [
            {"case_id": cid, "member_id": f"m{cid % 20}", "committee_id": "transport" if cid % 2 else "env",
             "reason": "bench", "created_at": now} for cid in ids if cid % 3])
        create_user(session, "bench-staff", "bench-password", "staff")
        create_user(session, "bench-member", "bench-password", "member", member_id="m1", committee_id="transport")
    db.dispose_engines()


async def _measure(url: str, requests: int) -> dict[str, Any]:
    from aiohttp import ClientSession, CookieJar, web
    from aiohttp.test_utils import TestServer

    from bot.service.app import create_app

    app = create_app(encoder_factory=lambda: None, classifier_factory=lambda: None, database_url=url)
    server_times: list[float] = []

    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            if request.path == "/console/cases":
                server_times.append((time.perf_counter() - start) * 1000)

    app.middlewares.insert(0, timing)
    server = TestServer(app)
    await server.start_server()
    results: dict[str, list[float]] = {}
    try:
        for username in ("bench-staff", "bench-member"):
            async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as client:  # loopback IP
                login = await client.get(server.make_url("/console/login"))
                token = re.search(r'name="csrf_token" value="([^"]+)"', await login.text()).group(1)
                done = await client.post(server.make_url("/console/login"), allow_redirects=False, data={
                    "csrf_token": token, "username": username, "password": "bench-password", "next": ""})
                assert done.status == 302, done.status
                times = results.setdefault(username, [])
                server_times.clear()
                for i in range(requests):
                    query = QUERIES[i % len(QUERIES)]
                    start = time.perf_counter()
                    response = await client.get(server.make_url("/console/cases" + query))
                    await response.read()
                    times.append((time.perf_counter() - start) * 1000)
                    if response.status != 200:
                        raise web.HTTPInternalServerError(text=f"{query}: {response.status}")
                results[username + ":server"] = list(server_times)
    finally:
        await server.close()
    return results


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(int(len(ordered) * 0.95) - 1, 0)], 1),
            "max_ms": round(ordered[-1], 1), "requests": len(ordered)}


def _run(args: argparse.Namespace) -> int:
    import logging

    from bot.config import settings

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per request would drown the JSON

    with tempfile.TemporaryDirectory(prefix="sl-bench-console-") as tmp:
        os.environ["SHANGLIANG_VAR"] = tmp
        settings.cache_clear()
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        start = time.perf_counter()
        _seed(url, args.cases)
        seeded = time.perf_counter() - start
        results = asyncio.run(_measure(url, args.requests))
    server = results["bench-staff:server"] + results["bench-member:server"]
    round_trip = results["bench-staff"] + results["bench-member"]
    figures = {"cases": args.cases, "database": "sqlite", "seed_seconds": round(seeded, 1),
               "server_staff": _summary(results["bench-staff:server"]),
               "server_member": _summary(results["bench-member:server"]),
               "round_trip_staff": _summary(results["bench-staff"]),
               "round_trip_member": _summary(results["bench-member"]),
               "queue_server_p95_ms": _summary(server)["p95_ms"],
               "queue_round_trip_p95_ms": _summary(round_trip)["p95_ms"], "target_p95_ms": 300,
               "load_average_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(), "queries": QUERIES}
    print(json.dumps(figures, ensure_ascii=False))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = groups["bench"].add_parser("console", help="console queue page time with N cases (p95 target 300 ms)")
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=200, help="page loads per account (staff, member)")
    parser.set_defaults(func=_run)
