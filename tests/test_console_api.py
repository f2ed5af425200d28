"""PATCH /api/v1/cases/{n} as the console's API twin, over HTTP against the intake service (aiohttp test
server, real SQLite and PostgreSQL databases): public reply vs internal note, versions, who did it, sessions and CSRF."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.accounts.models import AuditEntry
from bot.config import settings
from bot.service.app import create_app
from bot.storage import db
from bot.storage.models import CaseEvent
from tests.console_seed import PASSWORD, Seeded, seed

TOKEN = "console-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
async def setup(var_dir: Path, database_url: str,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, Seeded]]:
    """The service on SQLite, then on a private PostgreSQL schema (skipped when it does not answer)."""
    monkeypatch.setenv("SHANGLIANG_API_TOKEN", TOKEN)
    url = database_url
    monkeypatch.setenv("DATABASE_URL", url)
    settings.cache_clear()
    seeded = seed(url)
    app = create_app(encoder_factory=lambda: None, classifier_factory=lambda: None, database_url=url)
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    yield client, seeded
    await client.close()
    db.dispose_engines()


async def _login(client: TestClient, username: str) -> str:
    page = await (await client.get("/console/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = await client.post("/console/login", data={"csrf_token": token, "username": username,
                                                     "password": PASSWORD, "next": ""}, allow_redirects=False)
    assert resp.status == 302
    page = await (await client.get("/console/cases")).text()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def test_public_reply_and_internal_note_are_apart(setup: tuple[TestClient, Seeded]) -> None:
    client, seeded = setup
    number = seeded.wang_case
    resp = await client.patch(f"/api/v1/cases/{number}", headers=AUTH,
                              json={"public_reply": "已联系交警。", "internal_note": "交警电话 0571-8888888"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["last_update"]["note"] == "已联系交警。" and body["updated_by"] == "api-token"
    public = await (await client.get(f"/api/v1/cases/{number}")).json()
    assert "0571-8888888" not in str(public) and public["last_update"]["note"] == "已联系交警。"
    with db.session_scope() as session:
        events = session.execute(sa.select(CaseEvent.kind, CaseEvent.visibility, CaseEvent.actor)
                                 .where(CaseEvent.kind.in_(["public_reply", "internal_note"]))).all()
        audit = session.execute(sa.select(AuditEntry.action, AuditEntry.actor)
                                .where(AuditEntry.case_number == number)).all()
    assert sorted(events) == [("internal_note", "internal", "api-token"), ("public_reply", "public", "api-token")]
    assert sorted(audit) == [("internal_note", "api-token"), ("public_reply", "api-token")]


async def test_stale_version_is_refused(setup: tuple[TestClient, Seeded]) -> None:
    client, seeded = setup
    url = f"/api/v1/cases/{seeded.desk_case}"
    first = await (await client.patch(url, headers=AUTH, json={"internal_note": "第一条"})).json()
    version = first["version"]
    resp = await client.patch(url, headers=AUTH, json={"internal_note": "第二条", "version": version})
    assert resp.status == 200
    resp = await client.patch(url, headers=AUTH, json={"public_reply": "过期页面上的答复", "version": version})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "concurrent_edit"
    public = await (await client.get(url)).json()
    assert (public["last_update"] or {}).get("note") != "过期页面上的答复"


async def test_moves_follow_the_workflow_table(setup: tuple[TestClient, Seeded]) -> None:
    client, seeded = setup
    url = f"/api/v1/cases/{seeded.desk_case}"
    resp = await client.patch(url, headers=AUTH, json={"status": "resolved"})  # received → resolved: no
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "invalid_transition"
    resp = await client.patch(url, headers=AUTH, json={"status": "assigned", "member_id": "li"})
    assert resp.status == 200 and (await resp.json())["status"] == "assigned"


async def test_session_patch_records_the_member_and_needs_csrf(setup: tuple[TestClient, Seeded]) -> None:
    client, seeded = setup
    csrf = await _login(client, "wang")
    url = f"/api/v1/cases/{seeded.wang_case}"
    resp = await client.patch(url, json={"status": "accepted"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.patch(url, json={"status": "accepted"}, headers={"X-CSRF-Token": csrf})
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "accepted" and body["updated_by"] == "wang"
    resp = await client.patch(f"/api/v1/cases/{seeded.li_case}", json={"internal_note": "越权"},
                              headers={"X-CSRF-Token": csrf})
    assert resp.status == 403


async def test_no_credentials_is_401(setup: tuple[TestClient, Seeded]) -> None:
    client, seeded = setup
    resp = await client.patch(f"/api/v1/cases/{seeded.wang_case}", json={"public_reply": "x"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_queue_visibility_matches_the_workflow(setup: tuple[TestClient, Seeded]) -> None:
    """The queue's faster member clause selects exactly bot.workflow.access.member_filter's cases."""
    from bot.console.access import Actor, visible_cases
    from bot.storage.models import Case
    from bot.workflow.access import member_filter

    client, seeded = setup
    await client.patch(f"/api/v1/cases/{seeded.desk_case}", headers=AUTH,
                       json={"status": "assigned", "committee": "env"})  # held by a committee, no route
    with db.session_scope() as session:
        for actor in (Actor(id="wang", role="member", member_id="wang", committee="transport"),
                      Actor(id="li", role="member", member_id="li", committee="env"),
                      Actor(id="x", role="member", member_id=None, committee="env"),
                      Actor(id="y", role="member")):
            ours = set(session.execute(sa.select(Case.id).where(visible_cases(actor))).scalars())
            theirs = set(session.execute(sa.select(Case.id).where(member_filter(actor))).scalars())
            assert ours == theirs, actor
