"""Two real intake services on one PostgreSQL database: near-identical reports arriving at both within
100 ms end up recognised as one concern (the second is joined to, or offered, the first's case), because
each service catches its index up and decides under a per-area advisory lock (bot/service/decision_lock.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from bot.config import QUIET_ENV, REPO_ROOT
from bot.supervisor import free_port
from tests.conftest import postgres_schema

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REPORTS = [
    ("锦绣花园小区8栋的电梯从上个月开始就一直坏着，物业说在等配件，楼里好多老人天天爬十几层楼，请尽快修好。",
     "锦绣花园小区8栋的电梯从上个月起一直坏着，物业说在等配件，楼里很多老人天天爬十几层楼，请尽快修好！",
     "锦绣花园小区8栋"),
    ("滨江路和学士路交叉口没有红绿灯，早上送孩子上学的车和电动车抢道，很危险，建议装信号灯。",
     "滨江路学士路交叉口没有红绿灯，早上送孩子上学的汽车和电动车抢道，太危险了，建议装信号灯。",
     "滨江路学士路口"),
]

# Both services accept the action server's token (submissions need it).
SERVICE_TOKEN = "shared-test-service-token"


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {SERVICE_TOKEN}"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read().decode("utf-8"))


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return json.loads(resp.read().decode("utf-8")).get("models") == "ready"
    except OSError:
        return False


@pytest.fixture(scope="module")
def two_services(tmp_path_factory: pytest.TempPathFactory, encoder_model_path: Path):
    tmp_path = tmp_path_factory.mktemp("two-intakes")
    with postgres_schema() as database_url:
        base_env = {**os.environ, **QUIET_ENV, "DATABASE_URL": database_url,
                    "SHANGLIANG_ENCODER_PATH": str(encoder_model_path), "SHANGLIANG_SECRET": "shared-test-secret",
                    "SHANGLIANG_SERVICE_TOKEN": SERVICE_TOKEN,
                    "PYTHONPATH": str(REPO_ROOT)}
        # The schema first, so the two services start together without racing each other's migrations.
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], cwd=REPO_ROOT, check=True,
                       env={**base_env, "SHANGLIANG_VAR": str(tmp_path)}, capture_output=True)
        procs, urls = [], []
        for name in ("a", "b"):
            port = free_port()
            var = tmp_path / name
            var.mkdir()
            log = open(var / "intake.log", "w", encoding="utf-8")
            procs.append((subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port),
                                            "--no-outbox"], cwd=REPO_ROOT, env={**base_env, "SHANGLIANG_VAR": str(var)},
                                           stdout=log, stderr=subprocess.STDOUT), log, var))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 300
        while not all(_ready(u) for u in urls):
            assert time.monotonic() < deadline, "intake services not ready: " + " / ".join(
                (v / "intake.log").read_text(encoding="utf-8")[-1500:] for _p, _l, v in procs)
            time.sleep(1)
        try:
            yield urls
        finally:
            for proc, _log, _var in procs:
                proc.terminate()
            for proc, log, _var in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()


@pytest.mark.parametrize("attempt", range(3))
def test_near_identical_reports_at_two_services_are_one_concern(two_services: list[str], attempt: int) -> None:
    first_text, second_text, place = REPORTS[attempt % len(REPORTS)]
    tag = uuid.uuid4().hex[:8]
    barrier = threading.Barrier(2)
    results: dict[int, dict] = {}
    sent: dict[int, float] = {}

    def send(i: int, url: str, text: str) -> None:
        barrier.wait()
        sent[i] = time.monotonic()
        results[i] = _post(f"{url}/api/v1/submissions", {"text": text, "channel": "rest", "place": place,
                                                          "sender": f"shared-{tag}-{i}",
                                                          "client_ref": f"shared-{tag}-{i}"})

    threads = [threading.Thread(target=send, args=(i, url, text))
               for i, (url, text) in enumerate(zip(two_services, (first_text, second_text), strict=True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(results) == 2, results
    assert abs(sent[0] - sent[1]) < 0.1
    earlier, later = sorted(results.values(), key=lambda r: r["submission_id"])
    decision = later["duplicate"]
    offered = [c["case_number"] for c in decision["candidates"]]
    # Joined to the same case, or offered it (the resident confirms): either way one concern, not two.
    assert later["case_number"] == earlier["case_number"] or (
        decision["decision"] == "ask" and earlier["case_number"] in offered), (earlier, later)


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        for line in resp.read().decode("utf-8").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in {url}/metrics")


def test_a_submission_at_one_service_reaches_the_other_index_without_a_decision(two_services: list[str]) -> None:
    """LISTEN/NOTIFY (bot/service/index_sync.py): service b indexes what a stored, within seconds, although
    nothing was filed at b (no duplicate decision there to catch it up)."""
    a, b = two_services
    before = _metric(b, "shangliang_index_vectors")
    heard = _metric(b, "shangliang_index_notifications")
    tag = uuid.uuid4().hex[:8]
    _post(f"{a}/api/v1/submissions", {"text": f"翠湖雅苑小区东门的路灯坏了三个星期了，晚上出门很黑（{tag}）",
                                      "channel": "rest", "sender": f"sync-{tag}", "client_ref": f"sync-{tag}"})
    deadline = time.monotonic() + 10  # the periodic catch-up is 60 s: only the notification can be this quick
    while _metric(b, "shangliang_index_vectors") < before + 1:
        assert time.monotonic() < deadline, "service b did not index service a's submission within 10 s"
        time.sleep(0.2)
    assert _metric(b, "shangliang_index_notifications") >= heard + 1
