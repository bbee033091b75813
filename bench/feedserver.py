"""The bench's feed server: a lean asyncio HTTP/1.1 server in its own process, so it is not the bottleneck.

Every answer is pre-rendered bytes (200 with body, or 304); keep-alive; one listening socket per host
address 127.0.0.1..127.0.0.H on one port, so the client sees H distinct hosts. Control routes:
`GET /_publish/<cycle>` applies that change cycle and answers JSON {feed index: publication time};
`GET /_stats` answers request counts and the server's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from multiprocessing.connection import Connection
from typing import Any

from bench.corpus import FeedPlan, alert_item, background_item, changes, now_utc, plan_feeds, render


@dataclass(frozen=True, slots=True)
class ServerConfig:
    feeds: int
    items: int = 50
    hosts: int = 20
    no_conditional: float = 0.2
    change: float = 0.02
    alerts_per_cycle: int = 5


class Corpus:
    """The feeds' current items and their pre-rendered answers."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.plans = plan_feeds(config.feeds, config.hosts, config.no_conditional)
        now = now_utc()
        self.items = [[background_item(p, s, now) for s in range(config.items)] for p in self.plans]
        self.serial = [config.items] * config.feeds
        self.full: dict[str, bytes] = {}
        self.etag: dict[str, str] = {}
        self.lastmod: dict[str, str] = {}
        self.not_modified: dict[str, bytes] = {}
        self.stamps: dict[str, float] = {}
        self.by_path = {p.path: p for p in self.plans}
        for plan in self.plans:
            self._render(plan)

    def _render(self, plan: FeedPlan) -> None:
        body = render(plan, self.items[plan.index])
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        stamp = max(time.time(), self.stamps.get(plan.path, 0.0) + 1.0)  # strictly later at every change
        self.stamps[plan.path] = stamp
        lastmod = formatdate(stamp, usegmt=True)
        headers = ["HTTP/1.1 200 OK", "Content-Type: application/rss+xml; charset=utf-8",
                   f"Content-Length: {len(body)}", "Cache-Control: max-age=60"]
        if plan.mode == "etag":
            headers.append(f"ETag: {etag}")
        if plan.mode in ("etag", "lastmod"):
            headers.append(f"Last-Modified: {lastmod}")
        self.full[plan.path] = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
        self.etag[plan.path] = etag
        self.lastmod[plan.path] = lastmod
        validators = f"ETag: {etag}\r\n" if plan.mode == "etag" else ""
        self.not_modified[plan.path] = f"HTTP/1.1 304 Not Modified\r\n{validators}Content-Length: 0\r\n\r\n".encode()

    def publish(self, cycle: int) -> dict[int, float]:
        """Put a new item at the top of this cycle's feeds; returns each one's publication time."""
        published: dict[int, float] = {}
        now = now_utc()
        for index, story in changes(self.config.feeds, self.config.change, cycle, self.config.alerts_per_cycle):
            plan = self.plans[index]
            serial = self.serial[index]
            self.serial[index] += 1
            item = background_item(plan, serial, now) if story is None else alert_item(plan, serial, story, cycle, now)
            self.items[index] = [item, *self.items[index][: self.config.items - 1]]
            self._render(plan)
            published[index] = time.time()
        return published

    def answer(self, path: str, if_none_match: str | None, if_modified_since: str | None) -> tuple[bytes, int]:
        plan = self.by_path.get(path)
        if plan is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404
        if plan.mode == "etag" and if_none_match == self.etag[path]:
            return self.not_modified[path], 304
        if plan.mode != "none" and if_none_match is None and if_modified_since == self.lastmod[path]:
            return self.not_modified[path], 304
        return self.full[path], 200


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 GETs with keep-alive; just enough parsing for request line and two headers."""

    def __init__(self, corpus: Corpus, counts: dict[int, int]) -> None:
        self.corpus = corpus
        self.counts = counts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counts[0] = self.counts.get(0, 0) + 1  # status 0 counts connections opened

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer and self.transport is not None:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self._respond(head.decode("latin-1"))

    def _respond(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert self.transport is not None
        if path.startswith("/_"):
            self.transport.write(self._control(path))
        else:
            data, status = self.corpus.answer(path, headers.get("if-none-match"), headers.get("if-modified-since"))
            self.counts[status] = self.counts.get(status, 0) + 1
            self.transport.write(data)
        if headers.get("connection", "").lower() == "close":
            self.transport.close()

    def _control(self, path: str) -> bytes:
        if path.startswith("/_publish/"):
            payload: Any = self.corpus.publish(int(path.rsplit("/", 1)[1]))
        else:
            payload = {"counts": self.counts, "cpu_s": time.process_time()}
        body = json.dumps(payload).encode()
        return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)


def _sockets(hosts: int) -> list[socket.socket]:
    """One listening socket per 127.0.0.k, all on the same (free) port."""
    for _attempt in range(20):
        first = socket.create_server(("127.0.0.1", 0), backlog=1024)
        port = first.getsockname()[1]
        socks = [first]
        try:
            for k in range(2, hosts + 1):
                socks.append(socket.create_server((f"127.0.0.{k}", port), backlog=1024))
        except OSError:
            for sock in socks:
                sock.close()
            continue
        return socks
    raise OSError("no port free on every loopback host address")


def _serve(config: ServerConfig, conn: Connection) -> None:
    corpus = Corpus(config)
    counts: dict[int, int] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        socks = _sockets(config.hosts)
        servers = [await loop.create_server(lambda: FeedProtocol(corpus, counts), sock=s) for s in socks]
        conn.send(socks[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)  # any message (or the pipe closing) stops the server
        for server in servers:
            server.close()

    with contextlib.suppress(EOFError):
        asyncio.run(main())


class FeedServerProcess:
    """`with FeedServerProcess(config) as server:` server.urls(), server.publish(k), server.stats()."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(config, child), daemon=True, name="bench-feedserver")
        self.port = 0

    def __enter__(self) -> FeedServerProcess:
        self._process.start()
        if not self._conn.poll(120):
            raise RuntimeError("bench feed server did not start within 120 s")
        self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()



def feed_urls(config: ServerConfig, port: int) -> list[tuple[str, str, str]]:
    """(name, url, lang) of every feed the server with this config serves on this port."""
    plans = plan_feeds(config.feeds, config.hosts, config.no_conditional)
    return [(f"bench-{p.index:05d}", f"http://127.0.0.{p.host + 1}:{port}{p.path}", p.lang) for p in plans]
