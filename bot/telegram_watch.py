"""Feed failures go to the admins (TELEGRAM_ADMIN_IDS) only, never to subscribers.

`FeedWatch.check()` reads feed health from the state store and tells the admins once when a feed starts
failing repeatedly, and once when it recovers. `start(interval)` runs the check on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bot.errors import StoreError
from bot.store import StateStore
from bot.telegram_render import render_notice

log = logging.getLogger("newsbot.telegram")

FAILURES_TO_REPORT = 3


class Notifier(Protocol):
    async def notify(self, chat: str, html_text: str) -> bool: ...


class FeedWatch:
    """Reports feeds that fail `threshold` times in a row, and their recovery, to the admins."""

    def __init__(self, store: StateStore, notifier: Notifier, admin_ids: Sequence[int],
                 clock: Callable[[], datetime], threshold: int = FAILURES_TO_REPORT) -> None:
        self._store = store
        self._notifier = notifier
        self._admins = [str(a) for a in admin_ids]
        self._clock = clock
        self._threshold = threshold
        self._reported: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> list[str]:
        """One look at feed health; returns the notices sent (one per change, to every admin)."""
        if not self._admins:
            return []
        states = await self._store.feed_states()
        notices: list[str] = []
        for name, state in sorted(states.items()):
            health = state.health
            if health.failures >= self._threshold and name not in self._reported:
                self._reported.add(name)
                notices.append(render_notice(f"Feed failing: {name}", [
                    f"{health.failures} failures in a row; last error: {health.last_error or 'unknown'}",
                    f"next attempt: {health.next_attempt_at:%H:%M} UTC" if health.next_attempt_at else ""]))
            elif health.failures == 0 and name in self._reported:
                self._reported.discard(name)
                notices.append(render_notice(f"Feed recovered: {name}", []))
        for notice in notices:
            for admin in self._admins:
                await self._notifier.notify(admin, notice)
        return notices

    def start(self, interval: float) -> None:
        if self._admins and self._task is None:
            self._task = asyncio.create_task(self._loop(interval), name="telegram-feed-watch")

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                await self.check()
            except StoreError as exc:
                log.warning("telegram: feed watch: %s", exc)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
