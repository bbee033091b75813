"""The `classify` and `eval` command logic over text streams, and the keyword baseline."""

from __future__ import annotations

import json
import pathlib

import pytest

from bot.evaluation import classify_lines, evaluate, format_report, read_records
from feeds.baseline import KeywordBaseline
from feeds.classify import Classifier

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "config"
CLASSIFIER = Classifier.from_dir(CONFIG)
KEYS = {"id", "flag", "score", "direction", "companies", "tickers", "products", "reasons"}

# A small labelled set written for these tests (never the shared dev file).
LABELLED = [
    {"id": "p1", "lang": "en", "label": 1, "direction": "tightening",
     "title": "US expands chip export controls to more Chinese firms", "summary": "Huawei suppliers are added."},
    {"id": "p2", "lang": "de", "label": 1, "direction": "easing",
     "title": "USA lockern Exportkontrollen für Nvidia-Chips", "summary": "Der H20 darf wieder geliefert werden."},
    {"id": "n1", "lang": "en", "label": 0,
     "title": "Nvidia posts record revenue", "summary": "Data-centre sales rose."},
    {"id": "n2", "lang": "de", "label": 0,
     "title": "Chipexporte Taiwans steigen", "summary": "Rekord bei Halbleitern."},
    {"id": "b1", "lang": "en", "label": 0, "borderline": True,
     "title": "Nvidia earnings: China sales hit by export curbs", "summary": "Revenue still beat estimates."},
]  # fmt: skip


class TestClassifyLines:
    def test_json_lines_keep_their_ids(self) -> None:
        """JSON input gives one output per line with the input's id and every contract key."""
        lines = [json.dumps({"id": r["id"], "title": r["title"], "summary": r["summary"]}) for r in LABELLED[:3]]
        out = list(classify_lines(CLASSIFIER, lines))
        assert [o["id"] for o in out] == ["p1", "p2", "n1"]
        assert all(set(o) == KEYS for o in out)
        assert [o["flag"] for o in out] == [True, True, False]
        assert out[1]["direction"] == "easing"

    def test_plain_text_lines_are_titles_numbered_by_line(self) -> None:
        """Plain text lines are classified as titles; blank lines are skipped; ids are line numbers."""
        out = list(classify_lines(CLASSIFIER, ["Japan tightens export controls on chip tools\n", "\n", "hello"]))
        assert [(o["id"], o["flag"]) for o in out] == [("1", True), ("3", False)]

    def test_broken_json_is_read_as_text(self) -> None:
        """A line that looks like JSON but is not still gets an answer instead of stopping the stream."""
        out = list(classify_lines(CLASSIFIER, ['{"title": "unterminated']))
        assert out[0]["id"] == "1" and out[0]["flag"] is False

    def test_output_is_json_serialisable(self) -> None:
        """Every output dict serialises to one JSON line, non-ASCII kept."""
        out = next(classify_lines(CLASSIFIER, [json.dumps({"title": "美国扩大对华芯片出口管制"}, ensure_ascii=False)]))
        assert "\n" not in json.dumps(out, ensure_ascii=False)
        assert out["flag"] is True


class TestEvaluate:
    def test_counts_precision_recall_and_direction(self) -> None:
        """Borderline items are kept apart; the rest give P, R, F1 and direction accuracy."""
        report = evaluate(CLASSIFIER, LABELLED)
        assert (report.overall.tp, report.overall.fp, report.overall.fn) == (2, 0, 0)
        assert report.borderline.n == 1
        assert report.direction_accuracy == 1.0
        assert set(report.by_lang) == {"en", "de"}

    def test_report_prints_overall_per_language_and_baseline(self) -> None:
        """The printed report names every figure the eval command promises."""
        text = format_report(evaluate(CLASSIFIER, LABELLED), evaluate(KeywordBaseline.from_dir(CONFIG), LABELLED))
        for needle in ("overall", "de ", "en ", "direction accuracy", "borderline", "baseline"):
            assert needle in text

    def test_read_records_names_the_bad_line(self) -> None:
        """A line that is not JSON is reported with its number."""
        with pytest.raises(ValueError, match="line 2"):
            list(read_records(['{"title": "a", "label": 0}', "oops"]))


class TestKeywordBaseline:
    def test_flags_chip_and_export_together(self) -> None:
        """The baseline flags any chip word next to any export word, statistics included."""
        baseline = KeywordBaseline.from_dir(CONFIG)
        assert baseline.classify("Taiwan's chip exports hit a record").flag
        assert not baseline.classify("Nvidia posts record revenue").flag
