"""Three `python main.py run` processes on one Redis: each feed polled once per interval, each alert sent once.

The feeds are served by a loopback server that records when each feed was fetched; alerts go to a local Slack
webhook receiver all three share (Slack cannot deduplicate, so a double delivery would show). One instance is
then killed with SIGKILL, and the other two must carry on within one interval.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CONFIG, ROOT
from tests.servers.feedserver import rss
from tests.servers.slack import SlackReceiver

pytestmark = pytest.mark.redis

INTERVAL = 2.0
JITTER = 0.2
LEASE = 0.9 * INTERVAL  # bot.cluster.feed_lease_ttl: over before any instance's next scheduled poll
SLACK = 0.5  # scheduling and process latency allowed on top of the theoretical bounds

STORIES = {
    "wire-a": [("US revokes Nvidia H20 export licences for China sales",
                "The Commerce Department told Nvidia it needs a licence to ship H20 AI chips to China."),
               ("Commerce adds Chinese chipmakers to Entity List",
                "The Bureau of Industry and Security added 12 Chinese semiconductor firms to the Entity List.")],
    "wire-b": [("Netherlands widens ASML export controls on chipmaking tools",
                "The Dutch government will require export licences for more ASML lithography machines."),
               ("Japan puts Tokyo Electron etching tools under export licensing",
                "Tokyo requires licences to export Tokyo Electron etch equipment to Chinese fabs.")],
    "wire-c": [("AMD MI308 sales to China blocked by new export rule",
                "Washington requires export licenses for AMD MI308 accelerators bound for China."),
               ("South Korea restricts Samsung HBM memory shipments with export licence rule",
                "Seoul will require licences before Samsung ships high-bandwidth memory to Chinese buyers.")],
}


class Feeds:
    """A loopback feed server: each feed's items can grow; the time of every fetch is recorded per feed."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.fetches: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                name = self.path.strip("/").removesuffix(".xml")
                with feeds.lock:
                    feeds.fetches[name].append(time.monotonic())
                    body = rss(*feeds.items[name], title=name)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}.xml"

    def publish(self, name: str, index: int) -> str:
        """Adds story `index` of feed `name`; returns its link (which the Slack text carries)."""
        title, summary = STORIES[name][index]
        link = f"https://news.example/{name}/{index}"
        item = {"title": title, "link": link, "guid": link, "description": summary,
                "pubDate": format_datetime(datetime.now(UTC))}
        with self.lock:
            self.items[name].append(item)
        return link

    def times(self, name: str) -> list[float]:
        with self.lock:
            return list(self.fetches[name])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], limit: float, what: str) -> None:
    """Poll with a deadline: the processes give no event to wait on."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.05)


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def cluster_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own: other test runs on the shared Redis cannot disturb the cluster."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, 10, "redis-server to start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(5)


class Instance:
    def __init__(self, index: int, env: dict[str, str], tmp: Path) -> None:
        self.metrics_port = free_port()
        self.log = tmp / f"instance{index}.log"
        env = {**env, "NEWSBOT_METRICS_PORT": str(self.metrics_port), "NEWSBOT_DB": str(tmp / f"i{index}.sqlite3")}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "main.py", "run", "--config", str(CONFIG)], cwd=ROOT,
                                         env=env, stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def max_gap(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    points = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points))


def min_gap(times: list[float], start: float) -> float:
    """The shortest time between two fetches from `start` on (the first polls of a cold process start late)."""
    inside = [t for t in times if t >= start]
    return min((b - a for a, b in itertools.pairwise(inside)), default=float("inf"))


def test_three_instances_share_feeds_and_deliver_once(cluster_redis: str, tmp_path: Path) -> None:
    """Each feed is fetched about once per interval in all, each alert reaches Slack once, a SIGKILL is absorbed."""
    feeds = Feeds()
    links = [feeds.publish(name, 0) for name in STORIES]
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text("".join(f'[[feed]]\nname = "{n}"\nurl = "{feeds.url(n)}"\ninterval = {INTERVAL}\n'
                                  for n in STORIES))
    with SlackReceiver() as slack:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_", "SLACK_"))},
               "REDIS_URL": cluster_redis, "SLACK_WEBHOOK_URLS": slack.url("/hook"),
               "NEWSBOT_FEEDS_FILE": str(feeds_file), "NEWSBOT_MIN_INTERVAL": "1", "NEWSBOT_POLL_JITTER": str(JITTER),
               "NEWSBOT_CONSOLE": "false", "NEWSBOT_REACTION_MINUTES": "", "NEWSBOT_LOG_FORMAT": "json",
               "NEWSBOT_CHART_DIR": str(tmp_path / "charts"),
               "NEWSBOT_MARKET": f"replay:{CONFIG / 'demo' / 'prices.csv'}"}
        instances = [Instance(i, env, tmp_path) for i in range(3)]
        try:
            _run_scenario(feeds, slack, instances, links)
        except AssertionError:
            for instance in instances:
                sys.stderr.write(f"--- {instance.log.name}\n{instance.log.read_text()[-3000:]}\n")
            for name in STORIES:
                sys.stderr.write(f"{name} fetched at {[round(t % 1000, 2) for t in feeds.times(name)]}\n")
            sys.stderr.write(f"slack: {_slack_links(slack)}\n")
            raise
        finally:
            for instance in instances:
                instance.stop()
            feeds.server.shutdown()
            feeds.server.server_close()


def _slack_links(slack: SlackReceiver) -> list[str]:
    texts = [str(p.get("text", "")) for p in list(slack.payloads["/hook"])]
    return [link for text in texts for link in [_link_in(text)] if link]


def _link_in(text: str) -> str | None:
    start = text.find("https://news.example/")
    return text[start:].split()[0] if start >= 0 else None


def _run_scenario(feeds: Feeds, slack: SlackReceiver, instances: list[Instance], links: list[str]) -> None:
    def ready() -> bool:
        assert all(i.proc.poll() is None for i in instances), "an instance exited at start"
        return all(healthy(i.metrics_port) for i in instances)

    wait_until(ready, 20, "three healthy instances")
    wait_until(lambda: sorted(_slack_links(slack)) == sorted(links), 10, "the first three alerts")
    window_start = time.monotonic()
    time.sleep(3 * INTERVAL)  # a measuring window: fetches during it are counted, nothing is awaited
    window_end = time.monotonic()
    for name in STORIES:
        times = feeds.times(name)
        assert min_gap(times, window_start) >= LEASE - SLACK, f"{name}: two fetches within one interval"
        assert max_gap(times, window_start, window_end) <= INTERVAL + JITTER + SLACK, f"{name}: an interval missed"
    instances[0].proc.send_signal(signal.SIGKILL)
    instances[0].proc.wait(5)
    killed_at = time.monotonic()
    links += [feeds.publish(name, 1) for name in STORIES]
    wait_until(lambda: len(_slack_links(slack)) >= len(links), 4 * INTERVAL + 5, "the alerts published after the kill")
    time.sleep(INTERVAL)  # let any duplicate show up before counting
    delivered = _slack_links(slack)
    assert sorted(delivered) == sorted(links), "each alert must reach Slack exactly once"
    after = time.monotonic()
    for name in STORIES:
        times = feeds.times(name)
        assert min_gap(times, window_start) >= LEASE - SLACK, f"{name}: two fetches within one interval"
        assert max_gap(times, killed_at, after) <= LEASE + INTERVAL + JITTER + SLACK, f"{name}: not taken over"
    assert all(healthy(i.metrics_port) for i in instances[1:])
    delivered = {"sink": "slack", "outcome": "delivered"}
    delivered_by = [_sample(i.metrics_port, "newsbot_deliveries_total", delivered) for i in instances[1:]]
    assert 0 < sum(delivered_by) <= len(links)  # survivors' own counters; the killed one's went with it


def _sample(port: int, name: str, labels: dict[str, str]) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and sample.labels == labels)
