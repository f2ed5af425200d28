"""`shangliang bench dialogue`: start-up time, /model/parse latency and end-to-end turn latency.

Starts its own deployment (temporary var/, free ports) unless --rasa-url points at a running one.

`parse_*` repeats PARSE_TEXTS for --rounds rounds (the figures comparable across versions). The NLU caches
encoder vectors by text, so repeats after the first round are cache hits; `parse_unseen_*` sends texts
each sent once (UNSEEN_TEXTS, short answers and opening messages of usual length), and `parse_long_*` one
long story per request, to show what a message never seen before costs.
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
# Sent once each (never repeated in a run): the NLU's text cache cannot help them.
UNSEEN_TEXTS = [
    "嗯嗯可以", "不是这个意思", "算了吧不交了", "让我再想想", "就这样吧，帮我交上去", "没毛病", "不对，地址错了",
    "您好，请问在哪里反映问题", "楼下饭店油烟太大了，窗户都不敢开", "我家这片最近老是停水，一停就是一整天",
    "申请的低保三个月了还没有消息", "小区垃圾站臭味很重，夏天没法过", "公交站牌被撞坏了一直没人管",
    "晚上十点以后还有人在广场跳舞，音响特别吵", "人行道上的井盖松了，踩上去会晃", "我想查一下上个月提交的那件事",
    "能不能帮我找个人工客服", "孩子上学的路上没有斑马线", "去年的取暖补贴到现在都没发", "你们是政府的吗",
    "我住在幸福路12号院", "大概是上周三开始的", "整栋楼的人都受影响", "电话就不留了", "可以匿名吗",
    "好的谢谢你们", "再见", "SL2026-000031现在怎么样了", "建议社区多组织一些老年人活动", "不想说了",
]
LONG_TEXT = (
    "尊敬的领导：您好！我是幸福街道阳光社区的居民，住在阳光家园5号楼。从今年三月份开始，我们楼的电梯就经常出故障，"
    "有时候一天停好几次，上个月还有一位老人被困在里面将近一个小时。我们多次找物业反映，物业每次都说已经报修了，"
    "但是一直没有彻底修好。楼里住着很多老人和带小孩的家庭，每天爬十几层楼非常辛苦。希望有关部门能督促物业尽快"
    "更换电梯或者彻底维修，保障居民的出行安全。谢谢！"
)
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
    unseen_ms: list[float] = []
    for text in UNSEEN_TEXTS:
        t0 = time.perf_counter()
        _post(f"{rasa_url}/model/parse", {"text": text})
        unseen_ms.append((time.perf_counter() - t0) * 1000)
    long_ms: list[float] = []
    for i in range(10):
        t0 = time.perf_counter()
        _post(f"{rasa_url}/model/parse", {"text": f"{LONG_TEXT}（第{i + 1}次反映）"})
        long_ms.append((time.perf_counter() - t0) * 1000)
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
        "parse_unseen_median_ms": round(statistics.median(unseen_ms), 1),
        "parse_unseen_p95_ms": round(_percentile(unseen_ms, 0.95), 1),
        "parse_long_median_ms": round(statistics.median(long_ms), 1),
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
