"""Shared fixtures: an offline guard, a loopback feed server, a real Redis, a settings factory."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.settings import Settings, load_settings
from tests.servers.botapi import BotApi
from tests.servers.feedserver import FeedServer
from tests.servers.redisproc import OwnRedis, redis_answers

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host in {"localhost", ""}:
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False
    return True  # unix sockets


@pytest.fixture(autouse=True)
def offline_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach a non-loopback address fails the test loudly."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded(sock: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise AssertionError(f"test tried to reach the internet: {address!r}")
        return real_connect(sock, address)  # type: ignore[arg-type]

    def guarded_ex(sock: socket.socket, address: object) -> int:
        if not _is_local(address):
            raise AssertionError(f"test tried to reach the internet: {address!r}")
        return real_connect_ex(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_ex)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on loopback serving feeds the test defines."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def api() -> Iterator[BotApi]:
    """A stand-in Telegram Bot API over real HTTP on loopback (reached through `base_url`)."""
    with BotApi() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings with state in a temporary directory and no network-bound parts."""
    base = load_settings(CONFIG, {})
    return replace(base, db=tmp_path / "state.sqlite3", chart_dir=tmp_path / "charts", fetch_timeout=3.0,
                   poll_jitter=0.0, market=f"replay:{CONFIG / 'demo' / 'prices.csv'}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the one on 127.0.0.1:6379 when it answers, else our own redis-server on a free port."""
    if redis_answers(6379):
        yield "redis://127.0.0.1:6379"
        return
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()  # skips the tests that need Redis when there is no redis-server binary
    yield f"redis://127.0.0.1:{server.port}"
    server.kill()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis database (number 9) flushed before and after the test."""
    import redis

    url = f"{redis_server}/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of this test's own (AOF, fsync always) that it may kill and restart."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()
