"""The reference consumer on real Redis: reads in a group, acknowledges after handling, takes over abandoned work."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from bot.consumer import ConsumerConfig, Entry, consume, ensure_group, format_entry, run_consumer
from bot.redis_store import redis_client
from bot.settings import Settings
from bot.stream import StreamSink, entry_json
from tests.factories import make_message
from tests.test_stream import ROOT, STREAM, reaction_message, read_stream

GROUP = "readers"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = redis_client(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture(autouse=True)
def entries_match_the_schema(redis_url: str) -> Iterator[None]:
    """Every entry a test leaves in the stream is validated against docs/alert.schema.json."""
    yield
    read_stream(redis_url)


@pytest.fixture
def stream_settings(settings: Settings, redis_url: str) -> Settings:
    return replace(settings, redis_url=redis_url, stream=STREAM)


async def add(client: Redis, *idents: str) -> None:
    sink = StreamSink(client, STREAM, 1000)
    for ident in idents:
        message = reaction_message(ident.removesuffix(":r15")) if ident.endswith(":r15") else make_message(ident)
        await sink.deliver(message, "stream", None)


async def pending(client: Redis) -> int:
    return int((await client.xpending(STREAM, GROUP))["pending"])


async def test_prints_alerts_and_reactions_then_acknowledges(client: Redis, stream_settings: Settings,
                                                             redis_url: str) -> None:
    """Each entry is printed readably and acknowledged; --count stops the consumer."""
    await add(client, "a_1", "a_1:r15", "a_2")
    out = io.StringIO()
    await run_consumer(stream_settings, group=GROUP, count=2, out=out, block_ms=200)
    text = out.getvalue()
    assert "[alert a_1]" in text and "US tightens chip export controls" in text and "NVDA 170.0 +3.03%" in text
    assert '[reaction a_1:r15] +15m to "US tightens": NVDA +0.80% · AMD n/a' in text
    assert "a_2" not in text
    assert await pending(client) == 0
    assert len(read_stream(redis_url)) == 3


async def test_group_continues_where_it_stopped(client: Redis, stream_settings: Settings) -> None:
    """A second run of the same group (its creation answered BUSYGROUP) reads only entries not yet handled."""
    await add(client, "a_1")
    await run_consumer(stream_settings, group=GROUP, count=1, out=io.StringIO(), block_ms=200)
    await add(client, "a_2")
    out = io.StringIO()
    await run_consumer(stream_settings, group=GROUP, count=1, out=out, block_ms=200)
    assert "[alert a_2]" in out.getvalue() and "a_1" not in out.getvalue()


async def test_entries_left_by_a_dead_consumer_are_claimed(client: Redis) -> None:
    """An entry read but never acknowledged by a consumer that died is taken over once idle long enough."""
    await ensure_group(client, STREAM, GROUP)
    await add(client, "a_1")
    await client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=1)
    seen: list[Entry] = []
    config = ConsumerConfig(STREAM, GROUP, "alive", block_ms=100, claim_idle_ms=0)
    assert await consume(client, config, seen.append, count=1) == 1
    assert [e.body["id"] for e in seen if e.body] == ["a_1"]
    assert await pending(client) == 0


async def test_recently_read_entries_are_not_stolen(client: Redis) -> None:
    """An entry another consumer is still working on (idle less than the limit) is left to it."""
    await ensure_group(client, STREAM, GROUP)
    await add(client, "a_1")
    await client.xreadgroup(GROUP, "busy", {STREAM: ">"}, count=1)
    await add(client, "a_2")
    seen: list[Entry] = []
    config = ConsumerConfig(STREAM, GROUP, "alive", block_ms=100, claim_idle_ms=60_000)
    await consume(client, config, seen.append, count=1)
    assert [e.body["id"] for e in seen if e.body] == ["a_2"]
    assert await pending(client) == 1


async def test_foreign_entries_are_skipped_and_acknowledged(client: Redis) -> None:
    """An entry that is not a newsbot alert is reported and acknowledged, not retried forever."""
    await ensure_group(client, STREAM, GROUP)
    entry_id = await client.xadd(STREAM, {"alert": "not json"})
    seen: list[Entry] = []
    await consume(client, ConsumerConfig(STREAM, GROUP, "alive", block_ms=100), seen.append, count=1)
    assert format_entry(seen[0]) == f"[skipped {entry_id}] not a newsbot entry of schema 1"
    assert await pending(client) == 0
    await client.xdel(STREAM, entry_id)  # not ours: keep it out of the schema check


async def test_group_is_recreated_when_the_stream_is_deleted(client: Redis) -> None:
    """NOGROUP after the stream was deleted: the consumer creates the group again and goes on."""
    await ensure_group(client, STREAM, GROUP)
    await client.delete(STREAM)
    await add(client, "a_1")
    seen: list[Entry] = []
    await consume(client, ConsumerConfig(STREAM, GROUP, "alive", block_ms=100), seen.append, count=1)
    assert [e.body["id"] for e in seen if e.body] == ["a_1"]


def test_consume_command_prints_the_stream(redis_url: str) -> None:
    """`python main.py consume --count 1` reads the stream named by NEWSBOT_STREAM at REDIS_URL."""
    import redis

    sync = redis.Redis.from_url(redis_url)
    sync.xadd(STREAM, {"kind": "alert", "alert": entry_json(make_message("a_9"))})
    sync.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_", "SLACK_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, NEWSBOT_STREAM=STREAM)
    done = subprocess.run([sys.executable, "main.py", "consume", "--count", "1", "--group", GROUP], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "[alert a_9]" in done.stdout and redis_url not in done.stdout + done.stderr
    assert [e["id"] for e in read_stream(redis_url)] == ["a_9"]
