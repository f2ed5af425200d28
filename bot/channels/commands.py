"""`shangliang campaign create|list`: staff create a campaign (专题商量) and get its QR codes and link."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.channels import campaigns
from bot.channels.models import default_engine
from bot.channels.wechat_api import WECHAT_API_BASE, TokenStore, WeChatAPI

CHINA = timezone(timedelta(hours=8))
MAX_TEMPORARY_QR = timedelta(days=30)


def parse_when(value: str) -> datetime:
    """A date or ISO datetime in China time (UTC+8) -> naive UTC, as stored."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA)
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _wechat_api(engine: object) -> WeChatAPI | None:
    app_id, secret = os.environ.get("WECHAT_APP_ID"), os.environ.get("WECHAT_APP_SECRET")
    if not (app_id and secret):
        return None
    base = os.environ.get("WECHAT_API_BASE", WECHAT_API_BASE)
    return WeChatAPI(app_id, secret, TokenStore(engine), base_url=base)


def _qr_lifetime(closes_at: datetime | None) -> int | None:
    """Seconds for a temporary QR code, or None for a permanent one (campaign open-ended or long)."""
    if closes_at is None:
        return None
    left = closes_at - datetime.utcnow()
    return int(max(left, timedelta(minutes=1)).total_seconds()) if left <= MAX_TEMPORARY_QR else None


def create(args: argparse.Namespace) -> int:
    from bot.config import resolve_path, settings

    engine = default_engine()
    info = campaigns.create_campaign(
        engine,
        title=args.title,
        question=args.question,
        opens_at=parse_when(args.opens) if args.opens else None,
        closes_at=parse_when(args.closes) if args.closes else None,
        scene=args.scene,
    )
    out_dir = Path(args.out) if args.out else resolve_path("var/campaigns")
    public_url = str(settings().get("service", {}).get("public_url", "http://127.0.0.1:8088"))
    link = campaigns.web_chat_link(public_url, info.scene)
    result: dict[str, object] = {"scene": info.scene, "title": info.title, "web_link": link}
    result["web_qr_png"] = str(campaigns.render_qr_png(link, out_dir / f"campaign-{info.scene}-web.png"))

    api = None if args.offline else _wechat_api(engine)
    if api is not None:
        qr = asyncio.run(api.create_qrcode(info.scene, _qr_lifetime(info.closes_at)))
        campaigns.set_qr(engine, info.scene, qr["ticket"], qr["url"])
        # The url is the QR code's content; rendering it locally gives the same code WeChat shows.
        png = campaigns.render_qr_png(str(qr["url"]), out_dir / f"campaign-{info.scene}-wechat.png")
        result.update(wechat_qr_url=qr["url"], wechat_qr_png=str(png))
    else:
        result["wechat_qr_url"] = None
        result["note"] = "no WECHAT_APP_ID/WECHAT_APP_SECRET (or --offline): only the web chat QR code was made"
    print(json.dumps(result, ensure_ascii=False))
    return 0


def list_all(_args: argparse.Namespace) -> int:
    rows = [
        {
            "scene": c.scene, "title": c.title, "question": c.question, "open": c.is_open(),
            "opens_at": c.opens_at.isoformat() if c.opens_at else None,
            "closes_at": c.closes_at.isoformat() if c.closes_at else None, "wechat_qr_url": c.qr_url,
        }
        for c in campaigns.list_campaigns(default_engine())
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=1))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("campaign", help="campaigns (专题商量): create one, list them")
    actions = parser.add_subparsers(dest="campaign_command", metavar="ACTION")
    make = actions.add_parser("create", help="create a campaign with its QR codes and web chat link")
    make.add_argument("--title", required=True, help="e.g. 老旧小区加装电梯")
    make.add_argument("--question", required=True, help="the opening question asked to each resident")
    make.add_argument("--opens", help="start, YYYY-MM-DD[THH:MM] China time (default: now)")
    make.add_argument("--closes", help="end, YYYY-MM-DD[THH:MM] China time (default: open-ended)")
    make.add_argument("--scene", help="scene value (letters, digits, _ and -); generated if omitted")
    make.add_argument("--out", help="folder for the PNG files (default var/campaigns)")
    make.add_argument("--offline", action="store_true", help="do not call WeChat's QR code API")
    make.set_defaults(func=create)
    show = actions.add_parser("list", help="list campaigns as JSON")
    show.set_defaults(func=list_all)
    parser.set_defaults(func=lambda _a: parser.print_help() or 2)
