"""`RedisStore`: the whole `StateStore` on Redis (redis.asyncio), shareable by several instances.

Every key starts with one hash-tagged prefix (default `newsbot:{state}:`), so all of them live in one Redis
Cluster slot and the Lua scripts below may touch several atomically. docs/redis-keys.md lists the keys.
Redis errors become `StoreError` (the message names the error type, never the URL or its password).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from bot.codec import alert_from_dict, message_from_dict, message_to_dict
from bot.errors import ConfigError, StoreError
from bot.records import Alert, Message, Source
from bot.redis_scripts import ADD_DELIVERIES, PRUNE_SEEN, REQUEUE_PARKED, UPDATE_DELIVERY
from bot.settings import Settings
from bot.store import (
    Delivery,
    DeliveryStatus,
    SeenEntry,
    SqliteStore,
    StateStore,
    _state_from_json,
    _state_to_json,
)
from feeds.health import FeedState

DEFAULT_PREFIX = "newsbot:{state}:"
DUE_SCAN = 5000  # due deliveries read per sink and drain, then ordered by sequence


def redis_client(url: str, *, socket_timeout: float = 5.0) -> Redis:
    """A client that fails fast when Redis is down (one quick retry), with str replies in RESP2 shapes."""
    return Redis.from_url(
        url, decode_responses=True, protocol=2, socket_timeout=socket_timeout, socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
    )


def open_store(settings: Settings) -> StateStore:
    """NEWSBOT_STORE: `redis` (shared; `auto` picks it when REDIS_URL is set) or the embedded SQLite file.

    With the Redis store a Redis outage pauses polling and delivery until Redis returns (nothing is lost);
    a single instance that must keep alerting through Redis outages sets NEWSBOT_STORE=sqlite and uses
    Redis only for the stream.
    """
    if settings.store == "redis" or (settings.store == "auto" and settings.redis_url):
        if not settings.redis_url:
            raise ConfigError(["environment: NEWSBOT_STORE: 'redis' needs REDIS_URL"])
        return RedisStore.from_url(settings.redis_url)
    return SqliteStore(settings.db)


def _ts(value: datetime) -> str:
    return repr(value.timestamp())


def _dt(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value not in (None, "") else None


def _member(message_id: str, sink: str, target: str) -> str:
    return json.dumps([message_id, sink, target], ensure_ascii=False, separators=(",", ":"))


class RedisStore:
    """The shared `StateStore`: one Redis database, keys under `prefix`."""

    def __init__(self, client: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._r = client
        self._p = prefix
        self._add = client.register_script(ADD_DELIVERIES)
        self._update_script = client.register_script(UPDATE_DELIVERY)
        self._requeue = client.register_script(REQUEUE_PARKED)
        self._prune = client.register_script(PRUNE_SEEN)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisStore:
        return cls(redis_client(url), prefix)

    def _k(self, name: str) -> str:
        return self._p + name

    @asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        try:
            yield
        except redis_errors.RedisError as exc:
            detail = str(exc)[:200] if isinstance(exc, redis_errors.ResponseError) else type(exc).__name__
            raise StoreError(f"state store (Redis): {detail}") from None

    async def feed_state(self, name: str) -> FeedState:
        async with self._errors():
            text = await self._r.hget(self._k("feed"), name)
        return _state_from_json(str(text)) if text else FeedState()

    async def save_feed_state(self, name: str, state: FeedState) -> None:
        async with self._errors():
            await self._r.hset(self._k("feed"), name, _state_to_json(state))

    async def feed_states(self) -> dict[str, FeedState]:
        async with self._errors():
            found = await self._r.hgetall(self._k("feed"))
        return {str(name): _state_from_json(str(text)) for name, text in found.items()}

    async def seen(self, keys: Sequence[str]) -> dict[str, SeenEntry]:
        found: dict[str, SeenEntry] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            async with self._errors():
                rows = await self._r.hmget(self._k("seen"), chunk)
                flags = await self._r.smismember(self._k("seen:flagged"), chunk)
            for key, row, flagged in zip(chunk, rows, flags, strict=True):
                if row is not None:
                    feed, digest = json.loads(row)
                    found[key] = SeenEntry(key, feed, digest, bool(flagged))
        return found

    async def mark_seen(self, entries: Sequence[SeenEntry], now: datetime) -> None:
        for start in range(0, len(entries), 500):
            chunk = entries[start : start + 500]
            async with self._errors(), self._r.pipeline(transaction=True) as pipe:
                pipe.hset(self._k("seen"), mapping={e.key: json.dumps([e.feed, e.content_hash]) for e in chunk})
                pipe.zadd(self._k("seen:last"), {e.key: now.timestamp() for e in chunk})
                flagged = [e.key for e in chunk if e.flagged]
                if flagged:
                    pipe.sadd(self._k("seen:flagged"), *flagged)
                await pipe.execute()

    async def prune_seen(self, before: datetime) -> int:
        """Forgets items in batches of 1,000, so no single script holds the server for long."""
        total, removed = 0, 1000
        while removed == 1000:
            async with self._errors():
                removed = int(await self._prune(keys=[self._k("seen:last")], args=[self._p, _ts(before), 1000]))
            total += removed
        return total

    async def add_message(self, message: Message, targets: Sequence[tuple[str, str]], now: datetime) -> bool:
        body = json.dumps(message_to_dict(message), ensure_ascii=False)
        return await self._add_deliveries(message.id, targets, now, insert=(body, message.kind))

    async def add_targets(self, message_id: str, targets: Sequence[tuple[str, str]], now: datetime) -> None:
        await self._add_deliveries(message_id, targets, now, insert=None)

    async def _add_deliveries(self, message_id: str, targets: Sequence[tuple[str, str]], now: datetime,
                              insert: tuple[str, str] | None) -> bool:
        body, kind = insert or ("", "")
        args = [self._p, "1" if insert else "0", message_id, body, kind, _ts(now)]
        for sink, target in targets:
            args += [sink, target, _member(message_id, sink, target)]
        async with self._errors():
            return bool(await self._add(keys=[self._k("msg")], args=args))

    async def message(self, message_id: str) -> Message | None:
        async with self._errors():
            body = await self._r.hget(self._k("msg"), message_id)
        return message_from_dict(json.loads(body)) if body else None

    async def due(self, now: datetime, sinks: Sequence[str], limit: int = 500) -> list[Delivery]:
        members: list[str] = []
        async with self._errors():
            for sink in sinks:
                members += _strs(await self._r.zrangebyscore(self._k(f"pending:{sink}"), "-inf", _ts(now), 0,
                                                             DUE_SCAN))
        found = [d for d in await self._read(members) if d[1].status == "pending"]
        found.sort(key=lambda pair: pair[0])
        return [delivery for _, delivery in found[:limit]]

    async def _read(self, members: Sequence[str]) -> list[tuple[int, Delivery]]:
        """(sequence, delivery) for each member that still exists."""
        async with self._errors(), self._r.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hgetall(self._k("d:" + member))
            rows = await pipe.execute() if members else []
        return [(int(row["seq"]), _delivery(row)) for row in rows if row]

    async def next_due_at(self, sinks: Sequence[str]) -> datetime | None:
        firsts: list[float] = []
        async with self._errors():
            for sink in sinks:
                first = await self._r.zrange(self._k(f"pending:{sink}"), 0, 0, withscores=True)
                firsts += [float(pair[1]) for pair in first]
        return datetime.fromtimestamp(min(firsts), UTC) if firsts else None

    async def mark_done(self, delivery: Delivery, ref: str | None, now: datetime) -> None:
        await self._update(delivery, "done", 1, ref=json.dumps(ref), now=now)

    async def mark_retry(
        self, delivery: Delivery, next_at: datetime, error: str, count_attempt: bool = True
    ) -> None:
        await self._update(delivery, "retry", int(count_attempt), next_at=next_at, error=error[:500])

    async def mark_parked(self, delivery: Delivery, error: str) -> None:
        await self._update(delivery, "parked", 1, error=error[:500])

    async def _update(self, d: Delivery, op: str, attempts: int, *, next_at: datetime | None = None,
                      error: str = "", ref: str = "null", now: datetime | None = None) -> None:
        args: list[str | int] = [self._p, _member(d.message_id, d.sink, d.target), op, attempts,
                _ts(next_at) if next_at else "", error, ref, _ts(now) if now else ""]
        async with self._errors():
            await self._update_script(keys=[self._k("status:pending")], args=args)

    async def delivery_ref(self, message_id: str, sink: str, target: str) -> str | None:
        async with self._errors():
            ref = await self._r.hget(self._k("d:" + _member(message_id, sink, target)), "ref")
        return json.loads(ref) if ref else None

    async def deliveries(self, status: DeliveryStatus) -> list[Delivery]:
        async with self._errors():
            members = _strs(await self._r.zrange(self._k(f"status:{status}"), 0, -1))
        return [delivery for _, delivery in await self._read(members)]

    async def requeue_parked(self, now: datetime) -> int:
        async with self._errors():
            return int(await self._requeue(keys=[self._k("status:parked")], args=[self._p, _ts(now)]))

    async def outbox_depth(self) -> int:
        async with self._errors():
            return int(await self._r.zcard(self._k("status:pending")))

    async def recent_alerts(self, since: datetime, limit: int = 1000) -> list[Alert]:
        async with self._errors():
            ids = _strs(await self._r.zrevrangebyscore(self._k("alerts"), "+inf", _ts(since), 0, limit))
            if not ids:
                return []
            seqs = await self._r.hmget(self._k("msg:seq"), ids)
            bodies = await self._r.hmget(self._k("msg"), ids)
        rows = sorted(zip(seqs, bodies, strict=True), key=lambda row: -int(row[0] or 0))
        return [alert_from_dict(json.loads(body)["alert"]) for _, body in rows if body]

    async def attach_source(self, cluster_id: str, source: Source) -> bool:
        body = json.dumps({**asdict(source), "published_at": source.published_at.isoformat()
                           if source.published_at else None}, ensure_ascii=False)
        async with self._errors():
            return bool(await self._r.hsetnx(self._k("sources"), json.dumps([cluster_id, source.url]), body))

    async def close(self) -> None:
        await self._r.aclose()


def _strs(values: Any) -> list[str]:
    """A reply list as text (the client decodes replies; this narrows redis-py's wide return types)."""
    return [str(v) for v in values]


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(
        message_id=row["mid"], sink=row["sink"], target=row["target"], attempts=int(row.get("attempts", 0)),
        next_at=_dt(row.get("next_at")), last_error=row.get("last_error") or None, status=row["status"],
    )
