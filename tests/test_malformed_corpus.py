"""Every file of the malformed-feed corpus goes through parse, classify and render without an unhandled
exception, and the good story inside still alerts; served all at once, they cannot stop one poll."""

from __future__ import annotations

import io
import logging
import time
import tomllib
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import build_app, poll_all
from bot.errors import FeedUnreadable
from bot.settings import Settings
from feeds.classify import Classifier
from feeds.parse import parse_feed
from feeds.records import FeedSpec
from tests.render_checks import render_everywhere
from tests.servers.feedserver import FeedServer, Route

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"
MANIFEST: dict[str, dict[str, str]] = tomllib.loads((CORPUS / "manifest.toml").read_text("utf-8"))["files"]
NOW = datetime(2025, 7, 15, 3, 10, tzinfo=UTC)
STORY = "US adds Chinese chipmaker SMIC to Entity List"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_dir(Path(__file__).resolve().parent.parent / "config")


def test_manifest_lists_every_file() -> None:
    """Each corpus file is described in the manifest, and each manifest entry exists."""
    files = {p.name for p in CORPUS.iterdir() if p.suffix in {".xml", ".json"}}
    assert files == set(MANIFEST)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_file_parses_classifies_and_renders(name: str, classifier: Classifier) -> None:
    """The file is either a clear FeedUnreadable or items that classify and render safely everywhere."""
    expect = MANIFEST[name]["expect"]
    started = time.perf_counter()
    try:
        items = parse_feed((CORPUS / name).read_bytes(), FeedSpec("corpus", "https://corpus.example/"), NOW)
    except FeedUnreadable:
        assert expect in {"unreadable", "survives"}, f"{name}: {MANIFEST[name]['what']}"
        return
    assert expect != "unreadable", f"{name} parsed, but the manifest says it cannot"
    flagged = []
    for item in items:
        verdict = classifier.classify(item.title, item.summary, item.lang)
        render_everywhere(item, verdict)
        if verdict.flag:
            flagged.append(item.title)
    if expect == "alert":
        assert any(title.startswith(STORY) for title in flagged), f"{name}: the good story was lost"
    assert time.perf_counter() - started < 2


async def test_whole_corpus_in_one_poll_crashes_nothing(
    feed_server: FeedServer, settings: Settings, caplog: pytest.LogCaptureFixture, classifier: Classifier
) -> None:
    """All corpus files served as feeds in one poll: every feed reports new or failed, none escapes the pipeline."""
    served = {name: Route((CORPUS / name).read_bytes(), content_type="application/xml") for name in MANIFEST}
    feeds = [FeedSpec(name, feed_server.route(f"/{name}", route), interval_s=60) for name, route in served.items()]
    caplog.set_level(logging.WARNING)
    async with AsyncExitStack() as stack:
        app = await build_app(replace(settings, fetch_max_bytes=1_048_576), feeds, stack, out=io.StringIO(),
                              clock=lambda: datetime.now(UTC), classifier=classifier)
        reports = await poll_all(app)
    statuses = {r.feed: r.status for r in reports}
    assert set(statuses.values()) <= {"new", "failed"}
    assert [r.getMessage() for r in caplog.records if "poll failed" in r.getMessage()] == []
    failed = {name for name, status in statuses.items() if status == "failed"}
    assert failed <= {n for n, m in MANIFEST.items() if m["expect"] != "alert"}
