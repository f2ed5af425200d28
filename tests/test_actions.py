"""Action logic against a small fake intake API (aiohttp); no Rasa server, no real intake service."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import spool
from actions.actions import (
    ActionAttachMedia,
    ActionCheckProgress,
    ActionCoreFallback,
    ActionCorrectSlot,
    ActionHandoff,
    ActionMergeDecision,
    ActionStartConcern,
    ActionSubmitConcern,
    ValidateConcernForm,
)
from actions.asking import AskDescription
from actions.pending import ActionPendingAnswer
from bot.service.pseudonym import pseudonymise
from bot.text.answers import Answer, yes_no
from bot.text.casenumbers import find_case_number
from bot.text.pii import find_phone
from bot.tokens import service_token


class FakeIntake:
    """Records every request; answers are set per test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.analysis: dict[str, Any] = {"vague": True, "place": None, "since_when": None,
                                         "scope": None, "phone": None}
        self.decision: dict[str, Any] = {"decision": "new", "candidates": []}
        self.cases: dict[str, dict[str, Any]] = {}
        self.by_client_ref: dict[str, dict[str, Any]] = {}
        self.merge_error: dict[str, str] | None = None
        self.headers: list[dict[str, str]] = []  # per call: what identifies the caller

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/analyze", self.analyze)
        app.router.add_post("/api/v1/submissions", self.submit)
        app.router.add_post("/api/v1/submissions/{id}/merge", self.merge)
        app.router.add_post("/api/v1/submissions/{id}/keep", self.keep)
        app.router.add_get("/api/v1/cases/{number}", self.case)
        app.router.add_get("/api/v1/cases", self.list_cases)
        app.router.add_post("/api/v1/handoffs", self.handoff)
        return app

    async def _record(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.method, request.path_qs, body))
        self.headers.append({k: v for k, v in request.headers.items()
                             if k in ("Authorization", "X-Shangliang-Sender", "X-Shangliang-Channel")})
        return body

    async def analyze(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(self.analysis)

    async def submit(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        ref = body.get("client_ref")
        if ref in self.by_client_ref:
            return web.json_response(self.by_client_ref[ref], status=200)
        number = f"SL2026-{len(self.by_client_ref) + 1:06d}"
        result = {"submission_id": len(self.by_client_ref) + 1, "case_number": number, "status": "new",
                  "status_label": "已受理", "topic": {"id": "housing", "name": "住房物业", "confidence": 0.8},
                  "duplicate": self.decision}
        self.by_client_ref[ref] = result
        return web.json_response(result, status=201)

    async def merge(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if self.merge_error is not None:
            return web.json_response({"error": self.merge_error}, status=409)
        return web.json_response({"case_number": body["case_number"], "supporters": 4})

    async def keep(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"ok": True})

    async def case(self, request: web.Request) -> web.Response:
        await self._record(request)
        case = self.cases.get(request.match_info["number"].upper())
        if case is None:
            return web.json_response({"error": {"code": "case_not_found", "message": "没有找到这个编号"}},
                                     status=404)
        return web.json_response(case)

    async def list_cases(self, request: web.Request) -> web.Response:
        await self._record(request)
        sender = request.query.get("sender")
        return web.json_response({"cases": [c for c in self.cases.values() if c.get("_sender") == sender]})

    async def handoff(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"id": 7, "message": "已转人工"})


@pytest.fixture
async def fake(var_dir, monkeypatch) -> AsyncIterator[FakeIntake]:
    intake = FakeIntake()
    server = TestServer(intake.app())
    await server.start_server()
    monkeypatch.setenv("SHANGLIANG_INTAKE_URL", str(server.make_url("")).rstrip("/"))
    yield intake
    await server.close()


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_tracker(text: str = "", intent: str = "inform", slots: dict[str, Any] | None = None,
                 entities: list[dict[str, Any]] | None = None, active_loop: str | None = None,
                 message_id: str = "m1", sender: str = "resident-1") -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or [],
              "message_id": message_id}
    events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": "rest"}]
    return Tracker(sender, dict(slots or {}), latest, events, False, None,
                   {"name": active_loop} if active_loop else {}, "action_listen")


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


RESPONSES = yaml.safe_load((Path(__file__).resolve().parent.parent / "domain.yml").read_text(encoding="utf-8"))[
    "responses"]


def render(message: dict[str, Any]) -> str:
    """What the resident reads: the domain.yml response filled with the action's variables, as Rasa does."""
    if not message.get("response"):
        return message.get("text") or ""
    template = RESPONSES[message["response"]][0]["text"]
    return re.sub(r"\{(\w+)\}", lambda m: str(message[m.group(1)]), template)


def texts(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(render(m) for m in dispatcher.messages)


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("response") for m in dispatcher.messages]


FULL_SLOTS = {"kind": "concern", "description": "阳光小区3号楼电梯坏了一个月，老人下不了楼",
              "place": "阳光小区3号楼", "since_when": "上个月", "scope": "整栋楼",
              "contact_consent": True, "phone": "13912345678", "anonymous": False}


def test_parsing_tolerates_resident_input() -> None:
    assert find_case_number("帮我查查 ｓｌ2026 - 000123 谢谢") == "SL2026-000123"
    assert find_case_number("sl2026000999") == "SL2026-000999"
    assert find_case_number("我的问题怎么样了") is None
    assert find_phone("电话 139 1234 5678") == "13912345678"
    assert find_phone("座机0571-88886666") == "0571-88886666"
    assert find_phone("12345") is None
    assert yes_no("不留") is Answer.NO and yes_no("可以的") is Answer.YES and yes_no("今天下雨") is Answer.UNKNOWN


async def test_detailed_opener_prefills_the_form(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": "阳光小区5号楼", "since_when": "一个月", "scope": None,
                     "phone": None}
    text = "阳光小区5号楼电梯坏了一个月了，老人下不了楼"
    dispatcher = CollectingDispatcher()
    events = await ActionStartConcern().run(dispatcher, make_tracker(text, "report_concern"), {})
    slots = slot_events(events)
    assert slots["description"] == text
    assert slots["place"] == "阳光小区5号楼" and slots["since_when"] == "一个月"
    assert slots["kind"] == "concern"
    assert fake.calls[0][:2] == ("POST", "/api/v1/analyze")


async def test_vague_opener_leaves_description_to_the_form(fake: FakeIntake) -> None:
    events = await ActionStartConcern().run(CollectingDispatcher(), make_tracker("我要投诉", "report_concern"), {})
    assert slot_events(events).get("description") is None


async def test_opener_when_intake_is_down_uses_local_heuristics(var_dir, monkeypatch) -> None:
    monkeypatch.setenv("SHANGLIANG_INTAKE_URL", _dead_url())
    long_text = "小区门口那条路坑坑洼洼的，下雨就积水，电动车都摔了好几个"
    events = await ActionStartConcern().run(CollectingDispatcher(), make_tracker(long_text, "report_concern"), {})
    assert slot_events(events)["description"] == long_text
    events = await ActionStartConcern().run(CollectingDispatcher(), make_tracker("我要投诉", "report_concern"), {})
    assert slot_events(events).get("description") is None


async def test_consent_and_phone_validation(fake: FakeIntake) -> None:
    form = ValidateConcernForm()
    dispatcher = CollectingDispatcher()
    refused = await form.validate_contact_consent("不留", dispatcher, make_tracker("不留", "deny"), {})
    assert refused == {"contact_consent": False, "phone": None}
    given = await form.validate_contact_consent("可以，13912345678", dispatcher, make_tracker("可以，13912345678"), {})
    assert given == {"contact_consent": True, "phone": "13912345678"}
    bad = await form.validate_phone("12345", dispatcher, make_tracker("12345"), {})
    assert bad == {"phone": None}
    assert "号码好像不太对" in texts(dispatcher)
    landline = await form.validate_phone("0571-88886666", dispatcher, make_tracker("0571-88886666"), {})
    assert landline == {"phone": "0571-88886666"}
    slots = ["description", "place", "since_when", "scope", "contact_consent", "phone", "anonymous"]
    no_phone = await form.required_slots(slots, dispatcher, make_tracker(slots={"contact_consent": False}), {})
    assert "phone" not in no_phone
    suggestion = await form.required_slots(slots, dispatcher, make_tracker(slots={"kind": "suggestion"}), {})
    assert "since_when" not in suggestion and "scope" not in suggestion


async def test_place_rejects_phone_digits_and_optional_slots_accept_skip(fake: FakeIntake) -> None:
    form = ValidateConcernForm()
    dispatcher = CollectingDispatcher()
    assert await form.validate_place("13912345678", dispatcher, make_tracker("13912345678"), {}) == {"place": None}
    assert await form.validate_place("在幸福里社区12栋", dispatcher, make_tracker(), {}) == {"place": "幸福里社区12栋"}
    assert await form.validate_since_when("跳过", dispatcher, make_tracker("跳过"), {}) == {"since_when": "不清楚"}


async def test_submit_new_case_sends_one_idempotent_request(fake: FakeIntake) -> None:
    tracker = make_tracker("确认", "affirm", slots=FULL_SLOTS, message_id="abc")
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitConcern().run(dispatcher, tracker, {})
    submits = [c for c in fake.calls if c[1] == "/api/v1/submissions"]
    assert len(submits) == 1
    body = submits[0][2]
    # Built from the sender's pseudonym: the raw id never becomes the stored idempotency key.
    assert body["client_ref"] == f"rest:{pseudonymise('rest', 'resident-1')}:abc"
    assert "resident-1" not in body["client_ref"]
    assert fake.headers[-1] == {"Authorization": f"Bearer {service_token()}"}
    assert body["contact"] == {"phone": "13912345678", "consent": True}
    assert body["place"] == "阳光小区3号楼" and body["kind"] == "concern" and body["sender"] == "resident-1"
    assert "SL2026-000001" in texts(dispatcher)
    assert slot_events(events)["description"] is None  # the form is cleared after submission
    # Retrying the same confirmation replays the same case instead of opening another.
    again = CollectingDispatcher()
    await ActionSubmitConcern().run(again, tracker, {})
    assert "SL2026-000001" in texts(again) and len(fake.by_client_ref) == 1


async def test_no_contact_without_consent(fake: FakeIntake) -> None:
    slots = dict(FULL_SLOTS, contact_consent=False, phone=None, since_when="不清楚")
    await ActionSubmitConcern().run(CollectingDispatcher(), make_tracker("确认", "affirm", slots=slots), {})
    body = fake.calls[-1][2]
    assert "contact" not in body and body["since_when"] is None


async def test_duplicate_offer_then_merge(fake: FakeIntake) -> None:
    fake.decision = {"decision": "ask", "candidates": [
        {"case_number": "SL2026-000042", "subject_line": "阳光小区电梯故障", "supporters": 3, "score": 0.9}]}
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitConcern().run(dispatcher, make_tracker("确认", "affirm", slots=FULL_SLOTS), {})
    reply = texts(dispatcher)
    assert "已有3位居民反映了类似问题" in reply and "SL2026-000042" in reply and "是否并入" in reply
    assert "阳光小区电梯故障" in reply  # the other case's redacted subject line, nothing more
    slots = slot_events(events)
    assert slots["awaiting"] == "merge" and slots["merge_target"] == "SL2026-000042"
    dispatcher = CollectingDispatcher()
    await ActionMergeDecision().run(dispatcher, make_tracker("是", "affirm", slots=slots), {})
    assert fake.calls[-1][:3] == ("POST", "/api/v1/submissions/1/merge", {"case_number": "SL2026-000042"})
    # The action server names the resident it acts for: the service only merges their own submission.
    assert fake.headers[-1]["X-Shangliang-Sender"] == "resident-1"
    assert "SL2026-000042" in texts(dispatcher) and "4位居民" in texts(dispatcher)
    # Wording beats a misclassified intent: "别合并" labelled affirm still keeps the case separate.
    await ActionMergeDecision().run(CollectingDispatcher(), make_tracker("别合并", "affirm", slots=slots), {})
    assert fake.calls[-1][1] == "/api/v1/submissions/1/keep"


async def test_match_on_a_finished_case_is_filed_new_and_said_so(fake: FakeIntake) -> None:
    fake.decision = {"decision": "new", "candidates": [
        {"case_number": "SL2026-000042", "summary": "阳光小区电梯故障", "supporters": 3, "score": 0.9,
         "status": "resolved", "status_label": "已办结"}]}
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitConcern().run(dispatcher, make_tracker("确认", "affirm", slots=FULL_SLOTS), {})
    reply = texts(dispatcher)
    assert "SL2026-000001" in reply and "SL2026-000042" in reply and "已办结" in reply
    assert "是否并入" not in reply and slot_events(events).get("awaiting") is None


async def test_merge_refused_because_the_case_was_closed(fake: FakeIntake) -> None:
    message = "您想并入的那件事已经办理完结了，不能再并入。您这次的反映已经作为一件新的事情单独登记，我们会重新跟进。"
    fake.merge_error = {"code": "case_closed", "message": message}
    slots = {"awaiting": "merge", "submission_id": 1, "merge_target": "SL2026-000042",
             "own_case_number": "SL2026-000007"}
    dispatcher = CollectingDispatcher()
    await ActionMergeDecision().run(dispatcher, make_tracker("是", "affirm", slots=slots), {})
    reply = texts(dispatcher)
    assert reply.startswith(message) and "SL2026-000007" in reply
    # Other refusals keep their own reason, without a doubled full stop.
    fake.merge_error = {"code": "case_not_found", "message": "没有找到这个案件编号，请核对一下。"}
    dispatcher = CollectingDispatcher()
    await ActionMergeDecision().run(dispatcher, make_tracker("是", "affirm", slots=slots), {})
    assert texts(dispatcher) == "没有找到这个案件编号，请核对一下。您的问题仍按编号 SL2026-000007 跟进。"


async def test_intake_down_spools_and_later_flushes(var_dir, monkeypatch) -> None:
    monkeypatch.setenv("SHANGLIANG_INTAKE_URL", _dead_url())
    dispatcher = CollectingDispatcher()
    await ActionSubmitConcern().run(dispatcher, make_tracker("确认", "affirm", slots=FULL_SLOTS, message_id="x9"), {})
    assert "暂时连不上" in texts(dispatcher) and "自动提交" in texts(dispatcher)
    files = list((spool.spool_dir()).glob("*.json"))
    assert len(files) == 1
    # Encrypted at rest: neither the sender, the concern nor the phone number is readable in the file.
    raw = files[0].read_text(encoding="utf-8")
    assert "resident-1" not in raw and "13912345678" not in raw and "电梯" not in json.loads(raw)["data"]
    assert spool.pending("resident-1") == [files[0].name] and spool.pending("someone-else") == []
    ref = f"rest:{pseudonymise('rest', 'resident-1')}:x9"
    # The next action run with the service back submits the spooled concern.
    intake = FakeIntake()
    server = TestServer(intake.app())
    await server.start_server()
    try:
        monkeypatch.setenv("SHANGLIANG_INTAKE_URL", str(server.make_url("")).rstrip("/"))
        await ActionCheckProgress().run(CollectingDispatcher(), make_tracker("查进度", "ask_progress"), {})
    finally:
        await server.close()
    assert ref in intake.by_client_ref
    assert not list(spool.spool_dir().glob("*.json"))
    assert spool.spool_dir().parent == var_dir


async def test_progress_by_number_and_by_sender(fake: FakeIntake) -> None:
    fake.cases["SL2026-000123"] = {"case_number": "SL2026-000123", "status": "in_progress",
                                   "status_label": "办理中", "subject_line": "路灯不亮", "supporters": 2,
                                   "last_update": {"time": "2026-11-20T10:00:00", "note": "已派人检修"},
                                   "_sender": "resident-1"}
    dispatcher = CollectingDispatcher()
    entities = [{"entity": "case_number", "value": "sl2026-000123"}]
    await ActionCheckProgress().run(dispatcher, make_tracker("查sl2026-000123", "ask_progress", entities=entities), {})
    assert "办理中" in texts(dispatcher) and "已派人检修" in texts(dispatcher)
    dispatcher = CollectingDispatcher()
    await ActionCheckProgress().run(dispatcher, make_tracker("SL2026-999999进度", "ask_progress"), {})
    assert "没有找到编号 SL2026-999999" in texts(dispatcher)
    dispatcher = CollectingDispatcher()
    await ActionCheckProgress().run(dispatcher, make_tracker("我反映的问题怎么样了", "ask_progress"), {})
    assert "SL2026-000123" in texts(dispatcher)
    assert ("GET", "/api/v1/cases?sender=resident-1&channel=rest", None) in fake.calls
    dispatcher = CollectingDispatcher()
    await ActionCheckProgress().run(dispatcher, make_tracker("进度", "ask_progress", sender="stranger"), {})
    assert "没查到" in texts(dispatcher)


async def test_corrections_after_read_back(fake: FakeIntake) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("地址说错了，是5号楼", "correct_info", slots=FULL_SLOTS)
    slots = slot_events(await ActionCorrectSlot().run(dispatcher, tracker, {}))
    assert slots == {"place": "阳光小区5号楼", "awaiting": "confirm"}
    assert "阳光小区5号楼" in texts(dispatcher)  # the summary is read back again
    tracker = make_tracker("电话改成13800138000", "correct_info", slots=FULL_SLOTS)
    slots = slot_events(await ActionCorrectSlot().run(CollectingDispatcher(), tracker, {}))
    assert slots["phone"] == "13800138000" and slots["contact_consent"] is True


async def test_correction_inside_the_form_keeps_the_form(fake: FakeIntake) -> None:
    tracker = make_tracker("不是12栋，是21栋", "correct_info", active_loop="concern_form",
                           slots={"description": "下水道堵了", "place": "幸福里社区12栋"})
    events = await ActionCorrectSlot().run(CollectingDispatcher(), tracker, {})
    assert slot_events(events) == {"place": "幸福里社区21栋"}
    assert all(e.get("event") != "followup" for e in events)


async def test_handoff_posts_and_explains_next_step(fake: FakeIntake) -> None:
    dispatcher = CollectingDispatcher()
    await ActionHandoff().run(dispatcher, make_tracker("转人工", "human_handoff"), {})
    method, path, body = fake.calls[-1]
    assert (method, path) == ("POST", "/api/v1/handoffs")
    assert body["sender"] == "resident-1" and body["channel"] == "rest"
    assert "工作人员" in texts(dispatcher)


async def test_description_answer_is_checked_for_vagueness(fake: FakeIntake) -> None:
    form = ValidateConcernForm()
    dispatcher = CollectingDispatcher()
    assert await form.validate_description("有", dispatcher, make_tracker("有"), {}) == {"description": None}
    assert "多说几句" in texts(dispatcher)
    fake.analysis = {"vague": False, "place": "阳光小区", "since_when": None, "scope": None, "phone": None}
    result = await form.validate_description("电梯坏了", CollectingDispatcher(), make_tracker("电梯坏了"), {})
    assert result == {"description": "电梯坏了", "place": "阳光小区"}


async def test_story_filed_as_inform_outside_the_form_opens_a_concern(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": "幸福路", "since_when": "两个月", "scope": None, "phone": None}
    story = "幸福路和学府路路口的红绿灯坏了两个月了，早上学生过马路很危险"
    dispatcher = CollectingDispatcher()
    events = await ActionCoreFallback().run(dispatcher, make_tracker(story, intent="inform"), {})
    assert [e["name"] for e in events if e["event"] == "followup"] == ["concern_form"]
    assert slot_events(events)["description"] == story


async def test_fallback_keeps_a_pending_confirmation_untouched(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": None, "since_when": None, "scope": None, "phone": None}
    tracker = make_tracker("阳光小区3号楼那边晚上路灯一直不亮", intent="inform",
                           slots={**FULL_SLOTS, "awaiting": "confirm"})
    dispatcher = CollectingDispatcher()
    events = await ActionCoreFallback().run(dispatcher, tracker, {})
    # Not understood as an answer: the same read-back again, the draft untouched, nothing submitted.
    assert slot_events(events) == {"awaiting": "confirm"}
    assert responses(dispatcher) == ["utter_read_back_unclear", "utter_read_back_concern"]
    assert "阳光小区3号楼电梯坏了一个月" in texts(dispatcher)
    assert not [c for c in fake.calls if c[1] == "/api/v1/submissions"]


async def test_an_address_alone_outside_the_form_is_not_a_story(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": "朝阳区幸福街道阳光社区5号楼", "since_when": None, "scope": None,
                     "phone": None}
    dispatcher = CollectingDispatcher()
    events = await ActionCoreFallback().run(dispatcher, make_tracker("朝阳区幸福街道阳光社区5号楼"), {})
    assert [e["event"] for e in events] == ["rewind"]


async def test_a_stray_short_answer_outside_the_form_is_not_a_story(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": None, "since_when": "三个月", "scope": None, "phone": None}
    dispatcher = CollectingDispatcher()
    events = await ActionCoreFallback().run(dispatcher, make_tracker("三个月了"), {})
    assert [e["event"] for e in events] == ["rewind"]


async def _answer(text: str, intent: str, slots: dict[str, Any]) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = await ActionPendingAnswer().run(dispatcher, make_tracker(text, intent, slots=slots), {})
    assert events[-1] == {"event": "followup", "timestamp": None, "name": "action_listen"}
    return events, dispatcher


READ_BACK = {**FULL_SLOTS, "awaiting": "confirm"}


def _submitted(fake: FakeIntake) -> int:
    return len([c for c in fake.calls if c[1] == "/api/v1/submissions"])


@pytest.mark.parametrize("text,intent", [("就这样吧，帮我交上去", "inform"), ("1", "nlu_fallback"),
                                         ("没毛病", "deny"), ("嗯嗯 可以", "affirm")])
async def test_colloquial_confirmations_file_the_concern(fake: FakeIntake, text: str, intent: str) -> None:
    events, dispatcher = await _answer(text, intent, READ_BACK)
    assert _submitted(fake) == 1 and "SL2026-000001" in texts(dispatcher)
    assert slot_events(events)["description"] is None


@pytest.mark.parametrize("text,intent", [("让我再想想", "affirm"), ("先别提交，我问问邻居", "cancel"),
                                         ("等一下", "inform")])
async def test_hesitation_keeps_the_draft(fake: FakeIntake, text: str, intent: str) -> None:
    events, dispatcher = await _answer(text, intent, READ_BACK)
    assert _submitted(fake) == 0
    assert slot_events(events) == {"awaiting": "confirm"}  # nothing cleared
    assert responses(dispatcher) == ["utter_read_back_hesitate"]


async def test_cancel_is_asked_once_and_no_goes_back_to_the_draft(fake: FakeIntake) -> None:
    events, dispatcher = await _answer("算了", "cancel", READ_BACK)
    assert slot_events(events) == {"awaiting": "cancel_check"} and "确定不提交了吗" in texts(dispatcher)
    events, dispatcher = await _answer("不是，还是提交吧", "deny", {**FULL_SLOTS, "awaiting": "cancel_check"})
    assert slot_events(events) == {"awaiting": "confirm"} and "请您核对" in texts(dispatcher)
    events, dispatcher = await _answer("是的", "affirm", {**FULL_SLOTS, "awaiting": "cancel_check"})
    assert slot_events(events)["description"] is None and "已取消" in texts(dispatcher)
    assert _submitted(fake) == 0


async def test_change_without_saying_what_asks_and_with_it_corrects(fake: FakeIntake) -> None:
    events, dispatcher = await _answer("2", "nlu_fallback", READ_BACK)
    assert responses(dispatcher) == ["utter_ask_correction"] and slot_events(events) == {"awaiting": "confirm"}
    events, dispatcher = await _answer("地址不对，应该是幸福路小学后门那条胡同", "inform", READ_BACK)
    assert slot_events(events)["place"] == "幸福路小学后门那条胡同"  # the whole place, replaced
    assert "幸福路小学后门那条胡同" in texts(dispatcher) and _submitted(fake) == 0


async def test_nonsense_at_the_read_back_shows_it_again(fake: FakeIntake) -> None:
    for text in ("🙂🙂🙂", "asdfghjkl", "这个那个", "Привет 你好 123", "您好"):
        events, dispatcher = await _answer(text, "nlu_fallback", READ_BACK)
        assert slot_events(events) == {"awaiting": "confirm"}, text
        assert "请您核对" in texts(dispatcher) and "1 确认" in texts(dispatcher), text
    assert _submitted(fake) == 0


@pytest.mark.parametrize("text,intent", [("不是同一件事", "affirm"), ("不对", "affirm"), ("不要合并", "affirm"),
                                         ("不是很想并", "affirm")])
async def test_no_to_a_merge_offer_keeps_the_own_case(fake: FakeIntake, text: str, intent: str) -> None:
    slots = {"awaiting": "merge", "submission_id": 1, "merge_target": "SL2026-000042",
             "own_case_number": "SL2026-000007"}
    _, dispatcher = await _answer(text, intent, slots)
    assert fake.calls[-1][1] == "/api/v1/submissions/1/keep"
    assert "SL2026-000007" in texts(dispatcher) and "单独" in texts(dispatcher)


async def test_merge_offer_shows_only_the_subject_the_service_sends(fake: FakeIntake) -> None:
    fake.decision = {"decision": "ask", "candidates": [
        {"case_number": "SL2026-000042", "subject_line": "电梯长期停运", "supporters": 2, "score": 0.9}]}
    dispatcher = CollectingDispatcher()
    await ActionSubmitConcern().run(dispatcher, make_tracker("确认", "affirm", slots=FULL_SLOTS), {})
    offer = next(m for m in dispatcher.messages if m.get("response") == "utter_merge_offer")
    assert render(offer).count("电梯长期停运") == 1 and offer["other_subject"] == "电梯长期停运"


LOCATION = {"location": {"latitude": "23.134521", "longitude": "113.358803", "scale": "20",
                         "label": "天河区体育西路103号"}}


def _location_tracker(slots: dict[str, Any] | None = None, active_loop: str | None = None) -> Tracker:
    tracker = make_tracker("/share_location", "share_location", slots=slots, active_loop=active_loop)
    tracker.latest_message["metadata"] = LOCATION
    return tracker


async def test_location_outside_the_form_opens_a_concern_at_that_place(fake: FakeIntake) -> None:
    tracker = _location_tracker()
    events = await ActionStartConcern().run(CollectingDispatcher(), tracker, {})
    slots = slot_events(events)
    assert slots["place"] == "天河区体育西路103号" and slots["kind"] == "concern" and slots["description"] is None
    tracker.slots.update(slots)
    dispatcher = CollectingDispatcher()
    await AskDescription().run(dispatcher, tracker, {})
    assert texts(dispatcher) == "收到您的位置：天河区体育西路103号，请说说遇到了什么问题？"


async def test_location_inside_the_form_fills_the_place(fake: FakeIntake) -> None:
    form = ValidateConcernForm()
    tracker = _location_tracker(slots={"description": "路灯坏了", "requested_slot": "since_when"},
                                active_loop="concern_form")
    dispatcher = CollectingDispatcher()
    assert await form.extract_place(dispatcher, tracker, {}) == {"place": "天河区体育西路103号"}
    assert "收到您的位置：天河区体育西路103号" in texts(dispatcher)
    # An ordinary message never touches the place through this path.
    assert await form.extract_place(CollectingDispatcher(), make_tracker("三个月了"), {}) == {}


async def test_second_misunderstanding_in_a_row_offers_a_person(fake: FakeIntake) -> None:
    first = make_tracker("啊吧啊吧", "nlu_fallback")
    dispatcher = CollectingDispatcher()
    await ActionCoreFallback().run(dispatcher, first, {})
    assert responses(dispatcher) == ["utter_fallback"]
    events = [{"event": "user", "text": "啊吧啊吧"},
              {"event": "bot", "text": "…", "metadata": {"utter_action": "utter_fallback"}},
              {"event": "rewind"},
              {"event": "user", "text": "🙃🙃"}]
    second = make_tracker("🙃🙃", "nlu_fallback", slots={"description": "楼道灯坏了"}, active_loop="concern_form")
    second.events[:] = events
    dispatcher = CollectingDispatcher()
    result = await ActionCoreFallback().run(dispatcher, second, {})
    assert responses(dispatcher) == ["utter_offer_handoff"]
    assert "转人工" in texts(dispatcher) and RESPONSES["utter_offer_handoff"][0]["buttons"]
    assert [e["event"] for e in result] == ["rewind"]  # the draft and the form are untouched


async def test_bad_input_outside_the_form_gets_a_clear_answer(fake: FakeIntake) -> None:
    for text in ("😂😂😂😂", "qwertyuiop", "ⓐⓑⓒ ㅋㅋㅋ абв"):
        dispatcher = CollectingDispatcher()
        events = await ActionCoreFallback().run(dispatcher, make_tracker(text, "nlu_fallback"), {})
        assert [e["event"] for e in events] == ["rewind"], text
        assert "转人工" in texts(dispatcher), text


async def test_a_long_paste_is_taken_whole(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": "幸福路", "since_when": None, "scope": None, "phone": None}
    story = "尊敬的领导您好我想反映一下我们幸福路这边的问题" + "路灯一直不亮晚上走路很危险" * 400
    dispatcher = CollectingDispatcher()
    events = await ActionStartConcern().run(dispatcher, make_tracker(story, "report_concern"), {})
    assert slot_events(events)["description"] == story
    assert responses(dispatcher) == ["utter_too_long", "utter_concern_noted"]


async def test_photo_replies_come_from_the_domain(fake: FakeIntake) -> None:
    dispatcher = CollectingDispatcher()
    await ActionAttachMedia().run(dispatcher, make_tracker("/share_media", "share_media"), {})
    assert responses(dispatcher) == ["utter_photo_outside_form"] and "照片收到了" in texts(dispatcher)


async def test_a_payment_that_never_came_is_a_concern_not_a_lookup(fake: FakeIntake) -> None:
    fake.analysis = {"vague": False, "place": None, "since_when": "今年3月", "scope": None, "phone": None}
    story = "我母亲今年3月份申请的高龄津贴，社区说材料齐全了，到现在11月了一分钱也没到账"
    dispatcher = CollectingDispatcher()
    events = await ActionCheckProgress().run(dispatcher, make_tracker(story, "ask_progress"), {})
    assert [e["name"] for e in events if e["event"] == "followup"] == ["concern_form"]
    assert slot_events(events)["description"] == story and "没查到" not in texts(dispatcher)
    # A plain look-up with nothing filed still says so.
    dispatcher = CollectingDispatcher()
    await ActionCheckProgress().run(dispatcher, make_tracker("查进度", "ask_progress"), {})
    assert "没查到" in texts(dispatcher)


async def test_unreadable_place_answers_are_asked_again(fake: FakeIntake) -> None:
    form = ValidateConcernForm()
    for text in ("asdkjh qweoiu", "😂😂😂", "123", "Привет ㅋㅋㅋ"):
        dispatcher = CollectingDispatcher()
        assert await form.validate_place(text, dispatcher, make_tracker(text), {}) == {"place": None}, text
        assert responses(dispatcher) == ["utter_place_needed"], text
    assert await form.validate_place("5号楼", CollectingDispatcher(), make_tracker("5号楼"), {}) == {"place": "5号楼"}


async def test_a_no_that_names_nothing_is_not_taken_as_a_new_place(fake: FakeIntake) -> None:
    events, dispatcher = await _answer("不是，还是交吧", "deny", READ_BACK)
    assert slot_events(events) == {"awaiting": "confirm"} and responses(dispatcher) == ["utter_ask_correction"]
