"""The console in a real browser (Playwright driving Debian's chromium) against the intake service
running as its own process on a seeded SQLite database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.console_seed import PASSWORD, Seeded, seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "var" / "screenshots"

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make browser)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    url: str
    seeded: Seeded
    database_url: str
    var: Path

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def _start(var: Path, database_url: str, **env: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    environment = {**os.environ, "SHANGLIANG_VAR": str(var), "SHANGLIANG_API_TOKEN": "console-token",
                   "SHANGLIANG_SECRET": "console-test-secret", "PYTHONPATH": str(REPO), **env}
    log = open(var / f"server-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, "-m", "tests.console_server", "--port", str(port),
                             "--database-url", database_url], cwd=REPO, env=environment, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((var / f"server-{port}.log").read_text(errors="replace")[-3000:])
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("console server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    var = tmp_path_factory.mktemp("console-var")
    database_url = f"sqlite:///{var / 'console.db'}"
    os.environ["SHANGLIANG_VAR"] = str(var)  # the seeding process writes its own secret/token files there
    try:
        seeded = seed(database_url)
    finally:
        os.environ.pop("SHANGLIANG_VAR", None)
    proc, url = _start(var, database_url)
    try:
        yield Console(url=url, seeded=seeded, database_url=database_url, var=var)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    yield context.new_page()
    context.close()


def login(page: Any, console: Console, username: str, password: str = PASSWORD, path: str = "/console/") -> None:
    page.goto(console.url + path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def queue_numbers(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("table.queue td.number").all_inner_texts()]


def test_staff_logs_in_and_filters_the_queue(page: Any, console: Console) -> None:
    login(page, console, "staff1")
    assert page.url.endswith("/console/cases")
    assert page.locator("h1").first.inner_text().startswith("案件列表")
    assert len(queue_numbers(page)) == 50  # first page of 63 cases
    page.click("text=下一页")
    assert len(queue_numbers(page)) == 13
    page.goto(console.url + "/console/cases")
    page.click("summary")
    page.fill("input[name=q]", "红绿灯")
    page.click("form.filter-grid button[type=submit]")
    assert queue_numbers(page) == [console.seeded.wang_case]
    page.goto(console.url + "/console/cases")
    page.click("nav.tabs >> text=待派单")
    statuses = page.locator("table.queue .badge").all_inner_texts()
    assert statuses and set(statuses) == {"待派单"}
    page.goto(console.url + "/console/cases?area=拱墅区")
    assert queue_numbers(page) == [console.seeded.li_case]


def test_member_accepts_replies_and_notes_resident_sees_only_the_reply(page: Any, console: Console) -> None:
    number = console.seeded.wang_case
    login(page, console, "wang")
    assert page.locator("h1").first.inner_text().startswith("我的案件")
    assert queue_numbers(page) == [number]  # only what is routed to wang or his committee
    page.click(f"text={number}")
    body = page.locator("main").inner_text()
    assert console.seeded.phone in body  # the resident consented to a call-back
    page.click("form[action$='/accept'] button")
    assert "已接单" in page.locator(".notice.ok").inner_text()
    assert page.locator(".casehead .badge").first.inner_text() == "已接单"

    reply = "您反映的路口信号灯已报交警部门，预计本周内修复。"
    note = "已电话联系交警支队李科长，内部跟进，勿对外。"
    page.fill("textarea[name=public_reply]", reply)
    page.click("form[action$='/reply'] button")
    assert "公开答复已发布" in page.locator(".notice.ok").inner_text()
    page.fill("textarea[name=internal_note]", note)
    page.click("form[action$='/note'] button")
    assert "内部备注已保存" in page.locator(".notice.ok").inner_text()
    timeline = page.locator(".timeline").inner_text()
    assert reply in timeline and note in timeline
    assert page.locator(".timeline li.internal").first.inner_text().count(note) == 1

    # A stranger with the number sees the status only; the full view (the resident who filed it, or staff:
    # the same view) reads the public reply as the latest update, never the internal note.
    status, view = console.get_json(f"/api/v1/cases/{number}")
    assert status == 200
    assert view["status"] == "accepted" and view["view"] == "public"
    assert reply not in json.dumps(view, ensure_ascii=False) and note not in json.dumps(view, ensure_ascii=False)
    status, full_view = console.get_json(f"/api/v1/cases/{number}", token="console-token")
    assert status == 200 and full_view["view"] == "full"
    assert full_view["last_update"]["note"] == reply
    assert note not in json.dumps(full_view, ensure_ascii=False)


def test_member_never_opens_a_case_not_routed_to_them(page: Any, console: Console) -> None:
    login(page, console, "wang")
    for number in (console.seeded.li_case, console.seeded.desk_case):
        response = page.goto(f"{console.url}/console/cases/{number}")
        assert response.status == 403
        assert "没有权限" in page.locator("main").inner_text()
        assert console.seeded.secret_phone not in page.content()
    # The API refuses the same member's session too (with a valid CSRF header).
    page.goto(f"{console.url}/console/cases/{console.seeded.wang_case}")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.patch(f"{console.url}/api/v1/cases/{console.seeded.li_case}",
                                  data=json.dumps({"internal_note": "越权"}),
                                  headers={"Content-Type": "application/json", "X-CSRF-Token": token})
    assert response.status == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_forged_posts_are_refused(page: Any, console: Console) -> None:
    number = console.seeded.desk_case
    login(page, console, "staff1")
    page.goto(f"{console.url}/console/cases/{number}")
    for token in (None, "forged-token"):
        form = {"internal_note": "伪造的备注", "version": ""}
        if token:
            form["csrf_token"] = token
        response = page.request.post(f"{console.url}/console/cases/{number}/note", form=form)
        assert response.status == 403
    # A session-authenticated PATCH without the CSRF header is refused as well.
    response = page.request.patch(f"{console.url}/api/v1/cases/{number}", data=json.dumps({"status": "closed"}),
                                  headers={"Content-Type": "application/json"})
    assert response.status == 403
    page.goto(f"{console.url}/console/cases/{number}")
    assert "伪造的备注" not in page.locator(".timeline").inner_text()
    assert page.locator(".casehead .badge").first.inner_text() == "待派单"


def test_wrong_passwords_are_throttled(page: Any, console: Console) -> None:
    for _ in range(5):
        login(page, console, "zhao", password="wrong-password")
        assert "用户名或密码不正确" in page.locator(".notice.error").inner_text()
    login(page, console, "zhao")  # the right password, but too late
    assert "登录失败次数过多" in page.locator(".notice.error").inner_text()
    assert "/console/login" in page.url
    assert page.locator("input[name=password]").count() == 1


def test_concurrent_edit_is_not_overwritten(browser: Any, console: Console) -> None:
    number = console.seeded.desk_case
    first, second = (browser.new_context(viewport={"width": 1366, "height": 900}) for _ in range(2))
    try:
        a, b = first.new_page(), second.new_page()
        for page in (a, b):
            login(page, console, "staff1", path=f"/console/cases/{number}")
            assert page.url.endswith(f"/console/cases/{number}")
        note = "先打电话问清楚具体位置。"
        a.fill("textarea[name=internal_note]", note)
        a.click("form[action$='/note'] button")
        assert "内部备注已保存" in a.locator(".notice.ok").inner_text()
        text = "晚到的答复，不应覆盖别人刚做的修改。"
        b.fill("textarea[name=public_reply]", text)
        b.click("form[action$='/reply'] button")
        assert "已被其他人修改" in b.locator(".notice.error").inner_text()
        assert b.locator("textarea[name=public_reply]").input_value() == text  # kept for a second try
        assert note in b.locator(".timeline").inner_text()  # the page now shows what changed
        assert text not in b.locator(".timeline").inner_text()
        _, view = console.get_json(f"/api/v1/cases/{number}", token="console-token")
        assert (view["last_update"] or {}).get("note") != text
        b.click("form[action$='/reply'] button")  # a second try, on the fresh page, goes through
        assert "公开答复已发布" in b.locator(".notice.ok").inner_text()
    finally:
        first.close()
        second.close()


def test_expired_session_returns_to_login_and_remembers_the_page(browser: Any, console: Console) -> None:
    proc, url = _start(console.var, console.database_url, SHANGLIANG_CONSOLE_IDLE_SECONDS="2")
    context = browser.new_context()
    try:
        page = context.new_page()
        number = console.seeded.wang_case
        short = Console(url=url, seeded=console.seeded, database_url=console.database_url, var=console.var)
        login(page, short, "staff1", path=f"/console/cases/{number}")
        assert page.url.endswith(f"/console/cases/{number}")
        time.sleep(3.5)
        page.reload()
        assert "/console/login" in page.url
        assert "登录已过期" in page.locator(".notice.error").inner_text()
        page.fill("input[name=username]", "staff1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        assert page.url.endswith(f"/console/cases/{number}")
    finally:
        context.close()
        _stop(proc)


def test_bulk_assign_reaches_the_member(browser: Any, console: Console) -> None:
    staff = browser.new_context(viewport={"width": 1366, "height": 900})
    member = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = staff.new_page()
        login(page, console, "staff1", path="/console/cases?q=号楼下水管道&status=received")
        picked = queue_numbers(page)[:2]
        for number in picked:
            page.check(f"input[name=case][value='{number}']")
        page.select_option("select[name=action]", "assign")
        page.select_option("#bulk select[name=member_id]", "li")
        page.click("#bulk .bulkbar button")
        assert "已处理 2 件" in page.locator(".notice.ok").inner_text()
        li = member.new_page()
        login(li, console, "li")
        assert set(picked) <= set(queue_numbers(li))
    finally:
        staff.close()
        member.close()


@pytest.mark.parametrize("width,height", [(390, 844), (1366, 900)])
def test_screenshots_fit_the_screen(browser: Any, console: Console, width: int, height: int) -> None:
    """Queue and case page on a phone and a desktop: saved under var/screenshots/ to look at; nothing may
    stick out sideways (no horizontal scrolling) and the key controls are on the page."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page = context.new_page()
        login(page, console, "staff1")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"queue-{width}x{height}.png"), full_page=False)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.goto(f"{console.url}/console/cases/{console.seeded.wang_case}")
        page.screenshot(path=str(SCREENSHOTS / f"case-{width}x{height}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # The status form shows a select only when this role has a move to offer in the case's state.
        for selector in (".form-status", "textarea[name=public_reply]", "textarea[name=internal_note]"):
            assert page.locator(selector).is_visible()
    finally:
        context.close()



def test_month_page_and_excel(page: Any, console: Console, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    login(page, console, "staff1")
    page.click("nav.sections >> text=月度对账")
    assert "月度对账" in page.locator("h1").inner_text()
    tables = page.locator("table.month").all_inner_texts()
    assert any("交通专委会" in t for t in tables) and any("王委员" in t for t in tables)
    with page.expect_download() as info:
        page.click("text=导出 Excel")
    path = tmp_path / "month.xlsx"
    info.value.save_as(path)
    book = load_workbook(path)
    committees = {row[0]: row for row in book["专委会"].iter_rows(min_row=3, values_only=True)}
    assert committees["交通专委会"][2] >= 1  # the case routed to the transport committee this month
    member = page.context.browser.new_context()
    try:
        other = member.new_page()
        login(other, console, "wang")
        assert other.goto(f"{console.url}/console/monthly").status == 403
    finally:
        member.close()


def test_staff_merge_undo_and_split(page: Any, console: Console) -> None:
    login(page, console, "staff1", path="/console/cases?q=第10号楼")
    [source] = queue_numbers(page)
    page.goto(f"{console.url}/console/cases?q=第12号楼")
    [target] = queue_numbers(page)
    page.goto(f"{console.url}/console/cases/{source}")
    page.fill("form[action$='/merge'] input[name=target]", target)
    page.click("form[action$='/merge'] button")
    assert page.url.endswith(f"/console/cases/{target}")  # the page of the case it joined
    assert "群众反映（2 条）" in page.locator("main").inner_text()
    assert source in page.locator("ul.merged").inner_text()
    _, view = console.get_json(f"/api/v1/cases/{target}")
    assert view["supporters"] == 2
    page.click(f"form[action='/console/cases/{source}/unmerge'] button")
    assert "已撤销合并" in page.locator(".notice.ok").inner_text()
    _, view = console.get_json(f"/api/v1/cases/{target}")
    assert view["supporters"] == 1
    _, back = console.get_json(f"/api/v1/cases/{source}")
    assert back["status"] != "merged"
    # Merge again, then split the report back out from the target's page.
    page.goto(f"{console.url}/console/cases/{source}")
    page.fill("form[action$='/merge'] input[name=target]", target)
    page.click("form[action$='/merge'] button")
    page.locator("form.split button").last.click()
    assert "拆分为单独的案件" in page.locator(".notice.ok").inner_text()
    _, view = console.get_json(f"/api/v1/cases/{target}")
    assert view["supporters"] == 1
