"""What the case page shows, built from the database for one actor: the residents' words redacted
(bot.text.redact), contact only when the resident consented and was not anonymous, photos, the cases
merged into this one, the routing, and one timeline where internal notes are marked as internal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.models import User
from bot.console.access import Actor
from bot.routing.models import Committee, Member, Route
from bot.storage.models import Case, CaseEvent, Submission
from bot.text.redact import redact
from bot.workflow.states import state_label

log = logging.getLogger(__name__)

HIDDEN = "（内容暂不能显示）"
EVENT_LABELS = {"created": "收到反映", "status": "状态变更", "note": "进展说明", "public_reply": "公开答复",
                "internal_note": "内部备注", "supporter": "又有群众反映", "merged": "合并", "routed": "已分派",
                "declined": "委员退回", "supervision": "督办", "reopen_reason": "重新办理理由",
                "waiting": "等待群众回复", "resumed": "群众已回复", "reminder": "催办", "unmerged": "撤销合并",
                "split": "拆分"}


def safe_redact(text: str | None, known_names: tuple[str, ...] = ()) -> str:
    """Redacted text; a redaction failure hides the whole text rather than showing it."""
    if not text:
        return ""
    try:
        return redact(text, known_names=known_names)
    except Exception:
        log.exception("redaction failed; text hidden")
        return HIDDEN


@dataclass
class TimelineItem:
    time: datetime
    kind: str
    label: str
    text: str | None
    actor: str | None
    internal: bool
    status: str | None = None


@dataclass
class CaseDetail:
    case: Case
    title: str
    summary: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    merged: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[TimelineItem] = field(default_factory=list)


def _reports(session: Session, case: Case) -> list[dict[str, Any]]:
    rows = session.execute(select(Submission).where(Submission.case_id == case.id)
                           .order_by(Submission.created_at, Submission.id)).scalars().all()
    reports = []
    for sub in rows:
        contact = sub.contact
        names = (contact.name,) if contact is not None and contact.name else ()
        show_contact = contact is not None and bool(contact.consent) and not sub.anonymous
        reports.append({
            "id": sub.id, "created_at": sub.created_at, "channel": sub.channel,
            "text": safe_redact(sub.text, names), "place": safe_redact(sub.place),
            "since_when": sub.since_when, "scope": safe_redact(sub.scope),
            "anonymous": bool(sub.anonymous),
            "contact": {"name": contact.name, "phone": contact.phone} if show_contact else None,
            "photos": [m for m in (sub.media or []) if isinstance(m, dict)],
            "duplicate": sub.dedup_decision,
        })
    return reports


def _routes(session: Session, case: Case) -> list[dict[str, Any]]:
    rows = session.execute(select(Route, Member.name, Committee.name)
                           .join(Member, Member.id == Route.member_id, isouter=True)
                           .join(Committee, Committee.id == Route.committee_id, isouter=True)
                           .where(Route.case_id == case.id).order_by(Route.created_at)).all()
    return [{"member": member or route.member_id, "committee": committee or route.committee_id or "",
             "reason": route.reason, "time": route.created_at} for route, member, committee in rows]


def _timeline(session: Session, case: Case) -> list[TimelineItem]:
    events = session.execute(select(CaseEvent).where(CaseEvent.case_id == case.id)
                             .order_by(CaseEvent.id.desc())).scalars().all()
    # Events store who acted as an account id (the username); show the name the office knows.
    ids = {e.actor for e in events if e.actor}
    names = dict(session.execute(select(User.username, User.display_name).where(User.username.in_(ids))).all())
    return [TimelineItem(time=e.created_at, kind=e.kind, label=EVENT_LABELS.get(e.kind, e.kind), text=e.note,
                         actor=names.get(e.actor) or e.actor, internal=e.visibility != "public",
                         status=state_label(e.status) if e.status else None)
            for e in events]


def load_detail(session: Session, actor: Actor, case: Case) -> CaseDetail:
    merged = session.execute(select(Case).where(Case.merged_into_id == case.id).order_by(Case.id)).scalars()
    return CaseDetail(
        case=case, title=safe_redact(case.title), summary=safe_redact(case.summary),
        reports=_reports(session, case),
        merged=[{"number": m.number, "title": safe_redact(m.title), "supporters": m.supporter_count,
                 "status": state_label(m.status)} for m in merged],
        routes=_routes(session, case), timeline=_timeline(session, case))
