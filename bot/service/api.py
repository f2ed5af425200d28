"""REST API under /api/v1 (see docs/ARCHITECTURE.md): submissions, cases, handoffs, analyze."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from bot.service.auth import Caller, caller, require_service
from bot.service.errors import ApiError
from bot.service.intake import IntakePipeline, parse_submission
from bot.service.keys import PIPELINE, SETTINGS
from bot.service.pseudonym import pseudonymise
from bot.service.ratelimit import LIMITS
from bot.service.responses import json_response
from bot.service.validation import channel_name, optional_str, read_json
from bot.service.views import case_view_for, full_case_view
from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case, Submission
from bot.text.analyze import analyze

T = TypeVar("T")


# Staff cannot answer in the chat yet (issue 13): say so, and point to what works today.
HANDOFF_MESSAGE = ("已记下您要转人工。目前工作人员还不能在这个对话里直接回复您，急事请拨打当地12345政务服务便民热线；"
                   "您也可以继续在这里说明情况，我帮您登记成事项。")


async def _blocking(func: Callable[..., T], *args: Any) -> T:
    """Database and model work runs in the thread pool so the event loop keeps answering."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args))


def _max_body(request: web.Request) -> int:
    return int(request.app[SETTINGS]["service"].get("max_body_bytes", 262144))


def _max_chars(request: web.Request) -> int:
    return int(request.app[SETTINGS]["service"].get("max_text_chars", 5000))


async def _in_session(request: web.Request, work: Callable[[IntakePipeline, Session], T]) -> T:
    """Run `work` with the pipeline and a fresh database session, off the event loop."""
    pipeline = request.app[PIPELINE]

    def run() -> T:
        with pipeline.session_factory() as session:
            return work(pipeline, session)

    return await _blocking(run)


def _case_by_number(session: Session, number: str) -> Case:
    case = repository.get_case_by_number(session, number)
    if case is None:
        raise ApiError("case_not_found")
    return case


def _submission_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except ValueError as exc:
        raise ApiError("submission_not_found") from exc
    if not 0 < value < 2**31:  # beyond any row id; an out-of-range integer would fail in the database
        raise ApiError("submission_not_found")
    return value


def _own_submission(session: Session, submission_id: int, who: Caller) -> Submission:
    """The submission, if the caller may act on it: staff always; the action server only for the
    resident it names, who must be the one who filed it (403 otherwise)."""
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise ApiError("submission_not_found")
    if who.is_staff:
        return submission
    if who.resident is None or (submission.channel, submission.sender) != who.resident:
        raise ApiError("forbidden")
    return submission


async def create_submission(request: web.Request) -> web.Response:
    who = require_service(request)
    payload = await read_json(request, _max_body(request))
    req = parse_submission(payload, _max_chars(request))
    if not who.is_staff:  # staff tools (imports, load benches) are trusted with their own pace
        sender_key = pseudonymise(req.channel, req.sender) if req.sender else None
        request.app[LIMITS].check("submissions", request, sender_key)
    result, status = await _blocking(request.app[PIPELINE].submit, req)
    return json_response(result, status)


async def merge_submission(request: web.Request) -> web.Response:
    who = require_service(request)
    submission_id = _submission_id(request)
    payload = await read_json(request, _max_body(request))
    number = optional_str(payload, "case_number", 40, "案件编号")
    if not number:
        raise ApiError("case_not_found")

    def run(_pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        _own_submission(session, submission_id, who)
        target = _case_by_number(session, number)
        try:
            case = repository.merge_submission(session, submission_id, target.id)
        except repository.CaseClosedError as exc:
            raise ApiError("case_closed") from exc
        session.commit()
        return {"case_number": case.number, "supporters": int(case.supporter_count)}

    return json_response(await _in_session(request, run))


async def keep_submission(request: web.Request) -> web.Response:
    who = require_service(request)
    submission_id = _submission_id(request)

    def run(_pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        _own_submission(session, submission_id, who)
        submission = repository.keep_submission(session, submission_id)
        case = repository.live_case(session, session.get(Case, submission.case_id))
        session.commit()
        return {"case_number": case.number, "decision": "kept"}

    return json_response(await _in_session(request, run))


async def get_case(request: web.Request) -> web.Response:
    """Anyone may ask by number and gets the public view; the resident who filed it (vouched for by
    the action server) and staff get the full view."""
    who = caller(request)
    number = request.match_info["number"]

    def run(pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        case = _case_by_number(session, number)
        return case_view_for(pipeline, session, case, staff=who.is_staff, resident=who.resident)

    return json_response(await _in_session(request, run))


async def list_cases(request: web.Request) -> web.Response:
    """A resident's own cases (full views): only the action server, for the sender it names, or staff."""
    require_service(request)
    sender = (request.query.get("sender") or "").strip()
    if not sender:
        raise ApiError("missing_sender")
    channel = channel_name(dict(request.query))
    pseudonym = pseudonymise(channel, sender)

    def run(pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        cases = repository.cases_for_sender(session, pseudonym, channel)
        return {"cases": [full_case_view(pipeline, session, c) for c in cases]}

    return json_response(await _in_session(request, run))


async def update_case(request: web.Request) -> web.Response:
    """Staff and members change a case: `status` (one move the workflow table allows from the current
    status; `reason`, `member_id`/`committee`, `department` where that move needs them), `public_reply` (the resident sees it),
    `internal_note` (never shown to residents), optional `version` (the case's `version` as read: a stale
    one is refused with 409 concurrent_edit). `note` is the older name of `public_reply`. Who did it comes
    from the token or the console session, never from the body."""
    from bot.console import casework
    from bot.console.apiauth import load_user, resolve_actor
    from bot.workflow.errors import WorkflowError

    actor = await resolve_actor(request, lambda uid: _in_session(request, lambda _p, s: load_user(s, uid)))
    number = request.match_info["number"]
    payload = await read_json(request, _max_body(request))
    status = optional_str(payload, "status", 20, "状态")
    if status is not None and status not in CASE_STATUS_LABELS:
        raise ApiError("invalid_status")
    version = payload.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise ApiError("invalid_field", "“version”应是整数。")
    public_reply = optional_str(payload, "public_reply", 5000, "公开答复") or optional_str(payload, "note", 5000, "备注")
    change = casework.CaseChange(status=status, public_reply=public_reply,
                                 internal_note=optional_str(payload, "internal_note", 5000, "内部备注"),
                                 reason=optional_str(payload, "reason", 5000, "理由"),
                                 member_id=optional_str(payload, "member_id", 64, "委员"),
                                 committee=optional_str(payload, "committee", 64, "专委会"),
                                 department=optional_str(payload, "department", 100, "部门"), version=version)

    def run(pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        try:
            case = casework.change_case(session, actor, number, change)
        except WorkflowError as exc:
            raise ApiError(exc.code, exc.message, exc.http_status) from exc
        session.commit()
        return {**full_case_view(pipeline, session, case), "version": case.version, "updated_by": actor.id}

    return json_response(await _in_session(request, run))


async def create_handoff(request: web.Request) -> web.Response:
    require_service(request)
    payload = await read_json(request, _max_body(request))
    channel = channel_name(payload)
    sender = optional_str(payload, "sender", 256, "sender")
    text = optional_str(payload, "text", _max_chars(request), "内容")
    reason = optional_str(payload, "reason", 30, "reason") or "requested"
    pseudonym = pseudonymise(channel, sender) if sender else None

    def run(_pipeline: IntakePipeline, session: Session) -> dict[str, Any]:
        handoff = repository.create_handoff(session, channel=channel, sender=pseudonym, text=text, reason=reason)
        session.commit()
        return {"id": handoff.id, "message": HANDOFF_MESSAGE}

    return json_response(await _in_session(request, run), 201)


async def analyze_text(request: web.Request) -> web.Response:
    require_service(request)
    payload = await read_json(request, _max_body(request))
    text = payload.get("text")
    if not isinstance(text, str):
        raise ApiError("invalid_field", "“text”应是文字。")
    if len(text) > _max_chars(request):
        raise ApiError("text_too_long", limit=_max_chars(request))
    # An empty or emoji-only opener is simply vague here: the dialogue asks what happened.
    return json_response(analyze(text))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/submissions", create_submission)
    app.router.add_post("/api/v1/submissions/{id}/merge", merge_submission)
    app.router.add_post("/api/v1/submissions/{id}/keep", keep_submission)
    app.router.add_get("/api/v1/cases", list_cases)
    app.router.add_get("/api/v1/cases/{number}", get_case)
    app.router.add_patch("/api/v1/cases/{number}", update_case)
    app.router.add_post("/api/v1/handoffs", create_handoff)
    app.router.add_post("/api/v1/analyze", analyze_text)
