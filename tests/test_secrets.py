"""The bot runs as a real process with a Telegram token, Slack webhook URLs and a Redis password set, against
local stand-ins that fail (and echo what they were sent); nothing the process writes contains a secret:
standard output and error, every file it left, every key and stream entry in Redis."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from tests.servers.botapi import TOKEN as WORKING_TOKEN
from tests.servers.botapi import BotApi
from tests.servers.feedserver import FeedServer, Route, rss

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "424242:AAH-secret-telegram-token-9f8e7d"
REDIS_PASSWORD = "s3cret-REDIS-pass-7c6b"
SLACK_PATH = "/services/T0SECRET/B0SECRET/XsecretSLACKhook"
STORY = {"title": "US adds Chinese chipmaker SMIC to Entity List, tightening export controls on chips",
         "description": "The Bureau of Industry and Security added SMIC to the Entity List, requiring licences.",
         "guid": "smic", "link": "https://news.example/smic"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Echoing:
    """A stand-in that fails every request and echoes its path and body back: Telegram answers 502 (and 401 to
    getMe), Slack 500; whoever copies a peer's answer into a log or the database copies the secret with it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> Echoing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(errors="replace")
                owner.paths.append(self.path)
                status = 401 if self.path.endswith("/getMe") else (500 if "services" in self.path else 502)
                echo = f"upstream failed for {self.path} with {body[:200]}"
                data = json.dumps({"ok": False, "error_code": status, "description": echo}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler


class PasswordRedis:
    """Our own redis-server requiring a password, on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server binary")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir),
                                      "--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, password=REDIS_PASSWORD, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.02)  # polling a child process with a deadline; there is no event to wait on

    def url(self, password: str = REDIS_PASSWORD) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def dump(self) -> bytes:
        """Every key and value (strings, hashes, lists, sets, sorted sets, streams) as one blob."""
        parts: list[bytes] = []
        for key in self.client.scan_iter(count=1000):
            kind = self.client.type(key)
            parts.append(key)
            reader = {b"string": self.client.get, b"hash": self.client.hgetall, b"list": lambda k: self.client.lrange(
                k, 0, -1), b"set": self.client.smembers, b"zset": lambda k: self.client.zrange(k, 0, -1),
                b"stream": self.client.xrange}.get(kind)
            if reader is not None:
                parts.append(repr(reader(key)).encode())
        return b"\n".join(parts)

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    server = PasswordRedis(tmp_path)
    yield server
    server.stop()


def secret_forms(secrets: list[str]) -> list[bytes]:
    """Each secret as it might be written: whole, percent-encoded, JSON-escaped, and its distinctive part."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}
    forms |= {TOKEN.split(":")[1], REDIS_PASSWORD, SLACK_PATH, "XsecretSLACKhook"}
    return sorted({f.encode() for f in forms})


def written_files(workdir: Path) -> bytes:
    """Every file the process left in its working directory (SQLite file, its WAL, charts...)."""
    return b"\n".join(p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file() and p.name != "feeds.toml")


def run_bot(workdir: Path, feed_url: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config"), "run", "--once"]
    return subprocess.run(command, cwd=workdir, env=_env(workdir, feed_url, env_extra), capture_output=True,
                          timeout=90, check=False)


def _env(workdir: Path, feed_url: str, env_extra: dict[str, str]) -> dict[str, str]:
    feeds = workdir / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "wire"\nurl = "{feed_url}"\ninterval = 60\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_", "SLACK_", "REDIS_"))}
    env.update(NEWSBOT_FEEDS_FILE=str(feeds), NEWSBOT_DB=str(workdir / "state.sqlite3"), NEWSBOT_LOG_LEVEL="DEBUG",
               NEWSBOT_MARKET=f"replay:{ROOT / 'config' / 'demo' / 'prices.csv'}", NEWSBOT_REACTION_MINUTES="",
               NEWSBOT_CHART_DIR=str(workdir / "charts"), NEWSBOT_QUOTE_TIMEOUT="0.5", TELEGRAM_CHAT_IDS="-100777",
               TELEGRAM_ADMIN_IDS="1", PYTHONUNBUFFERED="1", PYTHONWARNINGS="default")
    env.update(env_extra)
    return env


def assert_no_secret(where: str, blob: bytes, secrets: list[str]) -> None:
    for form in secret_forms(secrets):
        at = blob.find(form)
        assert at < 0, f"{where} contains a secret: …{blob[max(0, at - 120):at + 60]!r}…"


@pytest.fixture
def stand_ins(feed_server: FeedServer) -> Iterator[tuple[Echoing, str, str]]:
    """The echoing stand-in, one webhook on it and one on a closed port, and a feed with a flagged story."""
    story = {**STORY, "pubDate": format_datetime(datetime.now(UTC) - timedelta(minutes=5))}
    feed_url = feed_server.route("/wire.xml", Route(rss(story)))
    with Echoing() as echo:
        webhooks = f"{echo.url(SLACK_PATH)},http://127.0.0.1:{_free_port()}/services/T1/B1/unreachableSECRET"
        yield echo, webhooks, feed_url


def test_secrets_never_written_with_sqlite_state(tmp_path: Path, stand_ins: tuple[Echoing, str, str]) -> None:
    """Token and webhooks set, every delivery failing: output, logs and the state file carry none of them."""
    echo, webhooks, feed_url = stand_ins
    secrets = [TOKEN, *webhooks.split(",")]
    result = run_bot(tmp_path, feed_url, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": echo.url("/bot"),
                                          "SLACK_WEBHOOK_URLS": webhooks})
    assert any(TOKEN in p for p in echo.paths) and any(SLACK_PATH in p for p in echo.paths)  # it really tried
    assert b"[ALERT]" in result.stdout and b"pending" in result.stderr
    assert_no_secret("stdout", result.stdout, secrets)
    assert_no_secret("stderr", result.stderr, secrets)
    assert_no_secret("files", written_files(tmp_path), secrets)


def test_secrets_never_written_with_redis_state_and_stream(
    tmp_path: Path, stand_ins: tuple[Echoing, str, str], password_redis: PasswordRedis
) -> None:
    """With a password-protected Redis as store and stream: no secret in output, files, keys or stream entries."""
    echo, webhooks, feed_url = stand_ins
    url = password_redis.url()
    secrets = [TOKEN, url, *webhooks.split(",")]
    result = run_bot(tmp_path, feed_url, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": echo.url("/bot"),
                                          "SLACK_WEBHOOK_URLS": webhooks, "REDIS_URL": url})
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert password_redis.client.xlen("newsbot:alerts") == 1  # the stream worked while the others failed
    assert_no_secret("stdout", result.stdout, secrets)
    assert_no_secret("stderr", result.stderr, secrets)
    assert_no_secret("files", written_files(tmp_path), secrets)
    assert_no_secret("redis", password_redis.dump(), secrets)


@pytest.mark.parametrize("where", ["wrong-password", "nothing-listening"])
def test_redis_url_not_echoed_when_redis_refuses(
    tmp_path: Path, stand_ins: tuple[Echoing, str, str], password_redis: PasswordRedis, where: str
) -> None:
    """A Redis that refuses the password, or is not there: the process stops with an error naming no secret."""
    _, _, feed_url = stand_ins
    url = password_redis.url("wrong-" + REDIS_PASSWORD) if where == "wrong-password" else (
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:{_free_port()}/0")
    result = run_bot(tmp_path, feed_url, {"REDIS_URL": url})
    assert result.returncode != 0 or b"pending" in result.stderr
    assert_no_secret("stdout", result.stdout, [url])
    assert_no_secret("stderr", result.stderr, [url, "wrong-" + REDIS_PASSWORD])


def test_bot_commands_reveal_no_secret(tmp_path: Path, stand_ins: tuple[Echoing, str, str]) -> None:
    """The service answering /start, /status and /feeds (as admin) through the Bot API stand-in, while Slack
    fails: no reply, log line or file carries the token or a webhook."""
    _, webhooks, feed_url = stand_ins
    secrets = [WORKING_TOKEN, *webhooks.split(",")]
    feeds = tmp_path / "feeds.toml"
    with BotApi() as api:
        env = _env(tmp_path, feed_url, {"TELEGRAM_BOT_TOKEN": WORKING_TOKEN, "TELEGRAM_API_BASE_URL": api.base_url,
                                         "SLACK_WEBHOOK_URLS": webhooks, "TELEGRAM_ADMIN_IDS": "42"})
        command = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config"), "run"]
        bot = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for text in ("/start", "/status", "/feeds"):
                api.push_command(42, text)
            replies = api.wait_sent(3, timeout=30)
        finally:
            bot.terminate()
            out, err = bot.communicate(timeout=20)
    assert feeds.exists() and len(replies) >= 3, err.decode()[-2000:]
    assert_no_secret("replies", "\n".join(f"{s.markup}\n{s.text}" for s in api.sent).encode(), secrets)
    assert_no_secret("stdout", out, secrets)
    assert_no_secret("stderr", err, secrets)
    assert_no_secret("files", written_files(tmp_path), secrets)
