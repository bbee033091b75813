"""Per-host connection pools of the feed client, against the loopback feed server."""

from __future__ import annotations

import httpx

from feeds.pool import HostPools
from tests.servers.feedserver import FeedServer, Route, rss


async def test_each_host_gets_its_own_pool(feed_server: FeedServer) -> None:
    """Requests to two hosts (127.0.0.1 and localhost) are answered through two pools."""
    url = feed_server.route("/a.xml", Route(rss({"title": "one"})))
    pools = HostPools(per_host=2, max_hosts=8)
    async with httpx.AsyncClient(transport=pools) as client:
        first = await client.get(url)
        second = await client.get(url.replace("127.0.0.1", "localhost"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert b"one" in first.content and pools.hosts == 0  # closing the client closed every pool


async def test_least_recently_used_idle_pool_is_closed(feed_server: FeedServer) -> None:
    """Beyond max_hosts, the least recently used pool with nothing in flight is closed."""
    url = feed_server.route("/a.xml", Route(rss({"title": "one"})))
    pools = HostPools(per_host=2, max_hosts=1)
    async with httpx.AsyncClient(transport=pools) as client:
        await client.get(url)
        await client.get(url.replace("127.0.0.1", "localhost"))
        assert pools.hosts == 1


async def test_pool_with_a_response_in_flight_is_kept(feed_server: FeedServer) -> None:
    """A pool whose response body is still being read is not closed to make room for another host."""
    url = feed_server.route("/a.xml", Route(rss({"title": "one"})))
    pools = HostPools(per_host=2, max_hosts=1)
    async with httpx.AsyncClient(transport=pools) as client, client.stream("GET", url) as streaming:
        other = await client.get(url.replace("127.0.0.1", "localhost"))
        body = await streaming.aread()
    assert other.status_code == 200 and b"one" in body
