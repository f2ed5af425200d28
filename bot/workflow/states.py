"""Case states and the transitions between them, as data: the one table the workflow, the console and the
docs read. Nothing else in the code decides which role may move a case from which state to which.

Roles: `admin` and `staff` (政协机关) work every case; `member` (委员) works the cases routed to them or
their committee; `system` is the process side (回访 answers from the resident, automatic closing).
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("admin", "staff", "member", "system")


@dataclass(frozen=True)
class State:
    name: str
    label: str  # staff-facing Chinese label; residents see bot.storage.models.CASE_STATUS_LABELS
    open: bool  # open states run a deadline clock and show up in queues and overdue lists


STATES: dict[str, State] = {s.name: s for s in (
    State("received", "待派单", True),
    State("assigned", "已派单", True),
    State("accepted", "已接单", True),
    State("in_progress", "办理中", True),
    State("replied", "已答复", True),
    State("resolved", "已办结", False),
    State("closed", "已关闭", False),
    State("reopened", "重新办理", True),
    State("merged", "已合并", False),
)}

OPEN_STATES: frozenset[str] = frozenset(s.name for s in STATES.values() if s.open)


@dataclass(frozen=True)
class Transition:
    action: str  # stable id used by the console and the API
    label: str  # button text
    sources: frozenset[str]
    target: str  # the same as a source for in-state actions (转办 keeps in_progress)
    roles: frozenset[str]
    # A member acts only on a case routed to them or their committee and not held by another member;
    # `assignee_only` further requires that they hold it (接单 and 退回 are open to every routed member).
    assignee_only: bool = False
    needs_text: str | None = None  # "reason" | "public_reply" | None: what the form must carry


def _t(action: str, label: str, sources: set[str], target: str, roles: set[str], **kw: object) -> Transition:
    return Transition(action, label, frozenset(sources), target, frozenset(roles), **kw)  # type: ignore[arg-type]


STAFF = {"admin", "staff"}
WORKERS = {"admin", "staff", "member"}

# Merging and un-merging also move cases between states (→ merged, merged → before), but through
# bot.workflow.merging, because they move submissions and supporters too.
TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    _t("assign", "派单", {"received", "assigned", "reopened"}, "assigned", STAFF),
    _t("accept", "接单", {"assigned"}, "accepted", {"admin", "member"}),
    _t("decline", "退回值班室", {"assigned", "accepted"}, "received", {"admin", "member"},
       needs_text="reason"),
    _t("start", "开始办理", {"accepted", "reopened"}, "in_progress", WORKERS, assignee_only=True),
    _t("transfer", "转办督办", {"accepted", "in_progress"}, "in_progress", STAFF, needs_text="reason"),
    _t("reply", "答复群众", {"accepted", "in_progress", "reopened"}, "replied", WORKERS,
       assignee_only=True, needs_text="public_reply"),
    _t("resolve", "办结", {"replied"}, "resolved", WORKERS, assignee_only=True),
    _t("reopen", "重新办理（回访不满意）", {"replied", "resolved", "closed"}, "reopened",
       STAFF | {"system"}, needs_text="reason"),
    _t("close", "关闭", {"resolved"}, "closed", STAFF | {"system"}),
)}


def state_label(name: str) -> str:
    state = STATES.get(name)
    return state.label if state else name


def is_open(name: str) -> bool:
    return name in OPEN_STATES


def transitions_from(status: str, role: str) -> list[Transition]:
    """The actions a role may offer on a case in `status` (the console's buttons), table order."""
    return [t for t in TRANSITIONS.values() if status in t.sources and role in t.roles]
