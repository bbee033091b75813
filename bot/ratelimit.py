"""The broadcast limiter: one global bucket and one bucket per chat, so Telegram's limits are kept.

Telegram allows about 30 messages per second in all, 1 per second in a private chat and 20 per minute in a
group. Each bucket is a GCRA ("virtual scheduling") token bucket: `reserve` books the next free slot at once
and says how long to wait for it, so waiters are served first come, first served without a lock. On top, a
rolling one-second window counts the sends as they really leave: when the event loop stalls (a SQLite
checkpoint, a GC pause), the sends booked during the stall cannot leave in one burst and trip a 429.

A flood signal (429) for one chat pauses only that chat; a global flood pauses the global bucket, and
repeated global floods lower the global rate (to 85 %), which creeps back (+1/s per calm 20 s) to the setting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

FLOOD_MEMORY_S = 10.0  # two global floods this close: the real limit is below ours
SLOW_DOWN = 0.85
CALM_S = 20.0  # this long without a flood: speed up again
SPEED_UP = 1.0  # messages per second
MIN_RATE = 1.0

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Rates in messages per second; bursts in messages. Defaults keep a margin under Telegram's limits."""

    global_rate: float = 28.5
    global_burst: int = 1
    private_rate: float = 1.0
    group_rate: float = 20 / 60
    chat_burst: int = 1
    max_inline_wait: float = 1.5  # a chat busier than this is rescheduled by the outbox instead of awaited
    global_window: int = 28  # at most this many sends in any rolling second (slack for ~70 ms of jitter)


class Bucket:
    """A GCRA token bucket: `rate` per second, up to `burst` at once."""

    __slots__ = ("_burst", "_interval", "_tat", "last_wait")

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._interval = 1.0 / rate
        self._burst = max(1, burst)
        self._tat = 0.0  # theoretical arrival time of the next message
        self.last_wait = 0.0  # what the latest reservation had to wait (0: the bucket had room)

    def delay(self, now: float) -> float:
        """How long a message would wait if reserved now (nothing is booked)."""
        allowed_at = max(self._tat, now) - (self._burst - 1) * self._interval
        return max(0.0, allowed_at - now)

    def reserve(self, now: float) -> float:
        """Book the next slot; returns the seconds to wait before sending."""
        wait = self.delay(now)
        self._tat = max(self._tat, now) + self._interval
        self.last_wait = wait
        return wait

    def pause(self, now: float, seconds: float) -> None:
        """Nothing goes out for `seconds` (a 429's retry_after)."""
        self._tat = max(self._tat, now + seconds + (self._burst - 1) * self._interval)

    def set_rate(self, rate: float) -> None:
        self._interval = 1.0 / rate

    def idle(self, now: float) -> bool:
        """True when the bucket is full again (it can be forgotten)."""
        return self._tat <= now


class ChatBusy(Exception):
    """The chat's own limit would hold this message longer than we wait inline; retry after `retry_after`."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"chat busy for {retry_after:.1f}s")


class BroadcastLimiter:
    """`await limiter.acquire(chat_id)` before each send; `flooded(chat_id, seconds)` after a 429."""

    def __init__(self, limits: Limits | None = None, monotonic: Monotonic = time.monotonic,
                 sleep: Sleep = asyncio.sleep, max_chats: int = 10_000) -> None:
        self.limits = limits or Limits()
        self._now = monotonic
        self._sleep = sleep
        self._global = Bucket(self.limits.global_rate, self.limits.global_burst)
        self._global_paused_until = 0.0
        self._rate = self.limits.global_rate
        self._last_flood = self._last_change = -FLOOD_MEMORY_S
        self._sent: deque[float] = deque()
        self._chats: dict[str, Bucket] = {}
        self._max_chats = max_chats

    def _chat(self, chat_id: str) -> Bucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if len(self._chats) >= self._max_chats:
                self._forget_idle()
            rate = self.limits.group_rate if chat_id.startswith("-") else self.limits.private_rate
            bucket = self._chats[chat_id] = Bucket(rate, self.limits.chat_burst)
        return bucket

    def _forget_idle(self) -> None:
        now = self._now()
        for chat_id in [c for c, b in self._chats.items() if b.idle(now)]:
            del self._chats[chat_id]

    async def acquire(self, chat_id: str) -> None:
        """Wait for the chat's slot and then the global one; raises `ChatBusy` if the chat's wait is long."""
        chat = self._chat(chat_id)
        wait = chat.delay(self._now())
        if wait > self.limits.max_inline_wait:
            raise ChatBusy(wait)
        await self._wait(chat.reserve(self._now()))
        self._recover(self._now())
        while True:
            await self._wait(self._global.reserve(self._now()))
            if self._now() >= self._global_paused_until:
                break  # a global pause that began while we waited sends us to the back of the queue
        await self._window_room()

    async def _window_room(self) -> None:
        """A stalled event loop wakes several booked sends at once: the rolling window keeps them apart."""
        while True:
            now = self._now()
            while self._sent and self._sent[0] <= now - 1.0:
                self._sent.popleft()
            if len(self._sent) < self.limits.global_window:
                self._sent.append(now)
                return
            await self._sleep(self._sent[0] + 1.0 - now)

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)

    def flooded(self, chat_id: str, seconds: float) -> bool:
        """Record a 429 for `chat_id`; returns True when it is read as a global flood.

        The chat pauses in any case. If the chat's own bucket had room for the message that was refused,
        the chat's limit cannot be what tripped, so the global bucket pauses too.
        """
        now = self._now()
        chat = self._chat(chat_id)
        global_flood = chat.last_wait == 0.0
        chat.pause(now, seconds)
        if global_flood:
            self._global_flood(now, seconds)
        return global_flood

    def _global_flood(self, now: float, seconds: float) -> None:
        """Pause everyone; a second flood soon after the first means the real limit is lower: slow down."""
        if now >= self._global_paused_until:  # 429s of the sends already in flight are the same flood
            if now - self._last_flood < FLOOD_MEMORY_S:
                self._set_rate(max(MIN_RATE, self._rate * SLOW_DOWN))
            self._last_flood = now
        self._global.pause(now, seconds)
        self._global_paused_until = max(self._global_paused_until, now + seconds)

    def _recover(self, now: float) -> None:
        """After a calm spell, creep back towards the configured rate."""
        if self._rate < self.limits.global_rate and now - max(self._last_flood, self._last_change) >= CALM_S:
            self._set_rate(min(self.limits.global_rate, self._rate + SPEED_UP))

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._last_change = self._now()
        self._global.set_rate(rate)

    @property
    def rate(self) -> float:
        """The global rate now (lower than configured for a while after repeated floods)."""
        return self._rate

    def chat_delay(self, chat_id: str) -> float:
        """Seconds before `chat_id` may receive again (0 when free)."""
        bucket = self._chats.get(chat_id)
        return bucket.delay(self._now()) if bucket else 0.0
