"""Telegram subscribers and their filters: the `SubscriberStore` Protocol, on SQLite and on Redis.

`SqliteSubscribers` keeps a `subscribers` table in the state file of bot/store.py (its own connection);
`RedisSubscribers` keeps one hash, so every instance of a multi-instance deployment sees the same list.
Both pass tests/test_telegram_subscribers.py.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import StoreError
from bot.filters import Filters, QuietHours
from bot.store import open_sqlite


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One chat that asked for alerts with /start."""

    chat_id: str
    kind: str  # private, group, supergroup or channel
    since: datetime
    filters: Filters = field(default_factory=Filters)
    muted_until: datetime | None = None

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and now < self.muted_until


def to_json(sub: Subscriber) -> str:
    data: dict[str, Any] = asdict(sub)
    data["since"] = sub.since.isoformat()
    data["muted_until"] = sub.muted_until.isoformat() if sub.muted_until else None
    return json.dumps(data, ensure_ascii=False)


def from_json(text: str | bytes) -> Subscriber:
    data = json.loads(text)
    f = data["filters"]
    filters = Filters(tuple(f["tickers"]), tuple(f["directions"]), float(f["min_score"]), tuple(f["langs"]),
                      tuple(f["include"]), tuple(f["exclude"]), QuietHours(**f["quiet"]) if f["quiet"] else None)
    muted = data.get("muted_until")
    return Subscriber(data["chat_id"], data["kind"], datetime.fromisoformat(data["since"]), filters,
                      datetime.fromisoformat(muted) if muted else None)


class SubscriberStore(Protocol):
    async def add(self, sub: Subscriber) -> bool:
        """Subscribe; False (and no change) when the chat is already subscribed."""
        ...

    async def remove(self, chat_id: str) -> bool: ...
    async def get(self, chat_id: str) -> Subscriber | None: ...
    async def save(self, sub: Subscriber) -> None: ...
    async def all(self) -> list[Subscriber]: ...

    async def move(self, old_id: str, new_id: str) -> Subscriber | None:
        """A group became a supergroup: the subscription follows to the new id."""
        ...

    async def count(self) -> int: ...
    async def close(self) -> None: ...


SCHEMA = "CREATE TABLE IF NOT EXISTS subscribers (chat_id TEXT PRIMARY KEY, body TEXT NOT NULL)"


class SqliteSubscribers:
    """Subscribers in a table of the SQLite state file."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_sqlite(path, SCHEMA, "subscribers in")

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"subscribers: {exc}") from exc

    async def add(self, sub: Subscriber) -> bool:
        sql = "INSERT OR IGNORE INTO subscribers(chat_id, body) VALUES (?, ?)"
        return self._run(sql, (sub.chat_id, to_json(sub))).rowcount == 1

    async def remove(self, chat_id: str) -> bool:
        return self._run("DELETE FROM subscribers WHERE chat_id=?", (chat_id,)).rowcount == 1

    async def get(self, chat_id: str) -> Subscriber | None:
        row = self._run("SELECT body FROM subscribers WHERE chat_id=?", (chat_id,)).fetchone()
        return from_json(row[0]) if row else None

    async def save(self, sub: Subscriber) -> None:
        self._run("INSERT OR REPLACE INTO subscribers(chat_id, body) VALUES (?, ?)", (sub.chat_id, to_json(sub)))

    async def all(self) -> list[Subscriber]:
        return [from_json(body) for (body,) in self._run("SELECT body FROM subscribers ORDER BY rowid")]

    async def move(self, old_id: str, new_id: str) -> Subscriber | None:
        old = await self.get(old_id)
        if old is None:
            return None
        moved = replace(old, chat_id=new_id, kind="supergroup")
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM subscribers WHERE chat_id=?", (old_id,))
                self._db.execute("INSERT OR REPLACE INTO subscribers(chat_id, body) VALUES (?, ?)",
                                 (new_id, to_json(moved)))
        except sqlite3.Error as exc:
            raise StoreError(f"subscribers: {exc}") from exc
        return moved

    async def count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM subscribers").fetchone()[0])

    async def close(self) -> None:
        self._db.close()


class RedisSubscribers:
    """Subscribers in one Redis hash (chat id → JSON), shared by every instance."""

    def __init__(self, client: aioredis.Redis, key: str = "newsbot:subscribers") -> None:
        self._redis = client
        self._key = key

    @classmethod
    def from_url(cls, url: str, key: str = "newsbot:subscribers") -> RedisSubscribers:
        return cls(aioredis.Redis.from_url(url), key)

    async def add(self, sub: Subscriber) -> bool:
        try:
            return bool(await self._redis.hsetnx(self._key, sub.chat_id, to_json(sub)))
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc

    async def remove(self, chat_id: str) -> bool:
        try:
            return bool(await self._redis.hdel(self._key, chat_id))
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc

    async def get(self, chat_id: str) -> Subscriber | None:
        try:
            body = await self._redis.hget(self._key, chat_id)
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc
        return from_json(body) if body else None

    async def save(self, sub: Subscriber) -> None:
        try:
            await self._redis.hset(self._key, sub.chat_id, to_json(sub))
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc

    async def all(self) -> list[Subscriber]:
        try:
            bodies = await self._redis.hvals(self._key)
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc
        return sorted((from_json(b) for b in bodies), key=lambda s: (s.since, s.chat_id))

    async def move(self, old_id: str, new_id: str) -> Subscriber | None:
        old = await self.get(old_id)
        if old is None:
            return None
        moved = replace(old, chat_id=new_id, kind="supergroup")
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._key, old_id)
                pipe.hset(self._key, new_id, to_json(moved))
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc
        return moved

    async def count(self) -> int:
        try:
            return int(await self._redis.hlen(self._key))
        except RedisError as exc:
            raise StoreError(f"subscribers: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()
