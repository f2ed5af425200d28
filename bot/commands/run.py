"""`shangliang run`: build what is missing, then run Rasa, the action server and the intake service."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from bot.config import settings, var_dir
from bot.supervisor import Ports, RestartPolicy, Stack

log = logging.getLogger(__name__)


def prepare() -> None:
    """Everything a fresh checkout needs before the processes start; each step is cached."""
    from index.build_model import build_default_model

    build_default_model()
    from bot.commands.train import ensure_model

    ensure_model()


def _run(args: argparse.Namespace) -> int:
    if not args.skip_prepare:
        prepare()
    from bot.commands.train import ensure_model

    model = ensure_model()
    cfg = settings()
    ports = Ports(rasa=args.rasa_port, actions=args.actions_port, intake=int(cfg["service"]["port"]))
    stack = Stack(var_dir=var_dir(), model_path=model, ports=ports, host=str(cfg["service"]["host"]))
    started = time.monotonic()
    log.info("Starting Rasa, the action server and the intake service (Rasa needs a minute or two to load)...")
    stack.start()
    print(
        f"\n  商量 Shangliang is running (ready in {time.monotonic() - started:.0f} s).\n"
        f"  Web chat:       {stack.intake_url}/chat\n"
        f"  Intake API:     {stack.intake_url}/api/v1\n"
        f"  Rasa server:    {stack.rasa_url}\n"
        f"  Logs:           {stack.log_dir}\n"
        "  Press Ctrl-C to stop.\n",
        flush=True,
    )

    stop = threading.Event()

    def _terminate(signum: int, frame: object) -> None:
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    policy = RestartPolicy(max_per_minute=args.max_restarts_per_minute)
    try:
        code = stack.supervise(stop, policy)
        if code:
            log.error("stopping everything: a process keeps dying (see its log above)")
    finally:
        # A second Ctrl-C must not interrupt the orderly stop and leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("Stopping...")
        t0 = time.monotonic()
        stack.stop()
        log.info("All processes stopped in %.1f s.", time.monotonic() - t0)
    return code


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("run", help="build what is missing and run all three processes")
    parser.add_argument("--skip-prepare", action="store_true", help="do not build the encoder or train")
    parser.add_argument("--rasa-port", type=int, default=5005)
    parser.add_argument("--actions-port", type=int, default=5055)
    parser.add_argument("--max-restarts-per-minute", type=int, default=RestartPolicy.max_per_minute,
                        help="a process that dies more often than this is not restarted; everything stops")
    parser.set_defaults(func=_run)
