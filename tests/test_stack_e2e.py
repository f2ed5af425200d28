"""End-to-end checks across the running processes that no single part's tests cover:
a filed case becomes a routed report on disk, a neighbour's identical report is recognised,
the web chat page works, and hostile input through the REST channel gets a clear answer."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.e2e

LIFT = ("我们锦绣花园小区8栋的电梯从上个月开始就一直坏着，物业说在等配件，到现在快一个月了还没修好。"
        "楼里好多老人腿脚不方便，天天爬十几层楼，请尽快督促物业把电梯修好。")


def _submit(stack, text: str, sender: str, place: str) -> dict:
    return stack.post_json(f"{stack.intake_url}/api/v1/submissions", {
        "text": text, "channel": "rest", "sender": sender, "place": place,
        "client_ref": f"e2e-{uuid.uuid4().hex}",
    }, headers=stack.service_headers())


def test_filed_case_is_routed_and_its_report_written_to_the_outbox(stack) -> None:
    created = _submit(stack, "滨江路和学士路交叉口没有红绿灯，早上送孩子上学的车和电动车抢道，很危险，建议装信号灯。",
                      "e2e-route", "滨江路学士路口")
    number = created["case_number"]
    outbox = stack.stack.var_dir / "outbox"
    deadline = time.monotonic() + 60
    reports: list = []
    while time.monotonic() < deadline and not reports:
        reports = [p for p in outbox.rglob("*.md") if number in p.read_text(encoding="utf-8")]
        time.sleep(1)
    assert reports, f"no report for {number} under {outbox}: {stack.logs('intake')[-2000:]}"
    body = reports[0].read_text(encoding="utf-8")
    assert "红绿灯" in body
    case = stack.get_json(f"{stack.intake_url}/api/v1/cases/{number}")
    assert case["status"] != "received", case  # routing moved it on


def test_neighbour_reporting_the_same_lift_is_offered_the_existing_case(stack) -> None:
    first = _submit(stack, LIFT, "e2e-lift-1", "锦绣花园小区8栋")
    # Other tests in this stack session may have reported this lift already: count from here on.
    before = stack.get_json(f"{stack.intake_url}/api/v1/cases/{first['case_number']}")["supporters"]
    second = _submit(stack, LIFT, "e2e-lift-2", "锦绣花园小区8栋")
    decision = second["duplicate"]
    assert decision["decision"] in ("merged", "ask"), decision
    candidates = [c["case_number"] for c in decision["candidates"]]
    assert first["case_number"] in candidates or second["case_number"] == first["case_number"], decision
    if decision["decision"] == "ask":
        merged = stack.post_json(f"{stack.intake_url}/api/v1/submissions/{second['submission_id']}/merge",
                                 {"case_number": first["case_number"]}, headers=stack.service_headers("e2e-lift-2"))
        assert merged["case_number"] == first["case_number"]
    case = stack.get_json(f"{stack.intake_url}/api/v1/cases/{first['case_number']}")
    assert case["supporters"] == before + 1, (before, case)


def test_a_different_estate_with_the_same_problem_is_a_new_case(stack) -> None:
    _submit(stack, LIFT, "e2e-estate-1", "锦绣花园小区8栋")
    other = LIFT.replace("锦绣花园小区8栋", "阳光新城3期12栋")
    created = _submit(stack, other, "e2e-estate-2", "阳光新城3期12栋")
    assert created["duplicate"]["decision"] != "merged", created


def test_same_road_other_problem_is_never_merged_without_asking(stack) -> None:
    _submit(stack, "解放路与人民路交叉口的红绿灯坏了好几天了，早晚高峰车辆乱闯，行人过马路非常危险。",
            "e2e-road-1", "解放路与人民路交叉口")
    other = _submit(stack, "解放路与中山路交叉口的井盖丢了好几天了，早晚高峰车辆绕行，行人过马路非常危险。",
                    "e2e-road-2", "解放路与中山路交叉口")
    assert other["duplicate"]["decision"] != "merged", other


def test_same_problem_at_the_same_crossing_in_other_words_is_merged_or_asked(stack) -> None:
    first = _submit(stack, "滨江路和学士路交叉口的红绿灯坏了三天了，早上送孩子上学的车和电动车抢道，很危险。",
                    "e2e-crossing-1", "滨江路和学士路交叉口")
    second = _submit(stack, "学士路与滨江路路口红绿灯坏了好几天，早上上学时间车和电动车抢道，太危险了。",
                     "e2e-crossing-2", "学士路与滨江路路口")
    decision = second["duplicate"]
    assert decision["decision"] in ("merged", "ask"), decision
    assert first["case_number"] in [c["case_number"] for c in decision["candidates"]] \
        or second["case_number"] == first["case_number"], decision


def test_web_chat_page_and_its_proxy(stack) -> None:
    with urllib.request.urlopen(f"{stack.intake_url}/chat", timeout=30) as resp:
        page = resp.read().decode("utf-8")
    assert "<html" in page.lower() and "商量" in page
    answer = stack.post_json(f"{stack.intake_url}/chat/send", {"sender": "webe2e12345", "message": "你好"})
    assert answer["replies"] and any(r.get("text") for r in answer["replies"]), answer


@pytest.mark.parametrize("text", ["😀😀😀🙏", "x" * 20000, "\x00\x01\x02 垃圾 \ufffd", "   "])
def test_odd_messages_through_rest_get_an_answer(stack, text: str) -> None:
    sender = f"e2e-odd-{uuid.uuid4().hex[:8]}"
    try:
        replies = stack.say(sender, text)
    except urllib.error.HTTPError as exc:  # Rasa may refuse a body outright; it must not be a server error
        assert exc.code < 500, exc
        return
    if text.strip():
        assert replies, f"no answer to {text[:20]!r}"
    # The conversation still works afterwards.
    assert stack.say(sender, "你好")


def test_service_error_messages_are_chinese_and_stable(stack) -> None:
    request = urllib.request.Request(f"{stack.intake_url}/api/v1/submissions", data=b"\xff\xfe not json",
                                     headers={"Content-Type": "application/json", **stack.service_headers()},
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    body = json.loads(info.value.read().decode("utf-8"))
    assert info.value.code == 400
    assert body["error"]["code"] == "invalid_json"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["error"]["message"])
