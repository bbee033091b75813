"""Where the bench's alerts go, and when each one arrived: the first sendMessage per feed, in wall-clock time.

`telegram`: the product's Telegram sink (python-telegram-bot over HTTP) against the stand-in Bot API server
(tests/servers/botapi.py) in its own process, which notes when each sendMessage arrived; Telegram's rate
limits are lifted here (bench/broadcast measures those), so a burst of alerts to one chat is not spread out.
`sink`: an in-process sink that notes the moment `deliver` is called (no HTTP).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from bench.measure import TREE
from bot.records import Message
from bot.settings import Settings
from bot.sink import Sink

STORY_TAG = re.compile(r"\bc\d+-f\d+\b")  # `corpus.alert_item` tags each story "c<cycle>-f<feed index>"


def story_feed(tag: str) -> int:
    """The feed index of an arrival's story tag."""
    return int(tag.rsplit("-f", 1)[1])


class RecordingSink:
    """A `Sink` that records when each alert reached it, keyed by the item's feed."""

    name = "telegram"
    max_concurrency = 8
    ordered = False

    def __init__(self, arrivals: dict[str, float], changed: asyncio.Event) -> None:
        self._arrivals = arrivals
        self._changed = changed

    async def targets(self, message: Message) -> Sequence[str]:
        return ["bench-chat"]

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        match = STORY_TAG.search(message.alert.item.title)
        if match:
            self._arrivals.setdefault(match[0], time.time())
        self._changed.set()
        return None


class DeliveryProbe:
    """The sinks to add to the app, and `wait_for(cycle, n)`: that cycle's arrivals, once n have come.

    Arrivals are keyed by story tag ("c<cycle>-f<feed index>"), valued by wall-clock time.
    """

    def __init__(self, sinks: Mapping[str, Sink], arrivals: dict[str, float], changed: asyncio.Event) -> None:
        self.sinks = dict(sinks)
        self._arrivals = arrivals
        self._changed = changed
        self._taken: set[str] = set()

    @classmethod
    async def start(cls, kind: str, settings: Settings, stack: AsyncExitStack) -> DeliveryProbe:
        arrivals: dict[str, float] = {}
        changed = asyncio.Event()
        if kind == "sink":
            return cls({"telegram": RecordingSink(arrivals, changed)}, arrivals, changed)
        if kind == "telegram":
            return await _TelegramProbe.start(settings, stack, arrivals, changed)
        raise ValueError(f"unknown delivery probe {kind!r}")

    async def wait_for(self, cycle: int, count: int, timeout: float) -> dict[str, float]:  # noqa: ASYNC109
        """The arrivals of stories published in `cycle`, once there are `count` of them (or at the deadline)."""
        try:
            async with asyncio.timeout(timeout):
                while len(self._fresh(cycle)) < count:
                    self._changed.clear()
                    await self._refresh()
        except TimeoutError:
            pass
        fresh = self._fresh(cycle)
        self._taken.update(fresh)
        return fresh

    async def _refresh(self) -> None:
        await self._changed.wait()

    def _fresh(self, cycle: int) -> dict[str, Any]:
        prefix = f"c{cycle}-"
        return {k: v for k, v in self._arrivals.items() if k.startswith(prefix) and k not in self._taken}




def _serve_botapi(conn: Connection) -> None:
    """The stand-in in a child process: sends its URL; on each request, the sendMessages since the last one."""
    from tests.servers.botapi import BotApi

    with BotApi() as api:
        conn.send(api.base_url)
        reported = 0
        while conn.recv() != "stop":
            sent = [(s.text, time.time() - (time.monotonic() - s.at)) for s in api.sent[reported:]]
            reported += len(sent)
            conn.send([(t, at) for t, at in sent])  # monotonic arrival times as wall-clock times


class _TelegramProbe(DeliveryProbe):
    """Arrivals as the stand-in Bot API saw them, keyed by the feed named in each message's text."""

    def __init__(self, sinks: Mapping[str, Sink], arrivals: dict[str, float], changed: asyncio.Event,
                 conn: Connection) -> None:
        super().__init__(sinks, arrivals, changed)
        self._conn = conn

    @classmethod
    async def start(cls, settings: Settings, stack: AsyncExitStack, arrivals: dict[str, float],
                    changed: asyncio.Event) -> _TelegramProbe:  # type: ignore[override]
        from bot.ratelimit import BroadcastLimiter, Limits
        from bot.subscribers import SqliteSubscribers
        from bot.telegram import DEFAULT_CONCURRENCY, TelegramSink, make_bot
        from tests.servers.botapi import TOKEN

        ctx = multiprocessing.get_context("spawn")
        conn, child = ctx.Pipe()
        process = ctx.Process(target=_serve_botapi, args=(child,), daemon=True, name="bench-botapi")
        process.start()
        TREE.exclude.add(process.pid or 0)  # the stand-in's CPU and memory are not newsbot's
        stack.callback(process.join, 5)
        stack.callback(conn.send, "stop")
        base_url = await asyncio.to_thread(conn.recv)
        bot = make_bot(TOKEN, base_url, DEFAULT_CONCURRENCY)
        stack.push_async_callback(bot.request.shutdown)
        subscribers = SqliteSubscribers(settings.db)
        stack.push_async_callback(subscribers.close)
        unlimited = Limits(global_rate=1e6, global_burst=1000, private_rate=1e6, group_rate=1e6, chat_burst=1000,
                           global_window=1_000_000)
        sink = TelegramSink(bot, subscribers, BroadcastLimiter(unlimited), lambda: datetime.now(UTC),
                            ("-1001000000001",), DEFAULT_CONCURRENCY)
        return cls({"telegram": sink}, arrivals, changed, conn)

    async def _refresh(self) -> None:
        self._conn.send("sent")
        for text, at in await asyncio.to_thread(self._conn.recv):
            match = STORY_TAG.search(text)
            if match:
                self._arrivals.setdefault(match[0], at)
        await asyncio.sleep(0.05)  # polling the stand-in's record (arrival times are its own, not ours)
