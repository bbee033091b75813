"""A subscriber's filters: which alerts they want, and when alerts should arrive silently.

Filters are plain data, changed with plain words (`/filter tickers NVDA AMD`). Keywords are matched as
whole words, case-insensitively; user text is never compiled as a regular expression (it is escaped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.records import Alert

DIRECTIONS = ("tightening", "easing", "neutral")
CLEAR_WORDS = {"any", "all", "off", "none", "clear"}
DURATION = re.compile(r"^(\d{1,4})\s*([mhd])$")
HHMM = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")


class FilterError(ValueError):
    """A /filter or /mute argument that cannot be understood; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in UTC, as minutes after midnight; it may wrap past midnight (22:00-07:00)."""

    start: int
    end: int

    def contains(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d} UTC"


@dataclass(frozen=True, slots=True)
class Filters:
    """Empty tuples mean "any"."""

    tickers: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    min_score: float = 0.0
    langs: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quiet: QuietHours | None = None


def _has_word(text: str, word: str) -> bool:
    """Whole-word match; words in scripts written without spaces (no ASCII letters) match as substrings."""
    if not re.search(r"[a-z0-9]", word):
        return word in text
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def admits(filters: Filters, alert: Alert) -> bool:
    """True when the alert passes every filter."""
    verdict = alert.verdict
    checks = (
        not filters.tickers or bool(set(filters.tickers) & {t.upper() for t in verdict.tickers}),
        not filters.directions or verdict.direction in filters.directions,
        verdict.score >= filters.min_score,
        not filters.langs or alert.item.lang.lower() in filters.langs,
    )
    if not all(checks):
        return False
    text = f"{alert.item.title}\n{alert.item.summary}".casefold()
    if filters.include and not any(_has_word(text, w) for w in filters.include):
        return False
    return not any(_has_word(text, w) for w in filters.exclude)


def describe(filters: Filters) -> str:
    """The filters in plain words, one per line."""
    return "\n".join([
        f"tickers: {' '.join(filters.tickers) or 'any'}",
        f"direction: {' '.join(filters.directions) or 'any'}",
        f"score: at least {filters.min_score:.2f}",
        f"lang: {' '.join(filters.langs) or 'any'}",
        f"include: {' '.join(filters.include) or '-'}",
        f"exclude: {' '.join(filters.exclude) or '-'}",
        f"quiet: {filters.quiet or 'off'}",
    ])


def change(filters: Filters, words: list[str]) -> Filters:
    """Apply `/filter FIELD VALUES...`; `FIELD any` clears it; `reset` clears all. Raises `FilterError`."""
    if not words:
        raise FilterError("say which filter: tickers, direction, score, lang, include, exclude, quiet or reset")
    field, values = words[0].lower(), words[1:]
    if field == "reset":
        return Filters()
    clear = not values or (len(values) == 1 and values[0].lower() in CLEAR_WORDS)
    setters = {
        "tickers": lambda: replace(filters, tickers=() if clear else _tickers(values)),
        "direction": lambda: replace(filters, directions=() if clear else _directions(values)),
        "score": lambda: replace(filters, min_score=0.0 if clear else _score(values[0])),
        "lang": lambda: replace(filters, langs=() if clear else tuple(v.lower()[:8] for v in values)),
        "include": lambda: replace(filters, include=() if clear else _words(values)),
        "exclude": lambda: replace(filters, exclude=() if clear else _words(values)),
        "quiet": lambda: replace(filters, quiet=None if clear else parse_quiet(values[0])),
    }
    aliases = {"ticker": "tickers", "directions": "direction", "min_score": "score", "languages": "lang",
               "language": "lang", "langs": "lang", "quiet_hours": "quiet"}
    setter = setters.get(aliases.get(field, field))
    if setter is None:
        raise FilterError(f"unknown filter {field[:30]!r}: use tickers, direction, score, lang, include, exclude, "
                          "quiet or reset")
    return setter()


def _tickers(values: list[str]) -> tuple[str, ...]:
    tickers = tuple(dict.fromkeys(v.upper().lstrip("$") for v in values))
    if not all(t.replace(".", "").isalnum() and len(t) <= 10 for t in tickers):
        raise FilterError("tickers are symbols such as NVDA AMD ASML")
    return tickers


def _directions(values: list[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.lower() for v in values))
    if not set(chosen) <= set(DIRECTIONS):
        raise FilterError(f"direction is one or more of: {', '.join(DIRECTIONS)}")
    return chosen


def _score(value: str) -> float:
    try:
        score = float(value)
    except ValueError:
        raise FilterError("score is a number between 0 and 1, e.g. 0.7") from None
    if not 0.0 <= score <= 1.0:
        raise FilterError("score is a number between 0 and 1, e.g. 0.7")
    return score


def _words(values: list[str]) -> tuple[str, ...]:
    words = tuple(dict.fromkeys(v.casefold()[:40] for v in values if v.strip()))
    if len(words) > 20:
        raise FilterError("at most 20 words")
    return words


def _minute(text: str) -> int:
    match = HHMM.match(text)
    if not match or int(match[1]) > 23 or int(match[2] or 0) > 59:
        raise FilterError("quiet hours look like 22:00-07:00 (UTC)")
    return int(match[1]) * 60 + int(match[2] or 0)


def parse_quiet(text: str) -> QuietHours:
    """`22:00-07:00` or `22-7` (UTC)."""
    start, sep, end = text.partition("-")
    if not sep:
        raise FilterError("quiet hours look like 22:00-07:00 (UTC)")
    return QuietHours(_minute(start.strip()), _minute(end.strip()))


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1d` (at most 30 days)."""
    match = DURATION.match(text.strip().lower())
    if not match:
        raise FilterError("a duration looks like 30m, 2h or 1d")
    amount, unit = int(match[1]), match[2]
    delta = timedelta(minutes=amount) if unit == "m" else timedelta(hours=amount) if unit == "h" \
        else timedelta(days=amount)
    if delta > timedelta(days=30):
        raise FilterError("at most 30 days")
    return delta
