"""Daily digest per member: new cases routed to them, cases whose supporters grew, cases past due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.delivery.outbox import enqueue
from bot.reports.compose import case_link
from bot.reports.render import render
from bot.reports.subject import report_subject
from bot.routing.models import DigestState, Member, Route
from bot.storage.models import CASE_STATUS_LABELS, Case, utcnow
from bot.text.redact import redact
from bot.topics.taxonomy import Taxonomy, default_taxonomy
from bot.workflow.overdue import is_overdue


@dataclass
class Digest:
    member_id: str
    new: list[dict]
    grown: list[dict]
    overdue: list[dict]
    snapshot: dict[str, int]

    @property
    def empty(self) -> bool:
        return not (self.new or self.grown or self.overdue)


def _row(case: Case, taxonomy: Taxonomy) -> dict:
    # The stored title is the resident's first clause ("我是住在…的老张"): digests show the redacted
    # subject instead, and never a contact (anonymous or not, a digest is not where members call back).
    names = [s.contact.name for s in case.submissions if s.contact is not None and s.contact.name]
    subject = report_subject(redact(case.summary or case.title or "", known_names=names), case.place)
    return {"number": case.number, "title": subject,
            "category": taxonomy.name(case.topic), "place": redact(case.place or "") or "未注明",
            "supporters": case.supporter_count, "link": case_link(case.number or ""),
            "status": CASE_STATUS_LABELS.get(case.status, case.status),
            "due": case.due_at.strftime("%Y-%m-%d") if case.due_at else ""}


def build_digest(session, member_id: str, now: datetime | None = None,
                 taxonomy: Taxonomy | None = None) -> Digest:
    now = now or utcnow()
    taxonomy = taxonomy or default_taxonomy()
    state = session.get(DigestState, member_id)
    since = state.last_sent_at if state and state.last_sent_at else now - timedelta(days=1)
    before = dict(state.supporters or {}) if state else {}
    routes = session.query(Route).filter(Route.member_id == member_id).all()
    cases = {c.id: c for c in session.query(Case).filter(Case.id.in_([r.case_id for r in routes]))}
    new, grown, overdue = [], [], []
    for r in sorted(routes, key=lambda r: r.created_at):
        case = cases.get(r.case_id)
        if case is None or case.status == "merged":
            continue
        if r.created_at >= since:
            new.append(_row(case, taxonomy))
        elif str(case.id) in before and case.supporter_count > int(before[str(case.id)]):
            grown.append({**_row(case, taxonomy), "before": int(before[str(case.id)])})
        # Overdue as the workflow defines it: open, past the deadline, clock not paused for the resident.
        if is_overdue(case, now):
            overdue.append(_row(case, taxonomy))
    snapshot = {str(c.id): int(c.supporter_count or 1) for c in cases.values()}
    return Digest(member_id, new, grown, overdue, snapshot)


def enqueue_digests(session, now: datetime | None = None, taxonomy: Taxonomy | None = None) -> dict[str, int]:
    """Build and enqueue today's digest for every active member with something to report (one per day)."""
    now = now or utcnow()
    out = {}
    for member in session.query(Member).filter(Member.active.is_(True)).order_by(Member.id):
        digest = build_digest(session, member.id, now, taxonomy)
        if not digest.empty:
            body = render("digest.md.j2", member_name=member.name, date=now.strftime("%Y-%m-%d"),
                          new=digest.new, grown=digest.grown, overdue=digest.overdue)
            for i, channel in enumerate(member.channels or []):
                enqueue(session, key=f"digest:{member.id}:{now:%Y%m%d}:{i}", backend=channel["backend"],
                        target={k: v for k, v in channel.items() if k != "backend"},
                        subject=f"【每日摘要】{member.name} {now:%Y-%m-%d}", body=body, kind="digest",
                        member_id=member.id, payload={"new": digest.new, "grown": digest.grown,
                                                      "overdue": digest.overdue})
            out[member.id] = len(digest.new) + len(digest.grown) + len(digest.overdue)
        state = session.get(DigestState, member.id) or DigestState(member_id=member.id)
        state.last_sent_at, state.supporters = now, digest.snapshot
        session.add(state)
    session.flush()
    return out
