"""The reference consumer of the alert stream (`python main.py consume`): a consumer group, read, handle, ack.

Each pass first takes over entries another consumer of the group left pending for longer than `claim_idle_s`
(it died between reading and acknowledging: XAUTOCLAIM), then reads new ones (XREADGROUP, blocking less than
the socket time-out). Entries are acknowledged only after they were handled, so a crash repeats an entry but
never loses one: consumers deduplicate on the entry's `id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from bot.redis_store import redis_client
from bot.settings import Settings

log = logging.getLogger("newsbot.consumer")


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its Redis id and the decoded `alert` object (None when it is not a newsbot entry)."""

    entry_id: str
    body: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    stream: str
    group: str
    consumer: str
    block_ms: int = 2000  # below the client's socket time-out, or the blocking read is cut off
    claim_idle_ms: int = 60_000
    batch: int = 10


async def ensure_group(client: Redis, stream: str, group: str) -> None:
    """Create the group (and the stream) if missing; a new group starts at the beginning of the stream."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _entry(entry_id: str, fields: dict[str, str] | None) -> Entry:
    try:
        body = json.loads((fields or {})["alert"])
    except (KeyError, TypeError, ValueError):
        return Entry(entry_id, None)
    return Entry(entry_id, body if isinstance(body, dict) else None)


async def next_batch(client: Redis, config: ConsumerConfig, want: int) -> list[Entry]:
    """Entries abandoned by a dead consumer first; otherwise new entries, waiting up to `block_ms`."""
    reply: Any = await client.xautoclaim(config.stream, config.group, config.consumer,
                                         min_idle_time=config.claim_idle_ms, start_id="0-0", count=want)
    claimed = reply[1]
    if claimed:
        return [_entry(i, f) for i, f in claimed if f is not None]
    reply = await client.xreadgroup(config.group, config.consumer, {config.stream: ">"}, count=want,
                                    block=config.block_ms)
    return [_entry(i, f) for _, entries in reply or [] for i, f in entries]


async def consume(client: Redis, config: ConsumerConfig, handle: Callable[[Entry], None], count: int = 0) -> int:
    """Handle and acknowledge entries until `count` were handled (0: forever); returns how many were."""
    await ensure_group(client, config.stream, config.group)
    handled, failures = 0, 0
    while not count or handled < count:
        want = min(config.batch, count - handled) if count else config.batch
        try:
            entries = await next_batch(client, config, want)
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await ensure_group(client, config.stream, config.group)  # the stream was deleted and re-created
            continue
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            failures += 1
            log.warning("Redis unreachable (%s); trying again", type(exc).__name__)
            await asyncio.sleep(min(5.0, 0.2 * 2**failures))
            continue
        failures = 0
        for entry in entries:
            handle(entry)
            await client.xack(config.stream, config.group, entry.entry_id)
            handled += 1
    return handled


def format_entry(entry: Entry) -> str:
    """A readable block for one entry."""
    body = entry.body
    if body is None or body.get("schema") != 1:
        return f"[skipped {entry.entry_id}] not a newsbot entry of schema 1"
    if body.get("kind") == "reaction":
        moves = " · ".join(f"{m['ticker']} {_pct(m['change_pct'])}" for m in body.get("moves", [])) or "no prices"
        return f"[reaction {body['id']}] +{body['minutes']}m to \"{body['title']}\": {moves}"
    tags = " · ".join(x for x in (body["direction"].upper(), f"score {body['score']:.2f}",
                                  " ".join(body["tickers"]), ", ".join(body["products"])) if x)
    lines = [f"[alert {body['id']}] {body['detected_at']} · {tags}", f"  {body['title']}",
             f"  {body['source']} ({body['lang']}) · {body['url']}"]
    lines += [f"  {q['ticker']} {q['price'] if q['price'] is not None else 'n/a'} {_pct(q['change_1d_pct'])} today"
              for q in body.get("quotes", [])]
    if body.get("reasons"):
        lines.append("  why: " + "; ".join(body["reasons"][:4]))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}%"


async def run_consumer(
    settings: Settings,
    *,
    group: str,
    count: int = 0,
    out: TextIO,
    consumer: str | None = None,
    claim_idle_s: float = 60.0,
    block_ms: int = 2000,
) -> int:
    """`python main.py consume`: print each entry of the stream as the group's consumer, until `count`."""
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    config = ConsumerConfig(settings.stream, group, name, block_ms, int(claim_idle_s * 1000))
    client = redis_client(settings.redis_url or "", socket_timeout=block_ms / 1000 + 3.0)

    def show(entry: Entry) -> None:
        out.write(format_entry(entry) + "\n")
        out.flush()

    try:
        await consume(client, config, show, count)
    finally:
        await client.aclose()
    return 0
