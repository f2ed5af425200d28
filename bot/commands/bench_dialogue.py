"""`shangliang bench dialogue`: start-up time, /model/parse latency and end-to-end turn latency.

Starts its own deployment (temporary var/, free ports) unless --rasa-url points at a running one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

PARSE_TEXTS = [
    "你好",
    "我要投诉",
    "我们小区5号楼电梯坏了三个月了，物业一直不修",
    "学校门口那个路口没有红绿灯，早上送孩子特别危险",
    "我的养老金这个月还没到账",
    "查一下SL2026-000012的进度",
    "转人工",
    "地址说错了，是5号楼",
    "建议在公园里多装几个路灯",
    "谢谢",
]
CONVERSATION = [
    "你好",
    "我要反映个问题，我们小区门口的路灯坏了两个月了，晚上特别黑",
    "幸福街道阳光社区3号楼门口",
    "两个月了",
    "整个小区的人晚上出门都受影响",
    "不用留电话",
    "不匿名",
    "是的，提交吧",
]


def _post(url: str, payload: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(payload, ensure_ascii=False).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(rasa_url: str, rounds: int) -> dict[str, float]:
    parse_ms: list[float] = []
    for _ in tqdm(range(rounds), desc="/model/parse", unit="round"):
        for text in PARSE_TEXTS:
            t0 = time.perf_counter()
            _post(f"{rasa_url}/model/parse", {"text": text})
            parse_ms.append((time.perf_counter() - t0) * 1000)
    turn_ms: list[float] = []
    for _ in tqdm(range(max(1, rounds // 5)), desc="conversations", unit="conv"):
        sender = f"bench-{uuid.uuid4().hex[:8]}"
        for text in CONVERSATION:
            t0 = time.perf_counter()
            _post(f"{rasa_url}/webhooks/rest/webhook", {"sender": sender, "message": text})
            turn_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "parse_median_ms": round(statistics.median(parse_ms), 1),
        "parse_p95_ms": round(_percentile(parse_ms, 0.95), 1),
        "turn_median_ms": round(statistics.median(turn_ms), 1),
        "turn_p95_ms": round(_percentile(turn_ms, 0.95), 1),
        "parse_requests": len(parse_ms),
        "turns": len(turn_ms),
    }


def _run(args: argparse.Namespace) -> int:
    figures: dict[str, float] = {}
    if args.rasa_url:
        figures.update(measure(args.rasa_url, args.rounds))
    else:
        from bot.commands.train import ensure_model
        from bot.supervisor import Ports, Stack
        from index.build_model import build_default_model

        build_default_model()
        with tempfile.TemporaryDirectory(prefix="shangliang-bench-") as tmp:
            stack = Stack(var_dir=Path(tmp), model_path=ensure_model(), ports=Ports.free(), echo=False)
            t0 = time.monotonic()
            stack.start()
            figures["startup_s"] = round(time.monotonic() - t0, 1)
            try:
                figures.update(measure(stack.rasa_url, args.rounds))
            finally:
                stack.stop()
    print(json.dumps(figures, ensure_ascii=False))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = groups["bench"].add_parser("dialogue", help="start-up, /model/parse and REST turn latency")
    parser.add_argument("--rasa-url", help="measure a running Rasa server instead of starting one")
    parser.add_argument("--rounds", type=int, default=20)
    parser.set_defaults(func=_run)
