"""API errors: a stable snake_case code plus a Chinese message a resident can read."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.service.responses import json_response

log = logging.getLogger(__name__)

# Code -> (HTTP status, message). Codes are part of the API contract: never rename one.
MESSAGES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "请求内容不是有效的 JSON，请检查后重新发送。"),
    "invalid_body": (400, "请求内容应是一个 JSON 对象。"),
    "invalid_field": (400, "提交的内容格式不对，请检查后再试。"),
    "empty_text": (400, "内容是空的。请用文字说说遇到了什么问题、在哪里、持续多久了。"),
    "no_content": (400, "我们没能读到文字内容。请用几句话描述一下您遇到的问题或建议，比如在哪里、发生了什么。"),
    "text_too_long": (413, "内容太长了。请精简到 {limit} 字以内，或者分几次提交。"),
    "body_too_large": (413, "提交的内容太大了，请精简后再试。"),
    "case_not_found": (404, "没有找到这个案件编号，请核对一下（格式如 SL2026-000123）。"),
    "submission_not_found": (404, "没有找到这条反映记录。"),
    "case_closed": (409, "您想并入的那件事已经办理完结了，不能再并入。您这次的反映已经作为一件新的事情单独登记，"
                         "我们会重新跟进。"),
    "missing_sender": (400, "缺少用户标识，无法查询您的记录。"),
    "unauthorized": (401, "没有权限进行此操作。"),
    "forbidden": (403, "您没有权限查看或办理这个案件。"),
    "concurrent_edit": (409, "这个案件刚被其他人修改过，您的修改没有保存。请刷新后查看最新情况再提交。"),
    "invalid_status": (400, "案件状态不正确。"),
    "not_found": (404, "页面不存在。"),
    "method_not_allowed": (405, "不支持这种请求方式。"),
    "rasa_unavailable": (503, "小助手暂时不在线，请稍等几分钟再试。给您带来不便，非常抱歉。"),
    "internal_error": (500, "系统开了个小差，请稍后再试。给您带来不便，非常抱歉。"),
}


class ApiError(Exception):
    """Raise from a handler; the middleware turns it into the JSON error response."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None, **fmt: object):
        default_status, default_message = MESSAGES.get(code, (400, "请求有误。"))
        self.code = code
        self.status = status or default_status
        self.message = (message or default_message).format(**fmt) if fmt else (message or default_message)
        super().__init__(code)


def error_response(code: str, message: str | None = None, status: int | None = None) -> web.Response:
    err = ApiError(code, message, status)
    return json_response({"error": {"code": err.code, "message": err.message}}, status=err.status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every failure becomes JSON with a code; never a stack trace to the client."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.code, err.message, err.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status not in _HTTP_CODES:
            raise
        return error_response(_HTTP_CODES[exc.status])
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal_error")
