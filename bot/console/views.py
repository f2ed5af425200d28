"""Console request handlers: parse the request, ask access/casework, render a template. Nothing else."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import distinct, select

from bot.accounts import service as accounts
from bot.accounts.models import ROLE_LABELS, User
from bot.console import casework, queue
from bot.console.access import Actor
from bot.console.detail import load_detail, safe_redact
from bot.console.keys import CONSOLE_SETTINGS, TEMPLATES
from bot.console.websession import (
    CSRF_FIELD,
    actor_of,
    csrf_ok,
    csrf_token,
    login_url,
    safe_next,
    session_user_id,
    start_session,
)
from bot.routing.models import Committee, Member
from bot.service.keys import PIPELINE
from bot.storage.models import CASE_STATUS_LABELS, Case, utcnow
from bot.workflow.access import access_case
from bot.workflow.errors import CaseNotFound, ConcurrentEdit, PermissionDenied, WorkflowError
from bot.workflow.overdue import is_overdue
from bot.workflow.states import STATES

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]

# Short labels for staff screens, from the workflow's table (CASE_STATUS_LABELS are the residents' sentences).
STATUS_SHORT = {name: state.label for name, state in STATES.items()}


async def _db(request: web.Request, work: Callable[..., T], *args: Any) -> T:
    """Run `work(session, *args)` in a transaction off the event loop; commits when it returns."""
    factory = request.app[PIPELINE].session_factory

    def run() -> T:
        with factory() as session:
            result = work(session, *args)
            session.commit()
            return result

    return await asyncio.get_running_loop().run_in_executor(None, run)


def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    base = {"status_short": STATUS_SHORT, "status_labels": CASE_STATUS_LABELS, "role_labels": ROLE_LABELS,
            "actor": request.get("actor"), "csrf_field": CSRF_FIELD, "csrf": request.get("csrf", ""),
            "flash": request.get("flash", [])}
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status,
                                              app_key=TEMPLATES)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' https: http: data:"
    return response


def _forbidden(request: web.Request, message: str = "您没有权限查看或办理这个案件。") -> web.Response:
    return _render(request, "error.html", {"title": "没有权限", "message": message}, status=403)


def _flash(session: Any, kind: str, text: str) -> None:
    session["flash"] = [*session.get("flash", []), [kind, text]]


def login_required(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Loads the session's account; sends anyone without a live session to the login page, remembering
    where they were. State-changing requests must carry the session's CSRF token, or get 403."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        config = request.app[CONSOLE_SETTINGS]
        session, uid, expired = await session_user_id(request, config)
        user = await _db(request, lambda s: s.get(User, uid)) if uid is not None else None
        if user is None or user.disabled:
            session.invalidate()
            target = login_url(request) + ("&expired=1" if expired else "")
            raise web.HTTPFound(target)
        actor = actor_of(user)
        request["actor"] = actor
        request["csrf"] = csrf_token(session)
        request["flash"] = session.pop("flash", [])
        if request.method == "POST":
            form = await request.post()
            request["form"] = form
            if not csrf_ok(session, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
                log.warning("console: CSRF check failed for %s on %s", actor.username, request.path)
                return _forbidden(request, "页面已过期或请求来源不可信，操作没有执行。请刷新页面后重试。")
        return await handler(request, actor)

    return wrapper


# ---- login -------------------------------------------------------------------------------------------

async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/cases")


async def login_page(request: web.Request) -> web.Response:
    from aiohttp_session import get_session

    session = await get_session(request)
    request["csrf"] = csrf_token(session)
    message = "登录已过期，请重新登录。" if request.query.get("expired") else None
    return _render(request, "login.html", {"next": safe_next(request.query.get("next")), "error": message})


def _client_address(request: web.Request) -> str:
    # Behind nginx (deploy/) the service listens on loopback; the proxy's X-Real-IP is the client then.
    peer = request.remote or "unknown"
    if peer in ("127.0.0.1", "::1") and request.headers.get("X-Real-IP"):
        return request.headers["X-Real-IP"][:64]
    return peer


async def login_submit(request: web.Request) -> web.Response:
    from aiohttp_session import get_session

    session = await get_session(request)
    form = await request.post()
    request["csrf"] = csrf_token(session)
    target = safe_next(str(form.get("next") or ""))
    if not csrf_ok(session, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return _forbidden(request, "页面已过期或请求来源不可信，请刷新登录页后重试。")
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    throttle = request.app[CONSOLE_SETTINGS].throttle
    user, outcome = await _db(request, accounts.authenticate, username, password, _client_address(request),
                              throttle)
    if user is None:
        if outcome == "throttled":
            minutes = int(throttle.window.total_seconds() // 60)
            error, status = f"登录失败次数过多，请 {minutes} 分钟后再试。", 429
        else:
            error, status = "用户名或密码不正确。", 401
        return _render(request, "login.html", {"next": target, "error": error, "username": username[:64]},
                       status=status)
    await start_session(request, user)
    raise web.HTTPFound(target)


@login_required
async def logout(request: web.Request, actor: Actor) -> web.Response:
    from aiohttp_session import get_session

    await _db(request, accounts.audit, None, "logout", None, None, actor.username)
    (await get_session(request)).invalidate()
    raise web.HTTPFound("/console/login")


# ---- queue -------------------------------------------------------------------------------------------

def _topic_namer(request: web.Request) -> Callable[[str | None], str]:
    analysis = request.app[PIPELINE].analysis
    return lambda topic: analysis.topic_name(topic) if topic else "未分类"


def _queue_context(session: Any, actor: Actor, filters: queue.QueueFilters,
                   topic_name: Callable[[str | None], str]) -> dict[str, Any]:
    counts = queue.status_counts(session, actor)
    page = queue.load_queue(session, actor, filters, counts=counts)
    now = utcnow()
    rows = [{"number": c.number, "title": safe_redact(c.title) or "（无标题）", "status": c.status,
             "topic": topic_name(c.topic), "place": safe_redact(c.place) if c.place else (c.jurisdiction or ""),
             "supporters": c.supporter_count, "created_at": c.created_at, "updated_at": c.updated_at,
             "overdue": is_overdue(c, now),
             "due_at": c.due_at} for c in page.cases]
    topics = [t for (t,) in session.execute(select(distinct(Case.topic)).where(Case.topic.isnot(None)))]
    committees = session.execute(select(Committee.id, Committee.name).order_by(Committee.id)).all()
    members = session.execute(select(Member.id, Member.name).where(Member.active.is_(True))
                              .order_by(Member.id)).all() if actor.is_staff else []
    return {"rows": rows, "page": page, "filters": filters,
            "topics": sorted((t, topic_name(t)) for t in topics),
            "committees": committees, "members": members, "counts": counts,
            "sorts": {k: v[0] for k, v in queue.SORTS.items()},
            "bulk_statuses": ["in_progress", "resolved", "closed", "reopened"]}


@login_required
async def cases_page(request: web.Request, actor: Actor) -> web.Response:
    filters = queue.QueueFilters.parse(request.query)
    context = await _db(request, _queue_context, actor, filters, _topic_namer(request))
    return _render(request, "cases.html", context)


@login_required
async def bulk_action(request: web.Request, actor: Actor) -> web.Response:
    from aiohttp_session import get_session

    if not actor.is_staff:
        return _forbidden(request, "只有机关工作人员可以批量处理案件。")
    form = request["form"]
    numbers = [str(n) for n in form.getall("case", [])][:200]
    action = str(form.get("action") or "")
    back = safe_next(str(form.get("back") or "/console/cases"))

    def run(session: Any) -> tuple[int, list[str]]:
        done, failed = 0, []
        for number in numbers:
            try:
                with session.begin_nested():  # one refused case does not undo the others
                    if action == "assign":
                        casework.run_transition(session, actor, number, "assign",
                                                casework.CaseChange(member_id=str(form.get("member_id") or "")))
                    elif action == "status":
                        casework.change_case(session, actor, number,
                                             casework.CaseChange(status=str(form.get("status") or "")))
                    else:
                        raise WorkflowError("请选择批量操作。")
                done += 1
            except WorkflowError:
                failed.append(number)
        return done, failed

    done, failed = await _db(request, run)
    session = await get_session(request)
    if not numbers:
        _flash(session, "error", "请先勾选要处理的案件。")
    elif failed:
        _flash(session, "error", f"已处理 {done} 件；{len(failed)} 件未能处理：{'、'.join(failed[:10])}")
    else:
        _flash(session, "ok", f"已处理 {done} 件案件。")
    raise web.HTTPFound(back)


# ---- case page ---------------------------------------------------------------------------------------

def _case_context(session: Any, actor: Actor, number: str,
                  topic_name: Callable[[str | None], str]) -> dict[str, Any]:
    case = access_case(session, actor, number)
    detail = load_detail(session, actor, case)
    return {"d": detail, "case": case, "version": case.version, "topic": topic_name(case.topic),
            "status_choices": casework.status_choices(actor, case), "overdue": is_overdue(case),
            "can_accept": casework.can(actor, case, "accept") and not actor.is_staff,
            "can_decline": casework.can(actor, case, "decline") and not actor.is_staff,
            "can_assign": casework.can(actor, case, "assign"),
            "can_transfer": casework.can(actor, case, "transfer"),
            "can_mark_replied": casework.can(actor, case, "reply"),
            "can_merge": actor.is_staff and case.status not in ("merged", "resolved", "closed"),
            "members": session.execute(select(Member.id, Member.name).where(Member.active.is_(True))
                                       .order_by(Member.id)).all() if actor.is_staff else []}


async def _show_case(request: web.Request, actor: Actor, number: str, status: int = 200,
                     extra: dict[str, Any] | None = None) -> web.Response:
    try:
        context = await _db(request, _case_context, actor, number, _topic_namer(request))
    except CaseNotFound:
        return _render(request, "error.html", {"title": "没有这个案件", "message": f"没有找到案件 {number}。"},
                       status=404)
    except PermissionDenied:
        return _forbidden(request)
    return _render(request, "case.html", {**context, **(extra or {})}, status=status)


@login_required
async def case_page(request: web.Request, actor: Actor) -> web.Response:
    return await _show_case(request, actor, request.match_info["number"])


async def _apply(request: web.Request, actor: Actor, work: Callable[[Any], Any], done_message: str,
                 kept: dict[str, str]) -> web.Response:
    """Run one case change; on success back to the case page with a message, on a conflict or refusal
    the page again with the person's text kept in the form."""
    from aiohttp_session import get_session

    number = request.match_info["number"]
    try:
        case = await _db(request, work)
    except CaseNotFound:
        return _render(request, "error.html", {"title": "没有这个案件", "message": f"没有找到案件 {number}。"},
                       status=404)
    except PermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ConcurrentEdit:
        message = "这个案件在您打开之后已被其他人修改。您的内容没有保存（保留在下方），请看过最新情况后再提交。"
        return await _show_case(request, actor, number, status=409, extra={"error": message, "kept": kept})
    except WorkflowError as exc:
        return await _show_case(request, actor, number, status=exc.http_status,
                                extra={"error": exc.message, "kept": kept})
    _flash(await get_session(request), "ok", done_message)
    if isinstance(case, Case):
        # Merges and splits answer with the case to look at next (the target, the new case).
        if not await _db(request, _still_visible, actor, case.number):
            raise web.HTTPFound("/console/cases")
        raise web.HTTPFound(f"/console/cases/{case.number}")
    raise web.HTTPFound(f"/console/cases/{number}")


def _still_visible(session: Any, actor: Actor, number: str) -> bool:
    try:
        access_case(session, actor, number)
        return True
    except WorkflowError:
        return False


def _form_text(request: web.Request, name: str) -> str:
    return str(request["form"].get(name) or "")


def _form_change(request: web.Request, **fields: Any) -> casework.CaseChange:
    try:
        version: int | None = int(_form_text(request, "version"))
    except ValueError:
        version = None
    return casework.CaseChange(version=version, **fields)


def _number(request: web.Request) -> str:
    return request.match_info["number"]


@login_required
async def case_status(request: web.Request, actor: Actor) -> web.Response:
    change = _form_change(request, status=_form_text(request, "status"), reason=_form_text(request, "reason"))
    label = STATUS_SHORT.get(change.status or "", change.status)
    return await _apply(request, actor, lambda s: casework.change_case(s, actor, _number(request), change),
                        f"状态已改为“{label}”。", {"reason": change.reason or ""})


@login_required
async def case_reply(request: web.Request, actor: Actor) -> web.Response:
    text = _form_text(request, "public_reply")
    change = _form_change(request, public_reply=text, mark_replied=_form_text(request, "mark_replied") == "1")
    return await _apply(request, actor, lambda s: casework.change_case(s, actor, _number(request), change),
                        "公开答复已发布，群众查询进度时可以看到。", {"public_reply": text})


@login_required
async def case_note(request: web.Request, actor: Actor) -> web.Response:
    text = _form_text(request, "internal_note")
    change = _form_change(request, internal_note=text)
    return await _apply(request, actor, lambda s: casework.change_case(s, actor, _number(request), change),
                        "内部备注已保存（群众看不到）。", {"internal_note": text})


def _transition_handler(action: str, done: str, *fields: str) -> Callable[[web.Request], Awaitable[Any]]:
    @login_required
    async def handler(request: web.Request, actor: Actor) -> web.Response:
        values = {name: _form_text(request, name) for name in fields}
        change = _form_change(request, **values)
        return await _apply(request, actor,
                            lambda s: casework.run_transition(s, actor, _number(request), action, change),
                            done, values)

    handler.__name__ = f"case_{action}"
    return handler


case_accept = _transition_handler("accept", "已接单，请尽快办理。")
case_decline = _transition_handler("decline", "已退回值班室重新派单。", "reason")
case_assign = _transition_handler("assign", "已派单。", "member_id")
case_transfer = _transition_handler("transfer", "已转办，并记录督办意见。", "department", "reason")


@login_required
async def case_merge(request: web.Request, actor: Actor) -> web.Response:
    target = _form_text(request, "target")
    version = _form_change(request).version
    return await _apply(request, actor, lambda s: casework.merge_case(s, actor, _number(request), target, version),
                        f"已把 {_number(request)} 并入本案，反映人数已合计。可在下方“并入本案的案件”中撤销。",
                        {"target": target})


@login_required
async def case_unmerge(request: web.Request, actor: Actor) -> web.Response:
    return await _apply(request, actor, lambda s: casework.undo_merge(s, actor, _number(request)),
                        "已撤销合并，案件恢复为单独办理。", {})


@login_required
async def case_split(request: web.Request, actor: Actor) -> web.Response:
    try:
        submission_id = int(_form_text(request, "submission_id"))
    except ValueError:
        submission_id = -1
    return await _apply(request, actor,
                        lambda s: casework.split_report(s, actor, _number(request), submission_id),
                        "已把这条反映拆分为单独的案件。", {})


# ---- the month (对账销号) ----------------------------------------------------------------------------

def _year_month(request: web.Request) -> tuple[int, int]:
    from bot.workflow.deadlines import local_date

    today = local_date(utcnow())
    try:
        year, month = int(request.query.get("year", today.year)), int(request.query.get("month", today.month))
    except ValueError:
        year, month = today.year, today.month
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        year, month = today.year, today.month
    return year, month


@login_required
async def monthly_page(request: web.Request, actor: Actor) -> web.Response:
    from bot.workflow.monthly import month_rows

    if not actor.is_staff:
        return _forbidden(request, "月度对账只对机关工作人员开放。")
    year, month = _year_month(request)
    rows = await _db(request, month_rows, year, month)
    return _render(request, "monthly.html", {"year": year, "month": month,
                                             "committees": [r for r in rows if r.scope == "committee"],
                                             "members": [r for r in rows if r.scope == "member"]})


@login_required
async def monthly_xlsx(request: web.Request, actor: Actor) -> web.StreamResponse:
    import tempfile
    from pathlib import Path

    from bot.workflow.monthly import export_month_xlsx

    if not actor.is_staff:
        return _forbidden(request, "月度对账只对机关工作人员开放。")
    year, month = _year_month(request)
    with tempfile.TemporaryDirectory(prefix="sl-month-") as tmp:
        path = Path(tmp) / "month.xlsx"

        def work(session: Any) -> None:
            export_month_xlsx(session, year, month, path)
            casework.audit(session, actor, "export_month", None, year=year, month=month)

        await _db(request, work)
        body = path.read_bytes()
    filename = f"shangliang-{year}-{month:02d}.xlsx"
    return web.Response(body=body, headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
