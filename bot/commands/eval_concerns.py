"""`shangliang eval concerns`: the share of held-out residents' stories the NLU recognises as a concern.

The stories (evals/nlu/long_stories.jsonl: `id`, `text`, `label`) are written for this purpose and never
used in training. Each is parsed by a running Rasa server (--rasa-url) or by the trained model loaded
in-process (--model, default: the cached model for the current data). A story counts as recognised
when its intent opens the concern form (report_concern, or give_suggestion, which opens the same
form); `concern_share` is the stricter report_concern-only share. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bot.config import REPO_ROOT

DEFAULT_STORIES = REPO_ROOT / "evals" / "nlu" / "long_stories.jsonl"
OPENS_FORM = ("report_concern", "give_suggestion")


def load_stories(path: Path, any_label: bool = False, limit: int | None = None,
                 first_chars: int | None = None) -> list[dict[str, Any]]:
    """Rows labelled "concern" (all rows with `any_label`, e.g. government-board messages labelled by
    topic), the first `limit` of them, each cut to its `first_chars` as a resident would paste it."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [row for row in rows if any_label or row.get("label", "concern") == "concern"][:limit]
    if first_chars:
        rows = [dict(row, text=str(row["text"])[:first_chars]) for row in rows]
    return [dict(row, id=str(row.get("id", n))) for n, row in enumerate(rows)]


def score(intents: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Shares over (story id, predicted intent) pairs; `missed` lists the ids that open no form."""
    pairs = list(intents)
    counts = Counter(intent for _, intent in pairs)
    total = len(pairs) or 1
    return {
        "stories": len(pairs),
        "recognised_share": round(sum(counts[i] for i in OPENS_FORM) / total, 4),
        "concern_share": round(counts["report_concern"] / total, 4),
        "intents": dict(counts.most_common()),
        "missed": [sid for sid, intent in pairs if intent not in OPENS_FORM],
    }


def _server_parser(rasa_url: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        request = urllib.request.Request(
            f"{rasa_url.rstrip('/')}/model/parse", data=json.dumps({"text": text}).encode("utf-8"),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as resp:
            return str((json.loads(resp.read()).get("intent") or {}).get("name"))
    return parse


def _model_parser(model: Path) -> Callable[[str], str]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()

    def parse(text: str) -> str:
        result = loop.run_until_complete(agent.parse_message(text))
        return str((result.get("intent") or {}).get("name"))
    return parse


def _run(args: argparse.Namespace) -> int:
    stories = load_stories(Path(args.stories), args.any_label, args.limit, args.first_chars)
    if args.rasa_url:
        parse = _server_parser(args.rasa_url)
    else:
        from bot.commands.train import trained_model_path

        model = Path(args.model) if args.model else trained_model_path()
        if not model.exists():
            print(f"no trained model at {model}; run `shangliang train` first", file=sys.stderr)
            return 1
        parse = _model_parser(model)
    result = score((row["id"], parse(row["text"])) for row in stories)
    for row in stories:
        if row["id"] in result["missed"]:
            print(f"missed {row['id']}: {row['text'][:60]}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser("concerns", help="share of held-out long stories recognised as a concern")
    parser.add_argument("--stories", default=str(DEFAULT_STORIES), help="JSONL of stories (id, text, label)")
    parser.add_argument("--rasa-url", default=None, help="a running Rasa server; default: load the model here")
    parser.add_argument("--model", default=None, help="a trained model (.tar.gz); default: the cached one")
    parser.add_argument("--any-label", action="store_true",
                        help="every row is a concern (e.g. government-board messages labelled by topic)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")
    parser.add_argument("--first-chars", type=int, default=None, help="cut each text to its first N characters")
    parser.set_defaults(func=_run)
