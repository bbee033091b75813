"""The state store: seen items, feed validators and health, stories, and the outbox.

`StateStore` is the Protocol; `SqliteStore` is the embedded implementation (one local file, WAL mode).
SQLite calls on a local file take microseconds, so they run inline; a locked database raises `StoreError`
after a short busy time-out instead of stalling the loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.codec import alert_from_dict, message_from_dict, message_to_dict
from bot.errors import StoreError
from bot.records import Alert, Message, Source
from feeds.health import FeedHealth, FeedState, Validators

DeliveryStatus = Literal["pending", "done", "parked"]


@dataclass(frozen=True, slots=True)
class SeenEntry:
    key: str
    feed: str
    content_hash: str
    flagged: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one target of one sink (Telegram: one chat)."""

    message_id: str
    sink: str
    target: str
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str | None = None
    status: DeliveryStatus = "pending"


class StateStore(Protocol):
    async def feed_state(self, name: str) -> FeedState: ...
    async def save_feed_state(self, name: str, state: FeedState) -> None: ...
    async def feed_states(self) -> dict[str, FeedState]: ...
    async def seen(self, keys: Sequence[str]) -> dict[str, SeenEntry]: ...
    async def mark_seen(self, entries: Sequence[SeenEntry], now: datetime) -> None: ...
    async def prune_seen(self, before: datetime) -> int: ...
    async def add_message(self, message: Message, targets: Sequence[tuple[str, str]], now: datetime) -> bool: ...
    async def add_targets(self, message_id: str, targets: Sequence[tuple[str, str]], now: datetime) -> None: ...
    async def message(self, message_id: str) -> Message | None: ...
    async def due(self, now: datetime, sinks: Sequence[str], limit: int = 500) -> list[Delivery]: ...
    async def next_due_at(self, sinks: Sequence[str]) -> datetime | None: ...
    async def mark_done(self, delivery: Delivery, ref: str | None, now: datetime) -> None: ...
    async def mark_retry(
        self, delivery: Delivery, next_at: datetime, error: str, count_attempt: bool = True
    ) -> None: ...
    async def mark_parked(self, delivery: Delivery, error: str) -> None: ...
    async def delivery_ref(self, message_id: str, sink: str, target: str) -> str | None: ...
    async def deliveries(self, status: DeliveryStatus) -> list[Delivery]: ...
    async def requeue_parked(self, now: datetime) -> int: ...
    async def outbox_depth(self) -> int: ...
    async def recent_alerts(self, since: datetime, limit: int = 1000) -> list[Alert]: ...
    async def attach_source(self, cluster_id: str, source: Source) -> bool: ...
    async def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY, feed TEXT NOT NULL, content_hash TEXT NOT NULL, flagged INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_last ON seen(last_seen);
CREATE TABLE IF NOT EXISTS feed_state (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    alert_id TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_kind_time ON messages(kind, created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    message_id TEXT NOT NULL, sink TEXT NOT NULL, target TEXT NOT NULL, seq INTEGER NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    last_error TEXT, ref TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (message_id, sink, target));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_at, seq);
CREATE TABLE IF NOT EXISTS sources (
    cluster_id TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (cluster_id, url));
"""


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


_VALIDATOR_FIELDS = tuple(f.name for f in fields(Validators))
_HEALTH_FIELDS = tuple(f.name for f in fields(FeedHealth))


def _state_to_json(state: FeedState) -> str:
    """Written once per poll, so without `asdict` (its deep copy was a tenth of a warm poll's CPU)."""
    validators = {name: getattr(state.validators, name) for name in _VALIDATOR_FIELDS}
    health = {name: getattr(state.health, name) for name in _HEALTH_FIELDS}
    for name, value in health.items():
        if isinstance(value, datetime):
            health[name] = value.isoformat()
    return json.dumps({"validators": validators, "health": health})


def _state_from_json(text: str) -> FeedState:
    data = json.loads(text)
    health: dict[str, Any] = {
        k: datetime.fromisoformat(v) if k.endswith("_at") and v else v for k, v in data["health"].items()
    }
    return FeedState(Validators(**data["validators"]), FeedHealth(**health))


def open_sqlite(path: Path | str, schema: str, what: str) -> sqlite3.Connection:
    """A connection to the state file in WAL mode (autocommit; short busy wait), with `schema` applied."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), timeout=2.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.Error as exc:
        hint = "is another program holding it, or the disk full?"
        raise StoreError(f"cannot open {what} {path}: {exc} ({hint})") from exc
    return db


class SqliteStore:
    """The embedded `StateStore`: one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_sqlite(path, SCHEMA, "state file")

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"state store: {exc}") from exc

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"state store: {exc}") from exc

    async def feed_state(self, name: str) -> FeedState:
        row = self._run("SELECT state FROM feed_state WHERE name=?", (name,)).fetchone()
        return _state_from_json(row[0]) if row else FeedState()

    async def save_feed_state(self, name: str, state: FeedState) -> None:
        self._run("INSERT OR REPLACE INTO feed_state(name, state) VALUES (?, ?)", (name, _state_to_json(state)))

    async def feed_states(self) -> dict[str, FeedState]:
        return {n: _state_from_json(s) for n, s in self._run("SELECT name, state FROM feed_state")}

    async def seen(self, keys: Sequence[str]) -> dict[str, SeenEntry]:
        found: dict[str, SeenEntry] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, feed, content_hash, flagged FROM seen WHERE key IN ({marks})"
            for key, feed, digest, flagged in self._run(sql, chunk):
                found[key] = SeenEntry(key, feed, digest, bool(flagged))
        return found

    async def mark_seen(self, entries: Sequence[SeenEntry], now: datetime) -> None:
        rows = [(e.key, e.feed, e.content_hash, int(e.flagged), _ts(now), _ts(now)) for e in entries]
        self._many(
            "INSERT INTO seen(key, feed, content_hash, flagged, first_seen, last_seen) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET content_hash=excluded.content_hash, "
            "flagged=MAX(flagged, excluded.flagged), last_seen=excluded.last_seen",
            rows,
        )

    async def prune_seen(self, before: datetime) -> int:
        return self._run("DELETE FROM seen WHERE last_seen < ?", (_ts(before),)).rowcount

    async def add_message(self, message: Message, targets: Sequence[tuple[str, str]], now: datetime) -> bool:
        body = json.dumps(message_to_dict(message), ensure_ascii=False)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO messages(id, kind, alert_id, body, created_at) VALUES (?,?,?,?,?)",
                    (message.id, message.kind, message.alert_id, body, _ts(now)),
                )
                if cur.rowcount == 0:
                    return False
                self._insert_targets(message.id, cur.lastrowid or 0, targets, now)
        except sqlite3.Error as exc:
            raise StoreError(f"state store: {exc}") from exc
        return True

    def _insert_targets(self, message_id: str, seq: int, targets: Sequence[tuple[str, str]], now: datetime) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO deliveries(message_id, sink, target, seq, status, next_at, updated_at) "
            "VALUES (?,?,?,?, 'pending', ?, ?)",
            [(message_id, sink, target, seq, _ts(now), _ts(now)) for sink, target in targets],
        )

    async def add_targets(self, message_id: str, targets: Sequence[tuple[str, str]], now: datetime) -> None:
        row = self._run("SELECT seq FROM messages WHERE id=?", (message_id,)).fetchone()
        if row:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._insert_targets(message_id, row[0], targets, now)
            except sqlite3.Error as exc:
                raise StoreError(f"state store: {exc}") from exc

    async def message(self, message_id: str) -> Message | None:
        row = self._run("SELECT body FROM messages WHERE id=?", (message_id,)).fetchone()
        return message_from_dict(json.loads(row[0])) if row else None

    async def due(self, now: datetime, sinks: Sequence[str], limit: int = 500) -> list[Delivery]:
        marks = ",".join("?" * len(sinks))
        rows = self._run(
            "SELECT message_id, sink, target, attempts, next_at, last_error, status FROM deliveries "
            f"WHERE status='pending' AND next_at <= ? AND sink IN ({marks}) ORDER BY seq LIMIT ?",
            (_ts(now), *sinks, limit),
        )
        return [Delivery(m, s, t, a, _dt(n), e, st) for m, s, t, a, n, e, st in rows]

    async def next_due_at(self, sinks: Sequence[str]) -> datetime | None:
        marks = ",".join("?" * len(sinks))
        sql = f"SELECT MIN(next_at) FROM deliveries WHERE status='pending' AND sink IN ({marks})"
        row = self._run(sql, tuple(sinks)).fetchone()
        return _dt(row[0]) if row and row[0] is not None else None

    async def mark_done(self, delivery: Delivery, ref: str | None, now: datetime) -> None:
        self._update(delivery, "status='done', ref=?, attempts=attempts+1, updated_at=?", (ref, _ts(now)))

    async def mark_retry(
        self, delivery: Delivery, next_at: datetime, error: str, count_attempt: bool = True
    ) -> None:
        self._update(delivery, "attempts=attempts+?, next_at=?, last_error=?",
                     (int(count_attempt), _ts(next_at), error[:500]))

    async def mark_parked(self, delivery: Delivery, error: str) -> None:
        self._update(delivery, "status='parked', attempts=attempts+1, last_error=?", (error[:500],))

    def _update(self, d: Delivery, assignments: str, params: tuple[Any, ...]) -> None:
        sql = f"UPDATE deliveries SET {assignments} WHERE message_id=? AND sink=? AND target=?"
        self._run(sql, (*params, d.message_id, d.sink, d.target))

    async def delivery_ref(self, message_id: str, sink: str, target: str) -> str | None:
        row = self._run(
            "SELECT ref FROM deliveries WHERE message_id=? AND sink=? AND target=?", (message_id, sink, target)
        ).fetchone()
        return row[0] if row else None

    async def deliveries(self, status: DeliveryStatus) -> list[Delivery]:
        rows = self._run(
            "SELECT message_id, sink, target, attempts, next_at, last_error, status FROM deliveries "
            "WHERE status=? ORDER BY seq",
            (status,),
        )
        return [Delivery(m, s, t, a, _dt(n), e, st) for m, s, t, a, n, e, st in rows]

    async def requeue_parked(self, now: datetime) -> int:
        return self._run(
            "UPDATE deliveries SET status='pending', next_at=?, attempts=0 WHERE status='parked'", (_ts(now),)
        ).rowcount

    async def outbox_depth(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM deliveries WHERE status='pending'").fetchone()[0])

    async def recent_alerts(self, since: datetime, limit: int = 1000) -> list[Alert]:
        rows = self._run(
            "SELECT body FROM messages WHERE kind='alert' AND created_at >= ? ORDER BY seq DESC LIMIT ?",
            (_ts(since), limit),
        )
        return [alert_from_dict(json.loads(body)["alert"]) for (body,) in rows]

    async def attach_source(self, cluster_id: str, source: Source) -> bool:
        body = json.dumps({**asdict(source), "published_at": source.published_at.isoformat()
                           if source.published_at else None}, ensure_ascii=False)
        return self._run(
            "INSERT OR IGNORE INTO sources(cluster_id, url, body) VALUES (?,?,?)", (cluster_id, source.url, body)
        ).rowcount == 1

    async def close(self) -> None:
        self._db.close()
