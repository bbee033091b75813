"""The classifier's vocabulary: loads config/watchlist.toml and config/lexicon/*.toml into one matcher.

Term syntax in the data files (all terms are compared after NFKC + casefold, so case and full-width forms
never matter):
- ``export`` matches the whole word only: "export" but not "exports" or "reexport";
- ``export*`` also matches longer words: "exports", "exported", "exportation";
- ``*export*`` also matches inside compounds: "Rüstungsexporte", "Chipexport";
- terms in Chinese, Japanese and Korean script match anywhere (those scripts do not separate words).
"""

from __future__ import annotations

import itertools
import pathlib
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter

import ahocorasick_rs

# Categories a lexicon file may fill. The comments in config/lexicon/en.toml explain each one.
CATEGORIES: tuple[str, ...] = (
    "chip",  # chip-subject words: chip, semiconductor, 芯片, 半導体 ...
    "tool",  # chipmaking tools and materials: lithography, photoresist ...
    "export",  # the word "export" and its kin: Ausfuhr, 出口, 輸出, 수출 ...
    "sale",  # selling or shipping abroad: sell, ship, supply, 出荷, 판매 ...
    "restrict",  # control words that need "export" or "to China" nearby: restrict, licence, ban ...
    "control",  # export-control terms that stand alone: export controls, entity list, 出口管制 ...
    "chip_control",  # rules that are about chips by definition: AI diffusion rule ...
    "authority",  # who makes the rules: Commerce Department, BIS, 商务部 ...
    "china_dest",  # a destination: to China, nach China, 对华, 中国向け, 대중국 ...
    "tighten",  # direction cues: tighten, expand, impose, revoke ...
    "tighten_weak",  # weak tightening cues: restrictions, new ...
    "ease",  # direction cues: ease, lift, approve, grant a licence, resume sales ...
    "ease_weak",  # weak easing cues: waiver, exemption ...
    "neutral",  # disputes, complaints, enforcement: complain, smuggling, lawsuit ...
    "neg_goods",  # other goods under export rules: rare earths, weapons, wheat, drones ...
    "neg_trade",  # tariffs, import and purchase bans by the importer ...
    "neg_antitrust",  # antitrust and competition cases
    "neg_business",  # earnings, launches, factories: revenue, quarter, 決算 ...
    "neg_licence",  # patent and architecture licensing
    "neg_stats",  # trade statistics: record exports, export data ...
    "neg_trend",  # rose, fell, jumped ...: counts against only just after an export word ("exports rose")
    "neg_context",  # despite, trotz, 尽管 ...: the rules are the backdrop of another story
)
ENTITY_KINDS: tuple[str, ...] = ("company", "product")

# Categories whose multi-word terms own the words inside them: "export controls" is one piece of evidence,
# not also "export" and "controls"; "Export-Import Bank" is not an export.
OWNERS = frozenset(
    {
        "control",
        "chip_control",
        "entity",
        "neg_goods",
        "neg_trade",
        "neg_antitrust",
        "neg_business",
        "neg_licence",
        "neg_stats",
    }
)


# Full-width ASCII (U+FF01..U+FF5E, such as the full-width comma): NFKC maps each to its ASCII twin, so
# replacing them first folds the same way, and text with no other such characters then passes NFKC's quick
# check instead of being decomposed and recomposed whole.
FULL_WIDTH = re.compile("[\uff01-\uff5e]")


def _half_width(match: re.Match[str]) -> str:
    return chr(ord(match.group()) - 0xFEE0)


def normalize(text: str) -> str:
    """Fold text so that case and full-width/half-width forms compare equal (NFKC + casefold)."""
    if text.isascii():
        return text.lower()  # the same result, faster: ASCII is NFKC already and casefolds to lower case
    text = FULL_WIDTH.sub(_half_width, text)
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (Latin, Cyrillic, Greek ...)."""
    return char.isalnum() and ord(char) < 0x2E80


@dataclass(frozen=True, slots=True, eq=False)
class Entity:
    """A company or product from the watchlist (compared by identity: each is loaded once)."""

    kind: str
    name: str
    ticker: str = ""
    company: str = ""  # for products: the company that makes it


@dataclass(frozen=True, slots=True, eq=False)
class Term:
    """One searchable term: what it belongs to, and whether it must stand as a whole word."""

    text: str
    category: str  # one of CATEGORIES, or "entity"
    open_left: bool
    open_right: bool
    entity: Entity | None = None
    latin: bool = True  # starts with a letter of a space-separated script (sets how near is "near")
    owner: bool = False  # its category is in OWNERS


# One match of a term in normalized text: (start, end, term). A plain tuple, as thousands are made per second.
Hit = tuple[int, int, Term]


# A "*" inside a phrase stands for one of these word endings ("licence* d'exportation").
ENDINGS_LATIN = ("", "s", "es", "e", "en", "n", "ed", "d", "ing", "er", "ern", "ns")
# Russian endings, in Cyrillic on purpose (hence the noqa for look-alike letters).
_CYRILLIC = "а ы ой ые ых ого ая ий ое ие ия ию ии ем ом ами ям ях ей ю у е и я ому ым ыми ую ый"  # noqa: RUF001
ENDINGS_CYRILLIC = ("", *_CYRILLIC.split())


def parse_term(raw: str, category: str, where: str, entity: Entity | None = None) -> list[Term]:
    """Turn a data-file term such as ``*export*`` into Terms; raise ValueError naming `where` if unusable."""
    if not isinstance(raw, str):
        raise ValueError(f"{where}: terms must be strings, got {raw!r}")
    open_left, open_right = raw.startswith("*"), raw.endswith("*")
    pieces = normalize(raw.strip().strip("*")).split("*")
    for left, right in itertools.pairwise(pieces):
        if not left or not right or not is_word_char(left[-1]) or is_word_char(right[0]):
            raise ValueError(f"{where}: unusable term {raw!r} (a '*' inside a term must end a word)")
    if not pieces[0].strip():
        raise ValueError(f"{where}: empty term {raw!r}")
    variants = [pieces[0]]
    for piece in pieces[1:]:
        cyrillic = "\u0400" <= variants[0][-1] <= "\u04ff"
        endings = ENDINGS_CYRILLIC if cyrillic else ENDINGS_LATIN
        variants = [v + ending + piece for v in variants for ending in endings]
    return [
        Term(v.strip(), category, open_left, open_right, entity, is_word_char(v.strip()[0]), category in OWNERS)
        for v in dict.fromkeys(variants)
    ]


class Matcher:
    """Finds every term of the vocabulary in one pass (Aho-Corasick), honouring word boundaries."""

    def __init__(self, terms: list[Term]) -> None:
        # A control word that is also a direction cue is found as the cue (cues count as control words too).
        cues = {(t.text, t.open_left, t.open_right) for t in terms if t.category in ("tighten", "ease")}
        terms = [t for t in terms if t.category != "restrict" or (t.text, t.open_left, t.open_right) not in cues]
        grouped: dict[str, dict[tuple[str, Entity | None], list[Term]]] = {}
        for term in terms:
            grouped.setdefault(term.text, {}).setdefault((term.category, term.entity), []).append(term)
        texts = list(grouped)
        options = [tuple(_option(text, same) for same in grouped[text].values()) for text in texts]
        self._automaton = (
            ahocorasick_rs.AhoCorasick(
                texts, matchkind=ahocorasick_rs.MatchKind.Standard, implementation=ahocorasick_rs.Implementation.DFA
            )
            if texts
            else None
        )
        # Texts that neither lie inside another text nor hold one can never be nested: they skip that step.
        alone = [True] * len(texts)
        for index, text in enumerate(texts):
            found = self._automaton.find_matches_as_indexes(text, overlapping=True) if self._automaton else []
            for inner, _, _ in found:
                if inner != index:
                    alone[index] = alone[inner] = False
        # Per text: (never nested, its term if it has one meaning and no boundary to check, its options).
        self._plans = [
            (lone, option[0][2] if len(option) == 1 and not any(option[0][:2]) else None, option)
            for lone, option in zip(alone, options, strict=True)
        ]
        # The characters is_word_char accepts, as a set: one lookup per boundary instead of two tests.
        self._word_chars = frozenset(char for char in map(chr, range(0x2E80)) if char.isalnum())

    def find(self, text: str) -> dict[str, list[Hit]]:
        """The hits in normalized `text` by category, left to right; a hit inside a longer hit is dropped."""
        if self._automaton is None:
            return {}
        hits: list[Hit] = []
        alone: list[Hit] = []
        plans, word_chars = self._plans, self._word_chars
        padded = text + " "  # padded[-1] and padded[len(text)]: a non-word character on either side of the text
        for index, start, end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            lone, free, options = plans[index]
            found = alone if lone else hits
            if free is not None:  # Chinese, Japanese, Korean or open-ended: no boundary to check
                found.append((start, end, free))
                continue
            left_ok = padded[start - 1] not in word_chars
            right_ok = padded[end] not in word_chars
            for need_left, need_right, term in options:
                if (left_ok or not need_left) and (right_ok or not need_right):
                    found.append((start, end, term))
        grouped = _drop_nested(hits) if hits else {}
        return _merge(grouped, alone) if alone else grouped


def _merge(grouped: dict[str, list[Hit]], alone: list[Hit]) -> dict[str, list[Hit]]:
    """Add the hits that skipped the nesting pass, keeping each category in text order.

    Those hits come in text order already: the automaton reports by end, and of two never-nested hits the
    one that ends first cannot start later (it would lie inside the other). Only mixed categories are sorted.
    """
    extra: dict[str, list[Hit]] = {}
    for hit in alone:
        category = hit[2].category
        same = extra.get(category)
        if same is None:
            extra[category] = [hit]
        else:
            same.append(hit)
    for category, same in extra.items():
        kept = grouped.get(category)
        if kept is None:
            grouped[category] = same
        else:
            kept.extend(same)
            kept.sort(key=itemgetter(0))
    return grouped


def _option(text: str, same: list[Term]) -> tuple[bool, bool, Term]:
    """One meaning of a text: it needs a word boundary on a side only if every spelling of it does."""
    need_left = is_word_char(text[0]) and not any(term.open_left for term in same)
    need_right = is_word_char(text[-1]) and not any(term.open_right for term in same)
    return need_left, need_right, same[0]


def _drop_nested(hits: list[Hit]) -> dict[str, list[Hit]]:
    """Group hits by category, dropping those inside a longer hit of the same or an owning category."""
    hits.reverse()  # the automaton reports by end; reversed, a stable sort by start puts longer hits first
    hits.sort(key=itemgetter(0))
    grouped: dict[str, list[Hit]] = {}
    owner_start, owner_end = -1, -1
    for hit in hits:
        start, end, term = hit
        if end <= owner_end and (start != owner_start or end != owner_end):
            continue
        category = term.category
        same = grouped.get(category)
        if same is None:
            grouped[category] = [hit]
        else:
            last = same[-1]  # the kept hit of this category that reaches furthest right
            if end <= last[1] and (start != last[0] or end != last[1]):
                continue
            same.append(hit)
        if end > owner_end and term.owner:
            owner_start, owner_end = start, end
    return grouped


def _load_toml(path: pathlib.Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_watchlist(path: pathlib.Path) -> Iterator[Term]:
    """Yield the entity terms of watchlist.toml: [[company]] and [[product]] tables."""
    data = _load_toml(path)
    for kind in ENTITY_KINDS:
        for index, table in enumerate(data.get(kind, [])):
            where = f"{path}: {kind}[{index}]"
            if not isinstance(table, Mapping) or not isinstance(table.get("name"), str):
                raise ValueError(f"{where}.name: every {kind} needs a name")
            entity = Entity(kind, table["name"], str(table.get("ticker", "")), str(table.get("company", "")))
            aliases = table.get("aliases", [])
            if not isinstance(aliases, list):
                raise ValueError(f"{where}.aliases: must be a list of strings")
            for raw in [table["name"], *aliases]:
                yield from parse_term(raw, "entity", f"{where}.aliases", entity)
    unknown = set(data) - set(ENTITY_KINDS)
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {sorted(unknown)}; expected {list(ENTITY_KINDS)}")


def load_lexicon(path: pathlib.Path) -> Iterator[Term]:
    """Yield the terms of one lexicon file: top-level lists named after CATEGORIES."""
    data = _load_toml(path)
    for key, value in data.items():
        if key == "language":
            continue
        if key not in CATEGORIES:
            raise ValueError(f"{path}: {key}: unknown category; expected one of {list(CATEGORIES)}")
        if not isinstance(value, list):
            raise ValueError(f"{path}: {key}: must be a list of strings")
        for raw in value:
            yield from parse_term(raw, key, f"{path}: {key}")


def load_terms(config_dir: pathlib.Path) -> list[Term]:
    """Every term of config_dir/watchlist.toml and config_dir/lexicon/*.toml."""
    terms = list(load_watchlist(config_dir / "watchlist.toml"))
    lexicon_files = sorted((config_dir / "lexicon").glob("*.toml"))
    if not lexicon_files:
        raise ValueError(f"{config_dir / 'lexicon'}: no lexicon files (*.toml)")
    for path in lexicon_files:
        terms.extend(load_lexicon(path))
    return terms
