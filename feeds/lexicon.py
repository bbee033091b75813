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
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import ahocorasick

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
    "neutral",  # disputes, complaints, enforcement: complain, smuggling, lawsuit ...
    "neg_goods",  # other goods under export rules: rare earths, weapons, wheat, drones ...
    "neg_trade",  # tariffs, import and purchase bans by the importer ...
    "neg_antitrust",  # antitrust and competition cases
    "neg_business",  # earnings, launches, factories: revenue, quarter, 決算 ...
    "neg_licence",  # patent and architecture licensing
    "neg_stats",  # trade statistics: record exports, export data ...
)
ENTITY_KINDS: tuple[str, ...] = ("company", "product", "country")


def normalize(text: str) -> str:
    """Fold text so that case and full-width/half-width forms compare equal (NFKC + casefold)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (Latin, Cyrillic, Greek ...)."""
    return char.isalnum() and ord(char) < 0x2E80


@dataclass(frozen=True, slots=True)
class Entity:
    """A company, product or country from the watchlist."""

    kind: str
    name: str
    ticker: str = ""
    company: str = ""  # for products: the company that makes it


@dataclass(frozen=True, slots=True)
class Term:
    """One searchable term: what it belongs to, and whether it must stand as a whole word."""

    text: str
    category: str  # one of CATEGORIES, or "entity"
    open_left: bool
    open_right: bool
    entity: Entity | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One match of a term in normalized text."""

    start: int
    end: int
    term: Term


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
    return [Term(v.strip(), category, open_left, open_right, entity) for v in dict.fromkeys(variants)]


class Matcher:
    """Finds every term of the vocabulary in one pass (Aho-Corasick), honouring word boundaries."""

    def __init__(self, terms: list[Term]) -> None:
        self._automaton = ahocorasick.Automaton()
        grouped: dict[str, list[Term]] = {}
        for term in terms:
            grouped.setdefault(term.text, []).append(term)
        for text, group in grouped.items():
            self._automaton.add_word(text, (len(text), tuple(group)))
        if grouped:
            self._automaton.make_automaton()
        self._empty = not grouped

    def find(self, text: str) -> list[Hit]:
        """All hits in normalized `text`, left to right; a hit inside a longer hit is dropped."""
        if self._empty:
            return []
        hits: list[Hit] = []
        last = len(text) - 1
        for end, (length, group) in self._automaton.iter(text):
            start = end - length + 1
            left_ok = start == 0 or not is_word_char(text[start - 1])
            right_ok = end == last or not is_word_char(text[end + 1])
            done: set[tuple[str, Entity | None]] = set()
            for term in group:
                key = (term.category, term.entity)
                if (
                    key not in done
                    and (left_ok or term.open_left or not is_word_char(term.text[0]))
                    and (right_ok or term.open_right or not is_word_char(term.text[-1]))
                ):
                    done.add(key)
                    hits.append(Hit(start, end + 1, term))
        return _drop_nested(hits)


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


def _drop_nested(hits: list[Hit]) -> list[Hit]:
    """Drop hits lying inside a longer hit of the same category or of an owning category (see OWNERS)."""
    hits.sort(key=lambda h: (h.start, h.start - h.end))
    kept: list[Hit] = []
    owner: tuple[int, int] = (-1, -1)
    reach: dict[str, tuple[int, int]] = {}
    for hit in hits:
        span = (hit.start, hit.end)
        same = reach.get(hit.term.category, (-1, -1))
        if (hit.end <= owner[1] and span != owner) or (hit.end <= same[1] and span != same):
            continue
        kept.append(hit)
        if hit.end > same[1]:
            reach[hit.term.category] = span
        if hit.term.category in OWNERS and hit.end > owner[1]:
            owner = span
    return kept


def _load_toml(path: pathlib.Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_watchlist(path: pathlib.Path) -> Iterator[Term]:
    """Yield the entity terms of watchlist.toml: [[company]], [[product]] and [[country]] tables."""
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
