"""The outbox on the SQLite store: persist first, retry with back-off, park permanent failures, survive restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from bot.errors import PermanentDelivery, RetryableDelivery
from bot.outbox import Outbox
from bot.records import Message
from bot.store import SqliteStore
from tests.factories import T0, make_message


class RecordingSink:
    """A sink that records deliveries and fails as scripted: a list of exceptions raised in turn, then success."""

    def __init__(self, name: str = "rec", failures: Sequence[Exception] = (), ordered: bool = False) -> None:
        self.name = name
        self.max_concurrency = 4
        self.ordered = ordered
        self.failures = list(failures)
        self.delivered: list[tuple[str, str, str | None]] = []
        self.arrived = asyncio.Event()

    async def targets(self, message: Message) -> Sequence[str]:
        return ("t1",)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append((message.id, target, reply_to))
        self.arrived.set()
        return f"ref-{message.id}"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_message_is_stored_before_delivery(tmp_path: Path) -> None:
    """Enqueue persists the message and its deliveries; nothing is sent until the outbox drains."""
    store, sink = SqliteStore(tmp_path / "s.db"), RecordingSink()
    outbox = Outbox(store, {"rec": sink}, Clock(T0))
    assert await outbox.enqueue(make_message("a_1"))
    assert sink.delivered == [] and await store.outbox_depth() == 1
    await outbox.drain()
    assert sink.delivered == [("a_1", "t1", None)] and await store.outbox_depth() == 0


async def test_same_message_is_enqueued_once(tmp_path: Path) -> None:
    """A message id already in the outbox is not added (or delivered) again."""
    store, sink = SqliteStore(tmp_path / "s.db"), RecordingSink()
    outbox = Outbox(store, {"rec": sink}, Clock(T0))
    assert await outbox.enqueue(make_message("a_1"))
    assert not await outbox.enqueue(make_message("a_1"))
    await outbox.drain()
    await outbox.drain()
    assert len(sink.delivered) == 1


async def test_retryable_failure_waits_for_retry_after(tmp_path: Path) -> None:
    """A 429-like failure is retried only after its Retry-After, then delivered once."""
    clock = Clock(T0)
    store, sink = SqliteStore(tmp_path / "s.db"), RecordingSink(failures=[RetryableDelivery("429", retry_after=30)])
    outbox = Outbox(store, {"rec": sink}, clock)
    await outbox.enqueue(make_message())
    assert (await outbox.drain()).retried == 1
    clock.now = T0 + timedelta(seconds=29)
    assert (await outbox.drain()).delivered == 0
    clock.now = T0 + timedelta(seconds=31)
    assert (await outbox.drain()).delivered == 1
    assert len(sink.delivered) == 1


async def test_permanent_failure_is_parked_and_can_be_requeued(tmp_path: Path) -> None:
    """A permanent failure is parked (not retried) until an operator queues it again."""
    clock = Clock(T0)
    store, sink = SqliteStore(tmp_path / "s.db"), RecordingSink(failures=[PermanentDelivery("410 archived")])
    outbox = Outbox(store, {"rec": sink}, clock)
    await outbox.enqueue(make_message())
    assert (await outbox.drain()).parked == 1
    clock.now = T0 + timedelta(hours=1)
    assert (await outbox.drain()).delivered == 0
    parked = await store.deliveries("parked")
    assert [d.last_error for d in parked] == ["410 archived"]
    assert await store.requeue_parked(clock.now) == 1
    assert (await outbox.drain()).delivered == 1


async def test_pending_deliveries_survive_a_restart(tmp_path: Path) -> None:
    """Deliveries not yet acknowledged are delivered by the next process on the same state file."""
    store = SqliteStore(tmp_path / "s.db")
    await Outbox(store, {"rec": RecordingSink()}, Clock(T0)).enqueue(make_message())
    await store.close()
    again, sink = SqliteStore(tmp_path / "s.db"), RecordingSink()
    await Outbox(again, {"rec": sink}, Clock(T0)).drain()
    assert [d[0] for d in sink.delivered] == ["a_1"]


async def test_ordered_sink_keeps_order_after_a_failure(tmp_path: Path) -> None:
    """For an ordered sink, later messages wait behind a failed one and arrive after it, in order."""
    clock = Clock(T0)
    store = SqliteStore(tmp_path / "s.db")
    sink = RecordingSink(failures=[RetryableDelivery("down", retry_after=10)], ordered=True)
    outbox = Outbox(store, {"rec": sink}, clock)
    for ident in ("a_1", "a_2", "a_3"):
        await outbox.enqueue(make_message(ident))
    await outbox.drain()
    assert sink.delivered == []
    clock.now = T0 + timedelta(seconds=11)
    await outbox.drain()
    assert [d[0] for d in sink.delivered] == ["a_1", "a_2", "a_3"]


async def test_run_loop_delivers_new_messages_until_stopped(tmp_path: Path) -> None:
    """The running outbox wakes on a new message and stops promptly when asked."""
    store, sink = SqliteStore(tmp_path / "s.db"), RecordingSink()
    outbox = Outbox(store, {"rec": sink}, Clock(T0))
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop))
    await outbox.enqueue(make_message())
    async with asyncio.timeout(5):
        await sink.arrived.wait()
    stop.set()
    async with asyncio.timeout(2):
        await task
