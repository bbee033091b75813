"""Leases in Redis: named locks with an expiry, so several instances share work without a coordinator.

A lease is one key holding its owner's id, taken with `SET key owner NX PX ttl`; only the owner can renew or
release it (a Lua check-and-set), and a crashed owner's lease simply expires. Uses:

- a per-feed lease, taken before each poll for 0.9 of the feed's interval: the first instance whose scheduled
  poll comes after the lease ran out polls the feed, the others skip, so each feed is polled once per interval
  by one instance, feeds spread over the instances, and a dead instance's feeds move on at once;
- a leader lease (`LeaderElection`), e.g. for the one Telegram getUpdates poller a bot token allows;
- a per-delivery claim, so two instances draining one shared outbox never both deliver one delivery;
- a lease per late market-reaction follow-up, so one surviving instance sends what a dead one planned.

Each key is read and written alone (no multi-key command or script), so the names work on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.errors import StoreError
from bot.store import Delivery

log = logging.getLogger("newsbot.lease")

DEFAULT_PREFIX = "newsbot"

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return 1
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

Callback = Callable[[], Awaitable[None]]


def instance_id() -> str:
    """A unique owner id for this process: host, pid and a random suffix (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class Leases:
    """Take, renew and release named leases owned by `owner`; keys are `{prefix}:lease:{name}`."""

    def __init__(self, redis: Redis, owner: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.owner = owner
        self._prefix = prefix
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)

    def key(self, name: str) -> str:
        return f"{self._prefix}:lease:{name}"

    async def acquire(self, name: str, ttl: float) -> bool:
        """Take the lease for `ttl` seconds if nobody holds it."""
        return bool(await self._redis.set(self.key(name), self.owner, nx=True, px=_ms(ttl)))

    async def renew(self, name: str, ttl: float) -> bool:
        """Extend the lease to at least `ttl` seconds from now (never shorten it), only if we still hold it."""
        return bool(await self._renew(keys=[self.key(name)], args=[self.owner, _ms(ttl)]))

    async def release(self, name: str) -> bool:
        """Give the lease up, only if we hold it."""
        return bool(await self._release(keys=[self.key(name)], args=[self.owner]))

    async def holder(self, name: str) -> str | None:
        value: Any = await self._redis.get(self.key(name))
        return value.decode() if isinstance(value, bytes) else value

    @asynccontextmanager
    async def hold(self, name: str, ttl: float, *, release: bool = True) -> AsyncIterator[bool]:
        """Yields whether the lease was taken; while inside, renews it every ttl/3 (a long poll keeps it)."""
        if not await self.acquire(name, ttl):
            yield False
            return
        keeper = asyncio.create_task(self.keep(name, ttl), name=f"lease:{name}")
        try:
            yield True
        finally:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
            if release:
                with suppress(RedisError):
                    await self.release(name)

    async def keep(self, name: str, ttl: float, at_most: float | None = None) -> None:
        """Renew the lease every ttl/3 until cancelled or lost (or, given `at_most`, after that many seconds)."""
        loop = asyncio.get_running_loop()
        until = None if at_most is None else loop.time() + at_most
        while until is None or loop.time() < until:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.renew(name, ttl):
                    log.warning("lease %s: lost while held", name)
                    return
            except RedisError as exc:
                log.warning("lease %s: cannot renew: %s", name, exc)


class LeaderElection:
    """A `Service`: keeps trying to hold the lease `name`; calls `on_acquired` when it gets it, `on_lost` when not.

    Renews every ttl/3. A renewal that fails (taken, expired, or Redis unreachable) counts as lost at once, so
    two holders never overlap: zero for a moment is the safe side. `stop` calls `on_lost` and releases.
    """

    def __init__(self, leases: Leases, name: str, ttl: float, on_acquired: Callback, on_lost: Callback,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self._leases = leases
        self.name = name
        self._ttl = ttl
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._on_change = on_change or (lambda held: None)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self.changed = asyncio.Event()  # set on every change of leadership (tests and callers wait on it)

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"leader:{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.is_leader:
            await self._set(False)
            with suppress(RedisError):
                await self._leases.release(self.name)

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._step()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._ttl / 3)

    async def _step(self) -> None:
        try:
            if self.is_leader:
                held = await self._leases.renew(self.name, self._ttl)
            else:
                held = await self._leases.acquire(self.name, self._ttl)
        except RedisError as exc:
            log.warning("leader %s: Redis unavailable (%s)", self.name, exc)
            held = False
        if held != self.is_leader:
            await self._set(held)

    async def _set(self, held: bool) -> None:
        self.is_leader = held
        log.info("leader %s: %s by %s", self.name, "acquired" if held else "lost", self._leases.owner)
        self._on_change(held)
        self.changed.set()
        try:
            await (self._on_acquired() if held else self._on_lost())
        except Exception as exc:  # the boundary of a callback: a failing start gives the lease back
            log.exception("leader %s: callback failed: %s", self.name, exc)
            if held:
                self.is_leader = False
                self._on_change(False)
                with suppress(RedisError):
                    await self._leases.release(self.name)


class DeliveryClaims:
    """Per-delivery claims for an outbox several instances drain (`bot.outbox.Claims`).

    An instance delivers only what it claimed (`claim:{message}:{sink}:{target}`, for `ttl` seconds, renewed
    while the send lasts, e.g. behind a Telegram flood wait, for at most `max_hold`). After a delivery the claim
    stays `done_ttl` seconds as a marker, so an instance whose list of due deliveries was read before the other
    finished does not repeat it; after a retry or a parking it is released at once, so whoever is free retries
    when the delivery is due again. A crashed instance's claims expire after `ttl`: its sends are taken over.
    """

    def __init__(self, leases: Leases, ttl: float = 30.0, done_ttl: float = 600.0, max_hold: float = 900.0) -> None:
        self._leases = leases
        self._ttl = ttl
        self._done_ttl = done_ttl
        self._max_hold = max_hold
        self._keepers: dict[str, asyncio.Task[None]] = {}

    @staticmethod
    def name(delivery: Delivery) -> str:
        return f"claim:{delivery.message_id}:{delivery.sink}:{delivery.target}"

    async def claim(self, delivery: Delivery) -> bool:
        name = self.name(delivery)
        try:
            claimed = await self._leases.acquire(name, self._ttl)
        except RedisError as exc:
            raise StoreError(f"delivery claims: Redis: {exc}") from exc
        if claimed:
            self._keepers[name] = asyncio.create_task(self._leases.keep(name, self._ttl, self._max_hold))
        return claimed

    async def settle(self, delivery: Delivery, finished: bool) -> None:
        """Keep the claim as a done-marker when `finished`, else let it go for a later retry."""
        keeper = self._keepers.pop(self.name(delivery), None)
        if keeper is not None:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
        try:
            if finished:
                await self._leases.renew(self.name(delivery), self._done_ttl)
            else:
                await self._leases.release(self.name(delivery))
        except RedisError as exc:
            raise StoreError(f"delivery claims: Redis: {exc}") from exc

    def close(self) -> None:
        """Stop renewing every claim (on shutdown; their deliveries are taken over when the claims run out)."""
        for keeper in self._keepers.values():
            keeper.cancel()
        self._keepers.clear()


def leader_service(service: Any, leases: Leases, name: str, ttl: float = 15.0,
                   on_change: Callable[[bool], None] | None = None) -> LeaderElection:
    """Wraps a `Service` so it runs on exactly one instance at a time: started on acquire, stopped on loss."""
    return LeaderElection(leases, name, ttl, service.start, service.stop, on_change)
