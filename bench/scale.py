"""Scale bench: N feeds on a local server, newsbot against the feedparser loop, figures side by side.

    .venv/bin/python -m bench.scale                 # N = 1,000 (a few minutes, the baseline is slow)
    .venv/bin/python -m bench.scale --feeds 100     # a quick run

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.feedserver import FeedServerProcess, ServerConfig

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {"cold_wall": 20.0, "warm_wall": 2.0, "warm_cpu": 1.0, "rss": 250.0, "fetch_p99": 100.0, "speedup": 20.0}


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
        return dict(json.loads(response.read()))


def _side(module: str, spec: ServerConfig, port: int, extra: list[str]) -> dict[str, Any]:
    """Run one side in a fresh process; its JSON result, with the feed server's CPU seconds meanwhile."""
    before = _stats(port)["cpu_s"]
    command = [sys.executable, "-m", module, "--spec", json.dumps(asdict(spec)), "--port", str(port), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{module} failed:\n{done.stderr[-4000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["server_cpu_s"] = _stats(port)["cpu_s"] - before
    return result


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one side's run."""
    warm = run["warm"]
    pub = [v for c in run["change"] for v in c.get("pub_to_send_ms", [])]
    fetch = [v for c in run["change"] for v in c.get("fetch_to_send_ms", [])]
    service = run.get("service") or {}
    s_pub, s_fetch = service.get("pub_to_send_ms", []), service.get("fetch_to_send_ms", [])
    return {
        "svc_pub_p50": percentile(s_pub, 50), "svc_pub_p99": percentile(s_pub, 99),
        "svc_fetch_p50": percentile(s_fetch, 50), "svc_fetch_p99": percentile(s_fetch, 99),
        "svc_samples": len(s_pub) if service else None,
        "svc_cpu_share": service["cpu_s"] / service["wall_s"] if service else None,
        "cold_wall": run["cold"]["wall_s"], "cold_cpu": run["cold"]["cpu_s"],
        "warm_wall_best": min(c["wall_s"] for c in warm),
        "warm_wall_median": statistics.median(c["wall_s"] for c in warm),
        "warm_cpu_best": min(c["cpu_s"] for c in warm), "warm_cpu_median": statistics.median(c["cpu_s"] for c in warm),
        "change_wall_median": statistics.median(c["wall_s"] for c in run["change"]) if run["change"] else None,
        "rss": run["peak_rss_mb"], "pss": run.get("peak_pss_mb"), "main_rss": run.get("peak_main_rss_mb"),
        "pub_p50": percentile(pub, 50), "pub_p99": percentile(pub, 99),
        "fetch_p50": percentile(fetch, 50), "fetch_p99": percentile(fetch, 99), "samples": len(pub),
        "server_cpu": run["server_cpu_s"],
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}{unit}" if abs(value) >= 100 else f"{value:.2f}{unit}"


def table(ours: dict[str, Any], base: dict[str, Any] | None, n: int) -> str:
    b = base or {}
    speedup = b["warm_wall_median"] / ours["warm_wall_median"] if base else None
    rows = [
        ("cold cycle, wall s", "cold_wall", TARGETS["cold_wall"]),
        ("cold cycle, CPU s", "cold_cpu", None),
        ("warm cycle, wall s (best)", "warm_wall_best", None),
        ("warm cycle, wall s (median)", "warm_wall_median", TARGETS["warm_wall"]),
        ("warm cycle, CPU s (best)", "warm_cpu_best", None),
        ("warm cycle, CPU s (median)", "warm_cpu_median", TARGETS["warm_cpu"]),
        ("change cycle, wall s (median)", "change_wall_median", None),
        ("peak RSS, MB (all processes, summed)", "rss", TARGETS["rss"]),
        ("peak PSS, MB (all processes, shared split)", "pss", None),
        ("peak RSS, MB (main process)", "main_rss", None),
        ("cycles: publication → sendMessage p50, ms", "pub_p50", None),
        ("cycles: publication → sendMessage p99, ms", "pub_p99", None),
        ("cycles: fetch done → sendMessage p50, ms", "fetch_p50", None),
        ("cycles: fetch done → sendMessage p99, ms", "fetch_p99", None),
        ("cycles: alerts measured", "samples", None),
        ("service: publication → sendMessage p50, ms", "svc_pub_p50", None),
        ("service: publication → sendMessage p99, ms", "svc_pub_p99", None),
        ("service: fetch done → sendMessage p50, ms", "svc_fetch_p50", None),
        ("service: fetch done → sendMessage p99, ms", "svc_fetch_p99", TARGETS["fetch_p99"]),
        ("service: alerts measured", "svc_samples", None),
        ("service: CPU used, cores", "svc_cpu_share", None),
        ("feed server's own CPU s (whole side)", "server_cpu", None),
    ]
    lines = [f"N = {n:,} feeds · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f}", "",
             f"{'figure':<46}{'newsbot':>12}{'baseline':>12}{'target':>10}  ok"]
    for label, key, target in rows:
        value = ours.get(key)
        ok = "" if target is None or value is None else ("yes" if value <= target else "NO")
        lines.append(f"{label:<46}{_fmt(value):>12}{_fmt(b.get(key)):>12}{_fmt(target):>10}  {ok}")
    ok = "" if speedup is None else ("yes" if speedup >= TARGETS["speedup"] else "NO")
    lines.append(f"{'warm speed-up vs baseline (median), x':<46}{_fmt(speedup):>12}{'':>12}{'≥ 20':>10}  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000, help="number of feeds (default 1000)")
    parser.add_argument("--items", type=int, default=50, help="items per feed")
    parser.add_argument("--hosts", type=int, default=20, help="distinct loopback hosts serving the feeds")
    parser.add_argument("--no-conditional", type=float, default=0.2, help="fraction of feeds without validators")
    parser.add_argument("--change", type=float, default=0.02, help="fraction of feeds changing per change cycle")
    parser.add_argument("--alerts", type=int, default=10, help="export-control stories per change cycle (≤ 10)")
    parser.add_argument("--warm", type=int, default=5, help="warm cycles (nothing new) to measure")
    parser.add_argument("--changes", type=int, default=5, help="change cycles to measure latency on")
    parser.add_argument("--repeat", type=int, default=1, help="newsbot runs (each from a cold start)")
    parser.add_argument("--service-cycles", type=int, default=3,
                        help="publications measured while the service runs as `serve` does (0: skip)")
    parser.add_argument("--interval", type=float, default=10.0, help="feed interval in the service phase, s")
    parser.add_argument("--concurrency", type=int, help="polls at once in the cycles (default: poll_all's)")
    parser.add_argument("--probe", default="telegram", choices=["telegram", "sink"],
                        help="where alerts go: the Telegram sink and stand-in Bot API, or an in-process sink")
    parser.add_argument("--no-baseline", action="store_true", help="skip the feedparser loop")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args(argv)
    spec = ServerConfig(args.feeds, args.items, args.hosts, args.no_conditional, args.change, args.alerts)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with FeedServerProcess(spec) as server:
        runs = []
        for r in range(args.repeat):
            extra = ["--warm", str(args.warm), "--changes", str(args.changes), "--probe", args.probe,
                     "--first-change", str(1 + r * (args.changes + args.service_cycles)),
                     "--service-cycles", str(args.service_cycles), "--interval", str(args.interval),
                     *(["--concurrency", str(args.concurrency)] if args.concurrency else [])]
            runs.append(_side("bench.run_newsbot", spec, server.port, extra))
        base = None
        if not args.no_baseline:
            base = _side("bench.run_baseline", spec, server.port, ["--first-change", "1001"])
    ours = [summarise(r) for r in runs]
    best = min(ours, key=lambda s: s["warm_wall_median"])
    print(table(best, summarise(base) if base else None, args.feeds))
    if len(ours) > 1:
        print(f"\n{len(ours)} newsbot runs; warm wall medians: "
              + ", ".join(f"{s['warm_wall_median']:.2f}" for s in ours)
              + "; cold walls: " + ", ".join(f"{s['cold_wall']:.1f}" for s in ours))
    print(f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
          f"bench took {time.perf_counter() - started:.0f} s")
    result = {"spec": asdict(spec), "newsbot": runs, "baseline": base, "summary": ours,
              "baseline_summary": summarise(base) if base else None}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
