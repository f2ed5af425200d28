"""The intake service over HTTP (aiohttp test client), with a tiny fake encoder so it stays fast."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from bot.config import settings
from bot.service.app import AccessLogger, create_app
from bot.service.keys import ANALYSIS, BACKGROUND
from bot.storage import db
from bot.storage.models import Case, Contact, Handoff, Submission, utcnow
from tests.conftest import postgres_schema
from tests.fakes import FakeEncoder

TOKEN = "test-token-123"
SERVICE_TOKEN = "service-token-456"
# What the action server sends (bot/service/auth.py); the public tests in test_access.py send nothing.
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
STAFF = {"Authorization": f"Bearer {TOKEN}"}


def resident(sender: str, channel: str = "rest") -> dict[str, str]:
    """The action server acting for one resident."""
    return {**SERVICE, "X-Shangliang-Sender": sender, "X-Shangliang-Channel": channel}
# The FAISS index part is built alongside; without it the service files every concern as new.
INDEX_INSTALLED = importlib.util.find_spec("index.store") is not None
CJK = "\u4e00"




class FakeDetector:
    """Returns whatever decision the test sets in `.next`: (outcome, case_id)."""

    def __init__(self) -> None:
        self.next: tuple[str, int] | None = None
        self.calls: list[str] = []

    def decide(self, text: str, vector: np.ndarray, place: str | None = None, created_at: Any = None,
               jurisdiction: str | None = None) -> SimpleNamespace:
        self.calls.append(text)
        if self.next is None:
            return SimpleNamespace(outcome="new", candidates=[])
        outcome, case_id = self.next
        return SimpleNamespace(outcome=outcome, candidates=[
            SimpleNamespace(case_id=case_id, submission_id=1, probability=0.91, cosine=0.95)])


class FakeClassifier:
    """Traffic when the text mentions cars or roads, else a low-confidence guess."""

    def predict(self, texts: list[str], vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        # The concern's own embedding is reused (not encoded again), beside its headline's.
        assert vectors.shape == (len(texts), 2 * FakeEncoder.dim)
        assert np.allclose(vectors[:, :FakeEncoder.dim], FakeEncoder().encode(texts))
        return [[("traffic", 0.83), ("urban_construction", 0.1)] if ("车" in t or "路" in t)
                else [("other", 0.3)] for t in texts]


def _no_classifier() -> None:
    return None


def _broken_encoder() -> FakeEncoder:
    raise FileNotFoundError("no model folder")


MakeClient = Callable[..., Awaitable[TestClient]]


def _install_router(monkeypatch: pytest.MonkeyPatch, on_case_filed: Callable[[Any, int], None]) -> None:
    """Stand in for bot.routing.dispatch with the given `on_case_filed`."""
    fake = types.ModuleType("bot.routing.dispatch")
    fake.on_case_filed = on_case_filed  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.routing.dispatch", fake)


def _recording_router(calls: list[int]) -> Callable[[Any, int], None]:
    """A router that records each case it routes and marks it assigned."""
    def route(session: Any, case_id: int) -> None:
        calls.append(case_id)
        session.execute(sa.text("update cases set status = 'assigned' where id = :id"), {"id": case_id})
    return route


@pytest.fixture()
async def make_client(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeClient]:
    monkeypatch.setenv("SHANGLIANG_API_TOKEN", TOKEN)
    monkeypatch.setenv("SHANGLIANG_SERVICE_TOKEN", SERVICE_TOKEN)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # a developer's own database is never touched
    # Routing is another part (tested on its own); here it is a no-op unless a test installs a fake.
    _install_router(monkeypatch, lambda session, case_id: None)
    settings.cache_clear()
    clients: list[TestClient] = []

    async def make(encoder_factory: Callable[[], Any] = FakeEncoder,
                   classifier_factory: Callable[[], Any] = _no_classifier, fake_detector: bool = True,
                   run_sweep: bool = False, headers: dict[str, str] | None = None) -> TestClient:
        app = create_app(encoder_factory=encoder_factory, classifier_factory=classifier_factory,
                         run_sweep=run_sweep)
        client = TestClient(TestServer(app), headers=SERVICE if headers is None else headers)
        await client.start_server()
        await app[BACKGROUND]  # encoder, index catch-up and backfill are done
        if fake_detector:
            app[ANALYSIS].detector = FakeDetector()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    db.dispose_engines()


@pytest.fixture()
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


async def submit(client: TestClient, text: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/submissions", json={"text": text, **fields})
    return resp.status, await resp.json()


def _rows(model: type, **where: Any) -> list[Any]:
    with db.session_scope() as session:
        query = sa.select(model).filter_by(**where)
        return list(session.execute(query).scalars())


# ---- happy path --------------------------------------------------------------------------------

async def test_health_answers(client: TestClient) -> None:
    resp = await client.get("/health")
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "ok" and body["database"] == "ok" and body["encoder"] == "ready"


async def test_create_and_read_case(client: TestClient) -> None:
    status, body = await submit(
        client, "你好，我想反映个问题。阳光花园5栋楼下的烧烤店油烟太大，晚上窗户都不敢开，已经两年多了。",
        channel="web", sender="openid-abc", place="阳光花园5栋", kind="concern")
    assert status == 201
    assert body["case_number"].startswith("SL") and len(body["case_number"]) == len("SL2026-000001")
    assert body["status"] == "received" and body["status_label"]
    assert body["duplicate"] == {"decision": "new", "candidates": []}
    assert body["topic"] is None  # no trained classifier in this checkout/test
    resp = await client.get(f"/api/v1/cases/{body['case_number']}", headers=resident("openid-abc", "web"))
    case = await resp.json()
    assert resp.status == 200
    assert case["title"] == "阳光花园5栋楼下的烧烤店油烟太大"
    assert case["summary"].startswith("阳光花园5栋楼下的烧烤店油烟太大")
    assert case["supporters"] == 1 and case["place"] == "阳光花园5栋"
    assert case["last_update"]["time"] and case["created_at"].endswith("Z")
    # The resident who filed it gets the full view: still no contact data and no sender ids.
    assert set(case) == {"case_number", "status", "status_label", "subject_line", "title", "summary", "topic",
                         "supporters", "place", "jurisdiction", "created_at", "updated_at", "last_update",
                         "timeline", "view"}
    assert case["view"] == "full" and [e["kind"] for e in case["timeline"]] == ["created"]
    assert case["jurisdiction"] is None  # 阳光花园 names no district
    stored = _rows(Submission)[0]
    assert stored.embedding is not None and len(stored.embedding) == 4 * FakeEncoder.dim
    assert stored.embedding_model == "fake-bigram"


async def test_place_parts_are_stored_beside_the_words(any_db_client: TestClient) -> None:
    """The whole place in the resident's words, its parts beside it, the new case's street and community."""
    _, body = await submit(any_db_client, "喂你好望京街道花家地社区3号楼门口的井盖丢了好几天了")
    stored = _rows(Submission, id=body["submission_id"])[0]
    assert stored.place == "望京街道花家地社区3号楼门口"
    assert stored.place_parts["street"] == "望京街道" and stored.place_parts["community"] == "花家地社区"
    assert stored.place_parts["building"] == "3号楼" and stored.place_parts["spot"] == "门口"
    case = _rows(Case, id=stored.case_id)[0]
    assert (case.street, case.community) == ("望京街道", "花家地社区")
    _, body = await submit(any_db_client, "路灯坏了一个月，晚上很黑", place="路口那边")
    assert _rows(Submission, id=body["submission_id"])[0].place_parts is None  # no place named


@pytest.mark.parametrize("form", ["{n}", "{lower}", " {n} ", "{fullwidth}", "{lower_spaced}"])
async def test_case_number_forms(client: TestClient, form: str) -> None:
    _, body = await submit(client, "小区门口的井盖丢了，很危险")
    number = body["case_number"]
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in number.lower())
    raw = form.format(n=number, lower=number.lower(), fullwidth=fullwidth,
                      lower_spaced=number.lower().replace("-", " - "))
    resp = await client.get(f"/api/v1/cases/{raw}")
    assert resp.status == 200, raw
    assert (await resp.json())["case_number"] == number


async def test_unknown_case_number(client: TestClient) -> None:
    for raw in ("SL2026-999999", "abc", "ＳＬ"):
        resp = await client.get(f"/api/v1/cases/{raw}")
        body = await resp.json()
        assert resp.status == 404 and body["error"]["code"] == "case_not_found"
        assert "编号" in body["error"]["message"]


async def test_idempotent_replay(client: TestClient) -> None:
    first_status, first = await submit(client, "公交站的雨棚坏了，下雨没地方躲", client_ref="rasa-42-7")
    again_status, again = await submit(client, "公交站的雨棚坏了，下雨没地方躲", client_ref="rasa-42-7")
    assert (first_status, again_status) == (201, 200)
    for key in ("submission_id", "case_number", "duplicate", "topic"):
        assert again[key] == first[key]
    assert len(_rows(Submission)) == 1


async def test_concurrent_replays_make_one_case(client: TestClient) -> None:
    results = await asyncio.gather(*[submit(client, "路灯坏了好几天了", client_ref="same-ref") for _ in range(6)])
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 5 + [201]
    assert len({b["case_number"] for _, b in results}) == 1
    assert len(_rows(Submission)) == 1


# ---- bad input ---------------------------------------------------------------------------------

BAD_JSON_BODIES = [
    ("empty", {"text": ""}, 400, "empty_text"),
    ("whitespace", {"text": "  \n\t　 "}, 400, "empty_text"),
    ("missing", {"channel": "web"}, 400, "empty_text"),
    ("emoji only", {"text": "😡😡😡👎🏻"}, 400, "no_content"),
    ("punctuation only", {"text": "？？？！！。。"}, 400, "no_content"),
    ("too long", {"text": "路" * 20000}, 413, "text_too_long"),
    ("text as number", {"text": 12345}, 400, "invalid_field"),
    ("text as list", {"text": ["路灯坏了"]}, 400, "invalid_field"),
    ("anonymous as string", {"text": "路灯坏了", "anonymous": "yes"}, 400, "invalid_field"),
    ("contact as string", {"text": "路灯坏了", "contact": "13800138000"}, 400, "invalid_field"),
    ("consent as string", {"text": "路灯坏了", "contact": {"phone": "13800138000", "consent": "true"}},
     400, "invalid_field"),
    ("media as dict", {"text": "路灯坏了", "media": {"type": "image"}}, 400, "invalid_field"),
    ("unknown kind", {"text": "路灯坏了", "kind": "rant"}, 400, "invalid_field"),
    ("bad channel", {"text": "路灯坏了", "channel": "a b/c"}, 400, "invalid_field"),
    ("sender as dict", {"text": "路灯坏了", "sender": {"id": 1}}, 400, "invalid_field"),
]


@pytest.mark.parametrize("name,payload,status,code", BAD_JSON_BODIES, ids=[b[0] for b in BAD_JSON_BODIES])
async def test_bad_fields(client: TestClient, name: str, payload: dict, status: int, code: str) -> None:
    resp = await client.post("/api/v1/submissions", json=payload)
    body = await resp.json()
    assert resp.status == status
    assert body["error"]["code"] == code
    assert any(CJK <= ch <= "\u9fff" for ch in body["error"]["message"])
    assert _rows(Submission) == []


RAW_BODIES = [
    ("malformed json", '{"text": "路灯坏了",'.encode(), "invalid_json"),
    ("binary", bytes(range(256)) * 4, "invalid_json"),
    ("latin-1 text", '{"text": "caf\xe9"}'.encode("latin-1"), "invalid_json"),
    ("json array", json.dumps(["路灯坏了"]).encode(), "invalid_body"),
    ("json string", json.dumps("路灯坏了").encode(), "invalid_body"),
    ("empty body", b"", "invalid_json"),
]


@pytest.mark.parametrize("name,raw,code", RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
async def test_bad_bodies(client: TestClient, name: str, raw: bytes, code: str) -> None:
    resp = await client.post("/api/v1/submissions", data=raw, headers={"Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == code


async def test_body_over_limit(client: TestClient) -> None:
    limit = settings()["service"]["max_body_bytes"]
    resp = await client.post("/api/v1/submissions", data=b'{"text": "' + b"a" * limit + b'"}',
                             headers={"Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 413 and body["error"]["code"] == "body_too_large"


async def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/v1/submissions")
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_control_characters_are_dropped(client: TestClient) -> None:
    status, body = await submit(client, "楼道\x00灯坏了\x07")
    assert status == 201
    assert _rows(Submission)[0].text == "楼道灯坏了"


# ---- privacy -----------------------------------------------------------------------------------

async def test_contact_kept_apart_and_only_with_consent(client: TestClient) -> None:
    _, with_consent = await submit(client, "菜市场门口占道经营，堵得走不动", sender="wx-openid-1", channel="wechat",
                                   contact={"phone": "13812345678", "name": "张先生", "consent": True})
    _, without = await submit(client, "河边的护栏断了一截", sender="wx-openid-1", channel="wechat",
                              contact={"phone": "13987654321", "consent": False})
    contacts = _rows(Contact)
    assert [(c.phone, c.name) for c in contacts] == [("13812345678", "张先生")]
    for sub in _rows(Submission):
        assert sub.sender and sub.sender != "wx-openid-1" and len(sub.sender) == 32
    for number in (with_consent["case_number"], without["case_number"]):
        text = await (await client.get(f"/api/v1/cases/{number}")).text()
        assert "138123" not in text and "张先生" not in text and "openid" not in text
    resp = await client.get("/api/v1/cases", params={"sender": "wx-openid-1", "channel": "wechat"})
    listed = await resp.json()
    assert [c["case_number"] for c in listed["cases"]] == [without["case_number"], with_consent["case_number"]]
    assert "138123" not in json.dumps(listed, ensure_ascii=False)
    # The same raw id on another channel is another person.
    other = await (await client.get("/api/v1/cases", params={"sender": "wx-openid-1", "channel": "web"})).json()
    assert other == {"cases": []}
    resp = await client.get("/api/v1/cases")
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "missing_sender"


async def test_logs_hold_no_personal_data(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await submit(client, "我电话13812345678，小区停车位被占", sender="secret-openid-xyz",
                 contact={"phone": "13812345678", "consent": True})
    await client.get("/api/v1/cases", params={"sender": "secret-openid-xyz"})
    app_logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "filed submission" in app_logs
    assert "13812345678" not in app_logs and "secret-openid-xyz" not in app_logs


def test_access_log_drops_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    request = make_mocked_request("GET", "/api/v1/cases?sender=secret-openid-xyz")
    AccessLogger(logging.getLogger("aiohttp.access"), "").log(request, web.Response(status=200), 0.012)
    assert "/api/v1/cases 200" in caplog.text and "secret-openid-xyz" not in caplog.text


# ---- duplicates: merge / keep --------------------------------------------------------------------

async def test_ask_then_merge(client: TestClient) -> None:
    _, first = await submit(client, "幸福路口的红绿灯坏了一周了", sender="a")
    first_case = _rows(Submission)[0].case_id
    client.server.app[ANALYSIS].detector.next = ("ask", first_case)
    status, second = await submit(client, "幸福路那个红绿灯一直不亮", sender="b")
    assert status == 201
    assert second["duplicate"]["decision"] == "ask"
    assert second["case_number"] != first["case_number"]  # filed on its own until the resident confirms
    candidate = second["duplicate"]["candidates"][0]
    assert candidate["case_number"] == first["case_number"] and candidate["supporters"] == 1
    assert candidate["score"] == pytest.approx(0.91)

    resp = await client.post(f"/api/v1/submissions/{second['submission_id']}/merge",
                             json={"case_number": first["case_number"].lower()}, headers=resident("b"))
    merged = await resp.json()
    assert resp.status == 200 and merged == {"case_number": first["case_number"], "supporters": 2}
    provisional = await (await client.get(f"/api/v1/cases/{second['case_number']}")).json()
    assert provisional["status"] == "merged"
    target = await (await client.get(f"/api/v1/cases/{first['case_number']}")).json()
    assert target["supporters"] == 2


async def test_keep_declines_merge(client: TestClient) -> None:
    _, first = await submit(client, "图书馆开放时间太短")
    client.server.app[ANALYSIS].detector.next = ("ask", _rows(Submission)[0].case_id)
    _, second = await submit(client, "图书馆座位太少")
    resp = await client.post(f"/api/v1/submissions/{second['submission_id']}/keep", headers=STAFF)
    assert resp.status == 200 and (await resp.json())["case_number"] == second["case_number"]
    assert _rows(Submission, id=second["submission_id"])[0].dedup_decision == "declined"


async def test_auto_merge(client: TestClient) -> None:
    _, first = await submit(client, "东湖小区停水三天了")
    client.server.app[ANALYSIS].detector.next = ("merge", _rows(Submission)[0].case_id)
    status, second = await submit(client, "东湖小区到现在还是没水")
    assert status == 201
    assert second["duplicate"]["decision"] == "merged"
    assert second["case_number"] == first["case_number"]
    case = await (await client.get(f"/api/v1/cases/{first['case_number']}")).json()
    assert case["supporters"] == 2


async def test_merge_errors(client: TestClient) -> None:
    _, first = await submit(client, "路边垃圾桶满了没人收")
    resp = await client.post(f"/api/v1/submissions/{first['submission_id']}/merge", json={"case_number": "SL2000-000001"}, headers=STAFF)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "case_not_found"
    resp = await client.post("/api/v1/submissions/99999/merge", json={"case_number": first["case_number"]}, headers=STAFF)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "submission_not_found"
    resp = await client.post("/api/v1/submissions/abc/keep", headers=STAFF)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "submission_not_found"


# The workflow table moves a case one step at a time (bot/workflow/states.py); the token acts as admin.
_PATH = [("assigned", {"committee": "test"}), ("accepted", {}), ("in_progress", {}),
         ("replied", {"public_reply": "已处理完毕"}), ("resolved", {}), ("closed", {})]


async def _set_status(client: TestClient, number: str, status: str) -> None:
    for step, extra in _PATH:
        resp = await client.patch(f"/api/v1/cases/{number}", json={"status": step, **extra},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200, await resp.text()
        if step == status:
            return
    raise AssertionError(f"no path to {status}")


async def _supporters(client: TestClient, number: str) -> int:
    return (await (await client.get(f"/api/v1/cases/{number}")).json())["supporters"]


@pytest.mark.parametrize("outcome", ["merge", "ask"])
async def test_finished_case_gains_no_supporters(any_db_client: TestClient, outcome: str) -> None:
    """The same concern as a resolved case opens a new case; the old one is listed with its status."""
    client = any_db_client
    detector = client.server.app[ANALYSIS].detector
    _, first = await submit(client, "东湖小区停水三天了")
    first_id = _rows(Case, number=first["case_number"])[0].id
    detector.next = ("ask", first_id)
    _, joined = await submit(client, "东湖小区一直没有水")
    resp = await client.post(f"/api/v1/submissions/{joined['submission_id']}/merge",
                             json={"case_number": first["case_number"]}, headers=STAFF)
    assert resp.status == 200
    await _set_status(client, first["case_number"], "resolved")

    detector.next = (outcome, first_id)
    status, again = await submit(client, "东湖小区又停水了", client_ref=f"again-{outcome}")
    assert status == 201 and again["duplicate"]["decision"] == "new"
    assert again["case_number"] not in (first["case_number"], joined["case_number"])
    [old] = again["duplicate"]["candidates"]
    assert old["case_number"] == first["case_number"]
    assert old["status"] == "resolved" and old["status_label"] == "已办结"
    assert await _supporters(client, first["case_number"]) == 2
    status, replay = await submit(client, "东湖小区又停水了", client_ref=f"again-{outcome}")
    assert status == 200 and replay == again

    # A match on the case that was merged into the resolved one is a match on the resolved one.
    detector.next = (outcome, _rows(Case, number=joined["case_number"])[0].id)
    _, third = await submit(client, "东湖小区水压很低")
    assert third["duplicate"]["decision"] == "new"
    assert [(c["case_number"], c["status"]) for c in third["duplicate"]["candidates"]] == \
        [(first["case_number"], "resolved")]
    assert await _supporters(client, first["case_number"]) == 2


async def test_merge_into_a_case_closed_meanwhile_is_refused(any_db_client: TestClient) -> None:
    client = any_db_client
    _, first = await submit(client, "幸福路口的红绿灯坏了一周了")
    client.server.app[ANALYSIS].detector.next = ("ask", _rows(Case, number=first["case_number"])[0].id)
    _, second = await submit(client, "幸福路那个红绿灯一直不亮")
    assert second["duplicate"]["decision"] == "ask"
    assert second["duplicate"]["candidates"][0]["status"] == "received"
    await _set_status(client, first["case_number"], "closed")  # staff close it before the resident answers
    resp = await client.post(f"/api/v1/submissions/{second['submission_id']}/merge",
                             json={"case_number": first["case_number"]}, headers=STAFF)
    error = (await resp.json())["error"]
    assert resp.status == 409 and error["code"] == "case_closed"
    assert "办理完结" in error["message"] and "新的事情单独登记" in error["message"]
    assert await _supporters(client, first["case_number"]) == 1
    own = await (await client.get(f"/api/v1/cases/{second['case_number']}")).json()
    assert own["status"] == "received" and own["supporters"] == 1  # kept as its own case
    assert _rows(Submission, id=second["submission_id"])[0].dedup_decision == "ask"


async def test_case_closed_between_check_and_join_opens_a_new_case(
        any_db_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff close the case after the pipeline looked at it: the conditional UPDATE refuses the join."""
    from bot.storage import repository

    client = any_db_client
    _, first = await submit(client, "菜市场门口的积水一直不退")
    await _set_status(client, first["case_number"], "closed")
    monkeypatch.setattr(repository, "accepts_supporters", lambda case: True)  # the stale look
    client.server.app[ANALYSIS].detector.next = ("merge", _rows(Case, number=first["case_number"])[0].id)
    status, second = await submit(client, "菜市场门口积水好多天了")
    assert status == 201 and second["duplicate"]["decision"] == "new"
    assert second["case_number"] != first["case_number"]
    assert second["duplicate"]["candidates"][0]["status"] == "closed"
    assert await _supporters(client, first["case_number"]) == 1


@pytest.mark.parametrize("text,place,expected", [
    ("东湖区清河街道的路灯坏了一个月", None, "东湖区"),       # a district of routing.yml
    ("柳岸社区门口下水道堵了", None, "东湖区"),              # a community of a 包联 area names its district
    ("路灯坏了一个月，晚上很黑", "枫林街道", "西山区"),        # the place slot, not the text
    ("南京市雨花区幸福小区门口的垃圾没人清运", None, "雨花区"),  # any district the text names
    ("A3区人民路的井盖丢了好几天", None, "A3区"),             # masked districts of published data
    ("幸福小区门口的垃圾没人清运", None, None),               # 小区 is no district
])
async def test_jurisdiction_from_the_district_named(any_db_client: TestClient, monkeypatch: pytest.MonkeyPatch,
                                                     text: str, place: str | None, expected: str | None) -> None:
    client = any_db_client
    analysis = client.server.app[ANALYSIS]
    added: list[tuple[int, str | None]] = []
    index_add = analysis.index_add
    monkeypatch.setattr(analysis, "index_add", lambda sid, vector, jurisdiction, created_at: (
        added.append((sid, jurisdiction)), index_add(sid, vector, jurisdiction, created_at)))
    _, body = await submit(client, text, **({"place": place} if place else {}))
    case = await (await client.get(f"/api/v1/cases/{body['case_number']}", headers=STAFF)).json()
    assert case["jurisdiction"] == expected
    assert added == [(body["submission_id"], expected)]  # the index gets it with the vector
    assert analysis.detector.calls  # the duplicate search ran (unfiltered: see FakeDetector.decide)


# ---- staff updates -------------------------------------------------------------------------------

async def test_patch_requires_token(client: TestClient) -> None:
    _, created = await submit(client, "学校门口接送孩子的车太多，交通拥堵")
    url = f"/api/v1/cases/{created['case_number']}"
    update = {"status": "assigned", "committee": "transport", "note": "已派交通专委会，下周实地走访"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        resp = await client.patch(url, json=update, headers=headers)
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.patch(url, json=update, headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "assigned" and body["last_update"]["note"] == "已派交通专委会，下周实地走访"
    resp = await client.patch(url, json={"status": "teleported"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_status"
    resp = await client.patch("/api/v1/cases/SL2000-000009", json=update, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 404


async def test_generated_token_file(make_client: MakeClient, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHANGLIANG_API_TOKEN")
    client = await make_client()
    _, created = await submit(client, "社区医院排队太久")
    url = f"/api/v1/cases/{created['case_number']}"
    resp = await client.patch(url, json={"note": "已转卫健委"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 401
    token = (var_dir / "api_token").read_text().strip()
    assert len(token) >= 32 and (var_dir / "api_token").stat().st_mode & 0o077 == 0
    resp = await client.patch(url, json={"note": "已转卫健委"}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200 and (await resp.json())["last_update"]["note"] == "已转卫健委"


# ---- handoffs, analyze, metrics ------------------------------------------------------------------

async def test_handoff(client: TestClient) -> None:
    resp = await client.post("/api/v1/handoffs", json={"sender": "u-1", "channel": "web", "text": "转人工",
                                                       "reason": "requested"})
    body = await resp.json()
    assert resp.status == 201 and body["id"] and "工作人员" in body["message"]
    stored = _rows(Handoff)[0]
    assert stored.sender != "u-1" and stored.reason == "requested"


async def test_analyze_endpoint(client: TestClient) -> None:
    resp = await client.post("/api/v1/analyze", json={"text": "我要投诉"})
    assert await resp.json() == {"vague": True, "place": None, "place_parts": None, "since_when": None,
                                 "scope": None, "phone": None}
    resp = await client.post("/api/v1/analyze",
                             json={"text": "幸福小区3号楼电梯坏了三个月了，整栋楼都受影响，电话13800138000"})
    body = await resp.json()
    parts = body.pop("place_parts")
    assert body == {"vague": False, "place": "幸福小区3号楼", "since_when": "三个月了", "scope": "整栋楼",
                    "phone": "13800138000"}
    assert parts["community"] == "幸福小区" and parts["building"] == "3号楼"
    resp = await client.post("/api/v1/analyze", json={"text": 5})
    assert resp.status == 400


async def test_metrics(client: TestClient) -> None:
    await submit(client, "夜里工地施工噪音太大")
    await client.get("/api/v1/cases/SL2000-000001")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert 'shangliang_http_requests_total{method="POST",route="/api/v1/submissions",status="201"} 1' in text
    assert 'route="/api/v1/cases/{number}",status="404"} 1' in text
    assert "shangliang_http_request_duration_seconds_bucket" in text
    assert 'shangliang_submissions_total{decision="new",replay="false"} 1' in text
    assert 'shangliang_cases{status="received"} 1' in text
    assert "shangliang_encoder_ready 1" in text


# ---- degraded modes and restarts ----------------------------------------------------------------

async def test_encoder_unavailable_still_stores(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    client = await make_client(encoder_factory=_broken_encoder)
    health = await (await client.get("/health")).json()
    assert health["encoder"] == "unavailable"
    texts = ["桥下积水很深，车过不去", "公园的路灯坏了一排，晚上黑漆漆的", "菜市场门口天天堵车"]
    for text in texts:
        status, body = await submit(client, text)
        assert status == 201 and body["duplicate"]["decision"] == "new"
    assert all(row.embedding is None for row in _rows(Submission))
    assert "without a vector" in caplog.text
    await client.close()
    # Next start with a working encoder: the stored concerns get their own vectors (encoded in one batch,
    # each matched to its text) and enter the index.
    client = await make_client()
    stored = sorted(_rows(Submission), key=lambda row: row.id)
    for row, text in zip(stored, texts, strict=True):
        assert row.embedding is not None and row.embedding_model == "fake-bigram"
        assert np.allclose(np.frombuffer(row.embedding, np.float32), FakeEncoder().encode([text])[0])
    if INDEX_INSTALLED:
        assert len(client.server.app[ANALYSIS].store) == len(texts)


async def test_restart_keeps_everything(make_client: MakeClient) -> None:
    client = await make_client()
    _, created = await submit(client, "老旧小区加装电梯的建议", kind="suggestion", client_ref="r-1")
    await client.close()
    client = await make_client()
    resp = await client.get(f"/api/v1/cases/{created['case_number']}", headers=STAFF)
    assert resp.status == 200 and (await resp.json())["title"] == "老旧小区加装电梯的建议"
    status, replay = await submit(client, "老旧小区加装电梯的建议", kind="suggestion", client_ref="r-1")
    assert status == 200 and replay["case_number"] == created["case_number"]
    _, nxt = await submit(client, "另一件事：公园厕所太少")
    assert nxt["case_number"] != created["case_number"]
    if INDEX_INSTALLED:  # the index was caught up from the database
        assert len(client.server.app[ANALYSIS].store) == 2


async def test_routing_hook_called_for_new_cases(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    _install_router(monkeypatch, _recording_router(calls))
    _, body = await submit(client, "村里的路灯全坏了")
    assert calls == [_rows(Submission)[0].case_id]
    assert body["status"] == "assigned"  # the answer reflects what routing stored
    client.server.app[ANALYSIS].detector.next = ("merge", calls[0])
    _, merged = await submit(client, "村里路灯都不亮")
    assert merged["duplicate"]["decision"] == "merged" and len(calls) == 1  # routed once per case


async def test_routing_failure_does_not_lose_the_case(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(session: Any, case_id: int) -> None:
        raise RuntimeError("directory missing")

    _install_router(monkeypatch, explode)
    status, body = await submit(client, "菜市场排水沟堵了")
    assert status == 201
    assert (await client.get(f"/api/v1/cases/{body['case_number']}")).status == 200


async def test_case_left_unrouted_is_routed_when_the_service_starts(make_client: MakeClient,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the case commit and routing (here: routing fails) leaves a `received` case; the
    sweep started with the service routes it once the grace period is over."""
    def explode(session: Any, case_id: int) -> None:
        raise RuntimeError("process killed")

    _install_router(monkeypatch, explode)
    client = await make_client()
    _, body = await submit(client, "菜市场排水沟堵了")
    await client.close()
    with db.session_scope() as session:  # the crash was two minutes ago
        session.execute(sa.text("update cases set created_at = :t where number = :n"),
                        {"t": utcnow() - timedelta(minutes=2), "n": body["case_number"]})

    calls: list[int] = []
    _install_router(monkeypatch, _recording_router(calls))
    client = await make_client(run_sweep=True)
    for _ in range(100):
        case = await (await client.get(f"/api/v1/cases/{body['case_number']}", headers=STAFF)).json()
        if case["status"] != "received":
            break
        await asyncio.sleep(0.05)
    assert case["status"] == "assigned" and len(calls) == 1


# ---- web chat ----------------------------------------------------------------------------------

async def test_chat_page_and_redirect(client: TestClient) -> None:
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/chat"
    resp = await client.get("/chat")
    html = await resp.text()
    assert resp.status == 200 and 'lang="zh-CN"' in html and "/static/chat.js" in html
    js = await client.get("/static/chat.js")
    assert js.status == 200 and "/chat/send" in await js.text()


async def test_chat_send_proxies_to_rasa(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[dict] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response([
            {"recipient_id": "x", "text": "您好，请问是在哪个小区？", "buttons": [{"title": "幸福小区", "payload": "幸福小区"}]},
            {"recipient_id": "x", "image": "https://example.org/qr.png"},
        ])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(rasa)
    await server.start_server()
    try:
        monkeypatch.setenv("SHANGLIANG_RASA_URL", str(server.make_url("")).rstrip("/"))
        settings.cache_clear()
        client = await make_client()
        resp = await client.post("/chat/send", json={"sender": "abcdef0123456789", "message": "楼道灯坏了"})
        body = await resp.json()
        assert resp.status == 200
        assert body["replies"][0]["text"] == "您好，请问是在哪个小区？"
        assert body["replies"][0]["buttons"] == [{"title": "幸福小区", "payload": "幸福小区"}]
        assert body["replies"][1] == {"image": "https://example.org/qr.png"}
        assert received == [{"sender": "web-abcdef0123456789", "message": "楼道灯坏了"}]
        resp = await client.post("/chat/send", json={"sender": "../../etc", "message": "hi"})
        assert resp.status == 400
    finally:
        await server.close()


async def test_chat_send_when_rasa_is_down(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHANGLIANG_RASA_URL", "http://127.0.0.1:9")
    settings.cache_clear()
    client = await make_client()
    resp = await client.post("/chat/send", json={"sender": "abcdef0123456789", "message": "你好"})
    body = await resp.json()
    assert resp.status == 503 and body["error"]["code"] == "rasa_unavailable"


# ---- the same service on PostgreSQL -------------------------------------------------------------

@pytest.fixture()
def postgres_url(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DATABASE_URL pointing at a private schema of the PostgreSQL test database (set after
    make_client, which clears any DATABASE_URL of the developer's)."""
    with postgres_schema() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        settings.cache_clear()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def any_db_client(request: pytest.FixtureRequest, make_client: MakeClient,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    """The service on SQLite, then on a private PostgreSQL schema (skipped when it does not answer)."""
    if request.param == "sqlite":
        yield await make_client()
        return
    with postgres_schema() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        settings.cache_clear()
        client = await make_client()
        yield client
        await client.close()  # before the schema is dropped


@pytest.mark.postgres
async def test_postgres_round_trip(postgres_url: str, make_client: MakeClient) -> None:
    client = await make_client()
    results = await asyncio.gather(*[submit(client, "广场舞音响太吵，晚上十点还在放", client_ref="pg-ref")
                                     for _ in range(4)])
    assert sorted(s for s, _ in results) == [200, 200, 200, 201]
    first = results[0][1]
    client.server.app[ANALYSIS].detector.next = ("ask", _rows(Submission)[0].case_id)
    _, second = await submit(client, "广场上跳舞的音乐声音太大", contact={"phone": "13800000000", "consent": True})
    resp = await client.post(f"/api/v1/submissions/{second['submission_id']}/merge",
                             json={"case_number": first["case_number"]}, headers=STAFF)
    assert (await resp.json())["supporters"] == 2
    await client.close()
    client = await make_client()
    case = await (await client.get(f"/api/v1/cases/{first['case_number'].lower()}", headers=STAFF)).json()
    assert case["supporters"] == 2 and case["title"] == "广场舞音响太吵"
    assert len(_rows(Submission)) == 2 and [c.phone for c in _rows(Contact)] == ["13800000000"]
    await client.close()  # before the schema is dropped


async def test_topic_from_classifier(make_client: MakeClient) -> None:
    client = await make_client(classifier_factory=FakeClassifier)
    _, traffic = await submit(client, "学校门口接送孩子的车太多，早上堵得走不动")
    assert traffic["topic"]["id"] == "traffic" and traffic["topic"]["confidence"] == pytest.approx(0.83)
    assert traffic["topic"]["name"]  # from the taxonomy when it knows the id
    _, unsure = await submit(client, "希望多办一些社区文化活动")
    assert unsure["topic"]["id"] == "other"
    with db.session_scope() as session:
        review = dict(session.execute(sa.text("select number, needs_review from cases")).all())
    assert review == {traffic["case_number"]: False, unsure["case_number"]: True}  # below topics.review_below
    case = await (await client.get(f"/api/v1/cases/{traffic['case_number']}", headers=STAFF)).json()
    assert case["topic"]["id"] == "traffic"
