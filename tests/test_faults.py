"""Faults at every edge, against real local servers: Telegram 429/500/time-outs, Slack 429/500, Redis killed
and restarted, prices raising or hanging, SQLite locked, SIGKILL in the middle of a delivery. No alert is lost;
none is sent twice (except the one delivery in flight at a SIGKILL, which a non-idempotent sink may repeat)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.app import build_app, guarded_poll
from bot.hours import MarketCalendar
from bot.outbox import Outbox
from bot.pipeline import poll_once
from bot.ratelimit import BroadcastLimiter
from bot.records import Quote
from bot.redis_store import redis_client
from bot.settings import Settings
from bot.slack import SlackSink
from bot.store import SqliteStore
from bot.stream import StreamSink
from bot.subscribers import SqliteSubscribers
from bot.telegram import TelegramSink, make_bot
from bot.yf import YFinanceSource
from feeds.classify import Classifier
from feeds.records import FeedSpec
from tests.factories import make_message
from tests.servers.botapi import TOKEN, BotApi
from tests.servers.feedserver import FeedServer, Route, rss
from tests.servers.hangfront import HangFirst
from tests.servers.redisproc import OwnRedis
from tests.servers.slack import RATE_LIMITED, SERVER_ERROR, Answer, SlackReceiver
from tests.telegram_kit import FAST, Clock

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER = Classifier.from_dir(ROOT / "config")  # built once: loading the lexicons is the slow part of build_app
NOW = datetime.now(UTC).replace(microsecond=0)
CHAT = "-100777"
STREAM = "newsbot:alerts"
STORIES = [
    {"title": "US adds Chinese chipmaker SMIC to Entity List, tightening export controls on chips",
     "description": "The Bureau of Industry and Security added SMIC to the Entity List, requiring export licences."},
    {"title": "Nvidia says US bars H20 chip exports to China without a licence",
     "description": "The Commerce Department told Nvidia it needs an export licence to sell H20 chips to China."},
    {"title": "AMD gets US licence to export MI308 chips to China",
     "description": "The Commerce Department granted AMD export licences for MI308 accelerators, easing curbs."},
]


def stories_feed(now: datetime = NOW) -> bytes:
    return rss(*({**s, "guid": f"story-{n}", "link": f"https://news.example/{n}",
                  "pubDate": format_datetime(now - timedelta(minutes=5))} for n, s in enumerate(STORIES)))


def titles_in(texts: Sequence[str]) -> list[str]:
    """Which story each delivered text carries (one entry per delivery, so repeats show)."""
    return [s["title"] for text in texts for s in STORIES if s["title"] in text]


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """No follow-ups (no charts), short price wait."""
    return replace(settings, reaction_minutes=(), quote_timeout=0.3)


# --- every sink failing, then recovering -----------------------------------------------------------------

async def test_every_sink_failing_then_recovering_delivers_each_alert_once(
    tmp_path: Path, feed_server: FeedServer, quick: Settings, own_redis: OwnRedis
) -> None:
    """Telegram 429 then 500, Slack 429 then 500, Redis killed: after recovery each alert is there once."""
    clock = Clock(NOW)
    spec = FeedSpec("wire", feed_server.route("/wire.xml", Route(stories_feed())), interval_s=60)
    with BotApi() as api, SlackReceiver() as slack:
        api.fail(CHAT, 429, "Too Many Requests: retry after 7", retry_after=7)
        api.fail(CHAT, 500, "Internal Server Error")
        slack.script("/hook", RATE_LIMITED, SERVER_ERROR)
        async with AsyncExitStack() as stack:
            sinks = await _all_sinks(stack, api, slack, own_redis, clock, quick.db)
            out = io.StringIO()
            app = await build_app(quick, [spec], stack, out=out, clock=clock, extra_sinks=sinks,
                                  classifier=CLASSIFIER)
            own_redis.kill()
            report = await poll_once(app.deps, spec)
            assert len(report.alerts) == 3
            await _drain_until_empty(app.outbox, app.store, clock, on_round={2: own_redis.start})
        assert sorted(titles_in([s.text for s in api.to(CHAT)])) == sorted(s["title"] for s in STORIES)
        assert sorted(titles_in([json.dumps(p) for p in slack.payloads["/hook"]])) == sorted(
            s["title"] for s in STORIES)
    assert sorted(titles_in([e["title"] for e in own_redis.entries()])) == sorted(s["title"] for s in STORIES)
    assert sorted(titles_in(out.getvalue().split("[ALERT]"))) == sorted(s["title"] for s in STORIES)


async def _all_sinks(stack: AsyncExitStack, api: BotApi, slack: SlackReceiver, own: OwnRedis, clock: Clock,
                     db: Path) -> dict[str, Any]:
    """Telegram, Slack and the stream, each on the injected clock so retries need no real waiting."""
    bot = make_bot(TOKEN, api.base_url, 8)
    stack.push_async_callback(bot.request.shutdown)
    subs = SqliteSubscribers(db)
    stack.push_async_callback(subs.close)
    limiter = BroadcastLimiter(FAST, monotonic=clock.monotonic, sleep=clock.sleep)
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=2.0))
    client = redis_client(own.url, socket_timeout=1.0)
    stack.push_async_callback(client.aclose)
    return {"telegram": TelegramSink(bot, subs, limiter, clock, (CHAT,), max_concurrency=4),
            "slack": SlackSink([slack.url("/hook")], http, pace=0.0, monotonic=clock.monotonic, sleep=clock.sleep),
            "stream": StreamSink(client, STREAM, 1000)}


async def _drain_until_empty(outbox: Outbox, store: Any, clock: Clock,
                             on_round: dict[int, Callable[[], None]] | None = None, rounds: int = 12) -> None:
    """Drains, advancing the clock a minute each round, until nothing is pending (or the rounds run out)."""
    for n in range(rounds):
        (on_round or {}).get(n, lambda: None)()
        await outbox.drain()
        if await store.outbox_depth() == 0:
            return
        clock.advance(60)
    raise AssertionError(f"still {await store.outbox_depth()} deliveries pending after {rounds} rounds")


# --- Telegram time-outs ----------------------------------------------------------------------------------

async def test_telegram_time_out_is_retried_and_delivered_once(tmp_path: Path) -> None:
    """A Bot API that never answers the first request: the send times out (bounded), is retried, arrives once."""
    clock = Clock(NOW)
    with BotApi() as api:
        port = int(api.base_url.split(":")[2].split("/")[0])
        async with HangFirst(port) as front:
            request = HTTPXRequest(connection_pool_size=4, read_timeout=0.5, write_timeout=0.5, connect_timeout=0.5,
                                   pool_timeout=0.5)
            bot = Bot(TOKEN, base_url=front.base_url, request=request)
            subs = SqliteSubscribers(tmp_path / "s.db")
            limiter = BroadcastLimiter(FAST, monotonic=clock.monotonic, sleep=clock.sleep)
            sink = TelegramSink(bot, subs, limiter, clock, (CHAT,), max_concurrency=1)
            store = SqliteStore(tmp_path / "s.db")
            outbox = Outbox(store, {"telegram": sink}, clock)
            await outbox.enqueue(make_message("a_1"))
            started = time.perf_counter()
            first = await outbox.drain()
            timed_out_in = time.perf_counter() - started
            await _drain_until_empty(outbox, store, clock)
            await bot.request.shutdown()
            await subs.close()
            await store.close()
    assert first.retried == 1 and timed_out_in < 1.5
    assert len(api.to(CHAT)) == 1


# --- prices raising or hanging ---------------------------------------------------------------------------

class Raising:
    async def quotes(self, tickers: Sequence[str]) -> dict[str, Quote]:
        raise RuntimeError("Yahoo said no")

    async def intraday(self, tickers: Sequence[str]) -> dict[str, list[tuple[datetime, float]]]:
        raise RuntimeError("Yahoo said no")


class Hanging:
    async def quotes(self, tickers: Sequence[str]) -> dict[str, Quote]:
        await asyncio.Event().wait()
        return {}

    async def intraday(self, tickers: Sequence[str]) -> dict[str, list[tuple[datetime, float]]]:
        await asyncio.Event().wait()
        return {}


class YFRateLimitError(Exception):
    """Stands for yfinance's own rate-limit error at the download seam."""


def yahoo_download(behaviour: str, gate: threading.Event) -> Callable[..., Any]:
    """A replacement for yfinance.download (the one Yahoo seam): raises, or blocks its thread until released."""
    def download(*args: Any, **kwargs: Any) -> Any:
        if behaviour == "raises":
            raise YFRateLimitError("Too Many Requests. Rate limited. Try after a while.")
        gate.wait(10)
        raise TimeoutError("released by the test")
    return download


@pytest.mark.parametrize("source", ["raising", "hanging", "yfinance-raises", "yfinance-hangs"])
async def test_prices_raising_or_hanging_do_not_hold_back_the_alert(
    feed_server: FeedServer, quick: Settings, source: str
) -> None:
    """Whatever the price source does, the alerts go out marked without prices, and the poll waits for prices
    at most once."""
    gate = threading.Event()
    market: Any = {"raising": Raising(), "hanging": Hanging()}.get(source) or YFinanceSource(
        lambda: NOW, MarketCalendar.from_file(), download=yahoo_download(source.split("-")[1], gate), timeout=5.0)
    spec = FeedSpec("wire", feed_server.route("/wire.xml", Route(stories_feed())), interval_s=60)
    try:
        async with AsyncExitStack() as stack:
            out = io.StringIO()
            app = await build_app(quick, [spec], stack, out=out, clock=lambda: NOW, market=market,
                                  classifier=CLASSIFIER)
            started = time.perf_counter()
            report = await poll_once(app.deps, spec)
            seconds = time.perf_counter() - started
            await app.outbox.drain()
    finally:
        gate.set()
    assert len(report.alerts) == 3
    assert seconds < 2 * quick.quote_timeout + 0.6  # one wait per poll, not one per alert (3 would be 0.9 s)
    assert out.getvalue().count("prices unavailable") == 3


# --- SQLite locked -----------------------------------------------------------------------------------------

async def test_sqlite_locked_fails_the_poll_and_the_story_alerts_after(
    feed_server: FeedServer, quick: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holding the state file's write lock fails the poll within the busy time-out; once it
    lets go, the next poll alerts every story exactly once."""
    spec = FeedSpec("wire", feed_server.route("/wire.xml", Route(stories_feed())), interval_s=60)
    async with AsyncExitStack() as stack:
        out = io.StringIO()
        app = await build_app(quick, [spec], stack, out=out, clock=lambda: NOW, classifier=CLASSIFIER)
        locker = sqlite3.connect(str(quick.db), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        locked = await guarded_poll(app, spec)
        seconds = time.perf_counter() - started
        locker.execute("ROLLBACK")
        locker.close()
        after = await guarded_poll(app, spec)
        again = await guarded_poll(app, spec)
        await app.outbox.drain()
    assert locked.status == "failed" and "locked" in (locked.error or "")
    assert seconds < 5
    assert any("wire" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)
    assert len(after.alerts) == 3 and again.alerts == []
    assert sorted(titles_in(out.getvalue().split("[ALERT]"))) == sorted(s["title"] for s in STORIES)


# --- SIGKILL in the middle of a delivery ------------------------------------------------------------------

def _bot_env(tmp_path: Path, feed_url: str, extra: dict[str, str]) -> dict[str, str]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "wire"\nurl = "{feed_url}"\ninterval = 60\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_", "SLACK_", "REDIS_"))}
    env.update(NEWSBOT_FEEDS_FILE=str(feeds), NEWSBOT_DB=str(tmp_path / "state.sqlite3"),
               NEWSBOT_MARKET=f"replay:{ROOT / 'config' / 'demo' / 'prices.csv'}", NEWSBOT_REACTION_MINUTES="",
               NEWSBOT_CHART_DIR=str(tmp_path / "charts"), NEWSBOT_POLL_JITTER="0", NEWSBOT_QUOTE_TIMEOUT="0.5",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_sigkill_mid_delivery_then_restart_loses_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    """`run --once` killed while Slack holds the second alert's request: the restart delivers the rest; every
    alert reached the console once and Slack at least once, and only the alert in flight at the kill twice."""
    now = datetime.now(UTC)
    url = feed_server.route("/wire.xml", Route(stories_feed(now)))
    with SlackReceiver() as slack:
        slack.script("/hook", *[Answer(delay=0.3)] + [Answer(delay=5.0)] + [Answer(delay=0.1)] * 6)
        env = _bot_env(tmp_path, url, {"SLACK_WEBHOOK_URLS": slack.url("/hook")})
        command = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config"), "run", "--once"]
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
        try:
            slack.wait_for("/hook", 2, timeout=20)  # the second is recorded on arrival, then held for 5 s
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the whole group, parse workers included: a crash, not a stop
            printed, _ = first.communicate(timeout=10)
        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False)
        delivered = titles_in([json.dumps(p) for p in slack.payloads["/hook"]])
    assert first.returncode == -signal.SIGKILL and second.returncode == 0, second.stderr.decode()[-2000:]
    assert sorted(set(delivered)) == sorted(s["title"] for s in STORIES)  # none lost
    assert len(delivered) == len(STORIES) + 1  # the one in flight repeats: Slack has no idempotency key
    assert delivered.count(STORIES[1]["title"]) == 2
    console = titles_in((printed + second.stdout).decode().split("[ALERT]"))
    assert sorted(console) == sorted(s["title"] for s in STORIES)  # console: exactly once across both runs
    assert b"0 deliveries pending" in second.stderr


def test_sigkill_with_redis_store_and_stream_then_restart(
    tmp_path: Path, feed_server: FeedServer, own_redis: OwnRedis
) -> None:
    """With REDIS_URL (Redis store, stream, per-delivery claims): after a SIGKILL mid-delivery the stream holds
    each alert once; the in-flight Slack delivery stays claimed by the dead process until its claim expires
    (simulated by deleting the claim keys), is then delivered, and nothing is lost."""
    url = feed_server.route("/wire.xml", Route(stories_feed(datetime.now(UTC))))
    with SlackReceiver() as slack:
        slack.script("/hook", *[Answer(delay=0.3)] + [Answer(delay=5.0)] + [Answer(delay=0.1)] * 6)
        env = _bot_env(tmp_path, url, {"SLACK_WEBHOOK_URLS": slack.url("/hook"), "REDIS_URL": own_redis.url})
        command = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config"), "run", "--once"]
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
        try:
            slack.wait_for("/hook", 2, timeout=20)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate(timeout=10)
        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False)
        held = titles_in([json.dumps(p) for p in slack.payloads["/hook"]])
        client = redis.Redis(port=own_redis.port)
        claims = [k for k in client.scan_iter(match="*claim:*")]
        client.delete(*claims)  # the dead process's claims expire (120 s) without the test waiting for it
        client.close()
        third = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False)
        delivered = titles_in([json.dumps(p) for p in slack.payloads["/hook"]])
    assert second.returncode == 0 and third.returncode == 0, (second.stderr + third.stderr).decode()[-2000:]
    assert b"1 deliveries pending" in second.stderr and held.count(STORIES[1]["title"]) == 1  # claimed: waits
    assert b"0 deliveries pending" in third.stderr
    assert sorted(set(delivered)) == sorted(s["title"] for s in STORIES)  # none lost
    assert delivered.count(STORIES[1]["title"]) == 2 and len(delivered) == len(STORIES) + 1
    assert sorted(e["title"] for e in own_redis.entries()) == sorted(s["title"] for s in STORIES)  # exactly once
