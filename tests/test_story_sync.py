"""Story index sync: an alert another instance stored reaches this instance's index, once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bot.store import SqliteStore
from bot.story_sync import StorySync
from feeds.cluster import StoryIndex
from tests.factories import T0, make_alert, make_item, make_message


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_alert_of_another_instance_is_matched(tmp_path: Path) -> None:
    """After a sync, the same story from another outlet matches the other instance's alert."""
    store, clock, stories = SqliteStore(tmp_path / "s.db"), Clock(), StoryIndex()
    sync = StorySync(stories, store, clock)
    await store.add_message(make_message("a_other"), [], T0)  # stored by another instance
    copy = make_item("k2", feed="other-outlet")
    alert = make_alert("a_other")
    assert stories.match(copy, alert.verdict, T0) is None
    clock.now = T0 + timedelta(seconds=2)
    assert await sync.sync() == 1
    match = stories.match(copy, alert.verdict, clock.now)
    assert match is not None and match.cluster_id == "a_other"
    await store.close()


async def test_each_alert_is_added_once_and_reads_are_throttled(tmp_path: Path) -> None:
    """A second sync within a second reads nothing; a later one skips alerts it already added."""
    store, clock, stories = SqliteStore(tmp_path / "s.db"), Clock(), StoryIndex()
    sync = StorySync(stories, store, clock)
    await store.add_message(make_message("a_1"), [], T0)
    clock.now = T0 + timedelta(seconds=2)
    assert await sync.sync() == 1
    await store.add_message(make_message("a_2"), [], clock.now)
    assert await sync.sync() == 0  # throttled
    clock.now += timedelta(seconds=2)
    assert await sync.sync() == 1
    assert len(stories) == 2
    await store.close()
