"""The cluster: a feed is polled by the instance holding its lease; one-only services run on one instance."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bot.cluster import Cluster, feed_lease_ttl
from bot.lease import LeaderElection, Leases
from bot.metrics import Metrics
from bot.pipeline import PollReport
from bot.records import Alert
from bot.store import SqliteStore
from bot.story_sync import StorySync
from feeds.cluster import StoryIndex
from feeds.records import FeedSpec
from tests.factories import T0, make_message
from tests.test_lease import DB, Recorder, wait_changed

pytestmark = pytest.mark.redis

FEED = FeedSpec("wire", "http://127.0.0.1:9/wire.xml", interval_s=60)


@pytest.fixture
async def make_cluster(redis_server: str, tmp_path: Path) -> AsyncIterator[Callable[[str], Cluster]]:
    """Instances of one cluster (one Redis, one store), each with its own owner id and metrics."""
    redis = Redis.from_url(f"{redis_server}/{DB}", socket_timeout=5.0)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    store = SqliteStore(tmp_path / "s.db")

    def make(owner: str) -> Cluster:
        sync = StorySync(StoryIndex(), store, lambda: T0)
        return Cluster(Leases(redis, owner, prefix=prefix), sync, Metrics(CollectorRegistry(), T0))

    yield make
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await store.close()


def poll_counter(polls: list[str], name: str) -> Callable[[], Awaitable[PollReport]]:
    async def poll() -> PollReport:
        polls.append(name)
        return PollReport(FEED.name, "unchanged")

    return poll


def test_feed_lease_ends_before_the_next_scheduled_poll() -> None:
    """An instance's polls of a feed are an interval (plus jitter) apart, so its lease is over by its next one."""
    assert feed_lease_ttl(FEED) < FEED.interval_s


async def test_one_poll_per_lease(make_cluster: Callable[[str], Cluster], redis_server: str) -> None:
    """While the lease of a polled feed lasts, every other poll (any instance's) is skipped and counted."""
    first, second = make_cluster("a"), make_cluster("b")
    polls: list[str] = []
    assert await first.poll(FEED, poll_counter(polls, "a")) is not None
    assert await second.poll(FEED, poll_counter(polls, "b")) is None
    assert await first.poll(FEED, poll_counter(polls, "a")) is None
    assert polls == ["a"]
    assert second.metrics.registry.get_sample_value("newsbot_polls_skipped_total", {"feed": "wire"}) == 1


async def test_next_poll_after_the_lease_takes_the_feed(make_cluster: Callable[[str], Cluster]) -> None:
    """When the lease has run out (an interval later, or its holder died), the next instance to poll takes it."""
    short = FeedSpec("wire", FEED.url, interval_s=0.2)
    first, second = make_cluster("a"), make_cluster("b")
    polls: list[str] = []
    assert await first.poll(short, poll_counter(polls, "a")) is not None
    deadline = time.monotonic() + 3
    while await second.poll(short, poll_counter(polls, "b")) is None:
        assert time.monotonic() < deadline, "the lease did not run out"
        await asyncio.sleep(0.02)
    assert polls == ["a", "b"]


class PollerService(Recorder):
    """A service that asks to run on one instance at a time, as the Telegram getUpdates poller does."""

    leader_lease = "telegram-poller"


async def test_leader_service_runs_on_one_instance(make_cluster: Callable[[str], Cluster]) -> None:
    """Of two instances wrapping the same kind of service, only one starts it; a plain service runs on both."""
    clusters = [make_cluster("a"), make_cluster("b")]
    pollers, plain = [PollerService(), PollerService()], [Recorder(), Recorder()]
    instances = [clusters[n].services([pollers[n], plain[n]]) for n in range(2)]
    first = instances[0][0]
    assert isinstance(first, LeaderElection)
    for service in instances[0]:
        await service.start()
    await wait_changed(first)
    for service in instances[1]:
        await service.start()
    assert [p.events for p in pollers] == [["start"], []]
    assert [p.events for p in plain] == [["start"], ["start"]]
    assert clusters[0].metrics.registry.get_sample_value("newsbot_leader", {"lease": "telegram-poller"}) == 1
    for services in instances:
        for service in services:
            await service.stop()


class FollowUps:
    """Records which follow-ups were scheduled here."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, tuple[int, ...]]] = []

    def schedule(self, alert: Alert, only: Sequence[int] | None = None) -> None:
        self.scheduled.append((alert.id, tuple(only or ())))


async def test_late_follow_up_is_taken_over_by_one_instance(
    make_cluster: Callable[[str], Cluster], tmp_path: Path
) -> None:
    """A +15 min follow-up still missing two minutes after it was due is scheduled on exactly one instance."""
    store = SqliteStore(tmp_path / "shared.db")
    await store.add_message(make_message("a_1"), [], T0)  # its instance died before the follow-up
    now = T0 + timedelta(minutes=17)
    first, second = FollowUps(), FollowUps()
    assert await make_cluster("a").adopt_reactions(store, first, (15, 60), now) == 1
    assert await make_cluster("b").adopt_reactions(store, second, (15, 60), now) == 0
    assert first.scheduled == [("a_1", (15,))] and second.scheduled == []
    await store.close()


async def test_follow_up_on_time_or_sent_is_left_alone(make_cluster: Callable[[str], Cluster], tmp_path: Path) -> None:
    """A follow-up not yet late, or already stored, is not taken over."""
    store = SqliteStore(tmp_path / "shared.db")
    alert = make_message("a_1")
    await store.add_message(alert, [], T0)
    follow_ups = FollowUps()
    cluster = make_cluster("a")
    assert await cluster.adopt_reactions(store, follow_ups, (15,), T0 + timedelta(minutes=16)) == 0
    await store.add_message(replace(alert, id="a_1:r15", kind="reaction"), [], T0 + timedelta(minutes=15))
    assert await cluster.adopt_reactions(store, follow_ups, (15,), T0 + timedelta(minutes=20)) == 0
    assert follow_ups.scheduled == []
    await store.close()
