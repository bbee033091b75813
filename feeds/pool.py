"""Connection pools per host for the feed client.

httpcore keeps one pool for all hosts and, for every request, scans every pooled connection (checking each
idle socket for readability): with a hundred connections that scan costs more CPU than the request itself.
`HostPools` gives each origin its own small pool, so a request only looks at its own host's connections,
and closes the least recently used idle pools beyond `max_hosts` so sockets stay bounded.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

import httpx

Origin = tuple[str, str, int | None]


class _Tracked(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed (the request is then no longer in flight)."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._done is not None:
                self._done()
                self._done = None


class HostPools(httpx.AsyncBaseTransport):
    """An httpx transport with one connection pool per origin (HTTP/2 where the server offers it)."""

    def __init__(self, per_host: int = 6, max_hosts: int = 256, http2: bool = True) -> None:
        self._limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        self._max_hosts = max_hosts
        self._http2 = http2
        self._tls: ssl.SSLContext | None = None  # one for all pools: building one loads the CA file (~40 ms)
        self._pools: OrderedDict[Origin, httpx.AsyncHTTPTransport] = OrderedDict()
        self._in_flight: dict[Origin, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.scheme, request.url.host, request.url.port)
        pool = await self._pool(origin)
        self._in_flight[origin] = self._in_flight.get(origin, 0) + 1
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._finished(origin)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tracked(response.stream, lambda: self._finished(origin)),
            extensions=response.extensions,
        )

    async def _pool(self, origin: Origin) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(origin)
        if pool is not None:
            self._pools.move_to_end(origin)
            return pool
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        pool = httpx.AsyncHTTPTransport(verify=self._tls, http2=self._http2, limits=self._limits)
        self._pools[origin] = pool
        await self._evict(keep=origin)
        return pool

    async def _evict(self, keep: Origin) -> None:
        """Close the least recently used pools with nothing in flight, down to `max_hosts`."""
        excess = len(self._pools) - self._max_hosts
        if excess <= 0:
            return
        idle = [o for o in self._pools if o != keep and not self._in_flight.get(o)]
        for origin in idle[:excess]:
            await self._pools.pop(origin).aclose()

    def _finished(self, origin: Origin) -> None:
        left = self._in_flight.get(origin, 0) - 1
        if left > 0:
            self._in_flight[origin] = left
        else:
            self._in_flight.pop(origin, None)

    @property
    def hosts(self) -> int:
        return len(self._pools)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()
