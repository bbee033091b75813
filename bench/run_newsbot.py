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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.delivery import DeliveryProbe
from bench.feedserver import ServerConfig, feed_urls
from bench.measure import TREE, PeakRss
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
        self.done_at: dict[str, float] = {}

    async def fetch(self, url: str, validators: Validators) -> Fetched:
        try:
            return await self._inner.fetch(url, validators)
        finally:
            self.done_at[url] = time.time()


async def cycle(app: App) -> dict[str, Any]:
    """One poll of every feed: wall and CPU seconds, and what the polls saw."""
    from bot.app import poll_all

    cpu, wall = TREE.cpu(), time.perf_counter()
    reports = await poll_all(app)
    wall, cpu = time.perf_counter() - wall, TREE.cpu() - cpu
    statuses: dict[str, int] = {}
    for report in reports:
        statuses[report.status] = statuses.get(report.status, 0) + 1
    return {"wall_s": wall, "cpu_s": cpu, "statuses": statuses, "alerts": sum(len(r.alerts) for r in reports),
            "items": sum(r.items for r in reports), "new": sum(r.new for r in reports)}


async def change_cycle(app: App, fetcher: TimedFetcher, probe: DeliveryProbe, port: int, number: int,
                       urls: dict[str, str]) -> dict[str, Any]:
    """Publish new items, poll everything, wait for every alert's sendMessage; latencies in ms."""
    async with httpx.AsyncClient() as control:
        published = (await control.get(f"http://127.0.0.1:{port}/_publish/{number}")).json()
    result = await cycle(app)
    expected = result["alerts"]
    sent = await probe.wait_for(expected, timeout=30.0)
    from_pub, from_fetch = [], []
    for feed, at in sent.items():
        index = str(int(feed.rsplit("-", 1)[1]))
        from_pub.append((at - published[index]) * 1000)
        from_fetch.append((at - fetcher.done_at[urls[feed]]) * 1000)
    return {**result, "changed": len(published), "sent": len(sent), "pub_to_send_ms": from_pub,
            "fetch_to_send_ms": from_fetch}


async def run(
    spec: ServerConfig, port: int, warm: int, changes: int, first_change: int, probe_kind: str
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
            stop = asyncio.Event()
            deliveries = asyncio.create_task(app.outbox.run(stop))
            out: dict[str, Any] = {"cold": await cycle(app)}
            out["warm"] = [await cycle(app) for _ in range(warm)]
            out["change"] = []
            for number in range(first_change, first_change + changes):
                # every measured story must be a first report: forget the previous cycle's stories
                app = replace(app, deps=replace(app.deps, stories=StoryIndex(app.deps.stories.window)))
                out["change"].append(await change_cycle(app, fetcher, probe, port, number, urls))
            stop.set()
            await deliveries
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="ServerConfig as JSON")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--first-change", type=int, default=1)
    parser.add_argument("--probe", default="telegram", choices=["telegram", "sink"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    spec = ServerConfig(**json.loads(args.spec))
    with PeakRss() as rss:
        out = asyncio.run(run(spec, args.port, args.warm, args.changes, args.first_change, args.probe))
    out["peak_rss_mb"] = rss.peak / 2**20
    out["peak_pss_mb"] = rss.peak_pss / 2**20
    out["peak_main_rss_mb"] = rss.peak_main / 2**20
    out["warm_wall_median_s"] = statistics.median(c["wall_s"] for c in out["warm"]) if out["warm"] else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()

