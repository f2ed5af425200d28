"""Start the Rasa server, the action server and the intake service together, keep them running, and
stop them together.

Used by `shangliang run` (logs to the console with a prefix per process, and to var/logs/) and by the
end-to-end tests (logs to files only, free ports, a temporary var/ directory).

Supervision (`Stack.supervise`): a child that dies is started again after an exponential backoff while the
others keep running; more than `RestartPolicy.max_per_minute` deaths of one child in a minute stop
everything (a crash loop needs a person). The state of every child is written to var/run/processes.json,
which the intake service's /health reads to report `degraded` while one is down.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from bot.config import QUIET_ENV, REPO_ROOT
from bot.tokens import TOKENS, token

log = logging.getLogger(__name__)

COLOURS = {"intake": "\033[36m", "actions": "\033[35m", "rasa": "\033[33m"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Ports:
    rasa: int = 5005
    actions: int = 5055
    intake: int = 8088

    @classmethod
    def free(cls) -> Ports:
        return cls(rasa=free_port(), actions=free_port(), intake=free_port())


STATUS_FILE = Path("run") / "processes.json"  # under var/; read by bot.service.app.health


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff: float = 1.0  # seconds before the first restart
    max_backoff: float = 30.0
    max_per_minute: int = 5  # more deaths than this within 60 s: give up and stop everything
    stable_after: float = 60.0  # up this long: the next death starts again from initial_backoff


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log_file: IO[str]
    pump: threading.Thread | None = None
    state: str = "starting"  # starting -> up; down (waiting for a restart at restart_at)
    started_at: float = field(default_factory=time.monotonic)
    backoff: float = 0.0
    restart_at: float = 0.0
    deaths: deque = field(default_factory=deque)  # monotonic times of recent deaths


@dataclass
class Stack:
    """The three processes of one deployment."""

    var_dir: Path
    model_path: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    credentials: Path = REPO_ROOT / "credentials.yml"
    echo: bool = True  # copy logs to this process's stdout with a prefix
    procs: list[_Proc] = field(default_factory=list)
    _supervision: tuple[threading.Thread, threading.Event] | None = None

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.ports.rasa}"

    @property
    def action_url(self) -> str:
        return f"http://{self.host}:{self.ports.actions}"

    @property
    def intake_url(self) -> str:
        return f"http://{self.host}:{self.ports.intake}"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "logs"

    def env(self) -> dict[str, str]:
        env = {**os.environ, **QUIET_ENV, **self.extra_env}
        env["SHANGLIANG_VAR"] = str(self.var_dir)
        env["SHANGLIANG_HOST"] = self.host
        env["SHANGLIANG_PORT"] = str(self.ports.intake)
        env["SHANGLIANG_PUBLIC_URL"] = self.intake_url
        env["SHANGLIANG_RASA_URL"] = self.rasa_url
        env["SHANGLIANG_INTAKE_URL"] = self.intake_url
        env["SANIC_HOST"] = self.host  # rasa_sdk listens on 0.0.0.0 unless told otherwise
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        # Shared secrets are settled here, before the processes start, so they never race to create them:
        # the action server sends the service token, Rasa's HTTP API requires the Rasa token.
        for kind in ("service", "rasa"):
            name = TOKENS[kind][0]
            env[name] = env.get(name) or token(kind, self.var_dir)
        if not env.get(TOKENS["secret"][0]):
            token("secret", self.var_dir)
        # Run from the repository so `actions` and `bot` import without installation tricks.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    @property
    def rasa_token(self) -> str:
        return self.extra_env.get(TOKENS["rasa"][0]) or token("rasa", self.var_dir)

    @property
    def service_token(self) -> str:
        return self.extra_env.get(TOKENS["service"][0]) or token("service", self.var_dir)

    def write_endpoints(self) -> Path:
        with open(REPO_ROOT / "endpoints.yml", encoding="utf-8") as fh:
            endpoints = yaml.safe_load(fh) or {}
        endpoints["action_endpoint"] = {"url": f"{self.action_url}/webhook"}
        tracker = endpoints.get("tracker_store") or {}
        if tracker.get("dialect") == "sqlite":
            tracker["db"] = str(self.var_dir / "rasa_tracker.db")
        path = self.var_dir / "run" / "endpoints.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), encoding="utf-8")
        return path

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        return {
            "intake": [py, "-m", "bot.cli", "serve", "--host", self.host, "--port", str(self.ports.intake)],
            "actions": [py, "-m", "actions.server", "--actions", "actions", "-p", str(self.ports.actions)],
            "rasa": [
                # Rasa's own CLI with bot/rasa_server.py's fixes. The HTTP API (/model, /conversations)
                # needs ?token=; only /webhooks/* is open.
                py, "-m", "bot.rasa_server", "run", "--enable-api", "--auth-token", self.rasa_token,
                "--cors", self.intake_url,
                "-i", self.host, "-p", str(self.ports.rasa),
                "-m", str(self.model_path),
                "--endpoints", str(self.write_endpoints()),
                "--credentials", str(self.credentials),
            ],
        }

    def health_urls(self) -> dict[str, str]:
        return {
            "intake": f"{self.intake_url}/health",
            "actions": f"{self.action_url}/health",
            "rasa": f"{self.rasa_url}/status?token={self.rasa_token}",  # /status is behind --auth-token
        }

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, bufsize=1, errors="replace",
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )

    def _start_pump(self, proc: _Proc) -> None:
        proc.pump = threading.Thread(target=self._pump, args=(proc, proc.popen), daemon=True)
        proc.pump.start()

    def start(self, timeout: float = 420.0) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for name, cmd in self.commands().items():
            log_file = open(self.log_dir / f"{name}.log", "a", encoding="utf-8")
            proc = _Proc(name, self._spawn(name, cmd, env), log_file)
            self._start_pump(proc)
            self.procs.append(proc)
        self.write_status()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.write_status()

    def _pump(self, proc: _Proc, popen: subprocess.Popen) -> None:
        assert popen.stdout is not None
        colour = COLOURS.get(proc.name, "")
        for line in popen.stdout:
            proc.log_file.write(line)
            proc.log_file.flush()
            if self.echo:
                sys.stdout.write(f"{colour}{proc.name:>7}\033[0m | {line}")
                sys.stdout.flush()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = self.health_urls()
        while pending:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(
                        f"{proc.name} exited with code {proc.popen.returncode}; see {self.log_dir / proc.name}.log:\n"
                        + self.tail(proc.name)
                    )
            for name, url in list(pending.items()):
                if _ready(name, url):
                    log.info("%s is ready (%s)", name, url.split("?")[0])  # never the token
                    self.proc(name).state = "up"
                    del pending[name]
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(1.0)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def proc(self, name: str) -> _Proc:
        return next(p for p in self.procs if p.name == name)

    # ---- supervision ---------------------------------------------------------------------------
    def supervise(self, stop: threading.Event, policy: RestartPolicy | None = None,
                  interval: float = 0.5) -> int:
        """Keep the children running until `stop` is set (returns 0) or one of them crash-loops (1)."""
        policy = policy or RestartPolicy()
        while not stop.wait(interval):
            if not self.check_once(policy):
                return 1
        return 0

    def supervise_in_background(self, policy: RestartPolicy | None = None) -> None:
        """`supervise` in a daemon thread (tests); `stop` ends it before stopping the children."""
        stop = threading.Event()
        thread = threading.Thread(target=self.supervise, args=(stop, policy), name="supervisor", daemon=True)
        thread.start()
        self._supervision = (thread, stop)

    def check_once(self, policy: RestartPolicy, now: float | None = None) -> bool:
        """One supervision pass: notice deaths, start children whose backoff is over, mark ready ones.
        False when a child died too often within a minute."""
        now = time.monotonic() if now is None else now
        changed = False
        for proc in self.procs:
            if proc.state != "down" and proc.popen.poll() is not None:
                changed = True
                if not self._schedule_restart(proc, policy, now):
                    self.write_status()
                    return False
            elif proc.state == "down" and now >= proc.restart_at:
                changed = True
                self._restart(proc)
            elif proc.state == "starting" and _ready(proc.name, self.health_urls()[proc.name], timeout=1.0):
                changed = True
                proc.state = "up"
                log.info("%s is answering again after %.0f s", proc.name, now - proc.started_at)
        if changed:
            self.write_status()
        return True

    def _schedule_restart(self, proc: _Proc, policy: RestartPolicy, now: float) -> bool:
        proc.deaths.append(now)
        proc.state = "down"
        while proc.deaths and now - proc.deaths[0] > 60.0:
            proc.deaths.popleft()
        if len(proc.deaths) > policy.max_per_minute:
            log.error("%s died %d times within a minute (last exit code %s); not restarting it, see %s",
                      proc.name, len(proc.deaths), proc.popen.returncode, self.log_dir / f"{proc.name}.log")
            return False
        stable = now - proc.started_at >= policy.stable_after
        proc.backoff = policy.initial_backoff if stable or not proc.backoff else min(
            policy.max_backoff, proc.backoff * 2)
        proc.restart_at = now + proc.backoff
        log.error("%s stopped unexpectedly (exit code %s); restarting it in %.1f s (death %d within a minute); "
                  "the others keep running", proc.name, proc.popen.returncode, proc.backoff, len(proc.deaths))
        return True

    def _restart(self, proc: _Proc) -> None:
        if proc.pump is not None:
            proc.pump.join(timeout=2)
        cmd = self.commands()[proc.name]
        proc.popen = self._spawn(proc.name, cmd, self.env())
        proc.started_at = time.monotonic()
        proc.state = "starting"
        self._start_pump(proc)
        log.warning("%s restarted (pid %d)", proc.name, proc.popen.pid)

    def write_status(self) -> None:
        """var/run/processes.json, replaced atomically: the supervisor's pid and each child's state."""
        path = self.var_dir / STATUS_FILE
        body = {"supervisor_pid": os.getpid(), "updated": time.time(),
                "processes": {p.name: p.state for p in self.procs}}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(body), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:  # e.g. disk full: supervision goes on, /health just cannot tell
            log.warning("could not write %s: %s", path, exc)

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM to every child at once (each stops by itself in a few seconds), SIGKILL after `grace`."""
        if self._supervision is not None:  # no restarts of what we are about to stop
            thread, stop = self._supervision
            stop.set()
            thread.join(timeout=10)
            self._supervision = None
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", proc.name)
                try:
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait(5)
            if proc.pump is not None:
                proc.pump.join(timeout=2)
            proc.log_file.close()
        (self.var_dir / STATUS_FILE).unlink(missing_ok=True)
        self.procs.clear()


def _ready(name: str, url: str, timeout: float = 2.0) -> bool:
    # The intake service answers /health at once; it is ready when its models are loaded.
    return _http_ok(url, require={"models": "ready"} if name == "intake" else None, timeout=timeout)


def _http_ok(url: str, require: dict[str, str] | None = None, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if not 200 <= resp.status < 300:
                return False
            if not require:
                return True
            body = json.loads(resp.read().decode("utf-8"))
            return all(body.get(key) == value for key, value in require.items())
    except (urllib.error.URLError, OSError, ValueError):
        return False
