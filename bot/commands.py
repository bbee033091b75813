"""The CLI commands of DESIGN.md, each a small function or coroutine over (arguments, settings)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from bot.app import build_app, install_signal_handlers, run_once, serve
from bot.demo import run_demo
from bot.errors import ConfigError, FeedError
from bot.redis_store import open_store
from bot.settings import Settings, load_feeds
from feeds.fetch import Fetcher, FetchLimits, make_client
from feeds.health import Validators
from feeds.parse import parse_feed
from feeds.records import FeedSpec


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """The service, or with --once a single poll of every feed and a drained outbox."""
    feeds = load_feeds(settings.feeds_file, settings.poll_interval, settings.min_interval)
    async with AsyncExitStack() as stack:
        app = await build_app(settings, feeds, stack)
        if args.once:
            reports, pending = await run_once(app)
            failed = [r for r in reports if r.status == "failed"]
            alerts = sum(len(r.alerts) for r in reports)
            print(f"polled {len(reports)} feeds: {len(reports) - len(failed)} ok, {len(failed)} failed; "
                  f"{alerts} alerts; {pending} deliveries pending", file=sys.stderr)
            return 0
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await serve(app, stop)
    return 0


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    return await run_demo(settings, sys.stdout)


def classify(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from bot.evaluation import classify_lines
    from feeds.classify import Classifier

    classifier = Classifier.from_dir(settings.config_dir, settings.alert_threshold)
    if args.path == "-":
        lines = sys.stdin
    else:
        path = Path(args.path)
        if not path.exists():
            raise ConfigError([f"{path}: no such file (give a JSON Lines file, or - for standard input)"])
        lines = iter(path.read_text(encoding="utf-8").splitlines())
    for result in classify_lines(classifier, lines):
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evaluation import evaluate as run_eval
    from bot.evaluation import format_report, read_records
    from feeds.baseline import KeywordBaseline
    from feeds.classify import Classifier

    if not args.path.exists():
        raise ConfigError([f"{args.path}: no such file"])
    try:
        records = list(read_records(args.path.read_text(encoding="utf-8").splitlines()))
    except ValueError as exc:
        raise ConfigError([f"{args.path}: {exc}"]) from None
    classifier = Classifier.from_dir(settings.config_dir, settings.alert_threshold)
    report = run_eval(classifier, records)
    baseline = run_eval(KeywordBaseline.from_dir(settings.config_dir), records)
    print(format_report(report, baseline))
    return 0


async def check_feeds(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch and parse every feed once; print one row per feed as it completes."""
    feeds = load_feeds(settings.feeds_file, settings.poll_interval)
    limits = FetchLimits(settings.fetch_timeout, settings.fetch_max_bytes, settings.fetch_max_redirects)
    width = max(len(f.name) for f in feeds)
    print(f"{'feed':<{width}}  {'status':<6}  {'items':>5}  {'latency':>8}  last error", flush=True)
    gate = asyncio.Semaphore(20)
    async with make_client(settings.user_agent, limits) as client:
        fetcher = Fetcher(client, limits)

        async def one(feed: FeedSpec) -> bool:
            async with gate:
                ok, items, ms, error = await _check(fetcher, feed)
            print(f"{feed.name:<{width}}  {'ok' if ok else 'FAIL':<6}  {items:>5}  {ms:>6.0f}ms  {error}", flush=True)
            return ok

        results = await asyncio.gather(*(one(f) for f in feeds))
    print(f"{sum(results)} of {len(feeds)} feeds ok", flush=True)
    return 0 if all(results) else 1


async def _check(fetcher: Fetcher, feed: FeedSpec) -> tuple[bool, int, float, str]:
    started = time.perf_counter()
    try:
        fetched = await fetcher.fetch(feed.url, Validators())
        items = await asyncio.to_thread(parse_feed, fetched.body, feed, datetime.now(UTC), fetched.content_type)
    except FeedError as exc:
        return False, 0, (time.perf_counter() - started) * 1000, str(exc)
    return True, len(items), fetched.elapsed_ms, ""


async def consume(args: argparse.Namespace, settings: Settings) -> int:
    from bot.consumer import run_consumer

    if not settings.redis_url:
        raise ConfigError(["environment: REDIS_URL: not set; the alert stream needs Redis (e.g. redis://localhost:6379/0)"])
    return await run_consumer(settings, group=args.group, count=args.count, out=sys.stdout)


async def outbox(args: argparse.Namespace, settings: Settings) -> int:
    """List parked deliveries; with --retry, queue them again for the next run."""
    store = open_store(settings)
    try:
        parked = await store.deliveries("parked")
        for d in parked:
            target = d.target if d.sink in ("telegram", "slack") else ""
            print(f"{d.message_id}  {d.sink:<9} {target:<14} attempts={d.attempts}  {d.last_error}")
        if args.retry:
            count = await store.requeue_parked(datetime.now(UTC))
            print(f"{count} parked deliveries queued again; the running service (or run --once) delivers them")
        elif not parked:
            print("no parked deliveries")
    finally:
        await store.close()
    return 0
