"""Parsing off the event loop, in worker processes.

feedparser is pure Python (~16 ms of CPU for a 60 KB feed) and holds the GIL, so parses in threads share one
core with the event loop: on a cold start (every feed new at once) that core is the bottleneck, and an alert
waits behind other feeds' parses. `ParsePool` hands bodies to a small process pool instead, which uses every
core and leaves the loop free. Workers come from a forkserver with feedparser preloaded, are recycled after
`max_tasks` parses (feedparser's memory grows in long-running processes), a crashed worker costs only the
parses in flight, and log lines a worker writes are replayed in the service's own logging. Workers import
the entry point as `__main__` (multiprocessing does): keep its top-level imports light, as main.py does.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Protocol

from bot.errors import FeedUnreadable
from feeds.parse import parse_feed
from feeds.records import FeedSpec, Item

log = logging.getLogger("newsbot.parse")


class Parser(Protocol):
    async def parse(self, body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None) -> list[Item]:
        """Items of one feed body (see `feeds.parse.parse_feed`), parsed off the event loop."""
        ...


class _Collect(logging.Handler):
    """In a worker: keeps the records of one parse, to be sent back with its result."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info = record.getMessage(), None, None  # picklable as text
        self.records.append(record)


_collector = _Collect()


def _init_worker() -> None:
    logger = logging.getLogger("newsbot")
    logger.handlers[:] = [_collector]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _parse_job(
    body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None
) -> tuple[list[Item], list[logging.LogRecord]]:
    _collector.records = []
    try:
        return parse_feed(body, feed, fetched_at, content_type), _collector.records
    finally:
        _collector.records = []


class ParsePool:
    """A `Parser` over up to `workers` processes (0: threads only); with `spill_at` > 0, the first `spill_at`
    parses in flight go to threads and only the rest to processes."""

    def __init__(self, workers: int | None = None, spill_at: int = 0, max_tasks: int = 2000) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._spill_at = spill_at
        self._max_tasks = max_tasks
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0

    async def parse(self, body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None) -> list[Item]:
        use_processes = self.workers > 0 and self._in_flight >= self._spill_at
        self._in_flight += 1
        try:
            if not use_processes:
                return await asyncio.to_thread(parse_feed, body, feed, fetched_at, content_type)
            return await self._in_process(body, feed, fetched_at, content_type)
        finally:
            self._in_flight -= 1

    async def _in_process(
        self, body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None
    ) -> list[Item]:
        executor = self._pool()
        loop = asyncio.get_running_loop()
        try:
            items, records = await loop.run_in_executor(executor, _parse_job, body, feed, fetched_at, content_type)
        except BrokenProcessPool:
            self._discard(executor)
            raise FeedUnreadable("the parser process died on this body") from None
        for record in records:
            logging.getLogger(record.name).handle(record)
        return items

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["feeds.parsepool"])  # workers start with feedparser imported
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_init_worker, max_tasks_per_child=self._max_tasks
            )
        return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
            log.error("a feed parser process died; starting new ones")
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker processes (parses in flight are cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

