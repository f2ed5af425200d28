"""The case queue: filters, sort and pagination over cases the actor may see, as one SQL query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, load_only

from bot.console.access import Actor, visible_cases
from bot.routing.models import Route
from bot.storage.models import CASE_STATUS_LABELS, Case, utcnow
from bot.workflow.overdue import overdue_filter
from bot.workflow.states import OPEN_STATES

PAGE_SIZE = 50
SORTS: dict[str, tuple[str, Any]] = {
    "newest": ("最新提交", Case.created_at.desc()),
    "oldest": ("最早提交", Case.created_at.asc()),
    "updated": ("最近更新", Case.updated_at.desc()),
    "supporters": ("反映人数最多", Case.supporter_count.desc()),
    "due": ("办理期限最近", Case.due_at.asc()),
}


@dataclass(frozen=True)
class QueueFilters:
    status: str = ""
    topic: str = ""
    committee: str = ""
    area: str = ""
    overdue: bool = False
    min_supporters: int = 0
    date_from: str = ""  # YYYY-MM-DD
    date_to: str = ""
    q: str = ""
    mine: bool = False  # 我的案件: routed to the member themself (not only their committee)
    sort: str = "newest"
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> QueueFilters:
        def text(name: str, limit: int = 100) -> str:
            return (query.get(name) or "").strip()[:limit]

        def number(name: str, default: int) -> int:
            try:
                return max(int(query.get(name) or default), 0)
            except ValueError:
                return default

        status = text("status")
        sort = text("sort")
        return cls(status=status if status in CASE_STATUS_LABELS or status in ("open", "closed") else "",
                   topic=text("topic"), committee=text("committee"), area=text("area"),
                   overdue=query.get("overdue") == "1", min_supporters=number("supporters", 0),
                   date_from=_date(text("from")), date_to=_date(text("to")), q=text("q"),
                   mine=query.get("mine") == "1", sort=sort if sort in SORTS else "newest",
                   page=max(number("page", 1), 1))

    def query_string(self, **changes: Any) -> str:
        """This filter set as a URL query (for sort links and pages), with `changes` applied."""
        f = replace(self, **changes)
        pairs = {"status": f.status, "topic": f.topic, "committee": f.committee, "area": f.area,
                 "overdue": "1" if f.overdue else "", "supporters": str(f.min_supporters or ""),
                 "from": f.date_from, "to": f.date_to, "q": f.q, "mine": "1" if f.mine else "",
                 "sort": f.sort if f.sort != "newest" else "", "page": str(f.page) if f.page > 1 else ""}
        return urlencode({k: v for k, v in pairs.items() if v})


def _date(value: str) -> str:
    try:
        return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        return ""


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(actor: Actor, f: QueueFilters, now: datetime) -> list[Any]:
    where: list[Any] = []
    visible = visible_cases(actor)
    if visible is not None:
        where.append(visible)
    if f.mine and actor.member_id:
        where.append(exists(select(Route.id).where(Route.case_id == Case.id, Route.member_id == actor.member_id)))
    if f.status == "open":
        where.append(Case.status.in_(sorted(OPEN_STATES)))
    elif f.status == "closed":
        where.append(Case.status.in_(["resolved", "closed"]))
    elif f.status:
        where.append(Case.status == f.status)
    else:
        where.append(Case.status != "merged")  # merged-away cases live on inside their target
    if f.topic:
        where.append(Case.topic == f.topic)
    if f.committee:
        where.append(exists(select(Route.id).where(Route.case_id == Case.id, Route.committee_id == f.committee)))
    if f.area:
        pattern = _like(f.area)
        where.append(or_(Case.district.like(pattern, escape="\\"), Case.street.like(pattern, escape="\\"),
                         Case.community.like(pattern, escape="\\"), Case.jurisdiction.like(pattern, escape="\\"),
                         Case.place.like(pattern, escape="\\")))
    if f.overdue:
        where.append(overdue_filter(now))
    if f.min_supporters:
        where.append(Case.supporter_count >= f.min_supporters)
    if f.date_from:
        where.append(Case.created_at >= datetime.strptime(f.date_from, "%Y-%m-%d"))
    if f.date_to:
        where.append(Case.created_at < datetime.strptime(f.date_to, "%Y-%m-%d") + timedelta(days=1))
    if f.q:
        pattern = _like(f.q)
        where.append(or_(Case.number.like(pattern, escape="\\"), Case.title.like(pattern, escape="\\"),
                         Case.summary.like(pattern, escape="\\"), Case.place.like(pattern, escape="\\")))
    return where


@dataclass
class QueuePage:
    cases: list[Case]
    total: int
    page: int
    pages: int


# What a queue row shows: loading only these keeps the long text columns (summary) out of the page query.
ROW_COLUMNS = (Case.id, Case.number, Case.title, Case.status, Case.topic, Case.place, Case.jurisdiction,
               Case.supporter_count, Case.created_at, Case.updated_at, Case.due_at, Case.waiting_since)


def _status_only(f: QueueFilters) -> bool:
    return not (f.topic or f.committee or f.area or f.overdue or f.min_supporters or f.date_from or f.date_to
                or f.q or f.mine)


def _total_from_counts(f: QueueFilters, counts: dict[str, int]) -> int:
    if f.status == "open":
        return sum(n for s, n in counts.items() if s in OPEN_STATES)
    if f.status == "closed":
        return sum(n for s, n in counts.items() if s in ("resolved", "closed"))
    if f.status:
        return counts.get(f.status, 0)
    return sum(n for s, n in counts.items() if s != "merged")


def load_queue(session: Session, actor: Actor, f: QueueFilters, page_size: int = PAGE_SIZE,
               counts: dict[str, int] | None = None) -> QueuePage:
    """One page of the queue. With `counts` (status_counts for this actor) a status-only view takes its
    total from them instead of counting again."""
    where = _conditions(actor, f, utcnow())
    if counts is not None and _status_only(f):
        total = _total_from_counts(f, counts)
    else:
        total = session.execute(select(func.count(Case.id)).where(*where)).scalar_one()
    pages = max((total + page_size - 1) // page_size, 1)
    page = min(f.page, pages)
    rows = session.execute(select(Case).options(load_only(*ROW_COLUMNS)).where(*where)
                           .order_by(SORTS[f.sort][1], Case.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).scalars().all()
    return QueuePage(cases=list(rows), total=int(total), page=page, pages=pages)


def status_counts(session: Session, actor: Actor) -> dict[str, int]:
    """Cases per status the actor can see, for the tabs above the queue."""
    query = select(Case.status, func.count(Case.id)).group_by(Case.status)
    visible = visible_cases(actor)
    if visible is not None:
        query = query.where(visible)
    return {status: int(n) for status, n in session.execute(query).all()}
