"""The member directory and routing rules (routing.yml, optional members CSV): load, validate, store."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.config import resolve_path, settings
from bot.topics.taxonomy import Taxonomy

BACKENDS = {"file", "webhook", "wecom", "email"}


@dataclass(frozen=True)
class Area:
    district: str
    street: str | None = None
    community: str | None = None

    def covers(self, district: str | None, street: str | None, community: str | None) -> bool:
        """Does this 包联 area include the given place? Unset parts of the area match anything."""
        if not district or district != self.district:
            return False
        if self.street and self.street != street:
            return False
        return not (self.community and self.community != community)

    def label(self) -> str:
        return "".join(x for x in (self.district, self.street, self.community) if x)


@dataclass
class MemberEntry:
    id: str
    name: str
    sector: str | None = None
    committee: str | None = None
    duty_desk: bool = False
    active: bool = True
    channels: list[dict] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)


@dataclass
class Directory:
    members: dict[str, MemberEntry]
    committee_contacts: dict[str, list[str]]
    duty_desk: str | None
    topic_committees: dict[str, str] = field(default_factory=dict)
    topic_sectors: dict[str, list[str]] = field(default_factory=dict)
    review_to_duty_desk: bool = True

    def area_names(self) -> tuple[set[str], set[str], set[str]]:
        districts, streets, communities = set(), set(), set()
        for member in self.members.values():
            for area in member.areas:
                districts.add(area.district)
                if area.street:
                    streets.add(area.street)
                if area.community:
                    communities.add(area.community)
        return districts, streets, communities


class DirectoryError(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__("routing configuration is invalid:\n  - " + "\n  - ".join(errors))
        self.errors = errors


def _member_from(raw: dict, where: str) -> MemberEntry:
    areas = []
    for a in raw.get("areas") or []:
        areas.append(Area(str(a["district"]), a.get("street") or None, a.get("community") or None))
    return MemberEntry(
        id=str(raw["id"]), name=str(raw.get("name") or raw["id"]),
        sector=raw.get("sector") or None, committee=raw.get("committee") or None,
        duty_desk=bool(raw.get("duty_desk", False)), active=bool(raw.get("active", True)),
        channels=list(raw.get("channels") or []), areas=areas,
    )


def _members_from_csv(path: Path) -> list[MemberEntry]:
    """CSV columns: id,name,sector,committee,district,street,community,backend,address (one row per area;
    rows with the same id are merged)."""
    members: dict[str, MemberEntry] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            entry = members.get(row["id"])
            if entry is None:
                channel = {"backend": row.get("backend") or "file"}
                if row.get("address"):
                    key = {"email": "to", "webhook": "url", "wecom": "url"}.get(channel["backend"], "address")
                    channel[key] = row["address"]
                entry = members[row["id"]] = MemberEntry(
                    id=row["id"], name=row.get("name") or row["id"], sector=row.get("sector") or None,
                    committee=row.get("committee") or None, channels=[channel],
                )
            if row.get("district"):
                entry.areas.append(Area(row["district"], row.get("street") or None, row.get("community") or None))
    return list(members.values())


def load_directory(path: str | Path | None = None) -> Directory:
    """Read routing.yml (and the members CSV it names). Raises DirectoryError on structural problems."""
    if path is None:
        path = resolve_path(settings().get("routing", {}).get("directory", "routing.yml"))
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DirectoryError([f"cannot read {path}: {exc}"]) from exc
    errors: list[str] = []
    entries: list[MemberEntry] = []
    for i, raw in enumerate(data.get("members") or []):
        try:
            entries.append(_member_from(raw, f"members[{i}]"))
        except (KeyError, TypeError) as exc:
            errors.append(f"members[{i}]: missing field {exc}")
    if data.get("members_csv"):
        entries += _members_from_csv(path.parent / str(data["members_csv"]))
    members: dict[str, MemberEntry] = {}
    for entry in entries:
        if entry.id in members:
            errors.append(f"member id {entry.id!r} appears twice")
        members[entry.id] = entry
    if errors:
        raise DirectoryError(errors)
    rules = data.get("rules") or {}
    return Directory(
        members=members,
        committee_contacts={str(k): list((v or {}).get("contacts") or []) for k, v in
                            (data.get("committees") or {}).items()},
        duty_desk=data.get("duty_desk"),
        topic_committees={str(k): str(v) for k, v in (rules.get("topics") or {}).items()},
        topic_sectors={str(k): list(v or []) for k, v in (rules.get("sectors") or {}).items()},
        review_to_duty_desk=bool(rules.get("review_to_duty_desk", True)),
    )


def _check_channel(member: MemberEntry, channel: dict) -> str | None:
    backend = channel.get("backend")
    if backend not in BACKENDS:
        return f"member {member.id!r}: unknown delivery backend {backend!r} (use one of {sorted(BACKENDS)})"
    if backend in ("webhook", "wecom") and not channel.get("url"):
        return f"member {member.id!r}: {backend} channel needs a url"
    if backend == "email" and not channel.get("to"):
        return f"member {member.id!r}: email channel needs a `to` address"
    return None


def validate(directory: Directory, taxonomy: Taxonomy) -> list[str]:
    """Every problem found, as plain sentences; an empty list means the rules are usable."""
    errors: list[str] = []
    members = directory.members
    if not directory.duty_desk:
        errors.append("no duty_desk: cases that match no rule would go nowhere")
    elif directory.duty_desk not in members:
        errors.append(f"duty_desk {directory.duty_desk!r} is not a member id")
    for member in members.values():
        if member.committee and member.committee not in taxonomy.committees:
            errors.append(f"member {member.id!r}: unknown committee {member.committee!r}")
        if not member.channels:
            errors.append(f"member {member.id!r}: no delivery channel")
        for channel in member.channels:
            problem = _check_channel(member, channel)
            if problem:
                errors.append(problem)
    for committee, contacts in directory.committee_contacts.items():
        if committee not in taxonomy.committees:
            errors.append(f"committees: unknown committee {committee!r}")
        for member_id in contacts:
            if member_id not in members:
                errors.append(f"committee {committee!r}: contact {member_id!r} is not a member id")
    for topic, committee in directory.topic_committees.items():
        if topic not in taxonomy.topics:
            errors.append(f"rules.topics: unknown topic {topic!r}")
        if committee not in taxonomy.committees:
            errors.append(f"rules.topics: topic {topic!r} -> unknown committee {committee!r}")
    sectors = {m.sector for m in members.values() if m.sector}
    for topic, topic_sectors in directory.topic_sectors.items():
        if topic not in taxonomy.topics:
            errors.append(f"rules.sectors: unknown topic {topic!r}")
        for sector in topic_sectors:
            if sector not in sectors:
                errors.append(f"rules.sectors: topic {topic!r} -> sector {sector!r} has no member")
    for topic in taxonomy.topics.values():
        committee = directory.topic_committees.get(topic.id, topic.committee)
        if not [m for m in directory.committee_contacts.get(committee, []) if m in members]:
            errors.append(f"topic {topic.id!r} ({topic.name}): committee {committee!r} has no contact member")
    return errors


def _upsert(session, model, rows: list[dict], update: list[str]) -> None:
    """INSERT ... ON CONFLICT (id) DO UPDATE. Two routers storing the directory at once on a fresh database
    then wait for each other's row instead of one failing on the primary key (SELECT-then-INSERT races)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # no portable upsert: plain merge (not race-safe)
        for row in rows:
            session.merge(model(**row))
        session.flush()
        return
    stmt = insert(model.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt, sorted(rows, key=lambda r: r["id"]))  # one lock order for every writer


def store_directory(session, directory: Directory, taxonomy: Taxonomy) -> dict[str, int]:
    """Replace the committees, members and areas in the database with the directory's (idempotent, and safe
    when several routers store it at once)."""
    from sqlalchemy import update

    from bot.routing.models import Committee, Member, MemberArea

    session.flush()
    _upsert(session, Committee, [{"id": k, "name": v} for k, v in taxonomy.committees.items()], ["name"])
    # The member upsert locks every member row until commit, so a concurrent store waits here and then
    # sees this one's areas: the delete below removes them and no area is stored twice.
    _upsert(session, Member, [
        {"id": e.id, "name": e.name, "sector": e.sector, "committee_id": e.committee,
         "is_duty_desk": e.duty_desk or e.id == directory.duty_desk, "active": e.active, "channels": e.channels}
        for e in directory.members.values()
    ], ["name", "sector", "committee_id", "is_duty_desk", "active", "channels"])
    # Members dropped from the file are deactivated, not deleted: their routes and outbox rows stay valid.
    session.execute(update(Member).where(Member.id.notin_(list(directory.members))).values(active=False)
                    .execution_options(synchronize_session=False))
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (Committee, Member)):
            session.expire(obj)  # the statements above bypassed the ORM
    session.query(MemberArea).delete(synchronize_session=False)
    areas = [{"member_id": e.id, "district": a.district, "street": a.street, "community": a.community}
             for e in directory.members.values() for a in e.areas]
    if areas:
        session.execute(MemberArea.__table__.insert(), areas)
    return {"committees": len(taxonomy.committees), "members": len(directory.members), "areas": len(areas)}
