"""Prometheus metrics on a private registry, and a tiny asyncio HTTP server for /metrics and /healthz.

`Metrics` owns every instrument; the app calls `observe_poll` after each poll, passes `on_delivery` to the
outbox as its `on_result` hook, and runs `refresh` every few seconds to read outbox depth and feed staleness
from the (possibly shared) state store. `MetricsServer` is a `Service`: started and stopped with the app.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.pipeline import PollReport
from bot.store import StateStore

log = logging.getLogger("newsbot.metrics")

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
READ_LIMIT_S = 5.0


class Metrics:
    """Every instrument of newsbot, registered on the registry passed in (never the global one)."""

    def __init__(self, registry: CollectorRegistry, started_at: datetime) -> None:
        self.registry = registry
        self._started_at = started_at
        self.polls = Counter("newsbot_polls", "Feed polls by outcome (new, unchanged, failed, backing off)",
                             ["feed", "status"], registry=registry)
        self.polls_skipped = Counter("newsbot_polls_skipped", "Polls skipped: another instance holds the feed",
                                     ["feed"], registry=registry)
        self.fetch_errors = Counter("newsbot_fetch_errors", "Failed fetches or parses", ["feed"], registry=registry)
        self.items_seen = Counter("newsbot_items_seen", "Items read from fetched feeds", ["feed"], registry=registry)
        self.items_new = Counter("newsbot_items_new", "Items new or changed since last seen", ["feed"],
                                 registry=registry)
        self.flagged = Counter("newsbot_stories_flagged", "Items the classifier flagged", ["feed"], registry=registry)
        self.alerts = Counter("newsbot_alerts", "Alerts enqueued (flagged stories not merged into another)",
                              ["feed"], registry=registry)
        self.deliveries = Counter("newsbot_deliveries", "Delivery attempts by sink and outcome",
                                  ["sink", "outcome"], registry=registry)
        self.delivery_seconds = Histogram("newsbot_delivery_seconds", "Time one successful delivery took",
                                          ["sink"], buckets=LATENCY_BUCKETS, registry=registry)
        self.outbox_depth = Gauge("newsbot_outbox_depth", "Deliveries pending in the outbox", registry=registry)
        self.staleness = Gauge("newsbot_feed_staleness_seconds",
                               "Seconds since the feed's last good poll (since start when it never had one)",
                               ["feed"], registry=registry)
        self.feed_failures = Gauge("newsbot_feed_failures", "Consecutive failed polls of the feed", ["feed"],
                                   registry=registry)
        self.leader = Gauge("newsbot_leader", "1 while this instance holds the named leader lease", ["lease"],
                            registry=registry)

    def observe_poll(self, report: PollReport) -> None:
        """Count one poll's outcome."""
        feed = report.feed
        self.polls.labels(feed, report.status).inc()
        if report.status == "failed":
            self.fetch_errors.labels(feed).inc()
        self.items_seen.labels(feed).inc(report.items)
        self.items_new.labels(feed).inc(report.new)
        self.flagged.labels(feed).inc(report.flagged)
        self.alerts.labels(feed).inc(len(report.alerts))

    def skipped_poll(self, feed: str) -> None:
        self.polls_skipped.labels(feed).inc()

    def on_delivery(self, sink: str, outcome: str, seconds: float) -> None:
        """The outbox's `on_result` hook: one delivery attempt and, when delivered, how long it took."""
        self.deliveries.labels(sink, outcome).inc()
        if outcome == "delivered":
            self.delivery_seconds.labels(sink).observe(seconds)

    def set_leader(self, lease: str, held: bool) -> None:
        self.leader.labels(lease).set(1 if held else 0)

    async def refresh(self, store: StateStore, feeds: Iterable[str], now: datetime) -> None:
        """Read outbox depth and per-feed staleness from the store (shared state: the cluster's view)."""
        self.outbox_depth.set(await store.outbox_depth())
        states = await store.feed_states()
        for feed in feeds:
            state = states.get(feed)
            last_ok = state.health.last_ok_at if state else None
            self.staleness.labels(feed).set((now - (last_ok or self._started_at)).total_seconds())
            self.feed_failures.labels(feed).set(state.health.failures if state else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    checks: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps({"status": "ok" if self.ok else "failing", "checks": self.checks}).encode()


HealthCheck = Callable[[], Awaitable[Health]]


def health_check(scheduler_running: Callable[[], bool], store: StateStore, timeout: float = 2.0) -> HealthCheck:
    """Healthy when the scheduler runs and the store answers within `timeout` seconds."""

    async def check() -> Health:
        checks = {"scheduler": "running" if scheduler_running() else "stopped"}
        try:
            async with asyncio.timeout(timeout):
                await store.outbox_depth()
            checks["store"] = "ok"
        except TimeoutError:
            checks["store"] = f"no answer within {timeout:g}s"
        except Exception as exc:  # the health boundary: any store failure is reported, never raised
            checks["store"] = f"error: {type(exc).__name__}"
        return Health(checks["scheduler"] == "running" and checks["store"] == "ok", checks)

    return check


class MetricsServer:
    """GET /metrics (Prometheus text) and GET /healthz (200 or 503, short JSON) on host:port; a `Service`."""

    def __init__(self, metrics: Metrics, health: HealthCheck, port: int, host: str = "0.0.0.0") -> None:
        self._metrics = metrics
        self._health = health
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("metrics on http://%s:%d/metrics, health on /healthz", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_LIMIT_S):
                request = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = await self._respond(request.split(b"\r\n", 1)[0])
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that hangs up or sends garbage gets nothing
        finally:
            writer.close()

    async def _respond(self, request_line: bytes) -> tuple[str, str, bytes]:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self._metrics.exposition()
        if path == "/healthz":
            health = await self._health()
            return ("200 OK" if health.ok else "503 Service Unavailable"), "application/json", health.body()
        return "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
