"""Property tests (hypothesis) over parse, classify and render on arbitrary bytes and Unicode: the only
exception parse may raise is FeedUnreadable, items are plain bounded text, and every rendering stays safe.
Examples are few and small so the whole file runs in a few seconds."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.errors import FeedUnreadable, UrlRefused
from bot.urlguard import check_feed_url
from feeds.classify import Classifier
from feeds.parse import MAX_SUMMARY, MAX_TITLE, canonical_url, parse_feed, plain_text
from feeds.records import FeedSpec, Item, Verdict
from tests.render_checks import check_console, render_everywhere

NOW = datetime(2025, 7, 15, 3, 10, tzinfo=UTC)
FEED = FeedSpec("fuzz", "https://fuzz.example/")
CLASSIFIER = Classifier.from_dir(Path(__file__).resolve().parent.parent / "config")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))  # FUZZ_EXAMPLES=5000 for a long hunt, not in CI
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INVISIBLE = {chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0x202E, 0xFEFF]}

# Pieces of feeds, broken ones included, for documents that get further into the parsers than random bytes.
FRAGMENTS = [
    '<?xml version="1.0" encoding="utf-8"?>', '<?xml version="1.0" encoding="utf-16"?>', "<rss version=\"2.0\">",
    "<channel>", "</channel>", "</rss>", "<item>", "</item>", "<title>", "</title>", "<description>",
    "</description>", "<guid>", "</guid>", "<link>", "</link>", "<pubDate>", "</pubDate>",
    '<feed xmlns="http://www.w3.org/2005/Atom">', "<entry>", "</entry>", "<content type=\"html\">", "</content>",
    "<![CDATA[", "]]>", "&amp;", "&lt;script&gt;", "&#0;", "&#x110000;", "&#55296;", "&#99999999999;", "&nbsp;",
    "&undefined;", "<!DOCTYPE rss [<!ENTITY a \"aaaa\">]>", "&a;", "<!--", "-->", "</width>", "</image>",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\x00", "\ufeff", "\u202e", "Nvidia H20",
    "export licence", "Entity List", "Fri, 01 Jan 2100 00:00:00 GMT", "2025-13-45T99:99:99Z", "javascript:x",
    "https://news.example/a?utm_source=x", "<dc:creator>", "<media:content url='x'/>",
]


def check_items(items: list[Item]) -> None:
    """What parse promises about every item, whatever the input."""
    for item in items:
        assert item.title or item.summary
        assert len(item.title) <= MAX_TITLE and len(item.summary) <= MAX_SUMMARY
        assert not INVISIBLE & set(item.title + item.summary)
        assert item.url == "" or item.url.startswith(("http://", "https://"))
        assert item.published_at is None or item.published_at <= NOW
        assert 0 < len(item.key) <= 500
        item.key.encode()  # no lone surrogates: ids go to SQLite, Redis and hashes


def parse_or_unreadable(body: bytes, content_type: str | None = None) -> list[Item]:
    try:
        items = parse_feed(body, FEED, NOW, content_type)
    except FeedUnreadable:
        return []
    check_items(items)
    return items


@FAST
@given(st.binary(max_size=2_000), st.sampled_from([None, "application/xml", "text/html; charset=klingon",
                                                   "application/rss+xml; charset=utf-16"]))
def test_parse_arbitrary_bytes(body: bytes, content_type: str | None) -> None:
    """Random bytes under any content type: items or FeedUnreadable, nothing else."""
    parse_or_unreadable(body, content_type)


@FAST
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=40),
       st.sampled_from(["utf-8", "utf-16", "latin-1"]))
@example(["<item>", "&#99999999999;", "\x80"], "utf-16")  # found by this test: OverflowError in feedparser
@example(["<rss>", "<item>", "<title>", "&#x110000;", "</title>"], "utf-8")  # ValueError in feedparser
def test_parse_feedlike_fragments(parts: list[str], encoding: str) -> None:
    """Shuffled feed fragments (broken tags, bad charrefs, entities, CDATA) never crash the parser."""
    body = "".join(parts).encode(encoding, errors="replace")
    parse_or_unreadable(body)


ANY_TEXT = st.text(max_size=300)


@FAST
@given(ANY_TEXT, ANY_TEXT, st.text(max_size=60), st.text(max_size=60), st.text(max_size=40))
def test_parse_rss_with_arbitrary_unicode_fields(title: str, summary: str, guid: str, link: str, date: str) -> None:
    """Any Unicode in each field of a well-formed RSS item: parsed into bounded plain text, rendered safely."""
    fields = {"title": title, "description": summary, "guid": guid, "link": link, "pubDate": date}
    xml = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>{xml}</item></channel></rss>'
    for item in parse_or_unreadable(body.encode("utf-8", errors="surrogatepass")):
        verdict = CLASSIFIER.classify(item.title, item.summary, item.lang)
        render_everywhere(item, verdict)


@FAST
@given(ANY_TEXT, ANY_TEXT, st.one_of(st.none(), st.text(max_size=8)))
def test_classify_arbitrary_unicode(title: str, summary: str, lang: str | None) -> None:
    """Any title, summary and language: a verdict with a score in 0..1 and a known direction."""
    verdict = CLASSIFIER.classify(title, summary, lang)
    assert 0.0 <= verdict.score <= 1.0
    assert verdict.direction in {"tightening", "easing", "neutral"}
    assert all(isinstance(reason, str) for reason in verdict.reasons)


@settings(FAST, max_examples=max(1, EXAMPLES // 2))
@given(st.text(max_size=2_500), st.text(max_size=2_500), st.text(max_size=300),
       st.lists(st.text(max_size=300), max_size=12))
def test_render_arbitrary_item_text(title: str, summary: str, feed: str, reasons: list[str]) -> None:
    """Raw Unicode (markup, controls, thousands of characters) in any field: Telegram, Slack, stream stay valid."""
    item = Item(key="k", feed=feed or "f", url="https://news.example/x", title=title, summary=summary,
                published_at=None, fetched_at=NOW, lang="en")
    verdict = Verdict(True, 0.9, "tightening", ("<Nvidia>",), ("NVDA",), ("H20&",), tuple(reasons))
    safe = Item(key="k", feed="f", url="", title=plain_text(title, MAX_TITLE), summary=plain_text(summary, 2_000),
                published_at=None, fetched_at=NOW, lang="en")
    render_everywhere(safe, Verdict(True, 0.9, "tightening", reasons=tuple(plain_text(r, 200) for r in reasons)))
    render_everywhere(item, verdict, console=False)


@FAST
@given(st.text(max_size=2_000))
def test_plain_text_is_plain(markup: str) -> None:
    """plain_text returns one bounded line with no invisible characters, whatever it is given."""
    text = plain_text(markup, 300)
    assert len(text) <= 300 and "\n" not in text
    assert not INVISIBLE & set(text)
    check_console(text)


async def _no_dns(host: str, port: int) -> list[str]:
    raise OSError("no DNS in tests")


@FAST
@given(st.one_of(st.text(max_size=200), st.builds(lambda s, t: f"{s}://{t}",
                                                   st.sampled_from(["http", "https", "HTTP", "file", ""]),
                                                   st.text(max_size=100))))
def test_url_guard_only_refuses(url: str) -> None:
    """Any text as a feed URL: accepted as http(s), or refused with UrlRefused; never another exception."""
    try:
        accepted = asyncio.run(check_feed_url(url, resolve=_no_dns))
    except UrlRefused:
        return
    assert accepted.lower().startswith(("http://", "https://"))


@FAST
@given(st.text(max_size=300))
def test_canonical_url_never_raises(url: str) -> None:
    """canonical_url takes any text and returns text without a fragment."""
    assert "#" not in canonical_url("https://news.example/" + url)
