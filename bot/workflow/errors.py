"""Workflow errors. Each carries a stable `code` and a Chinese `message` the web layer can show as is;
`http_status` is the status the console and the API answer with."""

from __future__ import annotations


class WorkflowError(Exception):
    code = "workflow_error"
    http_status = 400
    default_message = "操作未能完成，请稍后再试。"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class CaseNotFound(WorkflowError):
    code = "case_not_found"
    http_status = 404
    default_message = "没有找到这个案件编号。"


class PermissionDenied(WorkflowError):
    code = "forbidden"
    http_status = 403
    default_message = "您没有权限查看或处理这个案件。"


class InvalidTransition(WorkflowError):
    code = "invalid_transition"
    http_status = 409
    default_message = "案件当前状态下不能进行这个操作。"


class MissingText(WorkflowError):
    code = "missing_text"
    http_status = 400
    default_message = "请填写必要的说明。"


class ConcurrentEdit(WorkflowError):
    """The case changed since the page that sent this edit was loaded."""

    code = "concurrent_edit"
    http_status = 409
    default_message = "这个案件刚刚已被其他人修改，请刷新页面查看最新情况后再操作。"


class MergeError(WorkflowError):
    code = "merge_refused"
    http_status = 409
    default_message = "无法完成合并或拆分。"
