"""Where the bench's alerts go, and when each one arrived: the first sendMessage per feed, in wall-clock time.

`sink`: an in-process sink that notes the moment `deliver` is called (no HTTP); `telegram`: the product's
Telegram sink against the stand-in Bot API server, noting when the server received sendMessage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

from bot.records import Message
from bot.settings import Settings
from bot.sink import Sink


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
        self._arrivals.setdefault(message.alert.item.feed, time.time())
        self._changed.set()
        return None


class DeliveryProbe:
    """The sinks to add to the app, and `wait_for(n)`: arrivals since the last call, once n have come."""

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
        raise ValueError(f"unknown delivery probe {kind!r}")

    async def wait_for(self, count: int, timeout: float) -> dict[str, float]:  # noqa: ASYNC109 - bench helper
        """The arrivals not returned before, once there are `count` of them (or at the deadline)."""
        try:
            async with asyncio.timeout(timeout):
                while len(self._fresh()) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pass
        fresh = self._fresh()
        self._taken.update(fresh)
        return fresh

    def _fresh(self) -> dict[str, Any]:
        return {k: v for k, v in self._arrivals.items() if k not in self._taken}
