"""The `classify` and `eval` commands as pure functions over text streams.

`classify_lines` turns input lines (JSON Lines with title/summary/id/lang, or plain text) into output
dicts; `evaluate` scores a classifier on labelled records; `format_report` prints the figures, with the
keyword baseline beside them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from feeds.records import Verdict


class ItemClassifier(Protocol):
    """Anything with the classifier's `classify` signature (the engine, the keyword baseline)."""

    def classify(self, title: str, summary: str = "", lang: str | None = None) -> Verdict: ...


def parse_line(line: str, number: int) -> dict[str, Any] | None:
    """One input line as a record with id, title, summary, lang; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    record: Any = None
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = None
    if not isinstance(record, dict):
        return {"id": str(number), "title": text, "summary": "", "lang": None}
    return {
        "id": str(record.get("id", number)),
        "title": str(record.get("title") or ""),
        "summary": str(record.get("summary") or ""),
        "lang": record.get("lang") if isinstance(record.get("lang"), str) else None,
    }


def verdict_dict(item_id: str, verdict: Verdict) -> dict[str, Any]:
    """The JSON object `classify` writes for one item."""
    return {
        "id": item_id,
        "flag": verdict.flag,
        "score": verdict.score,
        "direction": verdict.direction if verdict.flag else "neutral",
        "companies": list(verdict.companies),
        "tickers": list(verdict.tickers),
        "products": list(verdict.products),
        "reasons": list(verdict.reasons),
    }


def classify_lines(classifier: ItemClassifier, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Classify each non-blank input line (JSON Lines or plain text); ids default to the line number."""
    for number, line in enumerate(lines, start=1):
        record = parse_line(line, number)
        if record is not None:
            verdict = classifier.classify(record["title"], record["summary"], record["lang"])
            yield verdict_dict(record["id"], verdict)


@dataclass(slots=True)
class Counts:
    """A confusion matrix."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, label: bool, flag: bool) -> None:
        if label:
            self.tp, self.fn = self.tp + flag, self.fn + (not flag)
        else:
            self.fp, self.tn = self.fp + flag, self.tn + (not flag)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class EvalReport:
    """The figures of one evaluation run; borderline items are counted apart."""

    overall: Counts = field(default_factory=Counts)
    by_lang: dict[str, Counts] = field(default_factory=dict)
    borderline: Counts = field(default_factory=Counts)
    direction_right: int = 0
    direction_total: int = 0
    errors: list[str] = field(default_factory=list)  # "fp id" / "fn id" / "dir id: want -> got"

    @property
    def direction_accuracy(self) -> float:
        return self.direction_right / self.direction_total if self.direction_total else 1.0


def evaluate(classifier: ItemClassifier, records: Iterable[dict[str, Any]]) -> EvalReport:
    """Score `classifier` on labelled records (title, summary, label, optional lang, borderline, direction)."""
    report = EvalReport()
    for number, record in enumerate(records, start=1):
        lang = str(record.get("lang") or "?")
        verdict = classifier.classify(str(record.get("title") or ""), str(record.get("summary") or ""), lang)
        label = bool(int(record.get("label", 0)))
        item_id = str(record.get("id", number))
        if record.get("borderline"):
            report.borderline.add(label, verdict.flag)
            continue
        report.overall.add(label, verdict.flag)
        report.by_lang.setdefault(lang, Counts()).add(label, verdict.flag)
        if label != verdict.flag:
            report.errors.append(f"{'fn' if label else 'fp'} {item_id}")
        want = record.get("direction")
        if label and verdict.flag and want:
            report.direction_total += 1
            report.direction_right += want == verdict.direction
            if want != verdict.direction:
                report.errors.append(f"dir {item_id}: {want} -> {verdict.direction}")
    return report


def read_records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Labelled JSON Lines; blank lines skipped; ValueError naming the line on bad JSON."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"line {number}: expected a JSON object")
            yield record


def _row(name: str, counts: Counts, other: Counts | None) -> str:
    row = (
        f"{name:<10} {counts.n:>5} {counts.precision:>6.3f} {counts.recall:>6.3f} {counts.f1:>6.3f}"
        f"   tp={counts.tp} fp={counts.fp} fn={counts.fn}"
    )
    if other is not None:
        row += f"   | baseline P={other.precision:.3f} R={other.recall:.3f} F1={other.f1:.3f}"
    return row


def format_report(report: EvalReport, baseline: EvalReport | None = None) -> str:
    """A plain-text table: overall and per-language P/R/F1, direction accuracy, borderline apart."""
    lines = [f"{'':<10} {'n':>5} {'P':>6} {'R':>6} {'F1':>6}", _row("overall", report.overall, _pick(baseline))]
    for lang in sorted(report.by_lang):
        other = baseline.by_lang.get(lang) if baseline else None
        lines.append(_row(lang, report.by_lang[lang], other))
    lines.append(
        f"direction accuracy on flagged true positives: {report.direction_accuracy:.3f}"
        f" ({report.direction_right}/{report.direction_total})"
    )
    b = report.borderline
    lines.append(
        f"borderline (not scored): {b.n} items, flagged {b.tp + b.fp}"
        f" (labelled 1: {b.tp}/{b.tp + b.fn}, labelled 0: {b.fp}/{b.fp + b.tn})"
    )
    if baseline is not None:
        lines.append(f"baseline (chipmaker or chip word AND export word): {_row('overall', baseline.overall, None)}")
    if report.errors:
        lines.append("errors: " + ", ".join(report.errors))
    return "\n".join(lines)


def _pick(baseline: EvalReport | None) -> Counts | None:
    return baseline.overall if baseline else None
