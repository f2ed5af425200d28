"""Supervision (bot/supervisor.py) with small real child processes standing in for the three servers:
a child killed with SIGKILL is started again while the others keep running, a crash loop stops
everything, the status file tells the intake service's /health, and a stop is quick."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.supervisor import STATUS_FILE, Ports, RestartPolicy, Stack

# Answers every GET with {"models": "ready"} (what the supervisor waits for from the intake service).
CHILD = """
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"models": "ready"}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
FAST = RestartPolicy(initial_backoff=0.2, max_backoff=1.0, max_per_minute=3)


class ToyStack(Stack):
    crash: set[str]

    def commands(self) -> dict[str, list[str]]:
        def child(name: str, port: int) -> list[str]:
            if name in self.crash:
                return [sys.executable, "-c", "import sys; sys.exit(3)"]
            return [sys.executable, "-c", CHILD, str(port)]

        return {"intake": child("intake", self.ports.intake), "actions": child("actions", self.ports.actions),
                "rasa": child("rasa", self.ports.rasa)}


@pytest.fixture()
def toy(tmp_path: Path):
    stack = ToyStack(var_dir=tmp_path / "var", model_path=tmp_path / "none", ports=Ports.free(), echo=False)
    stack.crash = set()
    stack.start(timeout=30)
    yield stack
    stack.stop()


def _status(stack: Stack) -> dict:
    return json.loads((stack.var_dir / STATUS_FILE).read_text(encoding="utf-8"))


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_killed_child_is_restarted_and_the_others_keep_running(toy: ToyStack) -> None:
    assert _status(toy)["processes"] == {"intake": "up", "actions": "up", "rasa": "up"}
    pids = {p.name: p.popen.pid for p in toy.procs}
    toy.supervise_in_background(FAST)
    os.kill(pids["actions"], signal.SIGKILL)
    assert _wait(lambda: _status(toy)["processes"]["actions"] == "down", 5), _status(toy)
    assert _status(toy)["processes"]["intake"] == "up"  # /health of the intake service says "degraded" now
    assert _wait(lambda: _status(toy)["processes"]["actions"] == "up"), _status(toy)
    assert toy.proc("actions").popen.pid != pids["actions"]
    assert toy.proc("intake").popen.pid == pids["intake"] and toy.proc("rasa").popen.pid == pids["rasa"]


def test_backoff_doubles_while_a_child_keeps_dying(toy: ToyStack) -> None:
    proc = toy.proc("rasa")
    toy.crash = {"rasa"}
    proc.popen.kill()
    proc.popen.wait()
    now = time.monotonic()
    delays = []
    for _ in range(3):
        assert toy.check_once(FAST, now)
        delays.append(proc.restart_at - now)
        now = proc.restart_at
        assert toy.check_once(FAST, now)  # restarts it; the crashing command exits at once
        proc.popen.wait(10)
    assert delays == pytest.approx([0.2, 0.4, 0.8])


def test_a_crash_loop_stops_supervision(toy: ToyStack) -> None:
    toy.crash = {"intake"}
    toy.proc("intake").popen.kill()
    stop = threading.Event()
    t0 = time.monotonic()
    assert toy.supervise(stop, FAST, interval=0.05) == 1  # gave up after max_per_minute restarts
    assert time.monotonic() - t0 < 10
    assert _status(toy)["processes"]["intake"] == "down"


def test_stop_is_quick_and_removes_the_status_file(toy: ToyStack) -> None:
    toy.supervise_in_background(FAST)
    popens = [p.popen for p in toy.procs]
    t0 = time.monotonic()
    toy.stop()
    assert time.monotonic() - t0 < 5
    assert all(p.poll() is not None for p in popens)
    assert not (toy.var_dir / STATUS_FILE).exists()


def test_health_reads_the_supervisor_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.service.app import supervised_processes

    monkeypatch.setenv("SHANGLIANG_VAR", str(tmp_path))
    path = tmp_path / STATUS_FILE
    path.parent.mkdir(parents=True)
    body = {"supervisor_pid": os.getpid(), "processes": {"intake": "starting", "rasa": "down", "actions": "up"}}
    path.write_text(json.dumps(body), encoding="utf-8")
    assert supervised_processes() == {"rasa": "down", "actions": "up"}
    # A file left behind by a supervisor that is gone says nothing.
    gone = _dead_pid()
    path.write_text(json.dumps({**body, "supervisor_pid": gone}), encoding="utf-8")
    assert supervised_processes() == {}


def _dead_pid() -> int:
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
