"""The baseline side of the scale bench, in its own process: the loop most small bots use.

`feedparser.parse(url)` for each feed in turn (no conditional GET, a new connection each time), then filter:
skip entries already seen, keep those the keyword rule flags (`feeds.baseline.KeywordBaseline`), and send
each to the chat with one blocking HTTP POST. Prints one JSON object on standard output.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import feedparser

from bench.feedserver import ServerConfig, feed_urls
from bench.measure import TREE, PeakRss
from feeds.baseline import KeywordBaseline

ROOT = Path(__file__).resolve().parent.parent


class Baseline:
    """Poll every feed in turn with `feedparser.parse(url)`; alert unseen entries that match the keywords."""

    def __init__(self, urls: list[tuple[str, str, str]], send_url: str | None) -> None:
        self.urls = urls
        self.send_url = send_url
        self.seen: set[str] = set()
        self.rule = KeywordBaseline.from_dir(ROOT / "config")

    def cycle(self, alert_window: bool) -> tuple[dict[str, Any], dict[str, float]]:
        cpu, wall = TREE.cpu(), time.perf_counter()
        sent: dict[str, float] = {}
        entries = 0
        for name, url, _lang in self.urls:
            parsed = feedparser.parse(url)
            for entry in parsed.entries:
                entries += 1
                key = entry.get("id") or entry.get("link")
                if key in self.seen:
                    continue
                self.seen.add(key)
                if alert_window and self.rule.classify(entry.get("title", ""), entry.get("summary", "")).flag:
                    self.send(entry.get("title", ""))
                    sent.setdefault(name, time.time())
        wall, cpu = time.perf_counter() - wall, TREE.cpu() - cpu
        return {"wall_s": wall, "cpu_s": cpu, "items": entries, "alerts": len(sent)}, sent

    def send(self, text: str) -> None:
        if self.send_url is None:
            return
        body = json.dumps({"chat_id": "bench-chat", "text": text}).encode()
        request = urllib.request.Request(self.send_url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def run(spec: ServerConfig, port: int, first_change: int, changes: int, send_url: str | None) -> dict[str, Any]:
    baseline = Baseline(feed_urls(spec, port), send_url)
    cold, _ = baseline.cycle(alert_window=False)
    warm, _ = baseline.cycle(alert_window=True)
    out: dict[str, Any] = {"cold": cold, "warm": [warm], "change": []}
    for number in range(first_change, first_change + changes):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_publish/{number}", timeout=30) as response:
            published = json.loads(response.read())
        result, sent = baseline.cycle(alert_window=True)
        result["pub_to_send_ms"] = [(at - published[str(int(feed.rsplit("-", 1)[1]))]) * 1000
                                    for feed, at in sent.items()]
        result["changed"] = len(published)
        out["change"].append(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="ServerConfig as JSON")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-change", type=int, default=101)
    parser.add_argument("--changes", type=int, default=1)
    parser.add_argument("--send-url", default=None)
    args = parser.parse_args()
    spec = ServerConfig(**json.loads(args.spec))
    with PeakRss() as rss:
        out = run(spec, args.port, args.first_change, args.changes, args.send_url)
    out["peak_rss_mb"] = rss.peak / 2**20
    out["peak_pss_mb"] = rss.peak_pss / 2**20
    out["peak_main_rss_mb"] = rss.peak_main / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
