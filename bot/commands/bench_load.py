"""`shangliang bench load`: many residents talking at once through Rasa's REST channel.

A bounded asyncio load generator on loopback: `--residents` conversations, at most `--concurrency` at a
time. Each resident reports a different problem at a different estate (so duplicate detection does not
turn the conversation into a "same case?" question) and answers the bot's questions by their wording, as
the dialogue end-to-end tests do, until it is told a case number. Prints turns/s and turn latency, then checks the
database: every resident who was told a case number must have exactly one stored submission (lost /
doubled counts). `--profile` samples every server process with py-spy during the load and prints where
the time goes. Starts its own deployment (temporary var/, free ports) unless --rasa-url is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CASE_NUMBER = re.compile(r"[A-Z]{1,6}\d{4}-\d{3,}")
PROBLEMS = [
    "门口的路灯坏了两个月了，晚上特别黑",
    "楼道里的垃圾一直没人清理，味道很大",
    "电梯经常停运，老人上下楼很困难",
    "小区里的下水道堵了，一下雨就积水",
    "楼下的烧烤店每天晚上吵到半夜",
    "门口的人行道砖坏了好多，容易绊倒",
    "自来水最近发黄，烧开了也有沉淀",
    "楼顶漏水，下雨天家里墙都湿了",
    "车库的消防通道被私家车堵死了",
    "健身器材坏了很久，孩子玩的时候很危险",
]
ESTATES_A = ["阳光", "幸福", "锦绣", "和平", "丽水", "翠湖", "金桂", "银杏", "松涛", "滨江", "东湖", "西苑"]
ESTATES_B = ["花园", "新城", "家园", "雅苑", "名邸", "佳苑"]


def place_for(index: int) -> str:
    estate = ESTATES_A[(index // len(PROBLEMS)) % len(ESTATES_A)] + ESTATES_B[
        (index // (len(PROBLEMS) * len(ESTATES_A))) % len(ESTATES_B)]
    return f"{estate}小区{index % 97 + 1}号楼"


def opener_for(index: int) -> str:
    """Resident `index`'s first message: a different problem at a different place for every resident."""
    return f"我们{place_for(index)}{PROBLEMS[index % len(PROBLEMS)]}"


# What a resident answers to each of the form's questions, matched on the bot's wording (domain.yml), as the
# dialogue end-to-end tests do; the first matching cue wins (the read-back mentions 匿名 and 联系电话 too).
ANSWERS = [
    ("核对", "确认"),
    ("具体说说", "{problem}"),
    ("发生在哪里", "{place}"),
    ("针对哪里", "{place}"),
    ("什么时候开始", "两个月了"),
    ("多少人", "整栋楼"),
    ("联系电话吗", "不留"),
    ("匿名", "不用"),
]
MAX_TURNS = 12


def answer_for(index: int, last_reply: str) -> str | None:
    for cue, answer in ANSWERS:
        if cue in last_reply:
            return answer.format(place=place_for(index), problem=PROBLEMS[index % len(PROBLEMS)])
    return None


@dataclass
class Resident:
    sender: str
    turns_ms: list[float] = field(default_factory=list)
    case_numbers: set[str] = field(default_factory=set)
    errors: int = 0
    retries: int = 0
    unexpected: list[str] = field(default_factory=list)  # bot turns the script had no answer for


async def converse(session: Any, rasa_url: str, index: int, resident: Resident, timeout: float) -> None:
    """Answer the bot until it gives a case number, asks something unknown, or MAX_TURNS pass."""
    import aiohttp

    text: str | None = opener_for(index)
    for _ in range(MAX_TURNS):
        if text is None:
            return
        t0 = time.perf_counter()
        body: list[dict[str, Any]] = []
        try:
            async with session.post(f"{rasa_url}/webhooks/rest/webhook",
                                    json={"sender": resident.sender, "message": text},
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status == 200:
                    body = await resp.json(content_type=None) or []
                else:
                    resident.errors += 1
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            resident.errors += 1
        resident.turns_ms.append((time.perf_counter() - t0) * 1000)
        replies = [str(m.get("text") or "") for m in body if isinstance(m, dict)]
        for reply in replies:
            resident.case_numbers.update(CASE_NUMBER.findall(reply))
        if resident.case_numbers:
            return
        if not replies:  # the server failed or said nothing: try the same answer again
            resident.retries += 1
            if resident.retries > 3:
                return
            await asyncio.sleep(1.0)
            continue
        text = answer_for(index, replies[-1])
        if text is None:
            resident.unexpected.append(replies[-1][:80])


async def drive(rasa_url: str, residents: int, concurrency: int, timeout: float = 60.0,
                prefix: str | None = None) -> tuple[list[Resident], float]:
    """Run the conversations; (residents, wall seconds)."""
    import aiohttp

    prefix = prefix or f"load{uuid.uuid4().hex[:6]}"
    people = [Resident(f"{prefix}-{i:05d}") for i in range(residents)]
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            async with gate:
                await converse(session, rasa_url, i, people[i], timeout)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(residents)))
        wall = time.perf_counter() - t0
    return people, wall


def stored_per_sender(database_url: str, senders: list[str]) -> Counter:
    """Stored live submissions per resident, found by the client_ref the action gives each concern
    ("<channel>:<sender>:<message id>", stored as external_id "api:<client_ref>")."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    counts: Counter = Counter()
    wanted = set(senders)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select external_id from submissions where external_id like 'api:%'"))
            for (external_id,) in rows:
                parts = str(external_id).split(":")
                if len(parts) >= 4 and parts[2] in wanted:
                    counts[parts[2]] += 1
    finally:
        engine.dispose()
    return counts


def tally(people: list[Resident], stored: Counter) -> dict[str, int]:
    acknowledged = [p for p in people if p.case_numbers]
    return {
        "acknowledged": len(acknowledged),
        "stored": sum(1 for p in people if stored[p.sender] >= 1),
        "lost": sum(1 for p in acknowledged if stored[p.sender] == 0),
        "doubled": sum(1 for p in people if stored[p.sender] > 1),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def figures(people: list[Resident], wall: float) -> dict[str, Any]:
    turns = [ms for p in people for ms in p.turns_ms]
    return {
        "residents": len(people),
        "turns": len(turns),
        "wall_s": round(wall, 1),
        "turns_per_s": round(len(turns) / wall, 1) if wall else 0.0,
        "turn_p50_ms": round(statistics.median(turns), 1) if turns else 0.0,
        "turn_p95_ms": round(_percentile(turns, 0.95), 1),
        "turn_max_ms": round(max(turns), 1) if turns else 0.0,
        "failed_turns": sum(p.errors for p in people),
        "unfinished": sum(1 for p in people if not p.case_numbers),
    }


class Profiler:
    """py-spy sampling of the server processes while the load runs (raw collapsed stacks per process)."""

    def __init__(self, pids: dict[str, int], out_dir: Path, seconds: int) -> None:
        self.out_dir = out_dir
        self.procs: dict[str, subprocess.Popen] = {}
        import sys

        beside = Path(sys.executable).with_name("py-spy")  # installed in the same virtualenv
        exe = str(beside) if beside.exists() else shutil.which("py-spy")
        if exe is None:
            raise SystemExit("--profile needs py-spy: pip install -c constraints.txt py-spy")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.procs[name] = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--duration", str(seconds),
                 "--nonblocking", "--output", str(out_dir / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, top: int = 12) -> dict[str, list[str]]:
        for proc in self.procs.values():
            proc.send_signal(2)  # SIGINT: py-spy writes what it has
        summary = {}
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            summary[name] = summarise(self.out_dir / f"{name}.txt", top)
        return summary


def summarise(path: Path, top: int = 12) -> list[str]:
    """The functions with the most samples anywhere on the stack (inclusive), as 'share% function'."""
    if not path.exists():
        return []
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = {frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
                  for frame in stack.split(";") if frame}
        for frame in frames:
            inclusive[frame] += n
    skip = ("<module>", "run_forever", "_run_once", "_run (events", "run (runners", "run_until_complete",
            "_bootstrap", "run (threading", "_worker (thread", "main (", "start (")
    rows = [(frame, n) for frame, n in inclusive.most_common() if not frame.startswith(skip)]
    return [f"{100 * n / total:5.1f}% {frame}" for frame, n in rows[:top]] if total else []


def _load(args: argparse.Namespace, rasa_url: str, database_url: str | None,
          pids: dict[str, int] | None, profile_dir: Path) -> dict[str, Any]:
    profiler = None
    if args.profile and pids:
        profiler = Profiler(pids, profile_dir, seconds=600)
    people, wall = asyncio.run(drive(rasa_url, args.residents, args.concurrency, args.turn_timeout))
    result = figures(people, wall)
    odd = Counter(text for p in people for text in p.unexpected)
    for text, n in odd.most_common(3):
        log.warning("%d conversation(s) stopped at a bot turn the script cannot answer: %s", n, text)
    if profiler is not None:
        result["profile_dir"] = str(profile_dir)
        for name, lines in profiler.finish().items():
            print(f"--- {name}: share of samples (inclusive)")
            print("\n".join(lines))
    if database_url:
        time.sleep(args.settle)  # spooled concerns are replayed within seconds
        result.update(tally(people, stored_per_sender(database_url, [p.sender for p in people])))
    return result


def _run(args: argparse.Namespace) -> int:
    if args.rasa_url:
        result = _load(args, args.rasa_url.rstrip("/"), args.database_url, None, Path(tempfile.mkdtemp()))
    else:
        from bot.commands.train import ensure_model
        from bot.supervisor import Ports, Stack
        from index.build_model import build_default_model

        build_default_model()
        with tempfile.TemporaryDirectory(prefix="shangliang-load-") as tmp:
            stack = Stack(var_dir=Path(tmp), model_path=ensure_model(), ports=Ports.free(), echo=False)
            stack.start()
            try:
                pids = {p.name: p.popen.pid for p in stack.procs}
                out = Path(args.profile_dir) if args.profile_dir else Path(tmp) / "profile"
                result = _load(args, stack.rasa_url, f"sqlite:///{Path(tmp) / 'shangliang.db'}", pids, out)
                if args.profile and not args.profile_dir:
                    result.pop("profile_dir", None)  # under the temporary directory, gone now
            finally:
                stack.stop()
    print(json.dumps(result, ensure_ascii=False))
    return 0 if not result.get("lost") and not result.get("doubled") else 1


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = groups["bench"].add_parser("load", help="concurrent scripted conversations: turns/s, p50/p95, "
                                                     "lost/doubled concerns")
    parser.add_argument("--residents", type=int, default=50, help="conversations in all")
    parser.add_argument("--concurrency", type=int, default=50, help="conversations at once")
    parser.add_argument("--rasa-url", help="drive a running Rasa server instead of starting a deployment")
    parser.add_argument("--database-url", help="with --rasa-url: the intake database, to count lost/doubled")
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait for replays before counting")
    parser.add_argument("--profile", action="store_true", help="sample the server processes with py-spy")
    parser.add_argument("--profile-dir", help="keep py-spy's raw stacks here (default: discarded)")
    parser.set_defaults(func=_run)
