"""Fetch feed bodies politely: one shared httpx client, conditional GET, hard limits on size, time, redirects.

An unchanged feed (304, or the same body hash as last time) comes back with `changed=False` and no body,
so nothing downstream parses it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from bot.errors import FeedError, FeedHTTPError, FeedTooLarge
from feeds.health import Validators
from feeds.pool import HostPools


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: float = 20.0  # total deadline for one fetch, including a server that drips bytes
    max_bytes: int = 8_000_000  # both transferred and decompressed
    max_redirects: int = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of one successful fetch."""

    status: int
    changed: bool
    body: bytes
    content_type: str | None
    url: str
    validators: Validators
    elapsed_ms: float


def make_client(user_agent: str, limits: FetchLimits) -> httpx.AsyncClient:
    """The one client all feeds share: pooled connections per host, HTTP/2 where the server offers it."""
    return httpx.AsyncClient(
        transport=HostPools(per_host=6, max_hosts=256, http2=True),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        timeout=httpx.Timeout(limits.timeout, connect=min(10.0, limits.timeout)),
        headers={"User-Agent": user_agent, "Accept": "application/rss+xml, application/atom+xml, "
                 "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
                 "Accept-Encoding": "gzip, deflate"},  # the codings `Inflater` decodes within the limit
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Fetcher:
    """Fetches one URL with the feed's validators and returns its body, or raises a `FeedError`."""

    def __init__(self, client: httpx.AsyncClient, limits: FetchLimits) -> None:
        self._client = client
        self._limits = limits

    async def fetch(self, url: str, validators: Validators) -> Fetched:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.timeout):
                return await self._fetch(url, validators, started)
        except TimeoutError:
            raise FeedError(f"no complete answer within {self._limits.timeout:.0f}s (slow server)") from None
        except httpx.TooManyRedirects:
            raise FeedError(f"more than {self._limits.max_redirects} redirects (redirect loop?)") from None
        except httpx.UnsupportedProtocol as exc:
            raise FeedError(f"redirected to a URL that is not http(s): {exc}") from None
        except httpx.InvalidURL as exc:  # not an HTTPError: a bad Location (javascript:…) would escape otherwise
            raise FeedError(f"redirected to a URL that is not http(s): {_reason(exc)}") from None
        except httpx.TimeoutException:
            raise FeedError(f"timed out after {self._limits.timeout:.0f}s") from None
        except httpx.ConnectError as exc:
            raise FeedError(f"cannot connect: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise FeedError(f"{type(exc).__name__}: {_reason(exc)}") from None

    async def _fetch(self, url: str, validators: Validators, started: float) -> Fetched:
        headers = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                await response.aread()  # no body, but reading to its end keeps the connection for reuse
                return self._unchanged(response, validators, started)
            if response.status_code >= 400:
                raise FeedHTTPError(response.status_code, parse_retry_after(response.headers.get("Retry-After")))
            body = await self._read_limited(response)
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        fresh = Validators(
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            body_hash=digest,
        )
        changed = digest != validators.body_hash
        return Fetched(
            status=response.status_code,
            changed=changed,
            body=body if changed else b"",
            content_type=response.headers.get("Content-Type"),
            url=str(response.url),
            validators=fresh,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def _unchanged(self, response: httpx.Response, validators: Validators, started: float) -> Fetched:
        kept = Validators(
            etag=response.headers.get("ETag", validators.etag),
            last_modified=response.headers.get("Last-Modified", validators.last_modified),
            body_hash=validators.body_hash,
        )
        elapsed = (time.perf_counter() - started) * 1000
        return Fetched(304, False, b"", None, str(response.url), kept, elapsed)

    async def _read_limited(self, response: httpx.Response) -> bytes:
        """The body, decoded by us (not httpx) so neither the wire size nor the inflated size passes the limit."""
        limit = self._limits.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FeedTooLarge(f"body of {int(declared):,} bytes is over the {limit:,}-byte limit")
        inflater = Inflater(response.headers.get("Content-Encoding", ""), limit)
        chunks: list[bytes] = []
        async for raw in response.aiter_raw():
            if response.num_bytes_downloaded > limit:
                raise FeedTooLarge(f"body over the {limit:,}-byte limit (as transferred)")
            chunks.append(inflater.feed(raw))
        chunks.append(inflater.flush())
        return b"".join(chunks)


class Inflater:
    """Decodes gzip/deflate bodies chunk by chunk, never producing more than `limit` bytes in all.

    httpx's own decoder inflates each network chunk whole (a 64 KB chunk of a gzip bomb becomes ~64 MB);
    `decompressobj.decompress(data, max_length)` stops at the limit instead.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip().lower() != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in {"gzip", "x-gzip", "deflate"}):
            raise FeedError(f"unsupported Content-Encoding {encoding[:40]!r}")
        self._coding = codings[0] if codings else ""
        self._limit = limit
        self._size = 0
        self._raw_tried = False
        self._zlib: zlib._Decompress | None = None
        if self._coding:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # 32: gzip or zlib header, detected

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        out: list[bytes] = []
        try:
            while data:
                piece = self._zlib.decompress(data, self._limit - self._size + 1)
                out.append(self._count(piece))
                data = self._zlib.unconsumed_tail
                if self._zlib.eof:
                    break  # trailing bytes after the stream are ignored
        except zlib.error as exc:
            fallback = self._mislabelled(data) if self._size == 0 and not out else None
            if fallback is None:
                raise FeedError(f"body is not valid {self._coding}: {exc}") from None
            return fallback
        return b"".join(out)

    def _mislabelled(self, data: bytes) -> bytes | None:
        """Servers that label wrongly: raw deflate sent as "deflate"; plain XML sent as gzip or deflate."""
        if data.lstrip()[:1] in {b"<", b"\xef"}:  # markup (or a UTF-8 BOM) after all
            self._zlib = None
            return self._count(data)
        if self._coding == "deflate" and not self._raw_tried:
            self._raw_tried = True
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data)
        return None

    def flush(self) -> bytes:
        return self._count(self._zlib.flush()) if self._zlib is not None else b""

    def _count(self, piece: bytes) -> bytes:
        self._size += len(piece)
        if self._size > self._limit:
            raise FeedTooLarge(f"body over the {self._limit:,}-byte limit (after decompression)")
        return piece


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
