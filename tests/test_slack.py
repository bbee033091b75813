"""The Slack sink against a local webhook receiver: Block Kit within limits, retries, parking, no leaked URLs."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.outbox import Outbox
from bot.records import Message, Reaction
from bot.slack import HEADER_LIMIT, MAX_BLOCKS, TEXT_LIMIT, SlackSink, clip, payload, webhook_target
from bot.store import SqliteStore
from tests.factories import T0, make_alert, make_item, make_message
from tests.servers.slack import (
    ARCHIVED,
    INVALID,
    NO_SERVICE,
    RATE_LIMITED,
    SERVER_ERROR,
    Answer,
    SlackReceiver,
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    with SlackReceiver() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=3.0) as shared:
        yield shared


def _texts(blocks: list[dict[str, object]]) -> list[str]:
    """Every text string inside a list of blocks."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


class TestPayload:
    def test_alert_has_header_fields_context_and_button(self) -> None:
        """An alert becomes a header, ticker/move fields, a source-and-reasons context and a story button."""
        body = payload(make_message("a_1"))
        kinds = [b["type"] for b in body["blocks"]]
        assert kinds == ["header", "section", "section", "context", "actions"]
        fields = " ".join(f["text"] for f in body["blocks"][2]["fields"])
        assert "NVDA" in fields and "+3.03%" in fields
        assert "test-feed" in body["blocks"][3]["elements"][0]["text"]
        assert "export licence" in body["blocks"][3]["elements"][0]["text"]
        assert body["blocks"][4]["elements"][0]["url"] == "https://news.example/a_1"
        assert "US tightens chip export controls" in body["text"]

    def test_feed_text_is_escaped(self) -> None:
        """&, < and > from a feed never reach Slack as markup, in blocks or in the fallback text."""
        item = make_item("x", title="Chips <b>&</b> bans", summary="<!channel> a & b > c")
        body = payload(Message("x", "alert", "x", make_alert("x", item=item)))
        mrkdwn = [t for t in _texts(body["blocks"]) if "a &amp; b" in t]
        assert mrkdwn and "&lt;!channel&gt; a &amp; b &gt; c" in mrkdwn[0]
        assert "<!channel>" not in body["text"] and "&lt;b&gt;&amp;&lt;/b&gt;" in body["text"]
        assert body["blocks"][0]["text"]["text"] == "Chips &lt;b&gt;&amp;&lt;/b&gt; bans"

    def test_clipping_never_splits_an_escape(self) -> None:
        """Text cut to a limit ends before a half escape, not inside it."""
        assert clip("ab &amp; cd", 6) == "ab …"
        assert clip("ab &amp; cd", 9) == "ab &amp;…"

    def test_long_text_stays_within_slack_limits(self) -> None:
        """A huge title and summary are clipped: header ≤ 150, every text ≤ 3,000, ≤ 50 blocks."""
        item = make_item("x", title="T" * 500, summary="S & " * 5000)
        body = payload(Message("x", "alert", "x", make_alert("x", item=item)))
        assert len(body["blocks"][0]["text"]["text"]) <= HEADER_LIMIT
        assert all(len(t) <= TEXT_LIMIT for t in _texts(body["blocks"]))
        assert len(body["blocks"]) <= MAX_BLOCKS and len(body["text"]) <= TEXT_LIMIT

    def test_reaction_is_a_short_follow_up(self) -> None:
        """A reaction lists each ticker's move since the alert."""
        reaction = Reaction("a_1", 15, "US tightens", (("NVDA", 0.8), ("AMD", None)), (), T0)
        body = payload(Message("a_1:r15", "reaction", "a_1", make_alert(), reaction))
        assert "+15m" in body["text"] and "NVDA +0.80%" in body["text"]
        assert [f["text"] for f in body["blocks"][1]["fields"]] == ["*NVDA*\n+0.80%", "*AMD*\nn/a"]


async def test_one_target_per_webhook_without_the_url(client: httpx.AsyncClient) -> None:
    """Each webhook is one target named by a hash; the secret URL is not in it."""
    urls = ["https://hooks.slack.com/services/T0/B0/secret1", "https://hooks.slack.com/services/T0/B1/secret2"]
    targets = await SlackSink(urls, client).targets(make_message())
    assert targets == (webhook_target(urls[0]), webhook_target(urls[1]))
    assert not any("secret" in t or "hooks" in t for t in targets)


async def test_429_then_200_delivers_once(tmp_path: Path, receiver: SlackReceiver,
                                          client: httpx.AsyncClient) -> None:
    """Slack answering 429 with Retry-After and then 200 gets the message exactly once, after the wait."""
    url = receiver.script("/hook", RATE_LIMITED)
    clock, store = Clock(T0), SqliteStore(tmp_path / "s.db")
    sink = SlackSink([url], client, pace=0.0, monotonic=lambda: clock.now.timestamp())
    outbox = Outbox(store, {"slack": sink}, clock)
    await outbox.enqueue(make_message("a_1"))
    report = await outbox.drain()
    assert report.retried == 1 and receiver.payloads["/hook"] == []
    (pending,) = await store.deliveries("pending")
    assert pending.next_at == T0 + timedelta(seconds=1)
    clock.now = T0 + timedelta(seconds=2)
    assert (await outbox.drain()).delivered == 1
    await outbox.drain()
    assert len(receiver.requests["/hook"]) == 2 and len(receiver.payloads["/hook"]) == 1


async def test_server_error_is_retried(tmp_path: Path, receiver: SlackReceiver, client: httpx.AsyncClient) -> None:
    """A 500 is retried with back-off and then delivered."""
    url = receiver.script("/hook", SERVER_ERROR)
    clock, store = Clock(T0), SqliteStore(tmp_path / "s.db")
    outbox = Outbox(store, {"slack": SlackSink([url], client, pace=0.0)}, clock)
    await outbox.enqueue(make_message("a_1"))
    assert (await outbox.drain()).retried == 1
    clock.now = T0 + timedelta(seconds=10)
    assert (await outbox.drain()).delivered == 1
    assert len(receiver.payloads["/hook"]) == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        pytest.param(NO_SERVICE, "404 no_service", id="404-no_service"),
        pytest.param(Answer(404, "channel_not_found"), "404 channel_not_found", id="404-channel_not_found"),
        pytest.param(ARCHIVED, "410 channel_is_archived", id="410-archived"),
        pytest.param(INVALID, "400 invalid_payload", id="400-invalid_payload"),
        pytest.param(Answer(403, "action_prohibited"), "403 action_prohibited", id="403-action_prohibited"),
    ],
)
async def test_permanent_answers_are_parked(tmp_path: Path, receiver: SlackReceiver, client: httpx.AsyncClient,
                                            caplog: pytest.LogCaptureFixture, answer: Answer, words: str) -> None:
    """Slack's permanent refusals park the delivery with a clear reason, and the URL appears nowhere."""
    url = receiver.script("/hook/secret-token", answer)
    store = SqliteStore(tmp_path / "s.db")
    outbox = Outbox(store, {"slack": SlackSink([url], client, pace=0.0)}, Clock(T0))
    await outbox.enqueue(make_message("a_1"))
    with caplog.at_level(logging.INFO, logger="newsbot"):
        assert (await outbox.drain()).parked == 1
    (parked,) = await store.deliveries("parked")
    assert words in (parked.last_error or "")
    assert "parked" in caplog.text and words in caplog.text
    _assert_no_secret(tmp_path / "s.db", caplog.text, "secret-token")


async def test_time_out_is_retried(tmp_path: Path, receiver: SlackReceiver) -> None:
    """Slack not answering within the client's time-out is a retryable failure."""
    url = receiver.script("/hook", Answer(delay=1.0))
    store = SqliteStore(tmp_path / "s.db")
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        outbox = Outbox(store, {"slack": SlackSink([url], impatient, pace=0.0)}, Clock(T0))
        await outbox.enqueue(make_message("a_1"))
        assert (await outbox.drain()).retried == 1
    (pending,) = await store.deliveries("pending")
    assert "timed out" in (pending.last_error or "")


async def test_unreachable_webhook_is_retried_without_leaking_the_url(
    tmp_path: Path, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection is retryable, and neither the log nor the outbox records the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = SqliteStore(tmp_path / "s.db")
    sink = SlackSink([f"http://127.0.0.1:{port}/services/secret-token"], client, pace=0.0)
    outbox = Outbox(store, {"slack": sink}, Clock(T0))
    await outbox.enqueue(make_message("a_1"))
    with caplog.at_level(logging.INFO, logger="newsbot"):
        assert (await outbox.drain()).retried == 1
    (pending,) = await store.deliveries("pending")
    assert "connection failed" in (pending.last_error or "")
    _assert_no_secret(tmp_path / "s.db", caplog.text, "secret-token")


async def test_one_message_per_second_per_webhook(receiver: SlackReceiver, client: httpx.AsyncClient) -> None:
    """Two messages to one webhook are spaced by the pace; another webhook is not held back by it."""
    a, b = receiver.url("/a"), receiver.url("/b")
    sink = SlackSink([a, b], client, pace=0.3)
    started = time.monotonic()
    for ident in ("a_1", "a_2"):
        await sink.deliver(make_message(ident), webhook_target(a), None)
    await sink.deliver(make_message("a_3"), webhook_target(b), None)
    first, second = receiver.requests["/a"]
    assert second - first >= 0.29
    assert receiver.requests["/b"][0] - started < second - started + 0.1


def _assert_no_secret(db: Path, log_text: str, secret: str) -> None:
    rows = sqlite3.connect(db).execute("SELECT message_id, sink, target, last_error FROM deliveries").fetchall()
    assert secret not in repr(rows) and secret not in log_text
