"""`demo`: the whole pipeline, offline, on bundled sample feeds (served from loopback) and recorded prices."""

from __future__ import annotations

import csv
import functools
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO

from bot.app import App, build_app, run_once
from bot.chart import render_alert_chart
from bot.settings import Settings, load_feeds

DEMO_DIR = "demo"
DEMO_HOST = "http://demo.invalid/"  # stands for the loopback server in config/demo/feeds.toml


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No request lines on the demo's console."""


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-feeds", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def replay_end(path: Path) -> datetime:
    """The time of the last bar of a replay file: the demo's "now"."""
    with path.open(newline="", encoding="utf-8") as handle:
        last = max(row["time"] for row in csv.DictReader(handle))
    return datetime.fromisoformat(last.replace("Z", "+00:00"))


async def run_demo(settings: Settings, out: TextIO) -> int:
    """Poll the sample feeds once, deliver to the console, print a short summary."""
    demo = settings.config_dir / DEMO_DIR
    prices = demo / "prices.csv"
    now = replay_end(prices)
    with tempfile.TemporaryDirectory(prefix="newsbot-demo-") as tmp, serve_directory(demo / "feeds") as base:
        specs = [replace(f, url=f.url.replace(DEMO_HOST, base)) for f in load_feeds(demo / "feeds.toml", 60)]
        demo_settings = replace(settings, db=Path(tmp) / "demo.sqlite3", market=f"replay:{prices}", console=True,
                                telegram_bot_token=None, slack_webhook_urls=(),
                                redis_url=None)
        async with AsyncExitStack() as stack:
            app = await build_app(demo_settings, specs, stack, out=out, clock=lambda: now)
            reports, pending = await run_once(app, concurrency=1)  # in file order: the seed story first
            charts = await _charts(app, [a for r in reports for a in r.alerts])
        alerts = sum(len(r.alerts) for r in reports)
        items = sum(r.items for r in reports)
        out.write(f"demo: {len(reports)} sample feeds, {items} items, {alerts} alerts "
                  f"(prices replayed as of {now:%Y-%m-%d %H:%M} UTC)"
                  + (f", {pending} deliveries pending\n" if pending else "\n"))
        for title, path in charts:
            out.write(f"chart: {path}  ({title[:60]})\n")
    return 0


async def _charts(app: App, alert_ids: list[str]) -> list[tuple[str, Path]]:
    """The intraday chart of each alert, as Telegram would attach it, written to the chart directory."""
    charts = []
    for ident in alert_ids:
        message = await app.store.message(ident)
        if message is None:
            continue
        path = await render_alert_chart(app.deps.market, message.alert, app.settings.chart_dir)
        if path is not None:
            charts.append((message.alert.item.title, path))
    return charts
