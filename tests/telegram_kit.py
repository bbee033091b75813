"""Helpers of the Telegram tests: a settable clock, a sink and an outbox wired to the stand-in Bot API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from telegram import Bot

from bot.outbox import Outbox
from bot.ratelimit import BroadcastLimiter, Limits
from bot.store import SqliteStore
from bot.subscribers import SqliteSubscribers, Subscriber
from bot.telegram import TelegramSink, make_bot
from tests.factories import T0
from tests.servers.botapi import TOKEN, BotApi

FAST = Limits(global_rate=1000, global_burst=50, private_rate=1000, group_rate=1000, chat_burst=5,
              global_window=10_000)


@dataclass
class Clock:
    """The injected clock; the limiter's sleeps advance it, so nothing really waits."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@dataclass
class Kit:
    api: BotApi
    clock: Clock
    store: SqliteStore
    subs: SqliteSubscribers
    bot: Bot
    sink: TelegramSink
    outbox: Outbox
    limiter: BroadcastLimiter
    chats: list[str] = field(default_factory=list)

    async def subscribe(self, chat_id: str, **kw: object) -> Subscriber:
        sub = Subscriber(chat_id, "private" if not chat_id.startswith("-") else "supergroup", self.clock(), **kw)
        await self.subs.add(sub)
        return sub

    async def close(self) -> None:
        await self.bot.request.shutdown()
        await self.subs.close()
        await self.store.close()


def make_kit(api: BotApi, tmp_path: Path, chat_ids: tuple[str, ...] = (), limits: Limits = FAST) -> Kit:
    clock = Clock()
    store = SqliteStore(tmp_path / "state.sqlite3")
    subs = SqliteSubscribers(tmp_path / "state.sqlite3")
    bot = make_bot(TOKEN, api.base_url, 8)
    limiter = BroadcastLimiter(limits, monotonic=clock.monotonic, sleep=clock.sleep)
    sink = TelegramSink(bot, subs, limiter, clock, chat_ids, max_concurrency=8)
    outbox = Outbox(store, {"telegram": sink}, clock)
    return Kit(api, clock, store, subs, bot, sink, outbox, limiter)
