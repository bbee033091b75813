"""The scale bench still runs end to end (20 feeds, one cycle of each kind), so it does not rot."""

from __future__ import annotations

import pytest

from bench.scale import main


@pytest.mark.timeout(120)
def test_scale_bench_runs_with_twenty_feeds(capsys: pytest.CaptureFixture[str]) -> None:
    """Newsbot and the baseline both complete cold, warm and change cycles, and the table is printed."""
    result = main(["--feeds", "20", "--warm", "1", "--changes", "1", "--alerts", "1", "--service-cycles", "1",
                   "--interval", "1"])
    ours, base = result["newsbot"][0], result["baseline"]
    assert ours["cold"]["statuses"] == {"new": 20}
    assert ours["warm"][0]["statuses"] == {"unchanged": 20}
    assert ours["change"][0]["sent"] == ours["change"][0]["alerts"] == 1  # one story, one sendMessage
    assert base["cold"]["items"] == 20 * 50
    assert result["summary"][0]["fetch_p99"] is not None
    assert len(ours["service"]["fetch_to_send_ms"]) == 1  # the same under the scheduler, as `serve` runs
    assert "fetch done → sendMessage p99" in capsys.readouterr().out
