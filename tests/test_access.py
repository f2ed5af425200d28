"""Who may read and do what over the intake API (issue 10 parts 3, 4, 6, 7 and bad input), through the
real aiohttp application and database (tiny fake encoder, see tests/test_api.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.config import settings
from bot.service.keys import ANALYSIS
from bot.service.ratelimit import LIMITS, RateLimiter
from bot.storage import db
from bot.storage.models import Contact, Handoff, Submission
from bot.text.redact import redact
from tests import test_api
from tests.test_api import SERVICE, STAFF, MakeClient, _rows, resident, submit

# The intake service fixtures of tests/test_api.py (a fresh var/, tiny fake encoder, fake detector).
make_client = test_api.make_client
client = test_api.client

# The resident of the issue: name and flat, a mobile, a full-width mobile, a landline without a dash, an
# ID number; declines contact and asks to stay anonymous.
PII_TEXT = ("我是5号楼301的李建国，电话13612345678，另一个号码是１３９８７６５４３２１，家里座机057188886666，"
            "身份证号330106198503071234。小区门口的路灯坏了两个月，晚上特别黑，老人摔过好几次。")
PII = ["李建国", "5号楼301", "13612345678", "１３９８７６５４３２１", "057188886666", "330106198503071234"]
# Caught by any redactor worth the name; the rest must be at least as hidden as bot.text.redact hides them.
ALWAYS_HIDDEN = ["13612345678", "330106198503071234"]
PUBLIC_KEYS = {"case_number", "status", "status_label", "subject_line", "supporters", "created_at",
               "updated_at", "view"}


def assert_private(surface: str, text: str = PII_TEXT) -> None:
    """No PII the redaction path hides shows on this surface, and never the mobile or the ID number."""
    redacted = redact(text)
    for item in PII:
        if item in ALWAYS_HIDDEN or item not in redacted:
            assert item not in surface, (item, surface)


def public_client(make: MakeClient) -> Any:
    return make(headers={})


async def _file_pii(client: TestClient, sender: str = "oResidentA", channel: str = "wechat") -> dict[str, Any]:
    status, body = await submit(client, PII_TEXT, channel=channel, sender=sender, anonymous=True,
                                place="幸福小区5号楼301", client_ref=f"{channel}-{sender}-1")
    assert status == 201, body
    return body


# ---- who may read what -------------------------------------------------------------------------

async def test_stranger_by_number_sees_status_and_subject_only(make_client: MakeClient) -> None:
    service = await make_client()
    filed = await _file_pii(service)
    public = await public_client(make_client)
    number = filed["case_number"]
    resp = await public.get(f"/api/v1/cases/{number}")
    case = await resp.json()
    assert resp.status == 200 and set(case) == PUBLIC_KEYS and case["view"] == "public"
    assert case["supporters"] == 1 and case["status_label"]
    assert_private(json.dumps(case, ensure_ascii=False))
    # Counting numbers: the neighbouring numbers give nothing more (404 or the same public shape).
    prefix, seq = number.rsplit("-", 1)
    for n in range(max(1, int(seq) - 3), int(seq) + 3):
        resp = await public.get(f"/api/v1/cases/{prefix}-{n:06d}")
        assert resp.status in (200, 404)
        if resp.status == 200:
            assert set(await resp.json()) == PUBLIC_KEYS


async def test_filer_and_staff_get_the_full_redacted_view_another_resident_does_not(
        make_client: MakeClient) -> None:
    service = await make_client()
    filed = await _file_pii(service)
    url = f"/api/v1/cases/{filed['case_number']}"
    own = await (await service.get(url, headers=resident("oResidentA", "wechat"))).json()
    assert own["view"] == "full" and own["timeline"] and own["place"]
    assert_private(json.dumps(own, ensure_ascii=False))
    staff = await (await service.get(url, headers=STAFF)).json()
    assert staff["view"] == "full" and staff["summary"] == own["summary"]
    # Same sender id on another channel, another sender, or no vouch: the public view.
    for headers in (resident("oResidentA", "web"), resident("oResidentB", "wechat"), SERVICE):
        other = await (await service.get(url, headers=headers)).json()
        assert set(other) == PUBLIC_KEYS, headers
    # A vouch without the service token is not believed.
    public = await public_client(make_client)
    sneaky = {"X-Shangliang-Sender": "oResidentA", "X-Shangliang-Channel": "wechat"}
    assert set(await (await public.get(url, headers=sneaky)).json()) == PUBLIC_KEYS


async def test_duplicate_candidates_carry_only_the_subject_line(make_client: MakeClient) -> None:
    service = await make_client()
    await _file_pii(service)
    first_case = _rows(Submission)[0].case_id
    service.server.app[ANALYSIS].detector.next = ("ask", first_case)
    status, body = await submit(service, "小区门口路灯坏了，晚上黑漆漆的", channel="web", sender="webneighbour1")
    assert status == 201 and body["duplicate"]["decision"] == "ask"
    [candidate] = body["duplicate"]["candidates"]
    assert set(candidate) == {"case_number", "subject_line", "supporters", "score", "status", "status_label"}
    assert_private(json.dumps(body, ensure_ascii=False))


async def test_list_by_sender_needs_the_service_token(make_client: MakeClient) -> None:
    service = await make_client()
    await _file_pii(service)
    query = {"sender": "oResidentA", "channel": "wechat"}
    public = await public_client(make_client)
    resp = await public.get("/api/v1/cases", params=query)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    cases = (await (await service.get("/api/v1/cases", params=query)).json())["cases"]
    assert len(cases) == 1 and cases[0]["view"] == "full"


# ---- service-to-service auth and bad input ------------------------------------------------------

ENDPOINTS = [
    ("POST", "/api/v1/submissions", {"text": "路灯坏了两个月了"}),
    ("POST", "/api/v1/submissions/1/merge", {"case_number": "SL2026-000001"}),
    ("POST", "/api/v1/submissions/1/keep", {}),
    ("POST", "/api/v1/handoffs", {"sender": "x", "text": "转人工"}),
    ("POST", "/api/v1/analyze", {"text": "路灯坏了"}),
    ("GET", "/api/v1/cases?sender=x", None),
    ("PATCH", "/api/v1/cases/SL2026-000001", {"status": "closed"}),
]
BAD_AUTH = [None, "Bearer", "Bearer ", "Basic c2VydmljZQ==", "Bearer wrong-token", "service-token-456",
            "Bearer service-token-456x", "Bearer \u00e9\u00e8"]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
async def test_protected_endpoints_refuse_missing_and_malformed_tokens(
        make_client: MakeClient, method: str, path: str, body: Any) -> None:
    public = await public_client(make_client)
    for auth in BAD_AUTH:
        headers = {} if auth is None else {"Authorization": auth}
        resp = await public.request(method, path, json=body, headers=headers)
        text = await resp.text()
        assert resp.status == 401, (auth, text)
        assert resp.content_type == "application/json" and "Traceback" not in text
        assert json.loads(text)["error"]["code"] == "unauthorized"


async def test_the_service_token_is_not_a_staff_token(client: TestClient) -> None:
    _, filed = await submit(client, "路灯坏了两个月")
    change = {"status": "assigned", "committee": "transport"}
    resp = await client.patch(f"/api/v1/cases/{filed['case_number']}", json=change, headers=SERVICE)
    assert resp.status == 401
    resp = await client.patch(f"/api/v1/cases/{filed['case_number']}", json=change, headers=STAFF)
    assert resp.status == 200 and (await resp.json())["status"] == "assigned"


async def test_public_case_view_refuses_a_bad_token_rather_than_ignoring_it(make_client: MakeClient) -> None:
    service = await make_client()
    filed = await _file_pii(service)
    public = await public_client(make_client)
    url = f"/api/v1/cases/{filed['case_number']}"
    assert (await public.get(url)).status == 200
    resp = await public.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_merge_and_keep_only_for_the_resident_who_filed(make_client: MakeClient) -> None:
    service = await make_client()
    _, first = await submit(service, "幸福路口的红绿灯坏了一周了", channel="wechat", sender="oFirst")
    service.server.app[ANALYSIS].detector.next = ("ask", _rows(Submission)[0].case_id)
    _, second = await submit(service, "幸福路那个红绿灯一直不亮", channel="wechat", sender="oSecond")
    merge = f"/api/v1/submissions/{second['submission_id']}/merge"
    keep = f"/api/v1/submissions/{second['submission_id']}/keep"
    body = {"case_number": first["case_number"]}
    for headers in (SERVICE, resident("oFirst", "wechat"), resident("oSecond", "web")):
        for url in (merge, keep):
            resp = await service.post(url, json=body, headers=headers)
            assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden", headers
    assert _rows(Submission, id=second["submission_id"])[0].dedup_decision == "ask"  # nothing changed
    for bad_id in ("999", "99999999999999999999999", "-1", "0"):
        resp = await service.post(f"/api/v1/submissions/{bad_id}/merge", json=body,
                                  headers=resident("oSecond", "wechat"))
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "submission_not_found", bad_id
    resp = await service.post(merge, json=body, headers=resident("oSecond", "wechat"))
    assert resp.status == 200 and (await resp.json())["supporters"] == 2


async def test_generated_service_token_is_private_and_stable(var_dir: Path, monkeypatch) -> None:
    from bot.tokens import service_token

    monkeypatch.delenv("SHANGLIANG_SERVICE_TOKEN", raising=False)
    first = service_token()
    path = var_dir / "service_token"
    assert len(first) >= 32 and path.stat().st_mode & 0o077 == 0 and service_token() == first
    monkeypatch.setenv("SHANGLIANG_SERVICE_TOKEN", "from-env")
    assert service_token() == "from-env"


# ---- no numbers at rest without consent ----------------------------------------------------------

async def test_contact_is_stored_only_with_consent(client: TestClient) -> None:
    await submit(client, "楼道灯坏了", sender="a", contact={"phone": "13612345678", "consent": False})
    await submit(client, "楼道灯还是坏的", sender="b", contact={"phone": "13912345678", "consent": True})
    contacts = _rows(Contact)
    assert [c.phone for c in contacts] == ["13912345678"]
    stored = _rows(Submission)
    assert all(s.sender not in ("a", "b") and len(s.sender) == 32 for s in stored)  # pseudonyms only


async def test_numbers_typed_without_consent_are_not_kept_at_rest(client: TestClient) -> None:
    """The concern is stored whole, but an ID number never, and a phone only when the resident agreed to
    be called back (and is not anonymous)."""
    text = "楼道灯坏了，有事打我电话13612345678，身份证330106198503071234，5号楼301"
    await submit(client, text, sender="a", contact={"consent": False})
    await submit(client, text, sender="b", contact={"phone": "13912345678", "consent": True})
    await submit(client, text, sender="c", anonymous=True, contact={"phone": "13712345678", "consent": True})
    stored = {s.id: s.text for s in _rows(Submission)}
    no_consent, consent, anonymous = (stored[i] for i in sorted(stored))
    for kept in stored.values():
        assert "330106198503071234" not in kept and "楼道灯坏了" in kept and "5号楼301" in kept
    assert "13612345678" not in no_consent and "13612345678" not in anonymous
    assert "13612345678" in consent


def test_redaction_at_rest_keeps_the_text_when_the_detectors_fail(monkeypatch) -> None:
    from bot.text import redact as redact_module

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(redact_module.Redactor, "spans", broken)
    assert redact_module.redact_at_rest("路灯坏了，电话13612345678") == "路灯坏了，电话13612345678"


async def test_client_ref_and_handoff_store_no_raw_sender(client: TestClient) -> None:
    from actions.intake_client import client_ref

    ref = client_ref("wechat", "oRawOpenid123", "m1")
    await submit(client, "路灯坏了两个月", channel="wechat", sender="oRawOpenid123", client_ref=ref)
    resp = await client.post("/api/v1/handoffs", json={"sender": "oRawOpenid123", "channel": "wechat",
                                                       "text": "转人工", "reason": "resident_request"})
    assert resp.status == 201
    with db.session_scope() as session:
        dump = json.dumps([[str(v) for v in row] for table in ("submissions", "handoffs", "cases")
                           for row in session.execute(sa.text(f"select * from {table}"))], ensure_ascii=False)
    assert "oRawOpenid123" not in dump


# ---- a redaction failure hides the text ---------------------------------------------------------

async def test_redaction_failure_hides_the_whole_text(make_client: MakeClient, monkeypatch) -> None:
    import bot.service.views as views

    service = await make_client()
    filed = await _file_pii(service)

    def broken(text: str, **_: Any) -> str:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(views, "redact", broken)
    monkeypatch.setattr(views, "subject_line", broken)
    full = await (await service.get(f"/api/v1/cases/{filed['case_number']}", headers=STAFF)).json()
    assert full["subject_line"] == views.HIDDEN and full["summary"] == views.HIDDEN
    assert full["title"] == views.HIDDEN and full["place"] == views.HIDDEN
    for item in PII:
        assert item not in json.dumps(full, ensure_ascii=False)


# ---- rate limits ----------------------------------------------------------------------------------

def test_token_bucket_refills_at_its_rate() -> None:
    now = [1000.0]
    limiter = RateLimiter(per_minute=6, burst=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")  # another key has its own bucket
    now[0] += 10.0  # 6 per minute: one token back every 10 s
    assert limiter.allow("a") and not limiter.allow("a")


async def test_chat_send_is_rate_limited_per_sender_and_per_ip(make_client: MakeClient, monkeypatch) -> None:
    async def webhook(request: web.Request) -> web.Response:
        return web.json_response([{"recipient_id": "x", "text": "您好"}])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(rasa)
    await server.start_server()
    try:
        monkeypatch.setenv("SHANGLIANG_RASA_URL", str(server.make_url("")).rstrip("/"))
        settings.cache_clear()
        public = await public_client(make_client)
        limits = public.server.app[LIMITS]
        limits.limiters["chat_per_sender"] = RateLimiter(per_minute=1, burst=3)
        limits.limiters["chat_per_ip"] = RateLimiter(per_minute=1, burst=5)
        statuses = [(await public.post("/chat/send", json={"sender": "pagesession01", "message": "你好"})).status
                    for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        resp = await public.post("/chat/send", json={"sender": "pagesession02", "message": "你好"})
        assert resp.status == 200  # another page has its own allowance ...
        resp = await public.post("/chat/send", json={"sender": "pagesession03", "message": "你好"})
        body = await resp.json()
        assert resp.status == 429  # ... until the address as a whole is over its limit
        assert body["error"]["code"] == "rate_limited" and "稍等" in body["error"]["message"]
    finally:
        await server.close()


async def test_submissions_are_rate_limited_per_sender(client: TestClient) -> None:
    client.server.app[LIMITS].limiters["submissions_per_sender"] = RateLimiter(per_minute=1, burst=2)
    statuses = [(await submit(client, f"路灯坏了第{i}次反映", sender="flooder", channel="web"))[0]
                for i in range(3)]
    assert statuses == [201, 201, 429]
    status, _ = await submit(client, "垃圾没人收", sender="neighbour", channel="web")
    assert status == 201
    resp = await client.post("/api/v1/submissions", headers=STAFF,
                             json={"text": "路灯坏了，工作人员代录", "sender": "flooder", "channel": "web"})
    assert resp.status == 201  # staff are not limited


# ---- retention ----------------------------------------------------------------------------------

def test_purge_deletes_old_tracker_events_and_handoff_texts(var_dir: Path, monkeypatch) -> None:
    from bot.privacy.purge import purge
    from bot.storage.models import Base, utcnow

    tracker = var_dir / "rasa_tracker.db"
    with sqlite3.connect(tracker) as conn:
        conn.execute("create table events (id integer primary key, sender_id text, type_name text, "
                     "timestamp float, intent_name text, action_name text, data text)")
        old = time.time() - 100 * 86400
        conn.executemany("insert into events (sender_id, type_name, timestamp, data) values (?, ?, ?, ?)", [
            ("oOld", "user", old, '{"text": "我的电话13612345678"}'),
            ("oNew", "user", time.time(), '{"text": "路灯坏了"}'),
        ])
    url = f"sqlite:///{var_dir / 'intake.db'}"
    Base.metadata.create_all(db.get_engine(url))
    with db.session_factory(url)() as session:
        session.add(Handoff(channel="wechat", sender="p", text="我电话13612345678",
                            created_at=utcnow() - timedelta(days=120)))
        session.add(Handoff(channel="wechat", sender="q", text="转人工", created_at=utcnow()))
        session.commit()
    rejected = var_dir / "spool" / "rejected"
    rejected.mkdir(parents=True)
    (rejected / "old.json").write_text("{}")
    os.utime(rejected / "old.json", (old, old))
    db.dispose_engines()

    result = purge(90, tracker_url=f"sqlite:///{tracker}", database_url=url)
    assert (result.tracker_events, result.handoff_texts, result.rejected_spool_files) == (1, 1, 1)
    with sqlite3.connect(tracker) as conn:
        assert [r[0] for r in conn.execute("select sender_id from events")] == ["oNew"]
    with db.session_factory(url)() as session:
        texts = sorted(str(h.text) for h in session.execute(sa.select(Handoff)).scalars())
    assert texts == ["None", "转人工"]
    db.dispose_engines()


def test_purge_reads_the_tracker_store_from_endpoints(var_dir: Path) -> None:
    from bot.privacy.purge import tracker_store_url

    assert tracker_store_url() == f"sqlite:///{var_dir / 'rasa_tracker.db'}"
