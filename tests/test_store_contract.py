"""The `StateStore` contract: every method, run against both SqliteStore and RedisStore (real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.records import Message, Reaction, Source
from bot.redis_store import RedisStore
from bot.store import Delivery, SeenEntry, SqliteStore, StateStore
from feeds.health import FeedHealth, FeedState, Validators
from tests.factories import T0, make_alert, make_message

Opener = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite", "redis"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the store under test (again and again: a second open sees what the first wrote)."""
    opened: list[StateStore] = []
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def open_one() -> StateStore:
        store: StateStore = RedisStore.from_url(redis_url) if redis_url else SqliteStore(tmp_path / "state.db")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: Opener) -> StateStore:
    return await open_store()


def reaction_message(alert_id: str = "a_1", minutes: int = 15) -> Message:
    reaction = Reaction(alert_id, minutes, "US tightens", (("NVDA", 0.8),), (), T0)
    return Message(f"{alert_id}:r{minutes}", "reaction", alert_id, make_alert(alert_id), reaction)


def ids(deliveries: list[Delivery]) -> list[tuple[str, str, str]]:
    return [(d.message_id, d.sink, d.target) for d in deliveries]


class TestFeedState:
    async def test_unknown_feed_has_an_empty_state(self, store: StateStore) -> None:
        """A feed never saved has default validators and health."""
        assert await store.feed_state("nope") == FeedState()

    async def test_state_round_trips(self, open_store: Opener) -> None:
        """Validators and health (with times) come back equal, also from a freshly opened store."""
        state = FeedState(Validators('"etag"', "Tue, 15 Jul 2025 03:00:00 GMT", "abc"),
                          FeedHealth(failures=2, next_attempt_at=T0, last_error="HTTP 503", last_ok_at=T0, items=4))
        await (await open_store()).save_feed_state("reuters", state)
        reopened = await open_store()
        assert await reopened.feed_state("reuters") == state
        assert await reopened.feed_states() == {"reuters": state}


class TestSeen:
    async def test_marked_items_are_seen(self, store: StateStore) -> None:
        """Marked keys come back with their feed, hash and flag; others are absent."""
        await store.mark_seen([SeenEntry("k1", "f", "h1", True), SeenEntry("k2", "f", "h2", False)], T0)
        assert await store.seen(["k1", "k2", "k3"]) == {
            "k1": SeenEntry("k1", "f", "h1", True), "k2": SeenEntry("k2", "f", "h2", False)}

    async def test_flag_is_sticky_and_hash_updates(self, store: StateStore) -> None:
        """Marking again updates the content hash but never clears a flag."""
        await store.mark_seen([SeenEntry("k1", "f", "h1", True)], T0)
        await store.mark_seen([SeenEntry("k1", "f", "h2", False)], T0)
        assert await store.seen(["k1"]) == {"k1": SeenEntry("k1", "f", "h2", True)}

    async def test_many_keys_are_looked_up_in_chunks(self, store: StateStore) -> None:
        """More than one chunk of keys is found in full."""
        await store.mark_seen([SeenEntry(f"k{i}", "f", "h", False) for i in range(1200)], T0)
        assert len(await store.seen([f"k{i}" for i in range(1300)])) == 1200

    async def test_prune_forgets_items_last_seen_before(self, store: StateStore) -> None:
        """Items last seen before the cut-off are forgotten and counted; later ones stay."""
        await store.mark_seen([SeenEntry("old", "f", "h", True), SeenEntry("new", "f", "h", False)], T0)
        await store.mark_seen([SeenEntry("new", "f", "h", False)], T0 + timedelta(days=2))
        assert await store.prune_seen(T0 + timedelta(days=1)) == 1
        assert set(await store.seen(["old", "new"])) == {"new"}
        assert await store.prune_seen(T0 + timedelta(days=1)) == 0


class TestOutbox:
    async def test_message_is_added_once_with_its_deliveries(self, store: StateStore) -> None:
        """A new message is stored with one pending delivery per target; the same id again is refused."""
        message = make_message("a_1")
        assert await store.add_message(message, [("console", "stdout"), ("telegram", "42")], T0)
        assert not await store.add_message(message, [("slack", "w")], T0)
        assert await store.message("a_1") == message
        assert await store.message("nope") is None
        assert ids(await store.deliveries("pending")) == [("a_1", "console", "stdout"), ("a_1", "telegram", "42")]
        assert await store.outbox_depth() == 2

    async def test_reaction_round_trips(self, store: StateStore) -> None:
        """A reaction message comes back equal, reaction included."""
        await store.add_message(reaction_message(), [("console", "stdout")], T0)
        assert await store.message("a_1:r15") == reaction_message()

    async def test_targets_can_be_added_later(self, store: StateStore) -> None:
        """New targets of a stored message become pending; existing ones and unknown messages are left alone."""
        await store.add_message(make_message("a_1"), [("telegram", "1")], T0)
        await store.add_targets("a_1", [("telegram", "1"), ("telegram", "2")], T0)
        await store.add_targets("nope", [("telegram", "3")], T0)
        assert ids(await store.deliveries("pending")) == [("a_1", "telegram", "1"), ("a_1", "telegram", "2")]

    async def test_due_is_ordered_filtered_and_limited(self, store: StateStore) -> None:
        """Due lists pending deliveries of the given sinks whose time has come, oldest message first."""
        for n in range(1, 4):
            await store.add_message(make_message(f"a_{n}"), [("console", "stdout"), ("slack", "w")], T0)
        (later, *_) = await store.due(T0, ["slack"])
        await store.mark_retry(later, T0 + timedelta(seconds=60), "429")
        assert ids(await store.due(T0, ["slack"])) == [("a_2", "slack", "w"), ("a_3", "slack", "w")]
        assert [d.message_id for d in await store.due(T0, ["console"], limit=2)] == ["a_1", "a_2"]
        assert await store.due(T0 - timedelta(seconds=1), ["console", "slack"]) == []
        assert [d.message_id for d in await store.due(T0 + timedelta(seconds=60), ["slack"])] == ["a_1", "a_2", "a_3"]

    async def test_next_due_at_is_the_earliest_pending(self, store: StateStore) -> None:
        """The earliest pending time of the given sinks, or None when nothing is pending."""
        assert await store.next_due_at(["slack"]) is None
        await store.add_message(make_message("a_1"), [("slack", "w")], T0)
        (delivery,) = await store.due(T0, ["slack"])
        await store.mark_retry(delivery, T0 + timedelta(seconds=30), "500")
        assert await store.next_due_at(["slack", "console"]) == T0 + timedelta(seconds=30)
        assert await store.next_due_at(["console"]) is None

    async def test_retry_counts_attempts_and_keeps_the_error(self, store: StateStore) -> None:
        """A retry moves the due time and records the error; a hold without an attempt leaves the count."""
        await store.add_message(make_message("a_1"), [("slack", "w")], T0)
        (delivery,) = await store.due(T0, ["slack"])
        await store.mark_retry(delivery, T0 + timedelta(seconds=5), "429 rate limited")
        await store.mark_retry(delivery, T0 + timedelta(seconds=9), "waiting", count_attempt=False)
        (pending,) = await store.deliveries("pending")
        assert (pending.attempts, pending.next_at, pending.last_error) == (1, T0 + timedelta(seconds=9), "waiting")

    async def test_done_keeps_the_reference(self, store: StateStore) -> None:
        """A delivered message is no longer due and its reference is kept for replies."""
        await store.add_message(make_message("a_1"), [("telegram", "42"), ("console", "stdout")], T0)
        tg, console = sorted(await store.due(T0, ["telegram", "console"]), key=lambda d: d.sink, reverse=True)
        await store.mark_done(tg, "1001", T0)
        await store.mark_done(console, None, T0)
        assert await store.due(T0, ["telegram", "console"]) == []
        assert await store.delivery_ref("a_1", "telegram", "42") == "1001"
        assert await store.delivery_ref("a_1", "console", "stdout") is None
        assert await store.delivery_ref("a_1", "telegram", "43") is None
        done = await store.deliveries("done")
        assert {(d.sink, d.status, d.attempts) for d in done} == {("telegram", "done", 1), ("console", "done", 1)}
        assert await store.outbox_depth() == 0

    async def test_parked_deliveries_are_listed_and_requeued(self, store: StateStore) -> None:
        """Parked deliveries leave the queue with their reason; requeueing makes them due now, attempts reset."""
        await store.add_message(make_message("a_1"), [("slack", "w")], T0)
        (delivery,) = await store.due(T0, ["slack"])
        await store.mark_parked(delivery, "404 no_service")
        (parked,) = await store.deliveries("parked")
        assert (parked.status, parked.last_error, parked.attempts) == ("parked", "404 no_service", 1)
        assert await store.due(T0, ["slack"]) == [] and await store.outbox_depth() == 0
        later = T0 + timedelta(hours=1)
        assert await store.requeue_parked(later) == 1
        assert await store.deliveries("parked") == []
        assert [replace(d, last_error=None) for d in await store.due(later, ["slack"])] == [
            Delivery("a_1", "slack", "w", 0, later, None, "pending")]

    async def test_outbox_survives_a_restart(self, open_store: Opener) -> None:
        """What one process stored, a freshly opened store still delivers."""
        await (await open_store()).add_message(make_message("a_1"), [("slack", "w")], T0)
        reopened = await open_store()
        assert ids(await reopened.due(T0, ["slack"])) == [("a_1", "slack", "w")]


class TestStories:
    async def test_recent_alerts_newest_first_without_reactions(self, store: StateStore) -> None:
        """Recent alerts are the alert messages since a time, newest first, limited; reactions are not alerts."""
        for n in range(1, 4):
            await store.add_message(make_message(f"a_{n}"), [], T0 + timedelta(minutes=n))
        await store.add_message(reaction_message("a_1"), [], T0 + timedelta(minutes=5))
        alerts = await store.recent_alerts(T0 + timedelta(minutes=2))
        assert [a.id for a in alerts] == ["a_3", "a_2"]
        assert alerts[0] == make_alert("a_3")
        assert [a.id for a in await store.recent_alerts(T0, limit=1)] == ["a_3"]

    async def test_a_source_is_attached_once(self, store: StateStore) -> None:
        """The same outlet is attached to a story once; another outlet is attached too."""
        source = Source("nikkei", "https://nikkei.example/1", "Chip curbs", "ja", T0)
        assert await store.attach_source("a_1", source)
        assert not await store.attach_source("a_1", source)
        assert await store.attach_source("a_1", replace(source, url="https://nikkei.example/2"))
        assert await store.attach_source("a_2", source)
