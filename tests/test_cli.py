"""The CLI as a user runs it: `demo` offline, `run` with dead feeds and Ctrl-C, `run --once`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import IO

from tests.conftest import ROOT
from tests.servers.feedserver import FeedServer, Route, rss
from tests.test_pipeline import FLAGGED


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_", "SLACK_", "REDIS_"))}
    env.update(NEWSBOT_DB=str(tmp_path / "state.sqlite3"), NEWSBOT_CHART_DIR=str(tmp_path / "charts"),
               PYTHONUNBUFFERED="1", **extra)
    return env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: connections are refused


def _dead_feeds(tmp_path: Path, count: int) -> Path:
    port = _closed_port()
    path = tmp_path / "feeds.toml"
    path.write_text("".join(
        f'[[feed]]\nname = "dead-{i}"\nurl = "http://127.0.0.1:{port}/feed-{i}.xml"\ninterval = 60\n'
        for i in range(count)
    ))
    return path


def _failing_feeds(stream: IO[str], expected: int, deadline: float) -> set[str]:
    """Names of the feeds reported as failing, read line by line until `expected` or the deadline."""
    failing: set[str] = set()
    while len(failing) < expected and time.monotonic() < deadline:
        line = stream.readline()
        if "feed dead-" in line:
            assert "cannot connect" in line and "next try in" in line
            failing.add(line.split("feed ")[1].split(":")[0])
    return failing


def test_demo_prints_the_seed_story_with_prices(tmp_path: Path) -> None:
    """`python main.py demo` prints the German H20 story as an alert with NVDA and AMD moves, offline."""
    result = subprocess.run([sys.executable, "main.py", "demo"], cwd=ROOT, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Der CEO von Nvidia sagt, er habe die US-Genehmigung" in out
    alert = out.split("Der CEO von Nvidia sagt")[1].split("[ALERT]")[0]
    assert "NVDA " in alert and "AMD " in alert and "%" in alert
    assert "demo:" in out


def test_run_without_network_reports_each_feed_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """With every feed unreachable, `run` prints one line per failing feed, keeps running, and Ctrl-C ends it fast."""
    env = _env(tmp_path, NEWSBOT_FEEDS_FILE=str(_dead_feeds(tmp_path, 3)), NEWSBOT_MARKET="replay:"
               + str(ROOT / "config" / "demo" / "prices.csv"))
    with subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        failing = _failing_feeds(proc.stderr, expected=3, deadline=time.monotonic() + 30)
        assert failing == {"dead-0", "dead-1", "dead-2"}
        assert proc.poll() is None, "run exited instead of carrying on"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 2.0, f"Ctrl-C took {elapsed:.2f}s"


def test_bad_setting_is_one_clear_error(tmp_path: Path) -> None:
    """A bad environment value stops the CLI with exit 2 and a message naming the variable."""
    result = subprocess.run([sys.executable, "main.py", "run", "--once"], cwd=ROOT,
                            env=_env(tmp_path, NEWSBOT_ALERT_THRESHOLD="high"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "NEWSBOT_ALERT_THRESHOLD" in result.stderr and "Traceback" not in result.stderr


def _feeds_file(tmp_path: Path, urls: dict[str, str]) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text("".join(f'[[feed]]\nname = "{name}"\nurl = "{url}"\n' for name, url in urls.items()))
    return path


def test_run_once_alerts_and_exits(tmp_path: Path, feed_server: FeedServer) -> None:
    """`run --once` polls every feed, prints the alert, drains the outbox and exits 0."""
    story = {**FLAGGED, "pubDate": format_datetime(datetime.now(UTC) - timedelta(minutes=2))}
    feeds = _feeds_file(tmp_path, {"loop": feed_server.route("/a.xml", Route(rss(story)))})
    env = _env(tmp_path, NEWSBOT_FEEDS_FILE=str(feeds), NEWSBOT_MARKET=f"replay:{ROOT / 'config/demo/prices.csv'}")
    result = subprocess.run([sys.executable, "main.py", "run", "--once"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[ALERT]") == 1
    assert "polled 1 feeds: 1 ok, 0 failed; 1 alerts; 0 deliveries pending" in result.stderr


def test_feeds_command_prints_a_table(tmp_path: Path, feed_server: FeedServer) -> None:
    """`feeds` prints one row per feed with its status, and exits 1 when any feed fails."""
    feeds = _feeds_file(tmp_path, {
        "good": feed_server.route("/good.xml", Route(rss(FLAGGED, FLAGGED | {"guid": "2"}))),
        "gone": feed_server.route("/gone.xml", Route(b"", status=404)),
    })
    result = subprocess.run([sys.executable, "main.py", "feeds"], cwd=ROOT,
                            env=_env(tmp_path, NEWSBOT_FEEDS_FILE=str(feeds)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert rows["good"][1:3] == ["ok", "2"]
    assert rows["gone"][1] == "FAIL" and "HTTP 404" in " ".join(rows["gone"])
    assert "1 of 2 feeds ok" in result.stdout


def test_eval_names_a_bad_input_line(tmp_path: Path) -> None:
    """`eval` on a file with a broken line exits 2 and names the line, without a traceback."""
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"title": "US bans H20 exports", "summary": "", "label": 1}\nnot json\n')
    result = subprocess.run([sys.executable, "main.py", "eval", str(path)], cwd=ROOT, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "line 2: not JSON" in result.stderr and "Traceback" not in result.stderr
