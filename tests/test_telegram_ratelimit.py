"""The broadcast limiter: a global bucket and per-chat buckets, on an injected clock (nothing sleeps)."""

from __future__ import annotations

import pytest

from bot.ratelimit import BroadcastLimiter, Bucket, ChatBusy, Limits
from tests.telegram_kit import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(clock: Clock, **kw: float) -> BroadcastLimiter:
    return BroadcastLimiter(Limits(**kw), monotonic=clock.monotonic, sleep=clock.sleep)  # type: ignore[arg-type]


class TestBuckets:
    def test_gcra_spaces_messages_after_the_burst(self) -> None:
        """Three at once fit a burst of three; the fourth waits one interval."""
        bucket = Bucket(rate=10, burst=3)
        assert [round(bucket.reserve(0.0), 3) for _ in range(4)] == [0.0, 0.0, 0.0, 0.1]

    async def test_global_rate_is_kept(self, clock: Clock) -> None:
        """300 sends to 300 chats take ten seconds at 30 per second."""
        lim = limiter(clock, global_rate=30, global_window=100)
        start = clock.monotonic()
        for chat in range(300):
            await lim.acquire(str(chat))
        assert clock.monotonic() - start == pytest.approx(299 / 30, abs=0.01)

    async def test_private_chat_gets_one_per_second(self, clock: Clock) -> None:
        """A second message to the same private chat waits a second; a group waits three."""
        lim = limiter(clock, global_rate=1000)
        await lim.acquire("42")
        start = clock.monotonic()
        await lim.acquire("42")
        assert clock.monotonic() - start == pytest.approx(1.0, abs=0.01)
        await lim.acquire("-100")
        with pytest.raises(ChatBusy) as busy:
            await lim.acquire("-100")
        assert busy.value.retry_after == pytest.approx(3.0, abs=0.01)


    async def test_rolling_window_caps_a_burst_after_a_stall(self, clock: Clock) -> None:
        """Even with a generous bucket, no more than `global_window` sends leave in any one second."""
        lim = limiter(clock, global_rate=1000, global_burst=100, global_window=29)
        start = clock.monotonic()
        for chat in range(30):
            await lim.acquire(str(chat))
        assert clock.monotonic() - start == pytest.approx(1.0, abs=0.01)


class TestFlood:
    async def test_chat_flood_stalls_only_that_chat(self, clock: Clock) -> None:
        """A 429 for a chat that was already at its own limit pauses that chat only."""
        lim = limiter(clock, global_rate=1000)
        await lim.acquire("42")
        await lim.acquire("42")  # waited: the chat was at its limit
        assert lim.flooded("42", 5) is False
        start = clock.monotonic()
        await lim.acquire("43")
        assert clock.monotonic() == pytest.approx(start, abs=0.01)
        assert lim.chat_delay("42") == pytest.approx(5.0, abs=0.01)

    async def test_global_flood_pauses_everyone(self, clock: Clock) -> None:
        """A 429 for a chat that had room means the global limit: every chat waits it out."""
        lim = limiter(clock, global_rate=1000)
        await lim.acquire("42")
        assert lim.flooded("42", 2) is True
        start = clock.monotonic()
        await lim.acquire("43")
        assert clock.monotonic() - start == pytest.approx(2.0, abs=0.01)

    async def test_repeated_floods_slow_down_then_recover(self, clock: Clock) -> None:
        """Two global floods within seconds lower the rate; calm brings it back to the setting."""
        lim = limiter(clock, global_rate=30)
        await lim.acquire("1")
        lim.flooded("1", 1)
        lim.flooded("1", 1)  # the same flood: another in-flight send refused
        assert lim.rate == 30
        clock.advance(3)
        await lim.acquire("2")
        lim.flooded("2", 1)
        assert lim.rate == pytest.approx(25.5)
        for step in range(6):
            clock.advance(21)
            await lim.acquire(str(100 + step))
        assert lim.rate == 30
