"""Routing rules: who receives a case. Pure functions over the directory, so they test without a DB."""

from __future__ import annotations

from dataclasses import dataclass

from bot.routing.directory import Directory
from bot.topics.taxonomy import Taxonomy


@dataclass(frozen=True)
class CaseFacts:
    topic: str | None
    needs_review: bool = False
    place: str | None = None
    district: str | None = None
    street: str | None = None
    community: str | None = None


@dataclass(frozen=True)
class Recipient:
    member_id: str
    committee: str | None
    reason: str


def locate(facts: CaseFacts, directory: Directory) -> tuple[str | None, str | None, str | None]:
    """District/street/community of a case: its own fields, else names of the directory's areas found
    in the free-text place."""
    district, street, community = facts.district, facts.street, facts.community
    if facts.place and not (district and street and community):
        districts, streets, communities = directory.area_names()
        district = district or next((d for d in sorted(districts) if d in facts.place), None)
        street = street or next((s for s in sorted(streets) if s in facts.place), None)
        community = community or next((c for c in sorted(communities) if c in facts.place), None)
        if district is None and (street or community):
            # A street named without its district: take the district of a member area that has it.
            for member in directory.members.values():
                for area in member.areas:
                    if (street and area.street == street) or (community and area.community == community):
                        district = area.district
                        break
                if district:
                    break
    return district, street, community


def committee_for(topic: str | None, directory: Directory, taxonomy: Taxonomy) -> str | None:
    if topic is None:
        return None
    if topic in directory.topic_committees:
        return directory.topic_committees[topic]
    entry = taxonomy.topics.get(topic)
    return entry.committee if entry else None


def route(facts: CaseFacts, directory: Directory, taxonomy: Taxonomy) -> list[Recipient]:
    """Recipients of a case, each once, with the first reason that selected them."""
    out: dict[str, Recipient] = {}

    def add(member_id: str, committee: str | None, reason: str) -> None:
        member = directory.members.get(member_id)
        if member and member.active and member_id not in out:
            out[member_id] = Recipient(member_id, committee, reason)

    committee = committee_for(facts.topic, directory, taxonomy)
    if committee:
        for member_id in directory.committee_contacts.get(committee, []):
            add(member_id, committee, f"topic:{facts.topic}->committee:{committee}")
    district, street, community = locate(facts, directory)
    for member in directory.members.values():
        for area in member.areas:
            if area.covers(district, street, community):
                add(member.id, committee, f"area:{area.label()}")
                break
    for sector in directory.topic_sectors.get(facts.topic or "", []):
        for member in directory.members.values():
            if member.sector == sector:
                add(member.id, committee, f"sector:{sector}")
    if directory.duty_desk and (not out or (facts.needs_review and directory.review_to_duty_desk)):
        add(directory.duty_desk, committee, "duty:needs_review" if out else "duty:no_match")
    return list(out.values())


def coverage(directory: Directory, taxonomy: Taxonomy) -> dict:
    """How the default rules cover topics and areas: recipients per topic, members per area."""
    topics = {}
    for topic in taxonomy.topics:
        recipients = route(CaseFacts(topic=topic), directory, taxonomy)
        topics[topic] = sorted(r.member_id for r in recipients)
    areas = {}
    for member in directory.members.values():
        for area in member.areas:
            areas.setdefault(area.label(), []).append(member.id)
    return {
        "topics": topics,
        "topics_with_committee_contact": sum(
            1 for t in taxonomy.topics
            if any(not r.reason.startswith("duty") for r in route(CaseFacts(topic=t), directory, taxonomy))
        ),
        "topics_total": len(taxonomy.topics),
        "areas": areas,
        "members": len(directory.members),
    }
