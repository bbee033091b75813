"""Leases in a real Redis: exclusive, expiring, owner-only renew and release; leader election; delivery claims."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.lease import DeliveryClaims, LeaderElection, Leases, leader_service
from bot.outbox import ELSEWHERE_WAIT_S, Outbox
from bot.records import Message
from bot.store import Delivery, SqliteStore
from tests.factories import T0, make_message

pytestmark = pytest.mark.redis

DB = 12  # not the shared fixture's db 9: keys here carry a per-test prefix and are removed afterwards


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(f"{redis_server}/{DB}", socket_timeout=5.0)  # a stalled server fails, never hangs
    yield client
    await client.aclose()


@pytest.fixture
async def make_leases(redis: Redis) -> AsyncIterator[Callable[[str], Leases]]:
    """Leases of several owners under one fresh key prefix, cleaned up after the test."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"

    def make(owner: str) -> Leases:
        return Leases(redis, owner, prefix=prefix)

    yield make
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def until(predicate: Callable[[], object], limit: float = 3.0) -> None:
    """Poll an async-free predicate with a deadline (for expiry, which has no event to wait on)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class TestLeases:
    async def test_only_one_owner_acquires(self, make_leases: Callable[[str], Leases]) -> None:
        """Of two owners asking for one lease, the first gets it and the second is refused."""
        a, b = make_leases("a"), make_leases("b")
        assert await a.acquire("feed:x", 5)
        assert not await b.acquire("feed:x", 5)
        assert await b.holder("feed:x") == "a"

    async def test_lease_expires_after_ttl(self, make_leases: Callable[[str], Leases], redis: Redis) -> None:
        """A lease nobody renews disappears after its time-to-live, and another owner can take it."""
        a, b = make_leases("a"), make_leases("b")
        assert await a.acquire("feed:x", 0.1)
        assert 0 < await redis.pttl(a.key("feed:x")) <= 100
        deadline = time.monotonic() + 2
        while not await b.acquire("feed:x", 5):
            assert time.monotonic() < deadline, "lease did not expire"
            await asyncio.sleep(0.01)
        assert await a.holder("feed:x") == "b"

    async def test_only_the_owner_renews(self, make_leases: Callable[[str], Leases], redis: Redis) -> None:
        """Renewing someone else's lease fails; the owner's renewal sets the new time-to-live."""
        a, b = make_leases("a"), make_leases("b")
        await a.acquire("feed:x", 1)
        assert not await b.renew("feed:x", 60)
        assert await redis.pttl(a.key("feed:x")) <= 1000
        assert await a.renew("feed:x", 60)
        assert await redis.pttl(a.key("feed:x")) > 50_000

    async def test_only_the_owner_releases(self, make_leases: Callable[[str], Leases]) -> None:
        """Releasing someone else's lease leaves it held; the owner's release frees it."""
        a, b = make_leases("a"), make_leases("b")
        await a.acquire("feed:x", 5)
        assert not await b.release("feed:x")
        assert await a.holder("feed:x") == "a"
        assert await a.release("feed:x")
        assert await b.acquire("feed:x", 5)

    async def test_hold_keeps_the_lease_past_its_ttl(self, make_leases: Callable[[str], Leases]) -> None:
        """While a holder is inside `hold`, the lease is renewed, so a long poll is never joined by another."""
        a, b = make_leases("a"), make_leases("b")
        async with a.hold("feed:x", 0.15, release=False) as held:
            assert held
            started = time.monotonic()
            while time.monotonic() - started < 0.5:
                assert not await b.acquire("feed:x", 5)
                await asyncio.sleep(0.02)
        assert await a.holder("feed:x") == "a"  # not released: it runs out on its own

    async def test_hold_yields_false_when_taken(self, make_leases: Callable[[str], Leases]) -> None:
        """`hold` on a lease another owner has yields False and leaves it alone."""
        a, b = make_leases("a"), make_leases("b")
        await a.acquire("feed:x", 5)
        async with b.hold("feed:x", 5) as held:
            assert not held
        assert await a.holder("feed:x") == "a"


class Recorder:
    """A stand-in `Service` that records start and stop."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def wait_changed(election: LeaderElection, limit: float = 3.0) -> None:
    async with asyncio.timeout(limit):
        await election.changed.wait()
    election.changed.clear()


class TestLeaderElection:
    async def test_one_leader_then_takeover_on_stop(self, make_leases: Callable[[str], Leases]) -> None:
        """Of two candidates exactly one runs the service; when it stops, the other starts it."""
        first, second = Recorder(), Recorder()
        a = leader_service(first, make_leases("a"), "telegram-poller", ttl=0.3)
        await a.start()
        await wait_changed(a)
        b = leader_service(second, make_leases("b"), "telegram-poller", ttl=0.3)
        await b.start()
        assert a.is_leader and not b.is_leader and second.events == []
        await a.stop()
        assert first.events == ["start", "stop"]
        await wait_changed(b)
        assert b.is_leader and second.events == ["start"]
        await b.stop()

    async def test_leader_that_loses_its_lease_stops(self, make_leases: Callable[[str], Leases], redis: Redis) -> None:
        """When the lease is gone (expired while Redis was away, or taken), the leader stops its service."""
        service, leases = Recorder(), make_leases("a")
        election = leader_service(service, leases, "telegram-poller", ttl=0.3)
        await election.start()
        await wait_changed(election)
        await redis.set(leases.key("telegram-poller"), "someone-else")
        await wait_changed(election)
        assert not election.is_leader and service.events == ["start", "stop"]
        await election.stop()
        assert service.events == ["start", "stop"]

    async def test_failing_start_gives_the_lease_back(self, make_leases: Callable[[str], Leases]) -> None:
        """A service that cannot start does not sit on the lease: another instance may take it."""

        async def broken() -> None:
            raise RuntimeError("cannot start")

        async def nothing() -> None:
            return None

        leases = make_leases("a")
        election = LeaderElection(leases, "telegram-poller", 5, broken, nothing)
        await election.start()
        await wait_changed(election)
        await until(lambda: not election.is_leader)
        assert await leases.holder("telegram-poller") is None
        await election.stop()


class ConcurrentSink:
    """A sink whose deliveries all wait on one gate, so two outboxes are surely in flight at once."""

    name = "rec"
    max_concurrency = 8
    ordered = False

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    async def targets(self, message: Message) -> Sequence[str]:
        return ("t1",)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        await self.gate.wait()
        self.delivered.append(message.id)
        self.arrived.set()
        return None


class StaleStore(SqliteStore):
    """A store whose `due` answers an old list, as an instance that read it before another delivered."""

    stale: list[Delivery]

    async def due(self, now: object, sinks: Sequence[str], limit: int = 500) -> list[Delivery]:
        return self.stale


class TestDeliveryClaims:
    async def test_two_outboxes_deliver_each_message_once(
        self, make_leases: Callable[[str], Leases], tmp_path: Path
    ) -> None:
        """Two instances draining one shared outbox at the same moment deliver every message exactly once."""
        store, sink = SqliteStore(tmp_path / "s.db"), ConcurrentSink()
        first = Outbox(store, {"rec": sink}, lambda: T0, claims=DeliveryClaims(make_leases("a")))
        second = Outbox(store, {"rec": sink}, lambda: T0, claims=DeliveryClaims(make_leases("b")))
        for n in range(5):
            await first.enqueue(make_message(f"a_{n}"))
        drains = asyncio.gather(first.drain(), second.drain())
        await asyncio.sleep(0)  # let both read the same due list before any delivery finishes
        sink.gate.set()
        reports = await drains
        assert sorted(sink.delivered) == [f"a_{n}" for n in range(5)]
        assert sum(r.delivered for r in reports) == 5

    async def test_stale_due_list_does_not_repeat(self, make_leases: Callable[[str], Leases], tmp_path: Path) -> None:
        """An instance whose due list predates another's delivery finds the done-marker and skips it."""
        store, sink = StaleStore(tmp_path / "s.db"), ConcurrentSink()
        sink.gate.set()
        first = Outbox(store, {"rec": sink}, lambda: T0, claims=DeliveryClaims(make_leases("a")))
        await first.enqueue(make_message("a_1"))
        store.stale = await SqliteStore.due(store, T0, ["rec"])
        await first.drain()
        second = Outbox(store, {"rec": sink}, lambda: T0, claims=DeliveryClaims(make_leases("b")))
        assert (await second.drain()).delivered == 0
        assert sink.delivered == ["a_1"]

    async def test_claim_is_renewed_while_the_send_lasts(
        self, make_leases: Callable[[str], Leases], redis: Redis
    ) -> None:
        """A send that outlasts the claim's ttl (a flood wait) keeps its claim; the done-marker is not shortened."""
        claims_a, claims_b = DeliveryClaims(make_leases("a"), ttl=0.15), DeliveryClaims(make_leases("b"))
        delivery = Delivery("m1", "rec", "t1")
        assert await claims_a.claim(delivery)
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            assert not await claims_b.claim(delivery)
            await asyncio.sleep(0.02)
        await claims_a.settle(delivery, finished=True)
        key = make_leases("a").key(DeliveryClaims.name(delivery))
        assert await redis.pttl(key) > 500_000

    async def test_retry_releases_the_claim(self, make_leases: Callable[[str], Leases]) -> None:
        """A delivery that will be retried is released at once; a delivered one stays claimed."""
        claims_a, claims_b = DeliveryClaims(make_leases("a")), DeliveryClaims(make_leases("b"))
        retried, done = Delivery("m1", "rec", "t1"), Delivery("m2", "rec", "t1")
        assert await claims_a.claim(retried) and await claims_a.claim(done)
        await claims_a.settle(retried, finished=False)
        await claims_a.settle(done, finished=True)
        assert await claims_b.claim(retried)
        assert not await claims_b.claim(done)


class CountingStore(SqliteStore):
    """Records when `due` is asked, and signals each time."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.asked: list[float] = []
        self.changed = asyncio.Event()

    async def due(self, now: datetime, sinks: Sequence[str], limit: int = 500) -> list[Delivery]:
        self.asked.append(time.monotonic())
        self.changed.set()
        return await super().due(now, sinks, limit)


async def test_outbox_does_not_spin_on_deliveries_claimed_elsewhere(
    make_leases: Callable[[str], Leases], tmp_path: Path
) -> None:
    """A due delivery another instance holds is looked at again after a pause, not in a tight loop."""
    store, sink = CountingStore(tmp_path / "s.db"), ConcurrentSink()
    outbox = Outbox(store, {"rec": sink}, lambda: T0, claims=DeliveryClaims(make_leases("b")))
    await outbox.enqueue(make_message("a_1"))
    (pending,) = await SqliteStore.due(store, T0, ["rec"])
    sender = DeliveryClaims(make_leases("a"))
    assert await sender.claim(pending)  # instance a is sending it
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    async with asyncio.timeout(3):
        while len(store.asked) < 3:
            store.changed.clear()
            await store.changed.wait()
    stop.set()
    await loop
    sender.close()
    gaps = [b - a for a, b in itertools.pairwise(store.asked)]
    assert min(gaps) >= ELSEWHERE_WAIT_S * 0.9 and sink.delivered == []


class HangingSink(ConcurrentSink):
    """Accepts the delivery and never answers: its instance dies mid-send."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        self.entered.set()
        await asyncio.Event().wait()
        return None


async def test_delivery_of_a_dead_instance_is_taken_over(
    make_leases: Callable[[str], Leases], tmp_path: Path
) -> None:
    """When the instance sending a delivery dies, another sends it once the claim runs out."""
    store, hanging, survivor_sink = SqliteStore(tmp_path / "s.db"), HangingSink(), ConcurrentSink()
    survivor_sink.gate.set()
    doomed_claims = DeliveryClaims(make_leases("a"), ttl=0.3)
    doomed = Outbox(store, {"rec": hanging}, lambda: T0, claims=doomed_claims)
    await doomed.enqueue(make_message("a_1"))
    dying = asyncio.create_task(doomed.drain())
    async with asyncio.timeout(3):
        await hanging.entered.wait()
    dying.cancel()  # the process is gone: no settle, no renewal; the claim stays until it expires
    doomed_claims.close()
    survivor = Outbox(store, {"rec": survivor_sink}, lambda: T0, claims=DeliveryClaims(make_leases("b"), ttl=0.3))
    assert (await survivor.drain()).elsewhere == 1
    stop = asyncio.Event()
    loop = asyncio.create_task(survivor.run(stop))
    async with asyncio.timeout(3):
        await survivor_sink.arrived.wait()
    stop.set()
    await loop
    assert survivor_sink.delivered == ["a_1"]
