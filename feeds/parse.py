"""Parse fetched bytes with feedparser into normalised `Item` records (plain text, canonical links, UTC)."""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import logging
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser

from bot.errors import FeedUnreadable
from feeds.records import FeedSpec, Item

log = logging.getLogger("newsbot.parse")

MAX_TITLE = 500
MAX_SUMMARY = 2_000
MAX_ITEMS = 1_000  # a news feed carries tens of entries; beyond this the rest is old news or an attack
TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "itm_", "_hs")
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "ocid", "cmpid", "ncid", "cid", "taid",
     "src", "ref", "ref_src", "smid", "smtyp", "sr_share", "guccounter", "guce_referrer", "mod", "rss",
     "feedtype", "__twitter_impression", "at_medium", "at_campaign", "wt.mc_id", "s_cid", "spm"}
)
_DROP_BLOCKS = re.compile(r"<(script|style|noscript|iframe)\b.*?</\1\s*>", re.I | re.S)
_TAGS = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")
_INVISIBLE = re.compile(  # controls, lone surrogates, bidi overrides, zero-width space/marks, BOM (ZWJ/ZWNJ stay)
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
_PROLOG_END = re.compile(rb"<[A-Za-z_]")
_DOCTYPE = re.compile(rb"<!DOCTYPE\b", re.I)
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_DECL_ENCODING = re.compile(rb"""^(<\?xml[^>]*?encoding\s*=\s*["'])[^"']*(["'])""")
_WIDE = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"), (b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"),
         (b"\x4c\x6f\xa7\x94", "cp037"))  # the last: "<?xm" in EBCDIC
# What feedparser's loose parser has been seen to raise on hostile input (chr() of &#x110000; is a ValueError).
PARSER_CRASHES = (ValueError, ArithmeticError, LookupError, TypeError, AttributeError, RecursionError, AssertionError)


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
    if (netloc.endswith(":80") and parts.scheme == "http") or (netloc.endswith(":443") and parts.scheme == "https"):
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def plain_text(markup: str, limit: int) -> str:
    """Text of an HTML fragment: scripts and tags dropped, entities decoded, whitespace collapsed."""
    if "<" in markup:
        markup = _TAGS.sub(" ", _DROP_BLOCKS.sub(" ", markup))
    text = _SPACE.sub(" ", _INVISIBLE.sub("", html.unescape(markup))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def as_utf8(body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """UTF-16/32 and EBCDIC bodies (by BOM or by how `<?` is spelt) re-encoded as UTF-8, so `defuse` sees their
    DOCTYPE too; the declaration and the header's charset are changed to match. Others pass unchanged."""
    for mark, codec in _WIDE:
        if body.startswith(mark):
            try:
                text = body.decode(codec).lstrip("\ufeff")
            except UnicodeDecodeError:
                return body, content_type
            media = (content_type or "application/xml").split(";")[0].strip()
            return _DECL_ENCODING.sub(rb"\g<1>utf-8\g<2>", text.encode("utf-8"), count=1), f"{media}; charset=utf-8"
    return body, content_type


def defuse(body: bytes) -> bytes:
    """The body made safe for feedparser: no DOCTYPE internal subset (so no entity, billion laughs or external,
    is ever declared) and no character reference outside Unicode (its loose parser crashes on those)."""
    return _CHARREF.sub(_charref, _strip_subset(body))


def _charref(match: re.Match[bytes]) -> bytes:
    hex_digits, digits = match.groups()
    text = hex_digits or digits
    if len(text) > 8:
        return b"&#xFFFD;"
    value = int(text, 16 if hex_digits else 10)
    valid = 0 < value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF
    return match.group(0) if valid else b"&#xFFFD;"


def _strip_subset(body: bytes) -> bytes:
    end = _PROLOG_END.search(body)
    head = body[: end.start()] if end else body
    found = _DOCTYPE.search(head)
    if found is None:
        return body
    close = head.find(b">", found.end())
    bracket = head.find(b"[", found.end())
    if bracket == -1 or (close != -1 and close < bracket):
        return body  # a plain DOCTYPE (RSS 0.91's, say) declares nothing
    subset_end = head.rfind(b"]")
    close = head.find(b">", max(subset_end, bracket))
    if close == -1:
        return body[: found.start()] + body[len(head) :]
    return body[: found.start()] + head[found.start() : bracket].rstrip() + b">" + body[close + 1 :]


def _feedparse(body: bytes, content_type: str | None) -> Any:
    body, content_type = as_utf8(body, content_type)
    headers = {"content-type": content_type} if content_type else {}
    try:
        return feedparser.parse(defuse(body), response_headers=headers, sanitize_html=False,
                                resolve_relative_uris=False)
    except PARSER_CRASHES as exc:  # a parser bug on one hostile body costs that feed this poll, nothing more
        raise FeedUnreadable(f"the feed parser failed on this body ({type(exc).__name__}: {_short(exc)})") from exc


def parse_feed(body: bytes, feed: FeedSpec, fetched_at: datetime, content_type: str | None = None) -> list[Item]:
    """Items of one feed body. Raises `FeedUnreadable` only when nothing usable parsed.

    Anything odd that was repaired (XML errors, duplicate ids, future dates, entries cut) is logged in one
    warning naming the feed.
    """
    parsed = _feedparse(body, content_type)
    entries = parsed.get("entries") or []
    if not entries and parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        raise FeedUnreadable(f"not a readable feed: {_short(reason)}")
    if not entries and not parsed.get("version"):
        raise FeedUnreadable("not a feed (no RSS or Atom elements found)")
    notes: list[str] = []
    if parsed.get("bozo"):
        notes.append(f"repaired ({_short(parsed.get('bozo_exception'))})")
    items = _items(entries, feed, fetched_at, notes)
    if notes:
        benign = all("without a date" in note for note in notes)  # common in real feeds: not worth a warning
        log.log(logging.INFO if benign else logging.WARNING, "feed %s: %s", feed.name, "; ".join(notes))
    return items


def _items(entries: Sequence[Any], feed: FeedSpec, fetched_at: datetime, notes: list[str]) -> list[Item]:
    """The first MAX_ITEMS usable, distinct entries as items; what was skipped or repaired goes to `notes`."""
    items: list[Item] = []
    seen: set[str] = set()
    odd: Counter[str] = Counter()
    for entry in entries:
        if len(items) == MAX_ITEMS:
            notes.append(f"{len(entries):,} entries, only the first {MAX_ITEMS:,} read")
            break
        item = _item(entry, feed, fetched_at)
        if item is None:
            odd["without title or text, skipped"] += 1
        elif item.key in seen:
            odd["with a repeated id, skipped"] += 1
        else:
            seen.add(item.key)
            odd.update(_oddities(entry, item))
            items.append(item)
    notes += [f"{n} {'entry' if n == 1 else 'entries'} {what}" for what, n in odd.items()]
    return items


def _oddities(entry: Any, item: Item) -> list[str]:
    """What was repaired in one entry, for the feed's log line."""
    found = []
    if item.published_at is None:
        dated = any(dict.get(entry, k) for k in ("published", "updated", "created"))
        found.append("with an unreadable date, treated as new" if dated else "without a date, treated as new")
    elif item.published_at == item.fetched_at:
        found.append("dated in the future, clamped to now")
    if _DROP_BLOCKS.search(f"{entry.get('title') or ''}{entry.get('summary') or ''}"):
        found.append("with script or style in the text, removed")
    return found


def _item(entry: Any, feed: FeedSpec, fetched_at: datetime) -> Item | None:
    title = plain_text(str(entry.get("title") or ""), MAX_TITLE)
    summary = plain_text(str(entry.get("summary") or entry.get("description") or ""), MAX_SUMMARY)
    link = _INVISIBLE.sub("", str(entry.get("link") or "")).strip()
    url = canonical_url(link) if link.startswith(("http://", "https://")) else ""
    if not title and not summary:
        return None
    guid = _INVISIBLE.sub("", str(entry.get("id") or "")).strip()
    key = guid or url or "h:" + hashlib.blake2b(f"{feed.name}\n{title}".encode(), digest_size=12).hexdigest()
    lang = str(entry.get("language") or "")[:2].lower()
    lang = lang if lang.isascii() and lang.isalpha() else feed.lang
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
        value = dict.get(entry, name)  # not entry.get: feedparser warns on its updated→published fallback
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
