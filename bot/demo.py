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

from bot.app import build_app, run_once
from bot.settings import Settings, load_feeds

DEMO_DIR = "demo"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
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
        specs = [replace(f, url=f.url.replace("demo:", base)) for f in load_feeds(demo / "feeds.toml", 60)]
        demo_settings = replace(settings, db=Path(tmp) / "demo.sqlite3", market=f"replay:{prices}", console=True,
                                telegram_bot_token=None, slack_webhook_urls=(),
                                redis_url=None)
        async with AsyncExitStack() as stack:
            app = await build_app(demo_settings, specs, stack, out=out, clock=lambda: now)
            reports, pending = await run_once(app)
        alerts = sum(len(r.alerts) for r in reports)
        items = sum(r.items for r in reports)
        out.write(f"demo: {len(reports)} sample feeds, {items} items, {alerts} alerts "
                  f"(prices replayed as of {now:%Y-%m-%d %H:%M} UTC)"
                  + (f", {pending} deliveries pending\n" if pending else "\n"))
    return 0
