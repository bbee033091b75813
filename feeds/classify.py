"""Flags export-control stories about chipmakers with a transparent weighted-evidence model.

The score is a logistic function of a sum of evidence weights (all in `Weights`):
  subject   chip-subject evidence: a watched company or product, or a chip / chip-tool word;
  control   export-control evidence: a standalone term ("export controls", "entity list", 出口管制), or a
            control word ("restrict", "licence", "ban") close to "export", to a sale or to "to China";
  context   the rule-maker (Commerce Department, BIS), a destination, subject and control close together;
  negatives tariffs, import or purchase bans, antitrust, earnings, other goods, patent licences, statistics.
Without both a subject and control evidence an item is never flagged. Direction comes from cue words,
those in the title counting double.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field
from operator import itemgetter

from feeds.lexicon import Entity, Hit, Matcher, load_terms, normalize
from feeds.records import Direction, Verdict

CONTROL_WORDS = ("restrict", "tighten", "ease")
# Direction cues: (category, the direction it points to, its weight before the title's doubling).
CUES = (
    ("tighten", "tightening", 1.0),
    ("tighten_weak", "tightening", 0.4),
    ("ease", "easing", 1.0),
    ("ease_weak", "easing", 0.4),
    ("neutral", "neutral", 1.0),
)
NEGATIVES = (
    "neg_goods",
    "neg_trade",
    "neg_antitrust",
    "neg_business",
    "neg_licence",
    "neg_stats",
    "neg_trend",
    "neg_context",
)


@dataclass(frozen=True, slots=True)
class Weights:
    """Evidence weights, in log-odds. A score of 0.5 (the default threshold) is a sum of zero."""

    bias: float = -7.0
    company: float = 3.0  # a watched company or product
    chip: float = 2.5  # chip / semiconductor / chipmaking-tool words
    control: float = 4.5  # a standalone export-control term
    export_control: float = 4.0  # a control word near "export"
    sale_control: float = 3.5  # a control word near a sale, with a destination such as "to China"
    dest_control: float = 3.0  # a control word near a destination ("restrictions on China")
    linked: float = 1.0  # the subject stands close to the control evidence
    authority: float = 0.7  # the rule-maker is named
    destination: float = 0.5  # "to China", 对华, 中国向け ...
    cue: float = 0.3  # a direction cue is present
    negatives: dict[str, float] = field(
        default_factory=lambda: {
            "neg_goods": 2.5,
            "neg_trade": 2.5,
            "neg_antitrust": 2.5,
            "neg_business": 1.0,
            "neg_licence": 2.5,
            "neg_stats": 1.5,
            "neg_trend": 1.5,
            "neg_context": 1.0,
        }
    )
    near_latin: int = 60  # characters between two related words, in space-separated scripts
    near_cjk: int = 15  # the same for Chinese, Japanese and Korean
    link_factor: float = 2.0  # subject-to-control distance, as a multiple of the above


@dataclass(slots=True)
class Evidence:
    """What the matcher found in one item, grouped for scoring."""

    hits: dict[str, list[Hit]]
    entities: list[Entity]
    title_end: int

    @classmethod
    def collect(cls, hits: dict[str, list[Hit]], title_end: int) -> Evidence:
        entities: list[Entity] = []
        for _, _, term in hits.get("entity", ()):
            if term.entity is not None and term.entity not in entities:
                entities.append(term.entity)
        return cls(hits, entities, title_end)

    def get(self, *categories: str) -> list[Hit]:
        if len(categories) == 1:
            return self.hits.get(categories[0], [])
        return [hit for category in categories for hit in self.hits.get(category, ())]


def _near(a: Hit, b: Hit, weights: Weights, factor: float = 1.0) -> bool:
    gap = max(b[0] - a[1], a[0] - b[1], 0)
    return gap <= (weights.near_latin if a[2].latin and b[2].latin else weights.near_cjk) * factor


def _any_near(left: list[Hit], right: list[Hit], weights: Weights, factor: float = 1.0) -> bool:
    return any(_near(a, b, weights, factor) for a in left for b in right)


class Classifier:
    """Scores one item's title and summary; `flag` is score >= threshold."""

    def __init__(
        self,
        matcher: Matcher,
        threshold: float = 0.5,
        weights: Weights | None = None,
        tickers: dict[str, str] | None = None,
    ) -> None:
        self._matcher = matcher
        self.threshold = threshold
        self.weights = weights or Weights()
        self._tickers = tickers or {}  # company name -> ticker, for products named without their maker

    @classmethod
    def from_dir(cls, config_dir: pathlib.Path, threshold: float = 0.5) -> Classifier:
        """Build from config_dir/watchlist.toml and config_dir/lexicon/*.toml (ValueError on bad data)."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in 0..1, got {threshold}")
        terms = load_terms(pathlib.Path(config_dir))
        tickers = {t.entity.name: t.entity.ticker for t in terms if t.entity is not None and t.entity.ticker}
        return cls(Matcher(terms), threshold, tickers=tickers)

    def evidence(self, title: str, summary: str = "") -> Evidence:
        """Match the vocabulary against the normalized title and summary."""
        title_n = normalize(title)
        hits = self._matcher.find(f"{title_n}\n{normalize(summary)}")
        return Evidence.collect(hits, len(title_n))

    def classify(self, title: str, summary: str = "", lang: str | None = None) -> Verdict:
        """The verdict on one item; `lang` is informational, every language's vocabulary is always used."""
        evidence = self.evidence(title, summary)
        total, reasons = self._score(evidence)
        score = round(1.0 / (1.0 + math.exp(-total)), 4)
        flag = score >= self.threshold
        direction, cue = _direction(evidence)
        if cue:
            reasons.append(cue)
        entities = evidence.entities
        if not entities:
            return Verdict(flag, score, direction if flag else "neutral", reasons=tuple(reasons))
        companies = tuple(e.name for e in entities if e.kind == "company")
        products = tuple(e.name for e in entities if e.kind == "product")
        makers = (*companies, *(e.company for e in entities if e.kind == "product"))
        return Verdict(
            flag=flag,
            score=score,
            direction=direction if flag else "neutral",
            companies=companies,
            tickers=tuple(dict.fromkeys(self._tickers[m] for m in makers if m in self._tickers)),
            products=products,
            reasons=tuple(reasons),
        )

    def _score(self, ev: Evidence) -> tuple[float, list[str]]:
        w = self.weights
        subject, subject_hits, subject_reason = _subject(ev, w)
        control, control_hits, control_reason = _control(ev, w)
        reasons = [r for r in (subject_reason, control_reason) if r]
        if subject_reason.startswith("rule:") and control_reason.endswith(subject_reason[5:]):
            reasons = [control_reason]  # the rule's name is both the subject and the control
        if not subject or not control:
            return min(w.bias + subject + control, -1.0), reasons
        total = w.bias + subject + control
        in_title = any(start < ev.title_end for start, _, _ in subject_hits)
        if in_title or _any_near(subject_hits, control_hits, w, w.link_factor):
            total += w.linked
        hits = ev.hits
        authority = hits.get("authority")
        if authority:
            total += w.authority
            reasons.append(f"authority: {_quote(authority[0])}")
        if hits.get("china_dest"):
            total += w.destination
        if hits.get("tighten") or hits.get("ease"):
            total += w.cue
        penalty, negative_reason = _negatives(ev, w, control_hits)
        if negative_reason:
            reasons.append(negative_reason)
        return total - penalty, reasons


def _quote(hit: Hit) -> str:
    return f'"{hit[2].text}"'


def _subject(ev: Evidence, w: Weights) -> tuple[float, list[Hit], str]:
    entities, rules = ev.get("entity"), ev.get("chip_control")
    if entities or rules:
        return w.company, entities + rules, _names(ev) or f"rule: {_quote(rules[0])}"
    words = ev.get("chip", "tool")
    if words:
        return w.chip, words, f"chips: {_quote(words[0])}"
    return 0.0, [], ""


def _names(ev: Evidence) -> str:
    """The names for the reasons, such as 'company: Nvidia, AMD; product: H20' (at most three of each)."""
    parts = []
    for kind in ("company", "product"):
        names = [e.name for e in ev.entities if e.kind == kind][:3]
        if names:
            parts.append(f"{kind}: {', '.join(names)}")
    return "; ".join(parts)


def _control(ev: Evidence, w: Weights) -> tuple[float, list[Hit], str]:
    strong = ev.get("control", "chip_control")
    if strong:
        return w.control, strong, f"control: {_quote(strong[0])}"
    words = sorted(ev.get(*CONTROL_WORDS), key=itemgetter(0))  # earliest first: the title's words lead
    if not words:
        return 0.0, [], ""
    exports, sales, dests = ev.get("export"), ev.get("sale"), ev.get("china_dest")
    for word in words:
        partner = next((e for e in exports if _near(word, e, w)), None)
        if partner:
            return w.export_control, [word, partner], f"control: {_quote(word)} + {_quote(partner)}"
    if dests:
        for word in words:
            partner = next((s for s in sales if _near(word, s, w)), None)
            if partner:
                return w.sale_control, [word, partner], f"control: {_quote(word)} on sales ({_quote(partner)})"
        for word in words:
            partner = next((d for d in dests if _near(word, d, w)), None)
            if partner:
                return w.dest_control, [word, partner], f"control: {_quote(word)} {_quote(partner)}"
    return 0.0, [], ""


def _negatives(ev: Evidence, w: Weights, control_hits: list[Hit]) -> tuple[float, str]:
    penalty, first, hits = 0.0, None, ev.hits
    for category in NEGATIVES:
        found = hits.get(category)
        if not found or (category == "neg_licence" and hits.get("export")):
            continue
        if category == "neg_trend" and not _trend_after_export(found, ev.get("export", "sale"), w):
            continue
        weight = w.negatives[category]
        named = bool(hits.get("entity"))
        if category == "neg_goods" and (named or not _any_near(found, control_hits, w, w.link_factor)):
            weight *= 0.4  # other goods count fully only when the control is about them
        penalty += weight
        first = first or found[0]
    if first is None:
        return 0.0, ""
    return penalty, f"against: {_quote(first)}"


def _trend_after_export(trends: list[Hit], exports: list[Hit], w: Weights) -> bool:
    """A rise or fall word right after "exports" ("chip exports to China rose 20%"): a trade statistic."""
    return any(0 <= t[0] - e[1] <= w.near_latin // 2 for t in trends for e in exports)


def _direction(ev: Evidence) -> tuple[Direction, str]:
    """Tightening, easing or neutral from cue words; title cues count double, a near tie is neutral.

    With no cue at all the story reads as tightening, by far the most common kind of control news.
    """
    tally: dict[str, float] = {"tightening": 0.0, "easing": 0.0, "neutral": 0.0}
    first: dict[str, Hit] = {}
    hits, title_end = ev.hits, ev.title_end
    for category, direction, weight in CUES:
        found = hits.get(category)
        if not found:
            continue
        total = tally[direction]  # summed in the same order as ever, so the floats come out the same
        for hit in found:
            total += weight * (2.0 if hit[0] < title_end else 1.0)
        tally[direction] = total
        first.setdefault(direction, found[0])
    tight, ease, neutral = tally["tightening"], tally["easing"], tally["neutral"]
    if tight == ease == neutral == 0.0:
        return "tightening", ""
    if neutral >= max(tight, ease) or (tight and ease and abs(tight - ease) < 0.5):
        winner: Direction = "neutral"
    else:
        winner = "tightening" if tight > ease else "easing"
    cue = first.get(winner) or first.get("tightening") or next(iter(first.values()))
    label = {"tightening": "tightened", "easing": "eased", "neutral": "neutral"}[winner]
    return winner, f"direction: {label} ({_quote(cue)})"
