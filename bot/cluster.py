"""Several instances on one Redis: which instance polls a feed, sends a delivery, runs a one-only service.

There is a `Cluster` only when the state store is the shared Redis store (bot/redis_store.py). Then:

- a scheduled poll first takes the feed's lease for 0.9 of the interval (every instance schedules every feed,
  each at its own phase): the first instance whose poll comes after the lease ran out polls, the others skip.
  A feed is so polled once per interval by one instance; the holder's own next poll (an interval or more later)
  usually takes it again, and another instance's poll landing first moves it, so feeds spread over the
  instances; a dead instance's feeds are taken by the next scheduled poll after its leases ran out;
- before a poll, the story index learns the alerts other instances stored (`StorySync`);
- deliveries are claimed one by one (`DeliveryClaims`, passed to the outbox by the app);
- a service that names a `leader_lease` (the Telegram getUpdates poller) runs on one instance at a time;
- market-reaction follow-ups that are late (their instance died) are taken over by one surviving instance.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from redis.exceptions import RedisError

from bot.errors import StoreError
from bot.lease import Leases, instance_id, leader_service
from bot.metrics import Metrics
from bot.pipeline import PollReport
from bot.records import Alert
from bot.redis_store import RedisStore, redis_client
from bot.settings import Settings
from bot.sinks import Service
from bot.store import StateStore
from bot.story_sync import StorySync
from feeds.records import FeedSpec

log = logging.getLogger("newsbot.cluster")

FEED_LEASE_SHARE = 0.9  # of the interval: over before the holder's next poll (one interval + jitter later)
LEADER_TTL_S = 15.0
REACTION_LATE = timedelta(minutes=2)  # a follow-up this late has lost its instance: another one sends it
REACTION_LEASE_S = 600.0


class FollowUps(Protocol):
    """The reaction scheduler (bot/reaction.py), as far as taking over a follow-up needs it."""

    def schedule(self, alert: Alert, only: Sequence[int] | None = None) -> None: ...


def feed_lease_ttl(feed: FeedSpec) -> float:
    """Shorter than any instance's gap between two polls of the feed (the interval, plus jitter)."""
    return FEED_LEASE_SHARE * feed.interval_s


async def open_leases(settings: Settings, store: StateStore, stack: AsyncExitStack) -> Leases | None:
    """Leases in Redis when the state store is the shared Redis store; None for a lone instance."""
    if not settings.redis_url or not isinstance(store, RedisStore):
        return None
    redis = redis_client(settings.redis_url)
    stack.push_async_callback(redis.aclose)
    return Leases(redis, instance_id())


@dataclass(frozen=True, slots=True)
class Cluster:
    leases: Leases
    stories: StorySync
    metrics: Metrics

    async def poll(self, feed: FeedSpec, poll: Callable[[], Awaitable[PollReport]]) -> PollReport | None:
        """Runs `poll` if this instance takes the feed's lease; None when another instance polled it lately."""
        try:
            async with self.leases.hold(f"feed:{feed.name}", feed_lease_ttl(feed), release=False) as mine:
                if mine:
                    await self._sync_stories()
                    return await poll()
        except RedisError as exc:
            log.warning("feed %s: lease unavailable (%s); skipped this interval", feed.name, exc,
                        extra={"feed": feed.name})
            return None
        self.metrics.skipped_poll(feed.name)
        return None

    async def _sync_stories(self) -> None:
        try:
            await self.stories.sync()
        except StoreError as exc:
            log.warning("stories: cannot read recent alerts: %s", exc)

    async def adopt_reactions(self, store: StateStore, follow_ups: FollowUps, minutes: Sequence[int],
                              now: datetime) -> int:
        """Schedules here, at once, the follow-ups that are late and not stored; one instance takes each one."""
        horizon = timedelta(minutes=max(minutes, default=0)) + REACTION_LATE * 5
        adopted = 0
        for alert in await store.recent_alerts(now - horizon):
            for late in [m for m in minutes if now - (alert.detected_at + timedelta(minutes=m)) >= REACTION_LATE]:
                key = f"{alert.id}:r{late}"
                if await store.message(key) is None and await self.leases.acquire(f"reaction:{key}", REACTION_LEASE_S):
                    log.info("reaction %s: late, taken over", key, extra={"alert": alert.id})
                    follow_ups.schedule(alert, [late])
                    adopted += 1
        return adopted

    async def adopt_late_reactions(self, store: StateStore, follow_ups: FollowUps, minutes: Sequence[int],
                                   clock: Callable[[], datetime]) -> None:
        """The periodic job around `adopt_reactions`: a Redis or store outage is logged, and tried next time."""
        try:
            await self.adopt_reactions(store, follow_ups, minutes, clock())
        except (RedisError, StoreError) as exc:
            log.warning("reactions: cannot look for late follow-ups: %s", exc)

    def services(self, services: Sequence[Service]) -> list[Service]:
        """Services that name a `leader_lease` are wrapped to run on one instance at a time."""
        return [self._wrap(service) for service in services]

    def _wrap(self, service: Service) -> Service:
        name = getattr(service, "leader_lease", None)
        if not name:
            return service
        return leader_service(service, self.leases, name, LEADER_TTL_S, on_change=_leader_gauge(self.metrics, name))


def _leader_gauge(metrics: Metrics, name: str) -> Callable[[bool], None]:
    return lambda held: metrics.set_leader(name, held)
