"""Keeps this instance's story index current with the alerts other instances stored in the shared store.

The story index (`feeds.cluster.StoryIndex`) lives in memory; with several instances on one Redis, an alert
raised by another instance must reach this index too, or the same story from another outlet would alert twice.
Before its polls an instance calls `sync`, which reads the alerts stored since the last call (at most once a
second) and adds those it has not seen. Its own alerts come back once as well: a duplicate entry that matches
the same cluster, which is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.store import StateStore
from feeds.cluster import StoryIndex

OVERLAP = timedelta(seconds=30)  # re-read this much before the last sync: alerts stored by slower peers


class StorySync:
    """`await sync()` before a poll; `stories` then knows every alert the cluster raised until a second ago."""

    def __init__(self, stories: StoryIndex, store: StateStore, clock: Callable[[], datetime],
                 every: timedelta = timedelta(seconds=1)) -> None:
        self._stories = stories
        self._store = store
        self._clock = clock
        self._every = every
        self._last = clock()  # build_app loaded every alert stored before now
        self._known: dict[str, datetime] = {}

    async def sync(self) -> int:
        """Add the alerts stored since the last sync that this index lacks; returns how many."""
        now = self._clock()
        if now - self._last < self._every:
            return 0
        since, self._last = self._last - OVERLAP, now
        added = 0
        for alert in reversed(await self._store.recent_alerts(since)):
            if alert.id in self._known:
                continue
            self._known[alert.id] = alert.detected_at
            self._stories.add(alert.cluster_id, alert.item, alert.verdict, alert.detected_at)
            added += 1
        horizon = since - OVERLAP
        self._known = {k: at for k, at in self._known.items() if at >= horizon}
        return added
