"""Issue 10's privacy walk-through against the real stack (Rasa, action server, intake service): the
resident's words with a name, flat, mobiles (one full-width), a landline and an ID number, no consent,
anonymous, told through web chat, Rasa's REST channel and WeChat (safe mode). Then every surface is
read the way an outsider or a member would: the public case view, another resident's progress answer,
the member report in the outbox, Rasa's tracker API, the database, the logs.

What redaction hides is decided by bot.text.redact (the one redaction path); these tests check that
every surface is at least as private as that path, and that the mobile and the ID number never show.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.service.pseudonym import pseudonymise
from tests.test_access import PII, PII_TEXT, PUBLIC_KEYS, assert_private
from tests.test_dialogue_e2e import CASE_RE, answer_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# No contact, anonymous: the resident declines every personal detail.
OVERRIDES = {"联系电话吗": "不留", "手机号": "不留", "匿名": "匿名", "发生在哪里": "幸福小区南门口"}
RUN = uuid.uuid4().hex[:6]
SENDERS = {"web": f"privweb{RUN}", "rest": f"e2e-priv-rest-{RUN}", "wechat": f"oPriv{RUN}"}
# The same personal details with a different problem per channel, so no story is merged into another's case.
_PROBLEM = "小区门口的路灯坏了两个月，晚上特别黑，老人摔过好几次。"
assert _PROBLEM in PII_TEXT
STORIES = {
    "web": PII_TEXT,
    "rest": PII_TEXT.replace(_PROBLEM, "楼下的下水道堵了一个多星期，污水漫到楼道里，臭得没法进门。"),
    "wechat": PII_TEXT.replace(_PROBLEM, "单元楼的电梯停了半个月没人修，老人只能爬楼，物业一直推脱。"),
}


def walk(send: Callable[[str], list[str]], opener: str) -> tuple[list[list[str]], str]:
    """Answer the form's questions until the case number comes; returns the turns and the number."""
    turns = [send(opener)]
    for _ in range(12):
        found = CASE_RE.search(" ".join(turns[-1]))
        if found and "编号" in " ".join(turns[-1]):
            return turns, found.group(0)
        answer = answer_for(turns[-1], OVERRIDES)
        assert answer is not None, f"unexpected bot turn: {turns}"
        turns.append(send(answer))
    pytest.fail(f"no case number: {turns}")


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def rasa_api(stack, path: str, method: str = "GET", token: bool = True) -> tuple[int, str]:
    query = "?" + urllib.parse.urlencode({"token": stack.rasa_token}) if token else ""
    return http(method, f"{stack.rasa_url}{path}{query}")


def tracker_events(stack, sender: str) -> list[dict]:
    status, body = rasa_api(stack, f"/conversations/{urllib.parse.quote(sender)}/tracker")
    assert status == 200, body
    return json.loads(body)["events"] or []


def bot_answer(stack, sender: str, users_before: int, timeout: float = 90.0) -> list[str]:
    """The bot's answer to the next user turn, read from the tracker once the turn is over (WeChat
    answers a slow turn later through the customer-service API, which this test deployment lacks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = tracker_events(stack, sender)
        users = [i for i, e in enumerate(events) if e["event"] == "user"]
        done = events and events[-1]["event"] == "action" and events[-1].get("name") == "action_listen"
        if len(users) > users_before and done:
            return [e["text"] for e in events[users[-1]:] if e["event"] == "bot" and e.get("text")]
        time.sleep(0.5)
    pytest.fail(f"no answer for {sender} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def filed(stack) -> dict[str, dict]:
    """The same resident's story through the three channels; per channel: number, turns, Rasa sender."""
    from tests.test_wechat_channel import WeChatClient, wechat_xml

    out: dict[str, dict] = {}

    def web_send(text: str) -> list[str]:
        status, body = http("POST", f"{stack.intake_url}/chat/send", {"sender": SENDERS["web"], "message": text})
        assert status == 200, body
        return [r["text"] for r in json.loads(body)["replies"] if r.get("text")]

    turns, number = walk(web_send, STORIES["web"])
    out["web"] = {"number": number, "turns": turns, "rasa_sender": f"web-{SENDERS['web']}", "channel": "rest"}

    turns, number = walk(lambda text: stack.say(SENDERS["rest"], text), STORIES["rest"])
    out["rest"] = {"number": number, "turns": turns, "rasa_sender": SENDERS["rest"], "channel": "rest"}

    client = WeChatClient(f"{stack.rasa_url}/webhooks/wechat/webhook", aes=True)
    msg_ids = iter(range(int(time.time() * 1000), int(time.time() * 1000) + 100))

    def wechat_send(text: str) -> list[str]:
        sender = SENDERS["wechat"]
        users_before = sum(1 for e in tracker_events(stack, sender) if e["event"] == "user")
        xml = wechat_xml("text", {"Content": text}, msg_id=next(msg_ids), sender=sender)
        status, _reply, _ = asyncio.run(client.send(xml))
        assert status == 200
        return bot_answer(stack, sender, users_before)

    turns, number = walk(wechat_send, STORIES["wechat"])
    out["wechat"] = {"number": number, "turns": turns, "rasa_sender": SENDERS["wechat"], "channel": "wechat"}
    return out


def test_public_case_view_shows_status_and_subject_only(stack, filed) -> None:
    for channel, info in filed.items():
        status, body = http("GET", f"{stack.intake_url}/api/v1/cases/{info['number']}")
        assert status == 200, body
        case = json.loads(body)
        assert set(case) == PUBLIC_KEYS and case["view"] == "public", channel
        assert_private(body)


def test_the_filer_sees_the_full_view_through_the_action_server_only(stack, filed) -> None:
    info = filed["rest"]
    url = f"{stack.intake_url}/api/v1/cases/{info['number']}"
    status, body = http("GET", url, headers=stack.service_headers(info["rasa_sender"], info["channel"]))
    assert status == 200 and json.loads(body)["view"] == "full"
    assert_private(body)
    status, body = http("GET", url, headers={"X-Shangliang-Sender": info["rasa_sender"]})
    assert json.loads(body)["view"] == "public"  # a vouch without the service token is not believed


def test_another_resident_asking_by_number_hears_status_and_subject(stack, filed) -> None:
    stranger = f"e2e-priv-stranger-{RUN}"
    for channel, info in filed.items():
        replies = stack.say(stranger, f"帮我查一下{info['number']}的进度")
        text = "\n".join(replies)
        assert info["number"] in text and "状态" in text, (channel, replies)
        assert_private(text)


def test_read_back_keeps_no_contact_without_consent(filed) -> None:
    # The read-back repeats the resident's own story to them; the contact line says none is kept.
    for channel, info in filed.items():
        read_back = [r for turn in info["turns"] for r in turn if "核对" in r]
        assert read_back and all("联系电话：不留" in r for r in read_back), (channel, read_back)


def test_member_report_in_the_outbox_is_redacted(stack, filed) -> None:
    outbox = stack.stack.var_dir / "outbox"
    for channel, info in filed.items():
        deadline = time.monotonic() + 60
        reports: list[Path] = []
        while time.monotonic() < deadline and not reports:
            reports = [p for p in outbox.rglob("*") if p.is_file() and info["number"] in p.read_text("utf-8")]
            time.sleep(1)
        assert reports, f"no report for {info['number']} ({channel})"
        for report in reports:
            assert_private(report.read_text(encoding="utf-8"))


def test_rasa_http_api_needs_the_token_and_phone_slots_are_cleared(stack, filed) -> None:
    for channel, info in filed.items():
        path = f"/conversations/{urllib.parse.quote(info['rasa_sender'])}/tracker"
        status, body = rasa_api(stack, path, token=False)
        assert status == 401, (channel, body[:200])
        assert "13612345678" not in body and "Traceback" not in body
        status, body = rasa_api(stack, path)
        assert status == 200
        slots = json.loads(body)["slots"]
        assert slots.get("phone") is None and slots.get("description") is None, (channel, slots)
    assert rasa_api(stack, "/model", method="PUT", token=False)[0] == 401
    assert rasa_api(stack, "/status", token=False)[0] == 401
    # The channels Rasa serves stay open.
    status, _ = http("POST", f"{stack.rasa_url}/webhooks/rest/webhook", {"sender": f"e2e-open-{RUN}", "message": "你好"})
    assert status == 200


def test_intake_api_refuses_strangers(stack, filed) -> None:
    info = filed["wechat"]
    for method, path, body in [
        ("GET", f"/api/v1/cases?sender={SENDERS['wechat']}&channel=wechat", None),
        ("POST", "/api/v1/submissions", {"text": PII_TEXT}),
        ("POST", "/api/v1/submissions/1/merge", {"case_number": info["number"]}),
        ("POST", "/api/v1/submissions/1/keep", {}),
        ("POST", "/api/v1/handoffs", {"sender": "x", "text": "hi"}),
    ]:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "garbage"}):
            status, text = http(method, f"{stack.intake_url}{path}", body, headers)
            assert status == 401 and json.loads(text)["error"]["code"] == "unauthorized", (path, headers)


def test_database_keeps_no_raw_ids_and_no_contact_without_consent(stack, filed, monkeypatch) -> None:
    # Pseudonyms are keyed by the deployment's secret, not this test process's.
    monkeypatch.setenv("SHANGLIANG_SECRET", (stack.stack.var_dir / "secret.key").read_text().strip())
    engine = sa.create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "select s.id, s.sender, s.channel, s.external_id, s.anonymous from submissions s")).all()
            contacts = conn.execute(sa.text("select submission_id, phone from contacts")).all()
    finally:
        engine.dispose()
    for channel, info in filed.items():
        [row] = [r for r in rows if r.sender == pseudonymise(info["channel"], info["rasa_sender"])]
        assert row.anonymous, channel
        assert info["rasa_sender"] not in (row.external_id or "")  # client_ref from the pseudonym
        assert row.id not in {c.submission_id for c in contacts}  # no consent, no contact row
    assert all(raw not in str(r) for r in rows for raw in SENDERS.values())
    assert all(c.phone not in ("13612345678", "13987654321") for c in contacts)


def test_logs_hold_no_numbers_or_raw_ids(stack, filed) -> None:
    for name in ("intake", "actions", "rasa"):
        log = (stack.stack.log_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        for item in PII:
            assert item not in log, (name, item)
        if name == "intake":
            assert all(sender not in log for sender in SENDERS.values())
