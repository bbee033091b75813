"""newsbot command line: the composition root. Parses arguments, loads settings, runs one command."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from bot import eventloop
from bot.errors import ConfigError, StoreError
from bot.logs import configure_logging
from bot.settings import DEFAULT_CONFIG_DIR, Settings, load_settings


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python main.py", description="Export-control news alerts for traders.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_DIR, help="settings directory (default config/)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="the service: poll feeds on schedule and deliver alerts (default)")
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, drain the outbox, exit")
    commands.add_parser("demo", help="offline demo on bundled sample feeds and recorded prices")
    classify = commands.add_parser("classify", help="classify JSON Lines or text lines; one JSON line per input")
    classify.add_argument("path", nargs="?", default="-", help="input file, or - for standard input")
    evaluate = commands.add_parser("eval", help="precision, recall and F1 on labelled JSON Lines")
    evaluate.add_argument("path", type=Path)
    commands.add_parser("feeds", help="check every configured feed once and print a table")
    consume = commands.add_parser("consume", help="reference consumer of the Redis alert stream")
    consume.add_argument("--group", default="newsbot-consumers")
    consume.add_argument("--count", type=int, default=0, help="stop after N alerts (0: run until Ctrl-C)")
    outbox = commands.add_parser("outbox", help="list parked deliveries; --retry queues them again")
    outbox.add_argument("--retry", action="store_true")
    for sub in commands.choices.values():
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.command = args.command or "run"
    args.once = getattr(args, "once", False)
    return args


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        settings = load_settings(args.config, environ)
    except ConfigError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets(), log_format=settings.log_format)
    try:
        return eventloop.run(dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except (ConfigError, StoreError) as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from bot import commands  # imported here so `--help` and config errors stay instant

    handlers: dict[str, Callable[[argparse.Namespace, Settings], int | Awaitable[int]]] = {
        "run": commands.run,
        "demo": commands.demo,
        "classify": commands.classify,
        "eval": commands.evaluate,
        "feeds": commands.check_feeds,
        "consume": commands.consume,
        "outbox": commands.outbox,
    }
    result = handlers[args.command](args, settings)
    if inspect.isawaitable(result):
        return int(await result)
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
