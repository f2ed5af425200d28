"""Campaigns (专题商量): a themed question residents join by QR code (公众号) or web chat link.

A campaign has a scene value. WeChat puts it in the EventKey of the SCAN/subscribe event when a
resident scans the campaign's parametrised QR code; the web chat takes it as `?campaign=<scene>`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import qrcode
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.channels.models import Campaign, ensure_tables
from bot.storage.models import utcnow

_SCENE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class CampaignInfo:
    scene: str
    title: str
    question: str
    opens_at: datetime | None
    closes_at: datetime | None
    qr_url: str | None

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return (self.opens_at is None or self.opens_at <= now) and (self.closes_at is None or now < self.closes_at)

    def opening_text(self) -> str:
        return f"欢迎参加专题商量「{self.title}」。\n{self.question}"


def _info(row: Campaign) -> CampaignInfo:
    return CampaignInfo(row.scene, row.title, row.question, row.opens_at, row.closes_at, row.qr_url)


def new_scene() -> str:
    return "sl" + secrets.token_hex(4)


def create_campaign(
    engine: Engine,
    *,
    title: str,
    question: str,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    scene: str | None = None,
) -> CampaignInfo:
    """Store a new campaign; the scene value is generated unless given (letters, digits, _ and -)."""
    if not title.strip() or not question.strip():
        raise ValueError("title and question are required")
    scene = scene or new_scene()
    if not _SCENE_RE.match(scene):
        raise ValueError("scene must be 1-64 letters, digits, '_' or '-'")
    if opens_at and closes_at and closes_at <= opens_at:
        raise ValueError("the campaign must close after it opens")
    ensure_tables(engine)
    with Session(engine) as session, session.begin():
        row = Campaign(scene=scene, title=title.strip(), question=question.strip(), opens_at=opens_at,
                       closes_at=closes_at)
        session.add(row)
        session.flush()
        return _info(row)


def set_qr(engine: Engine, scene: str, ticket: str | None, url: str | None) -> None:
    with Session(engine) as session, session.begin():
        row = session.scalar(select(Campaign).where(Campaign.scene == scene))
        if row is not None:
            row.qr_ticket, row.qr_url = ticket, url


def get_campaign(engine: Engine, scene: str) -> CampaignInfo | None:
    if not scene or not _SCENE_RE.match(scene):
        return None
    ensure_tables(engine)
    with Session(engine) as session:
        row = session.scalar(select(Campaign).where(Campaign.scene == scene))
        return _info(row) if row is not None else None


def list_campaigns(engine: Engine) -> list[CampaignInfo]:
    ensure_tables(engine)
    with Session(engine) as session:
        return [_info(r) for r in session.scalars(select(Campaign).order_by(Campaign.id))]


def web_chat_link(public_url: str, scene: str) -> str:
    return f"{public_url.rstrip('/')}/chat?campaign={quote(scene)}"


def render_qr_png(content: str, path: Path) -> Path:
    """Render `content` (WeChat's QR url or the web chat link) as a PNG, locally."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = qrcode.make(content, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    image.save(str(path))
    return path
