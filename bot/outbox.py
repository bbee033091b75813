"""The outbox: every message is stored before any delivery; each (sink, target) is retried until acknowledged.

Delivery is at least once per (message, sink, target) and the record is acknowledged the moment the sink
confirms, so a crash can repeat at most the deliveries that were in flight; sinks that can make a write
idempotent (the Redis stream) do, so they never repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.errors import PermanentDelivery, RetryableDelivery, StoreError
from bot.records import Message
from bot.sink import Sink
from bot.store import Delivery, StateStore

log = logging.getLogger("newsbot.outbox")
Messages = Mapping[str, Message | None]

RETRY_BASE_S = 2.0
RETRY_CAP_S = 300.0
ELSEWHERE_WAIT_S = 0.5  # due deliveries another instance is sending: look again after this, not at once


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Exponential from 2 s, capped at 5 min; a peer's Retry-After wins when longer."""
    if retry_after is not None:
        return max(retry_after, 0.05)
    return min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, attempts))


class Claims(Protocol):
    """Who delivers what when several instances drain one shared outbox (`bot.lease.DeliveryClaims`)."""

    async def claim(self, delivery: Delivery) -> bool: ...
    async def settle(self, delivery: Delivery, finished: bool) -> None: ...


@dataclass(slots=True)
class DrainReport:
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    elsewhere: int = 0  # due, but another instance holds their claim
    by_sink: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Outbox:
    """Stores messages and delivers them to the sinks; `run` loops, `drain` delivers all that is due."""

    def __init__(
        self,
        store: StateStore,
        sinks: Mapping[str, Sink],
        clock: Callable[[], datetime],
        on_result: Callable[[str, str, float], None] | None = None,
        claims: Claims | None = None,
        redact: Callable[[str], str] = str,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._redact = redact  # errors are stored and listed (`outbox` command): a peer may echo a secret
        self._sinks = dict(sinks)
        self._clock = clock
        self._wake = wake or asyncio.Event()  # set by anyone who adds deliveries (e.g. /start's latest alert)
        self._on_result = on_result or (lambda sink, outcome, seconds: None)
        self._claims = claims
        self._held: dict[tuple[str, str], datetime] = {}  # ordered (sink, target) → retry time of its oldest

    @property
    def sinks(self) -> Mapping[str, Sink]:
        return self._sinks

    async def enqueue(self, message: Message) -> bool:
        """Persist the message with one delivery per (sink, target); False if it was already there."""
        targets = [(name, t) for name, sink in self._sinks.items() for t in await sink.targets(message)]
        added = await self._store.add_message(message, targets, self._clock())
        self._wake.set()
        return added

    def kick(self) -> None:
        self._wake.set()

    async def drain(self, limit: int = 500) -> DrainReport:
        """Deliver everything due now, once each; returns what happened."""
        report = DrainReport()
        due = await self._store.due(self._clock(), list(self._sinks), limit)
        by_sink: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in due:
            by_sink[delivery.sink].append(delivery)
        # one read per message, not per delivery: a broadcast is one message to thousands of chats
        messages = {ident: await self._store.message(ident) for ident in dict.fromkeys(d.message_id for d in due)}
        await asyncio.gather(*(self._drain_sink(name, batch, report, messages) for name, batch in by_sink.items()))
        return report

    async def _drain_sink(
        self, name: str, batch: list[Delivery], report: DrainReport, messages: Messages
    ) -> None:
        sink = self._sinks[name]
        if sink.ordered:
            await self._drain_in_order(sink, batch, report, messages)
            return
        gate = asyncio.Semaphore(max(1, sink.max_concurrency))

        async def one(delivery: Delivery) -> None:
            async with gate:
                if await self._claim(delivery, report):
                    await self._deliver(sink, delivery, report, messages[delivery.message_id])

        await asyncio.gather(*(one(d) for d in batch))

    async def _drain_in_order(
        self, sink: Sink, batch: list[Delivery], report: DrainReport, messages: Messages
    ) -> None:
        """One at a time per target; after a failure the target's later messages wait behind it, across drains."""
        busy: set[str] = set()  # targets another instance is delivering to right now
        for delivery in batch:
            if delivery.target in busy:
                continue
            hold = self._held.get((sink.name, delivery.target))
            if hold is not None and hold > self._clock():
                await self._store.mark_retry(delivery, hold, "waiting for an earlier message", count_attempt=False)
                continue
            if not await self._claim(delivery, report):
                busy.add(delivery.target)
                continue
            retry_at = await self._deliver(sink, delivery, report, messages[delivery.message_id])
            if retry_at is not None:
                self._held[(sink.name, delivery.target)] = retry_at
            else:
                self._held.pop((sink.name, delivery.target), None)

    async def _deliver(
        self, sink: Sink, delivery: Delivery, report: DrainReport, message: Message | None
    ) -> datetime | None:
        """Deliver one; returns when it is to be retried, or None when it is done or parked."""
        if message is None:
            await self._store.mark_parked(delivery, "message missing from the outbox")
            await self._settle(delivery, True)
            return None
        reply_to = None
        if message.kind == "reaction":
            reply_to = await self._store.delivery_ref(message.alert_id, sink.name, delivery.target)
        started = asyncio.get_running_loop().time()
        try:
            ref = await sink.deliver(message, delivery.target, reply_to)
        except RetryableDelivery as exc:
            delay = retry_delay(delivery.attempts, exc.retry_after)
            retry_at = self._clock() + timedelta(seconds=delay)
            await self._store.mark_retry(delivery, retry_at, self._redact(str(exc)))
            await self._settle(delivery, False)
            log.warning("%s: %s to %s not delivered (%s); retry in %.0fs", sink.name, message.kind,
                        _target(delivery), exc, delay, extra={"alert": message.alert_id, "sink": sink.name})
            report.retried += 1
            self._on_result(sink.name, "retry", 0.0)
            return retry_at
        except PermanentDelivery as exc:
            await self._store.mark_parked(delivery, self._redact(str(exc)))
            await self._settle(delivery, False)  # an operator may queue it again: no done-marker
            log.error("%s: %s %s to %s parked: %s (list: python main.py outbox; retry: python main.py outbox "
                      "--retry)", sink.name, message.kind, message.id, _target(delivery), exc,
                      extra={"alert": message.alert_id, "sink": sink.name})
            report.parked += 1
            self._on_result(sink.name, "parked", 0.0)
            return None
        await self._store.mark_done(delivery, ref, self._clock())
        await self._settle(delivery, True)
        report.delivered += 1
        report.by_sink[sink.name] += 1
        self._on_result(sink.name, "delivered", asyncio.get_running_loop().time() - started)
        return None

    async def _claim(self, delivery: Delivery, report: DrainReport) -> bool:
        if self._claims is None or await self._claims.claim(delivery):
            return True
        report.elsewhere += 1
        return False

    async def _settle(self, delivery: Delivery, finished: bool) -> None:
        if self._claims is not None:
            await self._claims.settle(delivery, finished)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; sleeps until the next retry is due or a new message arrives."""
        while not stop.is_set():
            self._wake.clear()
            try:
                report = await self.drain()
            except StoreError as exc:
                log.error("outbox: %s; trying again in 5s", exc)
                report = DrainReport()
            if report.delivered or report.retried or report.parked:
                continue
            await self._sleep(stop, ELSEWHERE_WAIT_S if report.elsewhere else 0.0)

    async def _sleep(self, stop: asyncio.Event, at_least: float = 0.0) -> None:
        try:
            next_at = await self._store.next_due_at(list(self._sinks))
        except StoreError as exc:  # the store is down (Redis restarting): the loop must outlive it
            log.warning("outbox: %s; looking again in 5s", exc)
            next_at = None
        timeout = 5.0 if next_at is None else max(at_least, (next_at - self._clock()).total_seconds())
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=min(timeout, 5.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _target(delivery: Delivery) -> str:
    return delivery.target if delivery.sink == "telegram" else delivery.sink
