"""The Redis stream sink on real Redis: one entry per id ever, schema-valid, capped, and nothing lost or doubled
when Redis goes away or the delivering process is killed between XADD and the acknowledgement."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from jsonschema import Draft202012Validator

from bot.console import ConsoleSink
from bot.errors import RetryableDelivery
from bot.outbox import Outbox
from bot.records import Message, Reaction
from bot.redis_store import RedisStore, redis_client
from bot.slack import SlackSink
from bot.store import SqliteStore
from bot.stream import StreamSink, marker_key
from tests.factories import T0, make_alert, make_message
from tests.servers.redisproc import OwnRedis, free_port
from tests.servers.slack import SlackReceiver

ROOT = Path(__file__).resolve().parent.parent
STREAM = "newsbot:alerts"
SCHEMA = Draft202012Validator(json.loads((ROOT / "docs" / "alert.schema.json").read_text(encoding="utf-8")))


def read_stream(url: str, stream: str = STREAM) -> list[dict[str, Any]]:
    """Every entry's `alert` object, in stream order, each validated against docs/alert.schema.json."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries = client.xrange(stream)
    finally:
        client.close()
    found = []
    for _, fields in entries:
        body = json.loads(fields["alert"])
        SCHEMA.validate(body)
        assert fields["kind"] == body["kind"]
        found.append(body)
    return found


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reaction_message(alert_id: str = "a_1") -> Message:
    reaction = Reaction(alert_id, 15, "US tightens", (("NVDA", 0.8), ("AMD", None)), (), T0 + timedelta(minutes=15))
    return Message(f"{alert_id}:r15", "reaction", alert_id, make_alert(alert_id), reaction)


@pytest.fixture
async def stream_sink(redis_url: str) -> AsyncIterator[StreamSink]:
    client = redis_client(redis_url)
    yield StreamSink(client, STREAM, 1000)
    await client.aclose()


async def test_same_alert_is_added_once(stream_sink: StreamSink, redis_url: str) -> None:
    """Delivering one alert twice leaves one entry; the second delivery answers the first entry's id."""
    first = await stream_sink.deliver(make_message("a_1"), "stream", None)
    second = await stream_sink.deliver(make_message("a_1"), "stream", None)
    assert first == second
    assert [e["id"] for e in read_stream(redis_url)] == ["a_1"]


async def test_alerts_and_reactions_flow_through_the_outbox(tmp_path: Path, stream_sink: StreamSink,
                                                            redis_url: str) -> None:
    """The outbox adds alerts and reactions in order, one entry each, valid against the schema."""
    outbox = Outbox(SqliteStore(tmp_path / "s.db"), {"stream": stream_sink}, Clock(T0))
    for message in (make_message("a_1"), make_message("a_2"), reaction_message("a_1")):
        await outbox.enqueue(message)
    await outbox.drain()
    await outbox.drain()
    entries = read_stream(redis_url)
    assert [(e["kind"], e["id"]) for e in entries] == [("alert", "a_1"), ("alert", "a_2"), ("reaction", "a_1:r15")]
    assert entries[0]["quotes"][0]["ticker"] == "NVDA" and entries[2]["moves"][1] == {"ticker": "AMD",
                                                                                     "change_pct": None}


async def test_unknown_numbers_become_null(stream_sink: StreamSink, redis_url: str) -> None:
    """A NaN price (yfinance's way of saying "unknown") is written as null, keeping the entry valid JSON."""
    quote = replace(make_alert().quotes[0], price=float("nan"))
    message = Message("a_nan", "alert", "a_nan", make_alert("a_nan", quotes=(quote,)))
    await stream_sink.deliver(message, "stream", None)
    assert read_stream(redis_url)[0]["quotes"][0]["price"] is None


async def test_stream_is_capped(redis_url: str) -> None:
    """MAXLEN ~ trims the stream near its cap instead of letting it grow."""
    client = redis_client(redis_url)
    sink = StreamSink(client, STREAM, 10)
    for n in range(400):
        await sink.deliver(make_message(f"a_{n}"), "stream", None)
    length = await client.xlen(STREAM)
    await client.aclose()
    assert 10 <= length < 400


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param("newsbot:alerts", "{newsbot:alerts}:added:a_1", id="plain-key-becomes-the-tag"),
        pytest.param("{prod}:alerts", "{prod}:alerts:added:a_1", id="existing-tag-is-kept"),
    ],
)
def test_marker_shares_the_stream_slot(stream: str, expected: str) -> None:
    """The marker key hashes to the stream's Redis Cluster slot, so one script may touch both."""
    assert marker_key(stream, "a_1") == expected


async def test_redis_down_is_retryable() -> None:
    """A refused connection is a retryable failure that names no URL."""
    port = free_port()
    client = redis_client(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(RetryableDelivery) as caught:
        await StreamSink(client, STREAM, 1000).deliver(make_message(), "stream", None)
    await client.aclose()
    assert "unreachable" in str(caught.value) and "hunter2" not in str(caught.value)


class SignallingBuffer(io.StringIO):
    """A text buffer that sets an event when written to."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


async def test_hung_redis_does_not_hold_back_other_sinks(tmp_path: Path) -> None:
    """While the stream waits on a Redis that never answers, the console has already printed the alert."""
    with socket.socket() as silent:  # accepts connections (kernel backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = redis_client(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        out = SignallingBuffer()
        sinks = {"console": ConsoleSink(out), "stream": StreamSink(client, STREAM, 1000, timeout=0.5)}
        outbox = Outbox(SqliteStore(tmp_path / "s.db"), sinks, Clock(T0))
        await outbox.enqueue(make_message("a_1"))
        drain = asyncio.create_task(outbox.drain())
        async with asyncio.timeout(2.0):
            await out.written.wait()
        assert "US tightens" in out.getvalue() and not drain.done()
        report = await drain
        await client.aclose()
    assert (report.delivered, report.retried) == (1, 1)


async def test_redis_restart_mid_run_loses_nothing(tmp_path: Path, own_redis: OwnRedis) -> None:
    """Redis killed and restarted mid-run: console and Slack keep delivering, and the stream catches up in order."""
    clock, out = Clock(T0), io.StringIO()
    with SlackReceiver() as slack:
        async with httpx.AsyncClient(timeout=3.0) as http:
            client = redis_client(own_redis.url)
            sinks = {"console": ConsoleSink(out), "slack": SlackSink([slack.url("/hook")], http, pace=0.0),
                     "stream": StreamSink(client, STREAM, 1000)}
            outbox = Outbox(SqliteStore(tmp_path / "s.db"), sinks, clock)
            await outbox.enqueue(make_message("a_1"))
            await outbox.drain()
            own_redis.kill()
            for n in range(2, 6):
                clock.now += timedelta(seconds=1)
                await outbox.enqueue(make_message(f"a_{n}"))
                report = await outbox.drain()
                assert report.by_sink["console"] == 1 and report.by_sink["slack"] == 1
            assert len(slack.payloads["/hook"]) == 5 and out.getvalue().count("[ALERT]") == 5
            own_redis.start()
            clock.now += timedelta(minutes=10)
            while (await outbox.drain()).delivered:
                pass
            await client.aclose()
    assert [e["id"] for e in read_stream(own_redis.url)] == ["a_1", "a_2", "a_3", "a_4", "a_5"]
    assert len(slack.payloads["/hook"]) == 5


def test_sigkill_between_xadd_and_ack_adds_no_second_entry(tmp_path: Path, redis_url: str) -> None:
    """A writer killed right after the second XADD, before its acknowledgement, leaves one entry per alert."""
    db = tmp_path / "s.db"
    command = [sys.executable, "-m", "tests.stream_writer", str(db), redis_url, STREAM, "3"]
    crashed = subprocess.run([*command, "--kill-after-add", "2"], cwd=ROOT, capture_output=True, timeout=30)
    assert crashed.returncode == -9, crashed.stderr.decode()
    assert [e["id"] for e in read_stream(redis_url)] == ["a_1", "a_2"]
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=30, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "pending=0" in rerun.stdout
    assert [e["id"] for e in read_stream(redis_url)] == ["a_1", "a_2", "a_3"]


async def test_stream_catches_up_in_order_across_drains(tmp_path: Path, own_redis: OwnRedis) -> None:
    """A message enqueued while an earlier one waits for its retry is not added to the stream before it."""
    clock = Clock(T0)
    client = redis_client(own_redis.url)
    outbox = Outbox(SqliteStore(tmp_path / "s.db"), {"stream": StreamSink(client, STREAM, 1000)}, clock)
    await outbox.enqueue(make_message("a_1"))
    await outbox.drain()
    own_redis.kill()
    await outbox.enqueue(make_message("a_2"))
    await outbox.drain()  # fails: retry in 2 s
    clock.now += timedelta(seconds=2)
    await outbox.drain()  # fails again: retry in 4 s
    clock.now += timedelta(seconds=1)
    await outbox.enqueue(make_message("a_3"))
    await outbox.drain()  # a_3 is due before a_2's retry
    own_redis.start()
    for _ in range(20):
        clock.now += timedelta(seconds=1)
        await outbox.drain()
    await client.aclose()
    assert [e["id"] for e in read_stream(own_redis.url)] == ["a_1", "a_2", "a_3"]


async def test_outbox_on_the_redis_store_outlives_a_redis_restart(tmp_path: Path, own_redis: OwnRedis) -> None:
    """With the state store on Redis, the delivery loop survives Redis going away and delivers once it is back."""
    out, stop, acknowledged = io.StringIO(), asyncio.Event(), asyncio.Event()
    store = RedisStore.from_url(own_redis.url)
    outbox = Outbox(store, {"console": ConsoleSink(out)}, lambda: datetime.now(UTC),
                    on_result=lambda sink, outcome, seconds: acknowledged.set())
    loop = asyncio.create_task(outbox.run(stop))
    await outbox.enqueue(make_message("a_1"))
    async with asyncio.timeout(5):
        await acknowledged.wait()
    failed = asyncio.Event()
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: failed.set() if "looking again" in record.getMessage() else None  # type: ignore[method-assign]
    logging.getLogger("newsbot.outbox").addHandler(handler)
    try:
        own_redis.kill()
        outbox.kick()  # the loop meets the dead store in its drain, then in its sleep
        async with asyncio.timeout(5):
            await failed.wait()
    finally:
        logging.getLogger("newsbot.outbox").removeHandler(handler)
    await asyncio.sleep(0)
    assert not loop.done()
    own_redis.start()
    acknowledged.clear()
    await outbox.enqueue(make_message("a_2"))
    async with asyncio.timeout(8):
        await acknowledged.wait()
    stop.set()
    await loop
    await store.close()
    assert out.getvalue().count("[ALERT]") == 2
