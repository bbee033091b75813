"""Metrics on a private registry, and the /metrics and /healthz endpoints over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bot.app import build_app, serve
from bot.metrics import Health, Metrics, MetricsServer, health_check
from bot.pipeline import PollReport
from bot.settings import Settings
from bot.store import SqliteStore
from feeds.health import FeedHealth, FeedState
from feeds.records import FeedSpec
from tests.factories import T0, make_message
from tests.servers.feedserver import FeedServer, Route, rss
from tests.test_app import Stream
from tests.test_pipeline import FLAGGED


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), started_at=T0)


class TestInstruments:
    def test_registries_are_private(self) -> None:
        """Two instances in one process do not collide (nothing is registered globally)."""
        Metrics(CollectorRegistry(), T0)
        Metrics(CollectorRegistry(), T0)

    def test_poll_counts_by_feed(self, metrics: Metrics) -> None:
        """A poll adds to polls by status, items seen, new items, flagged stories and alerts of its feed."""
        metrics.observe_poll(PollReport("wire", "new", items=10, new=3, flagged=2, alerts=["a_1"]))
        metrics.observe_poll(PollReport("wire", "unchanged"))
        assert value(metrics, "newsbot_polls_total", feed="wire", status="new") == 1
        assert value(metrics, "newsbot_polls_total", feed="wire", status="unchanged") == 1
        assert value(metrics, "newsbot_items_seen_total", feed="wire") == 10
        assert value(metrics, "newsbot_items_new_total", feed="wire") == 3
        assert value(metrics, "newsbot_stories_flagged_total", feed="wire") == 2
        assert value(metrics, "newsbot_alerts_total", feed="wire") == 1

    def test_failed_poll_is_a_fetch_error(self, metrics: Metrics) -> None:
        """A failed poll counts as a fetch error of that feed only."""
        metrics.observe_poll(PollReport("flaky", "failed", error="HTTP 500"))
        assert value(metrics, "newsbot_fetch_errors_total", feed="flaky") == 1
        assert value(metrics, "newsbot_fetch_errors_total", feed="wire") is None

    def test_deliveries_by_sink_and_outcome(self, metrics: Metrics) -> None:
        """Every outcome is counted; only successful deliveries feed the latency histogram."""
        metrics.on_delivery("slack", "delivered", 0.2)
        metrics.on_delivery("slack", "retry", 0.0)
        metrics.on_delivery("slack", "parked", 0.0)
        assert value(metrics, "newsbot_deliveries_total", sink="slack", outcome="delivered") == 1
        assert value(metrics, "newsbot_deliveries_total", sink="slack", outcome="retry") == 1
        assert value(metrics, "newsbot_delivery_seconds_count", sink="slack") == 1
        assert value(metrics, "newsbot_delivery_seconds_bucket", sink="slack", le="0.25") == 1

    async def test_refresh_reads_depth_and_staleness(self, metrics: Metrics, tmp_path: Path) -> None:
        """Outbox depth and each feed's seconds since its last good poll come from the store."""
        store = SqliteStore(tmp_path / "s.db")
        await store.add_message(make_message("a_1"), [("slack", "w1"), ("console", "out")], T0)
        await store.save_feed_state("wire", FeedState(health=FeedHealth(last_ok_at=T0 - timedelta(minutes=5))))
        await metrics.refresh(store, ["wire", "never"], T0 + timedelta(minutes=1))
        assert value(metrics, "newsbot_outbox_depth") == 2
        assert value(metrics, "newsbot_feed_staleness_seconds", feed="wire") == 360
        assert value(metrics, "newsbot_feed_staleness_seconds", feed="never") == 60  # since start
        await store.close()


@pytest.fixture
async def server(metrics: Metrics, tmp_path: Path) -> AsyncIterator[tuple[MetricsServer, dict[str, bool], SqliteStore]]:
    """A metrics server on a free loopback port, over a real store and a switchable scheduler state."""
    store = SqliteStore(tmp_path / "s.db")
    scheduler = {"running": True}
    server = MetricsServer(metrics, health_check(lambda: scheduler["running"], store), port=0, host="127.0.0.1")
    await server.start()
    yield server, scheduler, store
    await server.stop()
    await store.close()


async def get(server: MetricsServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.port}{path}")


class TestEndpoints:
    async def test_metrics_endpoint_serves_prometheus_text(
        self, server: tuple[MetricsServer, dict[str, bool], SqliteStore], metrics: Metrics
    ) -> None:
        """GET /metrics answers the exposition format with the counters in it."""
        metrics.observe_poll(PollReport("wire", "new", items=1))
        response = await get(server[0], "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert 'newsbot_polls_total{feed="wire",status="new"} 1.0' in response.text

    async def test_healthy_when_scheduler_runs_and_store_answers(
        self, server: tuple[MetricsServer, dict[str, bool], SqliteStore]
    ) -> None:
        """GET /healthz is 200 with a short JSON body when all is well."""
        response = await get(server[0], "/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"scheduler": "running", "store": "ok"}}

    async def test_unhealthy_when_scheduler_stopped(
        self, server: tuple[MetricsServer, dict[str, bool], SqliteStore]
    ) -> None:
        """A stopped scheduler makes /healthz answer 503."""
        server[1]["running"] = False
        response = await get(server[0], "/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["scheduler"] == "stopped"

    async def test_unhealthy_when_store_fails(self, server: tuple[MetricsServer, dict[str, bool], SqliteStore]) -> None:
        """A store that cannot answer makes /healthz answer 503, naming the error type only."""
        await server[2].close()
        response = await get(server[0], "/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["store"] == "error: StoreError"

    async def test_unknown_path_is_404(self, server: tuple[MetricsServer, dict[str, bool], SqliteStore]) -> None:
        """Anything but /metrics and /healthz is not found."""
        assert (await get(server[0], "/admin")).status_code == 404


def test_health_body_is_short_json() -> None:
    """The body names the overall status and each check."""
    assert json.loads(Health(False, {"store": "no answer within 2s"}).body()) == {
        "status": "failing", "checks": {"store": "no answer within 2s"}}


async def test_service_serves_its_own_metrics(feed_server: FeedServer, settings: Settings) -> None:
    """A running service answers /healthz and counts its poll and its console delivery on /metrics."""
    now = datetime.now(UTC)
    story = {**FLAGGED, "pubDate": format_datetime(now - timedelta(minutes=1))}
    spec = FeedSpec("a", feed_server.route("/a.xml", Route(rss(story))), interval_s=60)
    out = Stream()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncExitStack() as stack:
        app = await build_app(replace(settings, metrics_port=port), [spec], stack, out=out)
        stop = asyncio.Event()
        service = asyncio.create_task(serve(app, stop))
        async with asyncio.timeout(15):
            await out.alerted.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = await client.get("/healthz")
            text = (await client.get("/metrics")).text
        stop.set()
        async with asyncio.timeout(3):
            await service
    assert health.status_code == 200
    assert 'newsbot_polls_total{feed="a",status="new"} 1.0' in text
    assert 'newsbot_deliveries_total{outcome="delivered",sink="console"} 1.0' in text
