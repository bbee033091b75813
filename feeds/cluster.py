"""Same story, one alert: finds the earlier story a flagged item repeats, within a time window.

Pure and in memory; the service rebuilds the index from stored alerts at start-up. Two signals:
- text: shared words (character pairs in Chinese, Japanese, Korean) of title and lede, which catches
  syndicated copies and light rewrites in one language;
- entities: the same company or product with the same direction, which catches one story told in two
  languages ("US curbs Nvidia H20 exports" / "美国限制英伟达H20出口").
Novelty is 1 - similarity: near 0 for a copy, about 0.3 for the same story in another language, 1.0 (no
match) for a first report.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from feeds.lexicon import normalize
from feeds.records import Item, Verdict

WORD = re.compile(r"\w+")
CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_COMMON = (
    "the and for with from that this are was were has have had its will would into over after amid says said "
    "der die das und mit von den dem des ein eine auf für ist sich les des une pour par sur dans avec est "
    "los las del por con una para que het een van voor met dat zijn della delle degli per con che non "
    "sua seu uma com não"
)
# The domain's own vocabulary is shared by every story, so it says nothing about which story an item tells.
_DOMAIN = (
    "export exports exporting licence licences license licenses licensing control controls rule rules new "
    "chip chips semiconductor semiconductors china chinese u.s government commerce department require "
    "requires restrict restricts restriction restrictions curbs ban bans sales"
)
_DOMAIN_CJK = "出口 管制 芯片 晶片 中国 中國 美国 美國 半导 导体 導體 輸出 規制 半導 導体 수출 통제 반도 도체 미국 중국"
STOPWORDS = frozenset(f"{_COMMON} {_DOMAIN}".split())
CJK_STOPWORDS = frozenset(_DOMAIN_CJK.split())
COPY_SIMILARITY = 0.6  # shared-word overlap from which two items are the same text, lightly edited
RELATED_SIMILARITY = 0.3  # from which they are the same story told differently
SAME_ENTITIES_SIMILARITY = 0.7  # same company or product, same direction, another wording or language


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """The cluster an item belongs to; novelty 1.0 = first report, low for copies and rehashes."""

    cluster_id: str
    novelty: float


@dataclass(frozen=True, slots=True)
class _Entry:
    cluster_id: str
    at: datetime
    words: frozenset[str]
    companies: frozenset[str]
    products: frozenset[str]
    direction: str


def shingles(title: str, summary: str) -> frozenset[str]:
    """Content words of the title and lede; runs of CJK characters become overlapping character pairs."""
    text = normalize(f"{title} {summary[:400]}")
    words: set[str] = set()
    for token in WORD.findall(text):
        runs = CJK.findall(token)
        if runs:
            for run in runs:
                words.update(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
            words.difference_update(CJK_STOPWORDS)
            token = CJK.sub(" ", token)
            words.update(part for part in token.split() if len(part) >= 3 and part not in STOPWORDS)
        elif (len(token) >= 3 or token.isdigit()) and token not in STOPWORDS:
            words.add(token)
    return frozenset(words)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _entity_similarity(entry: _Entry, other: _Entry) -> float:
    """Same direction, a shared company, and no two different products: the same story in other words."""
    if entry.direction != other.direction or not entry.companies & other.companies:
        return 0.0
    if entry.products and other.products and not entry.products & other.products:
        return 0.0
    return SAME_ENTITIES_SIMILARITY


def similarity(entry: _Entry, other: _Entry) -> float:
    """0..1: how surely two items tell the same story."""
    text = _overlap(entry.words, other.words)
    if text >= COPY_SIMILARITY:
        return text
    named, other_named = entry.companies | entry.products, other.companies | other.products
    if named and other_named and not named & other_named:
        return 0.0  # different companies and products: different stories unless the text is a copy
    entities = _entity_similarity(entry, other)
    if text >= RELATED_SIMILARITY and entry.direction == other.direction:
        return max(text, entities)
    return entities


class StoryIndex:
    """Recent stories, newest last; entries older than the window are forgotten."""

    def __init__(self, window: timedelta = timedelta(hours=36)) -> None:
        self.window = window
        self._entries: deque[_Entry] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, item: Item, verdict: Verdict, now: datetime) -> StoryMatch | None:
        """The earlier story this item repeats (best match within the window), else None."""
        self._forget(now)
        probe = _entry("", item, verdict, now)
        best: tuple[float, str] | None = None
        for entry in self._entries:
            score = similarity(probe, entry)
            if score >= RELATED_SIMILARITY and (best is None or score > best[0]):
                best = (score, entry.cluster_id)
        if best is None:
            return None
        return StoryMatch(best[1], round(max(0.0, 1.0 - best[0]), 3))

    def add(self, cluster_id: str, item: Item, verdict: Verdict, at: datetime) -> None:
        """Remember an item as part of a story (call for first reports and attached copies alike)."""
        self._entries.append(_entry(cluster_id, item, verdict, at))
        self._forget(at)

    def _forget(self, now: datetime) -> None:
        horizon = now - self.window
        self._entries = deque(entry for entry in self._entries if entry.at >= horizon)


def _entry(cluster_id: str, item: Item, verdict: Verdict, at: datetime) -> _Entry:
    return _Entry(
        cluster_id,
        at,
        shingles(item.title, item.summary),
        frozenset(verdict.companies),
        frozenset(verdict.products),
        verdict.direction,
    )
