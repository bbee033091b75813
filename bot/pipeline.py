"""One poll of one feed: fetch → parse → unseen → classify → cluster → enrich → outbox.

`poll_once` is the only function here that mixes I/O with logic; it returns a `PollReport`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from bot.errors import FeedError
from bot.market import PriceSource, snapshot
from bot.outbox import Outbox
from bot.records import Alert, Message, Source
from bot.store import SeenEntry, StateStore
from feeds.cluster import StoryIndex
from feeds.fetch import Fetcher
from feeds.health import FeedState, after_failure, after_success
from feeds.parse import content_hash
from feeds.parsepool import ParsePool, Parser
from feeds.records import FeedSpec, Item, Verdict

log = logging.getLogger("newsbot.poll")

PollStatus = Literal["new", "unchanged", "failed", "backing off"]


class Classify(Protocol):
    def classify(self, title: str, summary: str = "", lang: str | None = None) -> Verdict: ...


class ReactionPlanner(Protocol):
    def schedule(self, alert: Alert) -> None: ...


@dataclass(frozen=True, slots=True)
class PollConfig:
    tickers: tuple[str, ...] = ("NVDA", "AMD")
    quote_timeout: float = 2.0
    backoff_max: float = 3600.0
    max_age: timedelta = timedelta(hours=48)  # older stories are recorded, not alerted (no flood on first run)


@dataclass(frozen=True, slots=True)
class Deps:
    """Everything a poll needs, passed in."""

    store: StateStore
    fetcher: Fetcher
    classifier: Classify
    stories: StoryIndex
    market: PriceSource
    outbox: Outbox
    clock: Callable[[], datetime]
    config: PollConfig = PollConfig()
    reactions: ReactionPlanner | None = None
    parser: Parser = field(default_factory=lambda: ParsePool(workers=0))  # threads only, unless given a pool


@dataclass(slots=True)
class PollReport:
    feed: str
    status: PollStatus
    items: int = 0
    new: int = 0
    flagged: int = 0
    alerts: list[str] = field(default_factory=list)
    attached: int = 0
    parsed: bool = False
    error: str | None = None
    retry_in_s: float | None = None
    prices_missing: bool = False  # a snapshot came back empty: later alerts of this poll do not wait again


async def poll_once(deps: Deps, feed: FeedSpec) -> PollReport:
    """Poll one feed once, unless it is backing off; never raises for a feed's own failures."""
    now = deps.clock()
    state = await deps.store.feed_state(feed.name)
    if not state.health.due(now):
        return PollReport(feed.name, "backing off", error=state.health.last_error)
    try:
        fetched = await deps.fetcher.fetch(feed.url, state.validators)
        items: list[Item] = []
        if fetched.changed:
            items = await deps.parser.parse(fetched.body, feed, now, fetched.content_type)
    except FeedError as exc:
        return await _failed(deps, feed, state, now, exc)
    report = PollReport(feed.name, "new" if fetched.changed else "unchanged", items=len(items),
                        parsed=fetched.changed)
    if items:
        await _process(deps, feed, items, now, report)
    count = len(items) if fetched.changed else state.health.items
    health = after_success(state.health, now, count, fetched.elapsed_ms, fetched.status)
    await deps.store.save_feed_state(feed.name, FeedState(fetched.validators, health))
    return report


async def _failed(deps: Deps, feed: FeedSpec, state: FeedState, now: datetime, exc: FeedError) -> PollReport:
    status = getattr(exc, "status", None)
    health = after_failure(state.health, now, str(exc), deps.config.backoff_max, exc.retry_after, status)
    await deps.store.save_feed_state(feed.name, replace(state, health=health))
    wait = (health.next_attempt_at - now).total_seconds() if health.next_attempt_at else None
    log.warning("feed %s: %s; next try in %s", feed.name, exc, _human(wait))
    return PollReport(feed.name, "failed", error=str(exc), retry_in_s=wait)


async def _process(deps: Deps, feed: FeedSpec, items: Sequence[Item], now: datetime, report: PollReport) -> None:
    """Classify what is new (or updated and not yet flagged), alert what is flagged, then mark it seen."""
    seen = await deps.store.seen([i.key for i in items])
    entries: list[SeenEntry] = []
    for item in items:
        digest = content_hash(item)
        before = seen.get(item.key)
        if before is not None and (before.flagged or before.content_hash == digest):
            continue  # seen as it is, or already alerted: an update never alerts twice
        report.new += 1
        verdict = deps.classifier.classify(item.title, item.summary, item.lang)
        if verdict.flag and _fresh(item, now, deps.config.max_age):
            report.flagged += 1
            await _alert_or_attach(deps, item, verdict, now, report)
        entries.append(SeenEntry(item.key, feed.name, digest, verdict.flag))
    if entries:
        await deps.store.mark_seen(entries, now)


def _fresh(item: Item, now: datetime, max_age: timedelta) -> bool:
    return item.published_at is None or now - item.published_at <= max_age


def alert_id(item: Item) -> str:
    """Deterministic, so a replayed poll after a crash finds the alert already in the outbox."""
    return "a_" + hashlib.blake2b(item.key.encode(), digest_size=10).hexdigest()


async def _alert_or_attach(deps: Deps, item: Item, verdict: Verdict, now: datetime, report: PollReport) -> None:
    match = deps.stories.match(item, verdict, now)
    if match is not None and match.novelty < 0.5:
        source = Source(item.feed, item.url, item.title, item.lang, item.published_at)
        if await deps.store.attach_source(match.cluster_id, source):
            report.attached += 1
            log.info("story %s: also reported by %s", match.cluster_id, item.feed)
        return
    ident = alert_id(item)
    cluster_id = match.cluster_id if match else ident
    tickers = tuple(dict.fromkeys((*deps.config.tickers, *verdict.tickers)))
    quotes = () if report.prices_missing else await snapshot(deps.market, tickers, timeout=deps.config.quote_timeout)
    report.prices_missing = not quotes  # a hung price source costs one quote_timeout per poll, not one per alert
    alert = Alert(ident, cluster_id, item, verdict, quotes, now, novelty=match.novelty if match else 1.0)
    added = await deps.outbox.enqueue(Message(ident, "alert", ident, alert))
    deps.stories.add(cluster_id, item, verdict, now)  # only once stored: a failed enqueue must not swallow it
    if added:
        report.alerts.append(ident)
        if deps.reactions is not None:
            deps.reactions.schedule(alert)


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "the next interval"
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
