"""Hostile feeds against the real loopback feed server: each one bounded in time and memory, logged once
by name, while the other feed and the hostile feed's own good stories still alert."""

from __future__ import annotations

import io
import logging
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.app import App, build_app, poll_all
from bot.pipeline import PollReport, poll_once
from bot.settings import Settings
from bot.telegram_render import render_alert
from feeds.classify import Classifier
from feeds.records import FeedSpec
from tests.render_checks import render_everywhere
from tests.servers.feedserver import FeedServer, Route, rss

NOW = datetime.now(UTC).replace(microsecond=0)
CLASSIFIER = Classifier.from_dir(Path(__file__).resolve().parent.parent / "config")  # once: lexicons are slow
LIMIT = 1_048_576  # fetch_max_bytes for these tests
TIMEOUT = 2.0  # fetch_timeout for these tests
GOOD = {
    "title": "US adds Chinese chipmaker SMIC to Entity List, tightening export controls on chips",
    "guid": "good-smic", "link": "https://good.example/smic",
    "description": "The Bureau of Industry and Security added SMIC to the Entity List, requiring export licences "
                   "for US chipmaking tools.",
    "pubDate": format_datetime(NOW - timedelta(minutes=5)),
}
OWN = {  # the hostile feed's own good story: a different story, so it is not clustered with GOOD
    "title": "Nvidia says US bars H20 chip exports to China without a licence",
    "guid": "own-h20", "link": "https://hostile.example/h20",
    "description": "The Commerce Department told Nvidia it needs an export licence to sell H20 chips to China.",
    "pubDate": format_datetime(NOW - timedelta(minutes=3)),
}
HEAD = b'<?xml version="1.0" encoding="utf-8"?>'
CHANNEL = b'<rss version="2.0"><channel><title>Hostile</title>'


def own_item_xml() -> bytes:
    """OWN as an RSS <item>, to splice into hand-written hostile documents."""
    body = rss(OWN)
    return body[body.index(b"<item>") : body.index(b"</channel>")]


MakeApp = Callable[[list[FeedSpec]], Awaitable[tuple[App, io.StringIO]]]


@pytest.fixture
def tight(settings: Settings) -> Settings:
    """Small limits so every hostile case ends within a few seconds."""
    return replace(settings, fetch_max_bytes=LIMIT, fetch_timeout=TIMEOUT, fetch_max_redirects=5)


@pytest.fixture
async def make_app(tight: Settings) -> AsyncIterator[MakeApp]:
    """Builds apps on tight settings; every one is closed at the end."""
    stacks: list[AsyncExitStack] = []

    async def factory(feeds: list[FeedSpec]) -> tuple[App, io.StringIO]:
        stack = AsyncExitStack()
        stacks.append(stack)
        out = io.StringIO()
        return await build_app(tight, feeds, stack, out=out, clock=lambda: NOW, classifier=CLASSIFIER), out

    yield factory
    for stack in stacks:
        await stack.aclose()


@dataclass
class Outcome:
    hostile: PollReport
    good: PollReport
    out: str
    seconds: float
    peak_bytes: int
    lines: list[str]  # warning-or-worse log lines naming the hostile feed
    app: App


async def poll_pair(server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, route: Route,
                    name: str = "hostile-feed", trace: bool = True) -> Outcome:
    """Polls a hostile feed next to a good one, once, timing it and tracing peak memory (tracing slows
    pure-Python parsing about fivefold, so big-but-valid feeds turn it off)."""
    good = FeedSpec("good-wire", server.route("/good.xml", Route(rss(GOOD))), interval_s=60)
    hostile = FeedSpec(name, server.route("/hostile.xml", route), interval_s=60)
    app, out = await make_app([good, hostile])
    caplog.set_level(logging.INFO)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        reports = {r.feed: r for r in await poll_all(app)}
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await app.outbox.drain()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]
    return Outcome(reports[name], reports["good-wire"], out.getvalue(), seconds, peak, lines, app)


def assert_contained(outcome: Outcome) -> None:
    """The other feed alerted its story and the hostile feed was logged exactly once, by name."""
    assert len(outcome.good.alerts) == 1, outcome.good
    assert GOOD["title"] in outcome.out
    assert len(outcome.lines) == 1, outcome.lines


def chunks(total: int, piece: bytes) -> Callable[[], Iterator[bytes]]:
    """A generated body of `total` bytes made of `piece`, never held in memory whole."""
    def generate() -> Iterator[bytes]:
        yield HEAD + CHANNEL
        for _ in range(total // len(piece)):
            yield piece
    return generate


def gzip_bomb(inflated: int) -> bytes:
    """A gzip body of about inflated/1000 bytes that inflates to `inflated` bytes of XML comment."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(HEAD + CHANNEL + b"<!--")]
    block = b" " * 1_048_576
    parts += [packer.compress(block) for _ in range(inflated // len(block))]
    parts.append(packer.compress(b"-->") + packer.flush())
    return b"".join(parts)


BOMB = gzip_bomb(200 * 1_048_576)


def split(data: bytes, size: int = 65_536) -> Callable[[], Iterator[bytes]]:
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


def redirect(to: str) -> Route:
    return Route(status=302, headers={"Location": to}, conditional=False)


class TestFetchLimits:
    """Bodies and servers that would exhaust memory or time are cut off at the limit."""

    async def test_200_mb_body_is_cut_at_the_size_limit(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 200 MB chunked body (no Content-Length) stops at 1 MB read, in bounded memory."""
        route = Route(stream=chunks(200 * 1_048_576, b"<!-- padding -->" * 4096))
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert outcome.hostile.status == "failed"
        assert "over the 1,048,576-byte limit" in (outcome.hostile.error or "")
        assert outcome.seconds < 3 and outcome.peak_bytes < 8 * LIMIT
        assert_contained(outcome)

    async def test_declared_oversize_body_is_refused_before_reading(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A Content-Length over the limit is refused from the headers alone."""
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss(OWN) + b" " * (LIMIT + 1)))
        assert "bytes is over the 1,048,576-byte limit" in (outcome.hostile.error or "")
        assert_contained(outcome)

    async def test_gzip_bomb_is_cut_at_the_decompressed_limit(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 200 KB gzip body inflating to 200 MB stops at 1 MB inflated; memory stays near the limit."""
        assert len(BOMB) < LIMIT // 4  # small on the wire: only the decompressed limit can catch it
        route = Route(stream=split(BOMB), headers={"Content-Encoding": "gzip"})
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert "after decompression" in (outcome.hostile.error or "")
        assert outcome.seconds < 3 and outcome.peak_bytes < 8 * LIMIT
        assert_contained(outcome)

    @pytest.mark.parametrize(("encoding", "pack"), [
        ("gzip", lambda b: zlib.compress(b, wbits=16 + zlib.MAX_WBITS)),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),
        ("gzip", lambda b: b),
        ("deflate", lambda b: b),
    ], ids=["gzip", "deflate-zlib", "deflate-raw", "plain-labelled-gzip", "plain-labelled-deflate"])
    async def test_compressed_and_mislabelled_bodies_are_read(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, encoding: str,
        pack: Callable[[bytes], bytes],
    ) -> None:
        """gzip, zlib and raw deflate are decoded; a plain body labelled as compressed is read as it is."""
        route = Route(pack(rss(OWN)), headers={"Content-Encoding": encoding})
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert len(outcome.hostile.alerts) == 1 and len(outcome.good.alerts) == 1

    async def test_garbage_labelled_gzip_fails_cleanly(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Bytes that are neither gzip nor markup under Content-Encoding: gzip fail the fetch with a reason."""
        outcome = await poll_pair(feed_server, make_app, caplog, Route(b"\x00\x01garbage" * 100,
                                                                       headers={"Content-Encoding": "gzip"}))
        assert "not valid gzip" in (outcome.hostile.error or "")
        assert_contained(outcome)

    @pytest.mark.parametrize("encoding", ["br", "gzip, gzip", "compress"])
    async def test_unrequested_content_encoding_is_refused(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, encoding: str
    ) -> None:
        """A coding we did not ask for (or a stack of them) is an error, not an unbounded decoder."""
        route = Route(rss(OWN), headers={"Content-Encoding": encoding})
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert "unsupported Content-Encoding" in (outcome.hostile.error or "")
        assert_contained(outcome)

    async def test_megabyte_of_headers_is_refused(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A response whose headers run to a megabyte is a protocol error, not a memory sink."""
        route = Route(rss(OWN), headers={f"X-Pad-{i}": "p" * 1000 for i in range(1000)})
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert outcome.hostile.status == "failed"
        assert outcome.seconds < 3 and outcome.peak_bytes < 8 * LIMIT
        assert_contained(outcome)

    async def test_one_byte_a_second_hits_the_total_deadline(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A server that drips a byte a second never trips a read time-out, but the total deadline ends it."""
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss(OWN), drip=1.0))
        assert "slow server" in (outcome.hostile.error or "")
        assert TIMEOUT <= outcome.seconds < TIMEOUT + 1
        assert_contained(outcome)


class TestRedirects:
    """Redirects are bounded in number and limited to http(s)."""

    async def test_redirect_loop_stops_after_the_limit(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """/hostile.xml → /loop-b → /loop-a → /loop-b … ends with a clear error after 5 hops."""
        feed_server.route("/loop-a", redirect(feed_server.url("/loop-b")))
        feed_server.route("/loop-b", redirect(feed_server.url("/loop-a")))
        outcome = await poll_pair(feed_server, make_app, caplog, redirect(feed_server.url("/loop-a")))
        assert "more than 5 redirects" in (outcome.hostile.error or "")
        assert feed_server.requests["/loop-a"] + feed_server.requests["/loop-b"] <= 5
        assert_contained(outcome)

    @pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "javascript:alert(1)",
                                        "gopher://127.0.0.1:6379/_FLUSHALL"],
                             ids=["file", "ftp", "javascript", "gopher"])
    async def test_redirect_to_other_scheme_is_refused(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, target: str
    ) -> None:
        """A redirect to a non-http(s) URL fails the fetch; nothing is read from it."""
        outcome = await poll_pair(feed_server, make_app, caplog, redirect(target))
        assert outcome.hostile.status == "failed"
        assert "not http(s)" in (outcome.hostile.error or "")
        assert "root:" not in outcome.out
        assert_contained(outcome)


def billion_laughs(one_line: bool) -> bytes:
    sep = b"" if one_line else b"\n"
    entities = [b'<!ENTITY lol0 "lol">']
    entities += [b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10)]
    doctype = b"<!DOCTYPE rss [" + sep + sep.join(entities) + sep + b"]>"
    item = b"<item><title>&lol9;</title><guid>laughs</guid></item>"
    return HEAD + sep + doctype + sep + CHANNEL + item + own_item_xml() + b"</channel></rss>"


def external_entity(server: FeedServer) -> bytes:
    doctype = (b'<!DOCTYPE rss [<!ENTITY passwd SYSTEM "file:///etc/passwd">'
               b'<!ENTITY remote SYSTEM "' + server.url("/evil.ent").encode() + b'">]>')
    item = b"<item><title>leak: &passwd; &remote;</title><guid>xxe</guid></item>"
    return HEAD + doctype + CHANNEL + item + own_item_xml() + b"</channel></rss>"


def external_dtd(server: FeedServer) -> bytes:
    doctype = b'<!DOCTYPE rss SYSTEM "' + server.url("/evil.dtd").encode() + b'">'
    return HEAD + doctype + CHANNEL + b"<item><title>&evil;</title></item>" + own_item_xml() + b"</channel></rss>"


def parameter_entities() -> bytes:
    doctype = (b'<!DOCTYPE rss [<!ENTITY % a "<!ENTITY b \'bbbbbbbbbb\'>"> %a;'
               b'<!ENTITY % c SYSTEM "file:///etc/passwd"> %c;]>')
    return HEAD + doctype + CHANNEL + b"<item><title>&b;</title></item>" + own_item_xml() + b"</channel></rss>"


class TestEntities:
    """No entity is ever expanded beyond the document, nor fetched from anywhere."""

    @pytest.mark.parametrize(("one_line", "encoding"), [(True, "utf-8"), (False, "utf-8"), (True, "utf-16"),
                                                        (True, "cp037")],
                             ids=["one-line", "multi-line", "utf-16", "ebcdic"])
    async def test_billion_laughs_is_not_expanded(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, one_line: bool,
        encoding: str,
    ) -> None:
        """Nine levels of ten-fold entities (10⁹ 'lol's) parse in well under a second, unexpanded, in any encoding."""
        body = billion_laughs(one_line).decode().replace('encoding="utf-8"', f'encoding="{encoding}"')
        route = Route(body.encode(encoding), content_type=f"application/rss+xml; charset={encoding}")
        outcome = await poll_pair(feed_server, make_app, caplog, route)
        assert len(outcome.hostile.alerts) == 1
        assert "lollollol" not in outcome.out
        assert outcome.seconds < 1.5 and outcome.peak_bytes < 8 * LIMIT
        assert_contained(outcome)

    @pytest.mark.parametrize("body", [external_entity, external_dtd, lambda _: parameter_entities()],
                             ids=["system-entities", "external-dtd", "parameter-entities"])
    async def test_external_entities_are_never_resolved(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture,
        body: Callable[[FeedServer], bytes],
    ) -> None:
        """SYSTEM entities and DTDs (a local file, a URL on our server) are neither read nor fetched."""
        feed_server.route("/evil.ent", Route(b"SECRET-FROM-URL", content_type="text/plain"))
        feed_server.route("/evil.dtd", Route(b'<!ENTITY evil "SECRET-FROM-DTD">', content_type="text/plain"))
        outcome = await poll_pair(feed_server, make_app, caplog, Route(body(feed_server)))
        assert len(outcome.hostile.alerts) == 1
        assert "root:" not in outcome.out and "SECRET-FROM" not in outcome.out
        assert feed_server.requests["/evil.ent"] == feed_server.requests["/evil.dtd"] == 0
        assert_contained(outcome)


def latin1_feed(declared: str | None) -> bytes:
    """OWN plus a German story, encoded in windows-1252 with the XML declaration saying `declared`."""
    decl = f'<?xml version="1.0" encoding="{declared}"?>' if declared else '<?xml version="1.0"?>'
    german = "<item><title>Exportkontrolle: Bußgeld für Händler</title><guid>de-1</guid></item>"
    text = decl + CHANNEL.decode() + german + own_item_xml().decode() + "</channel></rss>"
    return text.encode("windows-1252")


def invalid_utf8() -> bytes:
    broken = b"<item><title>Broken \xff\xfe\xc3\x28 bytes \xed\xa0\x80 here</title><guid>bad-utf8</guid></item>"
    return HEAD + CHANNEL + broken + own_item_xml() + b"</channel></rss>"


class TestEncodings:
    """Wrong, missing or broken character encodings are repaired, not fatal."""

    @pytest.mark.parametrize(("body", "content_type"), [
        (latin1_feed("utf-8"), "application/rss+xml; charset=utf-8"),
        (latin1_feed(None), "application/rss+xml"),
        (latin1_feed("utf-8"), "text/html; charset=klingon"),
        (invalid_utf8(), "application/rss+xml; charset=utf-8"),
    ], ids=["declared-utf8-is-latin1", "missing-charset-latin1", "unknown-charset", "invalid-utf8"])
    async def test_bad_encoding_still_alerts(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture,
        body: bytes, content_type: str,
    ) -> None:
        """The feed is decoded as best it can be; its good story alerts, with one warning naming the feed."""
        outcome = await poll_pair(feed_server, make_app, caplog, Route(body, content_type=content_type))
        assert outcome.hostile.items >= 2 and len(outcome.hostile.alerts) == 1
        assert OWN["title"] in outcome.out
        assert_contained(outcome)


class TestEntryContent:
    """Markup, dates and ids inside entries are normalised; the story still alerts once."""

    async def test_markup_and_script_become_plain_text(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Script, style, tags and entities in a title and summary come out as plain text."""
        nasty = {**OWN, "title": '<script>alert("x")</script><b>Nvidia</b> says US bars H20 chip exports to '
                                 'China without a licence<img src=x onerror=alert(1)>',
                 "description": "<style>body{}</style><p>The Commerce Department &amp; Nvidia: an export "
                                "licence is needed for H20 chips.</p><iframe src='//evil'></iframe>"}
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss(nasty)))
        assert len(outcome.hostile.alerts) == 1
        assert OWN["title"] in outcome.out
        for fragment in ("<script", "alert(", "<b>", "<img", "onerror", "<style", "<iframe", "&amp;"):
            assert fragment not in outcome.out
        assert_contained(outcome)
        alert = await outcome.app.store.message(outcome.hostile.alerts[0])
        assert alert is not None
        render_everywhere(alert.alert.item, alert.alert.verdict)  # Telegram tags, Slack escaping, stream schema
        assert "&lt;" not in render_alert(alert.alert) and "script" not in render_alert(alert.alert)

    @pytest.mark.parametrize(("pub_date", "note"), [
        ("Fri, 01 Jan 2100 00:00:00 GMT", "in the future, clamped"),
        ("yesterday-ish, maybe", "unreadable date"),
        ("Mon, 99 Foo 20x5 99:99:99 ZZZ", "unreadable date"),
    ], ids=["year-2100", "words", "garbage-rfc822"])
    async def test_bad_dates_still_alert(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture, pub_date: str, note: str
    ) -> None:
        """A future date is clamped to now, an invalid one ignored; the story alerts and the feed is named once."""
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss({**OWN, "pubDate": pub_date})))
        assert len(outcome.hostile.alerts) == 1
        assert "2100" not in outcome.out
        assert_contained(outcome)
        assert note in outcome.lines[0]

    async def test_missing_date_alerts_with_an_info_line(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An undated story counts as new and alerts; that is common, so it is logged at INFO, not WARNING."""
        undated = {k: v for k, v in OWN.items() if k != "pubDate"}
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss(undated)))
        assert len(outcome.hostile.alerts) == 1 and outcome.lines == []
        assert any("hostile-feed" in r.getMessage() and "without a date" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.INFO)

    async def test_duplicate_guids_alert_once(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Three entries with one guid (different text) make one item and one alert."""
        copies = [OWN, {**OWN, "title": OWN["title"] + " (updated)"}, {**OWN, "link": "https://hostile.example/x"}]
        outcome = await poll_pair(feed_server, make_app, caplog, Route(rss(*copies)))
        assert outcome.hostile.items == 1 and len(outcome.hostile.alerts) == 1
        assert outcome.out.count("[ALERT]") == 2  # the good feed's and this one
        assert_contained(outcome)
        assert "2 entries with a repeated id" in outcome.lines[0]

    async def test_ten_thousand_items_are_capped(
        self, feed_server: FeedServer, make_app: MakeApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 10,000-entry feed (under the byte limit) reads its first 1,000 entries in bounded time."""
        filler = [{"title": f"Market wrap {i}", "guid": f"w{i}"} for i in range(10_000)]
        body = rss(OWN, *filler)
        assert len(body) < LIMIT
        outcome = await poll_pair(feed_server, make_app, caplog, Route(body), trace=False)
        assert outcome.hostile.items == 1_000 and len(outcome.hostile.alerts) == 1
        assert outcome.seconds < 6
        assert_contained(outcome)
        assert "10,001 entries, only the first 1,000 read" in outcome.lines[0]


async def test_feed_alternating_between_two_versions_alerts_once(
    feed_server: FeedServer, make_app: MakeApp
) -> None:
    """A feed flipping between two bodies (a CDN with two origins) re-parses but never re-alerts."""
    wrap = {"title": "Market wrap", "guid": "wrap", "description": "Stocks were mixed."}
    first = rss(OWN, wrap)
    second = rss({**OWN, "description": OWN["description"] + " Shares fell 2%."}, {**wrap, "title": "Wrap v2"})
    spec = FeedSpec("flapping", feed_server.route("/flap.xml", Route(first)), interval_s=60)
    app, out = await make_app([spec])
    reports = []
    for body in (first, second, first, second, first):
        feed_server.route("/flap.xml", Route(body))
        reports.append(await poll_once(app.deps, spec))
    await app.outbox.drain()
    assert all(r.parsed for r in reports)
    assert [len(r.alerts) for r in reports] == [1, 0, 0, 0, 0]
    assert out.getvalue().count("[ALERT]") == 1
