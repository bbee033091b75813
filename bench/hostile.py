"""Hostile feeds at production limits: time, peak memory and bytes read, newsbot's fetch/parse against the
naive alternative (httpx decoding gzip itself; feedparser on the raw body). Prints one table.

    .venv/bin/python -m bench.hostile

Memory is Python's traced peak (tracemalloc) during the one operation, plus the process's peak RSS at the end.
"""

from __future__ import annotations

import asyncio
import resource
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx

from bot.errors import FeedError
from feeds.fetch import Fetcher, FetchLimits, make_client
from feeds.health import Validators
from feeds.parse import parse_feed
from feeds.records import FeedSpec
from tests.servers.feedserver import FeedServer, Route, rss

MB = 1_048_576
LIMITS = FetchLimits(timeout=20.0, max_bytes=8_000_000, max_redirects=5)  # the production defaults
HEAD = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>'


def gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(HEAD + b"<!--")]
    parts += [packer.compress(b" " * MB) for _ in range(inflated // MB)]
    return b"".join([*parts, packer.compress(b"-->") + packer.flush()])


def billion_laughs() -> bytes:
    entities = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
    return (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">' + entities + b']><rss version="2.0">'
            b"<channel><item><title>&l9;</title><guid>x</guid></item></channel></rss>")


def measure(fn: Callable[[], Any], trace: bool = True) -> tuple[float, float, str]:
    """Seconds, traced peak MB and outcome of one call; tracing slows pure-Python parsing about fivefold, so
    CPU-bound rows are timed untraced (peak shown as 0)."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = fn()
        result = f"ok ({outcome})"
    except Exception as exc:  # the bench reports whatever happened
        result = f"{type(exc).__name__}: {str(exc)[:70]}"
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / MB, result


async def naive_gzip(url: str) -> int:
    """httpx decoding gzip itself (aiter_bytes), checking the size after each decoded chunk."""
    async with httpx.AsyncClient() as client, client.stream("GET", url) as response:
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > LIMITS.max_bytes:
                raise FeedError(f"over the limit after {size:,} decoded bytes")
        return size


async def newsbot_fetch(url: str, limits: FetchLimits = LIMITS) -> int:
    async with make_client("bench", limits) as client:
        fetched = await Fetcher(client, limits).fetch(url, Validators())
        return len(fetched.body)


def run(coro: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
    return lambda: asyncio.run(coro())  # type: ignore[arg-type]


def main() -> None:
    feed = FeedSpec("bench", "https://bench.example/")
    now = datetime.now(UTC)
    bomb = gzip_bomb(1024 * MB)
    laughs = billion_laughs()
    many = rss(*({"title": f"Story {i}", "guid": f"g{i}", "description": "text " * 20} for i in range(10_000)))

    def stream_200mb() -> Iterator[bytes]:
        yield HEAD
        chunk = b"<!-- padding -->" * 4096
        for _ in range(200 * MB // len(chunk)):
            yield chunk

    with FeedServer() as server:
        gz = server.route("/bomb", Route(stream=lambda: (bomb[i:i + 65536] for i in range(0, len(bomb), 65536)),
                                         headers={"Content-Encoding": "gzip"}))
        big = server.route("/big", Route(stream=stream_200mb))
        drip = server.route("/drip", Route(rss({"title": "x", "guid": "x"}), drip=1.0))
        rows = [
            (f"gzip bomb {len(bomb) // 1024} KB → 1 GB, httpx decoding", measure(run(lambda: naive_gzip(gz)))),
            (f"gzip bomb {len(bomb) // 1024} KB → 1 GB, newsbot Inflater", measure(run(lambda: newsbot_fetch(gz)))),
            ("200 MB chunked body, newsbot fetch", measure(run(lambda: newsbot_fetch(big)))),
            ("1 byte/s server, fetch_timeout 3 s", measure(run(lambda: newsbot_fetch(
                drip, FetchLimits(timeout=3.0, max_bytes=LIMITS.max_bytes)))),
             ),
            ("billion laughs, feedparser on raw bytes", measure(lambda: len(feedparser.parse(laughs).entries))),
            ("billion laughs, newsbot parse_feed", measure(lambda: len(parse_feed(laughs, feed, now)))),
            (f"10,000 entries ({len(many) // 1024} KB), parse_feed", measure(lambda: len(parse_feed(many, feed, now)))),
            ("10,000 entries, parse_feed untraced", measure(lambda: len(parse_feed(many, feed, now)), trace=False)),
        ]
        server.release.set()
    print(f"{'case':55} {'seconds':>8} {'peak MB':>8}  outcome")
    for name, (seconds, peak, outcome) in rows:
        print(f"{name:55} {seconds:8.2f} {peak:8.1f}  {outcome}")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
