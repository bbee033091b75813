"""Parse fetched bytes with feedparser into normalised `Item` records (plain text, canonical links, UTC)."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser

from bot.errors import FeedUnreadable
from feeds.records import FeedSpec, Item

MAX_TITLE = 500
MAX_SUMMARY = 2_000
TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "itm_", "_hs")
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "ocid", "cmpid", "ncid", "cid", "taid",
     "src", "ref", "ref_src", "smid", "smtyp", "sr_share", "guccounter", "guce_referrer", "mod", "rss",
     "feedtype", "__twitter_impression", "at_medium", "at_campaign", "wt.mc_id", "s_cid", "spm"}
)
_DROP_BLOCKS = re.compile(r"<(script|style|noscript|iframe)\b.*?</\1\s*>", re.I | re.S)
_TAGS = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")


def canonical_url(url: str) -> str:
    """The link without tracking parameters or fragment, with a lower-case scheme and host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(TRACKING_PREFIXES) and k.lower() not in TRACKING_PARAMS
    ]
    netloc = parts.netloc.lower()
    if netloc.endswith(":80") and parts.scheme == "http" or netloc.endswith(":443") and parts.scheme == "https":
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def plain_text(markup: str, limit: int) -> str:
    """Text of an HTML fragment: scripts and tags dropped, entities decoded, whitespace collapsed."""
    if "<" in markup:
        markup = _TAGS.sub(" ", _DROP_BLOCKS.sub(" ", markup))
    text = _SPACE.sub(" ", html.unescape(markup)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_feed(body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None = None) -> list[Item]:
    """Items of one feed body. Raises `FeedUnreadable` only when nothing usable parsed."""
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    entries = parsed.get("entries") or []
    if not entries and parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        raise FeedUnreadable(f"not a readable feed: {_short(reason)}")
    if not entries and not parsed.get("version"):
        raise FeedUnreadable("not a feed (no RSS or Atom elements found)")
    return list(_items(entries, feed, fetched_at))


def _items(entries: Iterable[Any], feed: FeedSpec, fetched_at: datetime) -> Iterable[Item]:
    seen: set[str] = set()
    for entry in entries:
        item = _item(entry, feed, fetched_at)
        if item is not None and item.key not in seen:
            seen.add(item.key)
            yield item


def _item(entry: Any, feed: FeedSpec, fetched_at: datetime) -> Item | None:
    title = plain_text(str(entry.get("title") or ""), MAX_TITLE)
    summary = plain_text(str(entry.get("summary") or entry.get("description") or ""), MAX_SUMMARY)
    link = str(entry.get("link") or "")
    url = canonical_url(link) if link.startswith(("http://", "https://")) else ""
    if not title and not summary:
        return None
    guid = str(entry.get("id") or "").strip()
    key = guid or url or "h:" + hashlib.blake2b(f"{feed.name}\n{title}".encode(), digest_size=12).hexdigest()
    lang = str(entry.get("language") or "")[:2].lower() or feed.lang
    return Item(
        key=key[:500],
        feed=feed.name,
        url=url,
        title=title,
        summary=summary if summary != title else "",
        published_at=_published(entry, fetched_at),
        fetched_at=fetched_at,
        lang=lang,
    )


def _published(entry: Any, fetched_at: datetime) -> datetime | None:
    """UTC publication time; none when missing or invalid; never later than when we fetched it."""
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(name)
        if value:
            try:
                when = datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, TypeError, OSError):
                continue
            return min(when, fetched_at)
    return None


def content_hash(item: Item) -> str:
    """Identity of an item's text, to notice when a feed updates an article."""
    return hashlib.blake2b(f"{item.title}\n{item.summary}".encode(), digest_size=12).hexdigest()


def _short(value: object) -> str:
    return (str(value) or type(value).__name__).splitlines()[0][:200] if value else "unknown error"
