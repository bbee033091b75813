"""Shared fixtures: an offline guard, a loopback feed server, a real Redis, a settings factory."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.settings import Settings, load_settings
from tests.servers.feedserver import FeedServer

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
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings with state in a temporary directory and no network-bound parts."""
    base = load_settings(CONFIG, {})
    return replace(base, db=tmp_path / "state.sqlite3", chart_dir=tmp_path / "charts", fetch_timeout=3.0,
                   poll_jitter=0.0, market=f"replay:{CONFIG / 'demo' / 'prices.csv'}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis: the one on 127.0.0.1:6379 when it answers, else our own redis-server on a free port."""
    if _redis_answers(6379):
        yield "redis://127.0.0.1:6379"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis reachable on 127.0.0.1:6379 and no redis-server binary to start one")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start within 10 s")
        time.sleep(0.02)  # polling a child process with a deadline; there is no event to wait on
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


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
