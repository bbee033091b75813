"""The cluster: a feed is polled by the instance holding its lease; one-only services run on one instance."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bot.cluster import Cluster, feed_lease_ttl
from bot.lease import LeaderElection, Leases
from bot.metrics import Metrics
from bot.pipeline import PollReport
from bot.store import SqliteStore
from bot.story_sync import StorySync
from feeds.cluster import StoryIndex
from feeds.records import FeedSpec
from tests.factories import T0
from tests.test_lease import DB, Recorder, wait_changed

pytestmark = pytest.mark.redis

FEED = FeedSpec("wire", "http://127.0.0.1:9/wire.xml", interval_s=60)


@pytest.fixture
async def make_cluster(redis_server: str, tmp_path: Path) -> AsyncIterator[Callable[[str], Cluster]]:
    """Instances of one cluster (one Redis, one store), each with its own owner id and metrics."""
    redis = Redis.from_url(f"{redis_server}/{DB}")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    store = SqliteStore(tmp_path / "s.db")

    def make(owner: str) -> Cluster:
        sync = StorySync(StoryIndex(), store, lambda: T0)
        return Cluster(Leases(redis, owner, prefix=prefix), sync, Metrics(CollectorRegistry(), T0), jitter=5.0)

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


def test_feed_lease_outlasts_interval_and_jitter() -> None:
    """The holder's next poll (one interval plus at most the jitter later) always finds its lease still held."""
    assert feed_lease_ttl(FEED, 5.0) > FEED.interval_s + 5.0


async def test_feed_stays_with_the_instance_polling_it(make_cluster: Callable[[str], Cluster]) -> None:
    """The first instance polls and keeps the feed on its next poll; the other skips and counts the skip."""
    first, second = make_cluster("a"), make_cluster("b")
    polls: list[str] = []
    assert await first.poll(FEED, poll_counter(polls, "a")) is not None
    assert await second.poll(FEED, poll_counter(polls, "b")) is None
    assert await first.poll(FEED, poll_counter(polls, "a")) is not None
    assert polls == ["a", "a"]
    assert second.metrics.registry.get_sample_value("newsbot_polls_skipped_total", {"feed": "wire"}) == 1


async def test_clean_stop_hands_feeds_over(make_cluster: Callable[[str], Cluster]) -> None:
    """After the holder releases its feeds on a clean stop, another instance polls them at once."""
    first, second = make_cluster("a"), make_cluster("b")
    polls: list[str] = []
    await first.poll(FEED, poll_counter(polls, "a"))
    await first.release_feeds([FEED])
    assert await second.poll(FEED, poll_counter(polls, "b")) is not None
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
