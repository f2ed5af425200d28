"""`on_case_filed(session, case_id)`: called by the intake service after each filed case.

Classifies the case if nobody did yet, routes it, records one Route per recipient, writes the report
into the outbox (one message per recipient channel) and marks the case assigned. Runs inside the
caller's transaction, so routes and outbox rows commit together with the case — or not at all.
Calling it again for the same case (e.g. after a supporter joined) sends nothing twice.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bot.config import resolve_path, settings
from bot.delivery.outbox import enqueue
from bot.reports.compose import build_report
from bot.reports.render import render
from bot.routing.directory import Directory, DirectoryError, load_directory, store_directory, validate
from bot.routing.models import Member, Route
from bot.routing.rules import CaseFacts, Recipient, route
from bot.storage.models import Case, CaseEvent, Contact, Submission, utcnow
from bot.topics.taxonomy import Taxonomy, default_taxonomy
from bot.workflow.cases import start_clock

log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: tuple[float, Directory] | None = None


def directory_path() -> Path:
    return resolve_path(settings().get("routing", {}).get("directory", "routing.yml"))


def current_directory(session, taxonomy: Taxonomy) -> Directory:
    """The directory from routing.yml, reloaded when the file changes and stored in the DB then."""
    global _loaded
    path = directory_path()
    mtime = path.stat().st_mtime
    with _lock:
        if _loaded is None or _loaded[0] != mtime:
            directory = load_directory(path)
            errors = validate(directory, taxonomy)
            if errors:
                raise DirectoryError(errors)
            _loaded = (mtime, directory)
        directory = _loaded[1]
    known = {m for (m,) in session.query(Member.id).filter(Member.active.is_(True))}
    if not set(directory.members) <= known:
        store_directory(session, directory, taxonomy)
    return directory


def reset_directory_cache() -> None:
    global _loaded
    _loaded = None


def _classify_if_needed(session, case: Case, submissions: list[Submission]) -> None:
    if case.topic or not submissions:
        return
    try:
        import numpy as np

        from bot.topics.data import message_text
        from bot.topics.service import classify

        first = submissions[0]
        vector = np.frombuffer(first.embedding, dtype=np.float32) if first.embedding else None
        result = classify(message_text(first.text, first.title), vector, session=session)
        case.topic, case.topic_confidence, case.needs_review = result.topic, result.confidence, result.needs_review
    except Exception:  # routing must not fail because the classifier did; staff review catches it
        log.exception("topic classification failed for case %s", case.id)
        case.needs_review = True


def on_case_filed(session, case_id: int, directory: Directory | None = None,
                  taxonomy: Taxonomy | None = None) -> list[Recipient]:
    """Route a newly filed case. Returns the recipients added by this call (empty when already routed)."""
    case = session.get(Case, case_id)
    if case is None or case.status == "merged":
        return []
    taxonomy = taxonomy or default_taxonomy()
    directory = directory or current_directory(session, taxonomy)
    submissions = sorted(case.submissions, key=lambda s: s.id)
    _classify_if_needed(session, case, submissions)
    # The intake service records the district a concern names as its jurisdiction (a routing area's
    # district when one matches): 包联 members of that district receive it even when the place omits it.
    facts = CaseFacts(topic=case.topic, needs_review=bool(case.needs_review), place=case.place,
                      district=case.district or case.jurisdiction, street=case.street, community=case.community)
    already = {m for (m,) in session.query(Route.member_id).filter(Route.case_id == case.id)}
    recipients = [r for r in route(facts, directory, taxonomy) if r.member_id not in already]
    if not recipients:
        return []
    contacts = {c.submission_id: c for c in session.query(Contact).filter(
        Contact.submission_id.in_([s.id for s in submissions]))}
    # Anonymity (Submission.anonymous) and consent (Contact.consent) decide what the report shows.
    report = build_report(case, submissions, taxonomy, contacts=contacts)
    body = render("report.md.j2", r=report)
    subject = f"【社情民意】{report.category}｜{report.title}（{report.case_number}）"
    for recipient in recipients:
        session.add(Route(case_id=case.id, member_id=recipient.member_id, committee_id=recipient.committee,
                          reason=recipient.reason))
        member = directory.members[recipient.member_id]
        for i, channel in enumerate(member.channels):
            target = {k: v for k, v in channel.items() if k != "backend"}
            enqueue(session, key=f"case:{case.id}:{member.id}:{i}", backend=channel["backend"], target=target,
                    subject=subject, body=body, payload=report.to_dict(), case_id=case.id, member_id=member.id)
    committee = taxonomy.committees.get(recipients[0].committee or "", "")
    note = f"已转交{committee}及相关委员跟进" if committee else "已转交政协值班室，将尽快安排委员跟进"
    session.add(CaseEvent(case_id=case.id, kind="routed", status="assigned", note=note, actor="routing"))
    if case.status == "received":
        case.status = "assigned"
        start_clock(case, utcnow())  # the 接单 deadline counts from now
    session.flush()
    log.info("case %s routed to %s", case.number, [r.member_id for r in recipients])
    return recipients
