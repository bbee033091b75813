"""The composition root of the service: builds the parts from settings and runs them."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from bot import eventloop
from bot.cluster import Cluster, open_leases
from bot.errors import StoreError
from bot.lease import DeliveryClaims
from bot.logs import RedactSecrets, log_context
from bot.market import PriceSource, price_source_from_setting
from bot.metrics import Metrics, MetricsServer, health_check
from bot.outbox import Outbox
from bot.pipeline import Classify, Deps, PollConfig, PollReport, poll_once
from bot.reaction import ReactionScheduler
from bot.records import Message
from bot.redis_store import open_store
from bot.settings import Settings
from bot.sink import Sink
from bot.sinks import Service, build_outputs
from bot.store import StateStore
from bot.story_sync import StorySync
from feeds.classify import Classifier
from feeds.cluster import StoryIndex
from feeds.fetch import Fetcher, FetchLimits, make_client
from feeds.parsepool import ParsePool
from feeds.records import FeedSpec

log = logging.getLogger("newsbot")

SHUTDOWN_GRACE_S = 1.5
METRICS_REFRESH_S = 15.0
ADOPT_REACTIONS_S = 60.0
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class App:
    settings: Settings
    feeds: tuple[FeedSpec, ...]
    deps: Deps
    outbox: Outbox
    store: StateStore
    scheduler: AsyncIOScheduler
    reactions: ReactionScheduler
    services: tuple[Service, ...] = ()
    metrics: Metrics = field(default_factory=lambda: Metrics(CollectorRegistry(), utc_now()))
    cluster: Cluster | None = None  # with the shared Redis store: several instances share the work


async def build_app(
    settings: Settings,
    feeds: Sequence[FeedSpec],
    stack: AsyncExitStack,
    *,
    out: TextIO | None = None,
    clock: Clock = utc_now,
    market: PriceSource | None = None,
    extra_sinks: Mapping[str, Sink] | None = None,
    classifier: Classify | None = None,
) -> App:
    """Wire every part from settings; resources are closed by `stack`. Tests may pass a built `classifier`
    (loading the lexicons takes a few hundred milliseconds)."""
    store = open_store(settings)
    stack.push_async_callback(store.close)
    limits = FetchLimits(settings.fetch_timeout, settings.fetch_max_bytes, settings.fetch_max_redirects)
    client = make_client(settings.user_agent, limits)
    stack.push_async_callback(client.aclose)
    wake = asyncio.Event()
    outputs = await build_outputs(settings, store, stack, clock, out, wake=wake.set)
    outputs.sinks.update(extra_sinks or {})
    metrics = Metrics(CollectorRegistry(), clock())
    leases = await open_leases(settings, store, stack)
    claims = DeliveryClaims(leases) if leases else None
    if claims is not None:
        stack.callback(claims.close)
    outbox = Outbox(store, outputs.sinks, clock, on_result=metrics.on_delivery, claims=claims,
                    redact=RedactSecrets(settings.secrets()).redact, wake=wake)
    market = market or price_source_from_setting(settings.market, clock)
    scheduler = AsyncIOScheduler(timezone=UTC)
    reactions = ReactionScheduler(scheduler, market, clock, _with_chart(outbox.enqueue, market, settings.chart_dir),
                                  minutes=settings.reaction_minutes, tickers=settings.tickers)
    stories = StoryIndex(timedelta(hours=settings.cluster_window_hours))
    for alert in reversed(await store.recent_alerts(clock() - timedelta(hours=settings.cluster_window_hours))):
        stories.add(alert.cluster_id, alert.item, alert.verdict, alert.detected_at)
    parser = ParsePool()  # feedparser in worker processes: all cores on a cold start, the event loop kept free
    stack.callback(parser.close)
    deps = Deps(
        store=store,
        fetcher=Fetcher(client, limits),
        classifier=classifier or Classifier.from_dir(settings.config_dir, settings.alert_threshold),
        stories=stories,
        market=market,
        outbox=outbox,
        clock=clock,
        config=PollConfig(tickers=settings.tickers, quote_timeout=settings.quote_timeout,
                          backoff_max=settings.backoff_max),
        reactions=reactions,
        parser=parser,
    )
    cluster = Cluster(leases, StorySync(stories, store, clock), metrics) if leases else None
    services = cluster.services(outputs.services) if cluster else list(outputs.services)
    if settings.metrics_port:
        services.append(MetricsServer(metrics, health_check(lambda: scheduler.running, store), settings.metrics_port))
    return App(settings, tuple(feeds), deps, outbox, store, scheduler, reactions, tuple(services), metrics, cluster)


def _with_chart(
    enqueue: Callable[[Message], Awaitable[bool]], market: PriceSource, chart_dir: Path
) -> Callable[[Message], Awaitable[bool]]:
    """Reaction follow-ups carry the chart of the moves around the story (drawn off the loop, never blocking)."""

    async def enqueue_with_chart(message: Message) -> bool:
        if message.reaction is not None:
            suffix = f"-r{message.reaction.minutes}"  # one file per follow-up: each shows its own moment
            from bot.chart import render_alert_chart  # matplotlib (~50 MB) loads with the first chart, not at start

            path = await render_alert_chart(market, message.alert, chart_dir, suffix=suffix)
            if path is not None:
                message = replace(message, reaction=replace(message.reaction, chart_path=str(path)))
        return await enqueue(message)

    return enqueue_with_chart


async def reschedule_reactions(app: App) -> int:
    """After a restart, plan the follow-ups of recent alerts that have not gone out yet (late ones run at once)."""
    horizon = max(app.settings.reaction_minutes, default=0)
    count = 0
    for alert in await app.store.recent_alerts(app.deps.clock() - timedelta(minutes=horizon + 5)):
        missing = [m for m in app.settings.reaction_minutes if await app.store.message(f"{alert.id}:r{m}") is None]
        if missing:
            app.reactions.schedule(alert, missing)
            count += 1
    return count


async def poll_all(app: App, concurrency: int = 20) -> list[PollReport]:
    """Poll every feed once, concurrently (bounded: beyond ~20 the loop spends more CPU juggling connections
    than waiting on them, and an alert's delivery queues behind more polls; see bench/README.md)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(feed: FeedSpec) -> PollReport:
        async with gate:
            return await guarded_poll(app, feed)

    return await asyncio.gather(*(one(f) for f in app.feeds))


async def guarded_poll(app: App, feed: FeedSpec) -> PollReport:
    """The error boundary of one poll: a bug or store failure is logged, and the scheduler goes on."""
    try:
        with log_context(feed=feed.name):
            async with asyncio.timeout(app.settings.fetch_timeout + 30):
                report = await poll_once(app.deps, feed)
    except Exception as exc:  # the one boundary per poll: nothing may stop the scheduler
        log.exception("feed %s: poll failed: %s", feed.name, exc, extra={"feed": feed.name})
        report = PollReport(feed.name, "failed", error=str(exc))
    app.metrics.observe_poll(report)
    return report


async def scheduled_poll(app: App, feed: FeedSpec) -> PollReport | None:
    """A scheduled poll; with several instances, only the one holding the feed's lease polls this interval."""
    if app.cluster is None:
        return await guarded_poll(app, feed)
    return await app.cluster.poll(feed, lambda: guarded_poll(app, feed))


async def run_once(app: App, drain_timeout: float = 30.0, concurrency: int = 50) -> tuple[list[PollReport], int]:
    """`run --once`: poll everything, deliver what is due, return the reports and what is still pending."""
    reports = await poll_all(app, concurrency)
    with suppress(TimeoutError):  # what is left stays in the outbox for the next run
        async with asyncio.timeout(drain_timeout):
            while (await app.outbox.drain()).delivered:
                pass
    return reports, await app.store.outbox_depth()


def schedule_feeds(scheduler: AsyncIOScheduler, app: App, now: datetime, rng: random.Random) -> None:
    """One interval job per feed; first polls spread at about 50 feeds a second (5 s at least), not all at once."""
    spread = max(5.0, len(app.feeds) / 50)
    for feed in app.feeds:
        scheduler.add_job(
            scheduled_poll,
            "interval",
            args=(app, feed),
            id=f"feed:{feed.name}",
            seconds=feed.interval_s,
            jitter=app.settings.poll_jitter,
            next_run_time=now + timedelta(seconds=rng.uniform(0, min(spread, feed.interval_s))),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(30, int(feed.interval_s / 2)),
        )


async def serve(app: App, stop: asyncio.Event) -> None:
    """The service until `stop`: scheduled polls, the outbox loop; then a graceful shutdown."""
    eventloop.settle()
    scheduler = app.scheduler
    schedule_feeds(scheduler, app, app.deps.clock(), random.Random())
    scheduler.add_job(_prune, "interval", args=(app,), hours=6, id="prune", next_run_time=app.deps.clock())
    if app.settings.metrics_port:
        scheduler.add_job(_refresh_metrics, "interval", args=(app,), seconds=METRICS_REFRESH_S, id="metrics",
                          next_run_time=app.deps.clock())
    if app.cluster is not None:
        scheduler.add_job(app.cluster.adopt_late_reactions, "interval", seconds=ADOPT_REACTIONS_S, id="adopt-reactions",
                          args=(app.store, app.reactions, app.settings.reaction_minutes, app.deps.clock))
    scheduler.start()
    await reschedule_reactions(app)
    for service in app.services:
        await service.start()
    log.info("newsbot running: %d feeds, sinks: %s. Ctrl-C to stop.", len(app.feeds), ", ".join(app.outbox.sinks))
    await _report_backoffs(app)
    deliveries = asyncio.create_task(app.outbox.run(stop), name="outbox")
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await _cancel_polls()
        for service in reversed(app.services):
            with suppress(Exception):  # a service failing to stop must not block the others
                await service.stop()
        with suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(deliveries, SHUTDOWN_GRACE_S)  # let in-flight deliveries finish
        log.info("newsbot stopped; %d deliveries pending for next start", await app.store.outbox_depth())


async def _refresh_metrics(app: App) -> None:
    try:
        await app.metrics.refresh(app.store, [f.name for f in app.feeds], app.deps.clock())
    except StoreError as exc:
        log.warning("metrics: cannot read the store: %s", exc)


async def _report_backoffs(app: App) -> None:
    """Say at start which feeds are still backing off from earlier failures (they stay quiet until due)."""
    now, names = app.deps.clock(), {f.name for f in app.feeds}
    waiting = {n: s.health for n, s in (await app.store.feed_states()).items() if n in names and not s.health.due(now)}
    if waiting:
        first = min(h.next_attempt_at for h in waiting.values() if h.next_attempt_at)
        log.info("%d feeds back off after earlier failures (first retry in %.0f s); `python main.py feeds` checks "
                 "them now", len(waiting), (first - now).total_seconds())


async def _prune(app: App) -> None:
    cutoff = app.deps.clock() - timedelta(days=app.settings.seen_retention_days)
    removed = await app.store.prune_seen(cutoff)
    if removed:
        log.info("forgot %d items seen before %s", removed, cutoff.date())


async def _cancel_polls() -> None:
    current = asyncio.current_task()
    polls = [t for t in asyncio.all_tasks() if t is not current and _is_poll(t)]
    if polls:  # APScheduler logs each cancelled job as an error with a traceback; these are ours, on purpose
        logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
    for task in polls:
        task.cancel()
    if polls:
        await asyncio.wait(polls, timeout=0.5)


def _is_poll(task: asyncio.Task[object]) -> bool:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "") in {"guarded_poll", "scheduled_poll", "run_coroutine_job"}


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop`; a second Ctrl-C falls back to the default (immediate) behaviour."""
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            loop.remove_signal_handler(sig)
            return
        log.info("received %s, stopping", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)
