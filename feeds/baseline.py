"""The keyword rule most news bots use, kept as the baseline the classifier must beat.

Flag when a chipmaker name or a chip/semiconductor word AND an export word both appear (substring match,
case-insensitive), in any language of the configured vocabulary.
"""

from __future__ import annotations

import pathlib
import re

from feeds.lexicon import load_terms, normalize
from feeds.records import Verdict


class KeywordBaseline:
    """Chipmaker-or-chip word AND export word: the rule to beat. Same `classify` signature as Classifier."""

    def __init__(self, subjects: list[str], exports: list[str]) -> None:
        self._subject = _alternation(subjects)
        self._export = _alternation(exports)

    @classmethod
    def from_dir(cls, config_dir: pathlib.Path) -> KeywordBaseline:
        """Take the company names and the chip and export words from the classifier's own vocabulary."""
        terms = load_terms(pathlib.Path(config_dir))
        subjects = [
            t.text for t in terms if t.category == "chip" or (t.entity is not None and t.entity.kind == "company")
        ]
        return cls(subjects, [t.text for t in terms if t.category == "export"])

    def classify(self, title: str, summary: str = "", lang: str | None = None) -> Verdict:
        """Flag on co-occurrence; score is 1.0 or 0.0 and reasons name the two words found."""
        text = normalize(f"{title}\n{summary}")
        subject = self._subject.search(text)
        export = self._export.search(text) if subject else None
        if subject is None or export is None:
            return Verdict(flag=False, score=0.0)
        return Verdict(flag=True, score=1.0, reasons=(f'keywords: "{subject[0]}" + "{export[0]}"',))


def _alternation(words: list[str]) -> re.Pattern[str]:
    unique = sorted(set(words), key=len, reverse=True)
    return re.compile("|".join(re.escape(word) for word in unique))
