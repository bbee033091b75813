"""The newsbot side of the scale bench, run in its own process: cold, warm and change cycles through the product.

Uses the product's own wiring (`build_app`, `poll_all`, `Outbox.run`) on a fresh state file, with replayed
prices (Yahoo is never touched) and the console off. Prints one JSON object on standard output.

The parse workers import this module as their `__main__` (multiprocessing's forkserver does that), so the
service's heavy modules are imported inside `run`, as main.py does, not at the top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench import corpus
from bench.delivery import DeliveryProbe, story_feed
from bench.feedserver import ServerConfig, feed_urls
from bench.measure import TREE, PeakRss
from bot import eventloop
from bot.settings import load_settings
from feeds.cluster import StoryIndex
from feeds.fetch import Fetched, Fetcher
from feeds.health import Validators
from feeds.records import FeedSpec

if TYPE_CHECKING:
    from bot.app import App

ROOT = Path(__file__).resolve().parent.parent


class TimedFetcher(Fetcher):
    """The product's fetcher, noting when each fetch completed (for fetch-to-sendMessage latency)."""

    def __init__(self, inner: Fetcher) -> None:
        self._inner = inner
        self.done_at: dict[str, list[float]] = {}

    async def fetch(self, url: str, validators: Validators) -> Fetched:
        try:
            return await self._inner.fetch(url, validators)
        finally:
            self.done_at.setdefault(url, []).append(time.time())

    def before(self, url: str, moment: float) -> float:
        """When the last fetch of `url` that ended before `moment` ended."""
        return max(t for t in self.done_at[url] if t <= moment)


async def cycle(app: App, concurrency: int | None = None) -> dict[str, Any]:
    """One poll of every feed: wall and CPU seconds, and what the polls saw."""
    from bot.app import poll_all

    cpu, wall = TREE.cpu(), time.perf_counter()
    reports = await (poll_all(app) if concurrency is None else poll_all(app, concurrency))
    wall, cpu = time.perf_counter() - wall, TREE.cpu() - cpu
    statuses: dict[str, int] = {}
    for report in reports:
        statuses[report.status] = statuses.get(report.status, 0) + 1
    return {"wall_s": wall, "cpu_s": cpu, "statuses": statuses, "alerts": sum(len(r.alerts) for r in reports),
            "items": sum(r.items for r in reports), "new": sum(r.new for r in reports)}


async def change_cycle(app: App, fetcher: TimedFetcher, probe: DeliveryProbe, port: int, number: int,
                       urls: dict[str, str], concurrency: int | None) -> dict[str, Any]:
    """Publish new items, poll everything, wait for every alert's sendMessage; latencies in ms."""
    async with httpx.AsyncClient() as control:
        published = (await control.get(f"http://127.0.0.1:{port}/_publish/{number}")).json()
    result = await cycle(app, concurrency)
    expected = result["alerts"]
    sent = await probe.wait_for(number, expected, timeout=30.0)
    from_pub, from_fetch = [], []
    for tag, at in sent.items():
        index = story_feed(tag)
        from_pub.append((at - published[str(index)]) * 1000)
        from_fetch.append((at - fetcher.before(urls[f"bench-{index:05d}"], at)) * 1000)
    return {**result, "changed": len(published), "sent": len(sent), "pub_to_send_ms": from_pub,
            "fetch_to_send_ms": from_fetch}


async def service(app: App, fetcher: TimedFetcher, probe: DeliveryProbe, port: int, numbers: range,
                  urls: dict[str, str], spec: ServerConfig) -> dict[str, Any]:
    """The service as `serve` runs it (one scheduled job per feed, polls spread by jitter), with items published
    between polls; latencies of every alert, and the CPU the service used meanwhile."""
    from bot.app import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    first_round = min(5.0, app.feeds[0].interval_s)  # `schedule_feeds` starts every feed within this
    interval = app.feeds[0].interval_s + app.settings.poll_jitter
    await asyncio.sleep(first_round + interval)  # measure the steady state, after the first round
    cpu, wall = TREE.cpu(), time.perf_counter()
    from_pub, from_fetch = [], []
    async with httpx.AsyncClient() as control:
        for number in numbers:
            published = (await control.get(f"http://127.0.0.1:{port}/_publish/{number}")).json()
            stories = sum(story is not None for _f, story in corpus.changes(spec.feeds, spec.change, number,
                                                                      spec.alerts_per_cycle))
            for tag, at in (await probe.wait_for(number, stories, timeout=interval + 10)).items():
                index = story_feed(tag)
                from_pub.append((at - published[str(index)]) * 1000)
                from_fetch.append((at - fetcher.before(urls[f"bench-{index:05d}"], at)) * 1000)
    cpu, wall = TREE.cpu() - cpu, time.perf_counter() - wall
    stop.set()
    await task
    return {"wall_s": wall, "cpu_s": cpu, "interval_s": interval, "pub_to_send_ms": from_pub,
            "fetch_to_send_ms": from_fetch}


async def run(
    spec: ServerConfig, port: int, warm: int, changes: int, first_change: int, probe_kind: str,
    service_cycles: int, interval: float, concurrency: int | None = None,
) -> dict[str, Any]:
    from bot.app import build_app

    with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
        base = load_settings(ROOT / "config", {})
        settings = replace(base, db=Path(tmp) / "state.sqlite3", chart_dir=Path(tmp) / "charts", console=False,
                           poll_jitter=0.0, market=f"replay:{ROOT / 'config' / 'demo' / 'prices.csv'}",
                           reaction_minutes=())
        urls = {name: url for name, url, _lang in feed_urls(spec, port)}
        feeds = [FeedSpec(name, url, 60.0, lang) for name, url, lang in feed_urls(spec, port)]
        async with AsyncExitStack() as stack:
            probe = await DeliveryProbe.start(probe_kind, settings, stack)
            app = await build_app(settings, feeds, stack, extra_sinks=probe.sinks)
            fetcher = TimedFetcher(app.deps.fetcher)
            app = replace(app, deps=replace(app.deps, fetcher=fetcher))
            eventloop.settle()  # as `serve` does once the service is built
            stop = asyncio.Event()
            deliveries = asyncio.create_task(app.outbox.run(stop))
            out: dict[str, Any] = {"cold": await cycle(app, concurrency)}
            out["warm"] = [await cycle(app, concurrency) for _ in range(warm)]
            out["change"] = []
            for number in range(first_change, first_change + changes):
                # every measured story must be a first report: forget the previous cycle's stories
                app = replace(app, deps=replace(app.deps, stories=StoryIndex(app.deps.stories.window)))
                out["change"].append(await change_cycle(app, fetcher, probe, port, number, urls, concurrency))
            stop.set()
            await deliveries  # `serve` runs its own delivery loop
            if service_cycles:
                paced = replace(app, feeds=tuple(replace(f, interval_s=interval) for f in app.feeds),
                                settings=replace(app.settings, poll_jitter=interval / 2),
                                deps=replace(app.deps, stories=StoryIndex(timedelta(seconds=1))))
                numbers = range(first_change + changes, first_change + changes + service_cycles)
                out["service"] = await service(paced, fetcher, probe, port, numbers, urls, spec)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="ServerConfig as JSON")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--first-change", type=int, default=1)
    parser.add_argument("--probe", default="telegram", choices=["telegram", "sink"])
    parser.add_argument("--service-cycles", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=None, help="polls at once (default: poll_all's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    spec = ServerConfig(**json.loads(args.spec))
    with PeakRss() as rss:
        out = eventloop.run(run(spec, args.port, args.warm, args.changes, args.first_change, args.probe,
                              args.service_cycles, args.interval, args.concurrency))
    out["peak_rss_mb"] = rss.peak / 2**20
    out["peak_pss_mb"] = rss.peak_pss / 2**20
    out["peak_main_rss_mb"] = rss.peak_main / 2**20
    out["warm_wall_median_s"] = statistics.median(c["wall_s"] for c in out["warm"]) if out["warm"] else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()

