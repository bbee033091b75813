"""Story clustering: the same story from several outlets or languages becomes one alert."""
# ruff: noqa: RUF001 -- real CJK text and full-width letters are the point of these fixtures

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest

from feeds.classify import Classifier
from feeds.cluster import StoryIndex, StoryMatch, shingles
from feeds.records import Item, Verdict

CLASSIFIER = Classifier.from_dir(pathlib.Path(__file__).resolve().parent.parent / "config")
T0 = datetime(2026, 4, 15, 20, 0, tzinfo=UTC)

REUTERS = (
    "US tells Nvidia it needs a licence to export H20 chips to China",
    "Nvidia said the US government informed it that exports of its H20 AI chip to China now require a licence, "
    "and it expects a $5.5 billion charge.",
)
SYNDICATED = (
    "US tells Nvidia it needs licence to export H20 chips to China - report",
    "Nvidia said on Tuesday the US government informed it that exports of its H20 AI chip to China now require "
    "a licence; it expects a $5.5 billion charge.",
)
CHINESE = (
    "美国要求英伟达H20芯片对华出口须获许可",
    "英伟达表示，美国政府通知其向中国出口H20芯片需要获得许可证，公司预计将计提55亿美元费用。",
)
OTHER_STORY = (
    "Netherlands widens export controls on ASML lithography machines",
    "The Dutch government said more DUV systems will need an export licence.",
)
OPPOSITE = (
    "US grants Nvidia licences to resume H20 exports to China",
    "The Commerce Department began issuing licences for the H20, easing the April restriction.",
)


def make(title: str, summary: str, feed: str = "reuters", lang: str = "en") -> tuple[Item, Verdict]:
    """An item as the pipeline sees it, with the real classifier's verdict."""
    item = Item(f"{feed}:{title}", feed, f"https://{feed}.example/{abs(hash(title))}", title, summary, T0, T0, lang)
    verdict = CLASSIFIER.classify(title, summary, lang)
    assert verdict.flag, verdict
    return item, verdict


@pytest.fixture
def index() -> StoryIndex:
    """An index holding the first report of the H20 licence story."""
    stories = StoryIndex(timedelta(hours=36))
    item, verdict = make(*REUTERS)
    stories.add("story-h20", item, verdict, T0)
    return stories


class TestStoryIndex:
    def test_first_report_has_no_match(self) -> None:
        """An empty index finds nothing: the first report is fully novel."""
        item, verdict = make(*REUTERS)
        assert StoryIndex().match(item, verdict, T0) is None

    def test_same_story_from_another_outlet_joins_the_cluster(self, index: StoryIndex) -> None:
        """A syndicated copy from a second outlet matches the first report with near-zero novelty."""
        item, verdict = make(*SYNDICATED, feed="marketwatch")
        found = index.match(item, verdict, T0 + timedelta(minutes=20))
        assert found is not None
        assert found.cluster_id == "story-h20"
        assert found.novelty < 0.3

    def test_same_story_in_another_language_joins_the_cluster(self, index: StoryIndex) -> None:
        """The Chinese report of the same story matches through company, product and direction."""
        item, verdict = make(*CHINESE, feed="cls-cn", lang="zh")
        found = index.match(item, verdict, T0 + timedelta(hours=2))
        assert found == StoryMatch("story-h20", found.novelty)
        assert found.novelty < 0.5

    def test_a_different_story_is_not_matched(self, index: StoryIndex) -> None:
        """Another company's export-control story is a story of its own."""
        item, verdict = make(*OTHER_STORY)
        assert index.match(item, verdict, T0 + timedelta(hours=1)) is None

    def test_other_companies_export_stories_are_not_matched(self) -> None:
        """Stories sharing only the domain's vocabulary (export, licence, China) are kept apart."""
        stories = StoryIndex()
        for n, (title, summary) in enumerate([REUTERS, OTHER_STORY]):
            item, verdict = make(title, summary)
            assert stories.match(item, verdict, T0) is None
            stories.add(f"s{n}", item, verdict, T0)
        item, verdict = make(
            "AMD MI308 sales to China blocked by new export rule",
            "Washington requires export licenses for AMD MI308 accelerators bound for China.",
        )
        assert stories.match(item, verdict, T0) is None

    def test_the_opposite_move_is_a_new_story(self, index: StoryIndex) -> None:
        """Easing news about the same chip is not a rehash of the tightening story."""
        item, verdict = make(*OPPOSITE)
        assert index.match(item, verdict, T0 + timedelta(hours=3)) is None

    def test_stories_past_the_window_are_forgotten(self, index: StoryIndex) -> None:
        """A copy arriving after the window is treated as a first report again."""
        item, verdict = make(*SYNDICATED, feed="marketwatch")
        assert index.match(item, verdict, T0 + timedelta(hours=37)) is None
        assert len(index) == 0

    def test_attached_sources_extend_the_cluster(self, index: StoryIndex) -> None:
        """A copy added to the cluster is itself matched by later copies of the same cluster."""
        item, verdict = make(*CHINESE, feed="cls-cn", lang="zh")
        index.add("story-h20", item, verdict, T0 + timedelta(hours=1))
        again, again_verdict = make(CHINESE[0] + "（更新）", CHINESE[1], feed="sina", lang="zh")
        found = index.match(again, again_verdict, T0 + timedelta(hours=30))
        assert found is not None and found.cluster_id == "story-h20"


class TestShingles:
    def test_chinese_text_becomes_character_pairs(self) -> None:
        """Chinese runs are cut into overlapping character pairs, Latin words kept whole, domain words dropped."""
        words = shingles("美国限制H20出口", "")
        assert {"国限", "限制", "h20"} <= words
        assert "出口" not in words

    def test_case_and_width_do_not_matter(self) -> None:
        """Full-width and upper-case text give the same shingles."""
        assert shingles("ＮＶＩＤＩＡ H20 EXPORT", "") == shingles("nvidia h20 export", "")
