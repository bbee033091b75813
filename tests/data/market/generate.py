"""Writes config/demo/prices.csv and the yfinance-shaped fixtures beside this file (deterministic).

The bars are synthetic: Brownian bridges through anchor prices close to the real moves of 14-15 July 2025
(Nvidia's H20 China licence news came out late on Monday 14 July, US time). Not a test; run by hand:
    .venv/bin/python tests/data/market/generate.py
"""

from __future__ import annotations

import csv
import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# ticker -> [(ET time "YYYY-MM-DD HH:MM", price)], bars exist at every anchor
ANCHORS = {
    "NVDA": [
        ("2025-07-14 09:30", 165.37),
        ("2025-07-14 12:00", 164.60),
        ("2025-07-14 15:59", 164.07),
        ("2025-07-14 19:59", 164.15),
        ("2025-07-15 04:00", 170.10),
        ("2025-07-15 06:45", 170.90),
        ("2025-07-15 07:30", 171.35),
        ("2025-07-15 07:45", 171.52),
        ("2025-07-15 09:29", 171.60),
        ("2025-07-15 09:30", 171.19),
        ("2025-07-15 10:14", 172.05),
        ("2025-07-15 10:29", 171.80),
    ],
    "AMD": [
        ("2025-07-14 09:30", 146.50),
        ("2025-07-14 12:00", 145.40),
        ("2025-07-14 15:59", 146.24),
        ("2025-07-14 19:59", 146.40),
        ("2025-07-15 04:00", 150.20),
        ("2025-07-15 06:45", 151.40),
        ("2025-07-15 07:30", 151.90),
        ("2025-07-15 07:45", 151.75),
        ("2025-07-15 09:29", 152.10),
        ("2025-07-15 09:30", 152.50),
        ("2025-07-15 10:14", 154.20),
        ("2025-07-15 10:29", 154.60),
    ],
    "INTC": [
        ("2025-07-14 09:30", 22.95),
        ("2025-07-14 15:59", 22.86),
        ("2025-07-14 19:59", 22.84),
        ("2025-07-15 04:00", 22.90),
        ("2025-07-15 09:29", 22.80),
        ("2025-07-15 10:29", 22.71),
    ],
    "TSM": [
        ("2025-07-14 09:30", 235.20),
        ("2025-07-14 15:59", 236.10),
        ("2025-07-14 19:59", 236.30),
        ("2025-07-15 04:00", 238.00),
        ("2025-07-15 09:29", 239.10),
        ("2025-07-15 10:29", 238.60),
    ],
    "ASML": [
        ("2025-07-14 09:30", 801.50),
        ("2025-07-14 15:59", 805.20),
        ("2025-07-14 19:59", 805.00),
        ("2025-07-15 04:00", 806.00),
        ("2025-07-15 09:29", 806.90),
        ("2025-07-15 10:29", 799.80),
    ],
}
# Friday 11 July 2025, the afternoon and the post-market session (for the after-close and weekend fixtures)
FRIDAY = {
    "NVDA": [
        ("2025-07-11 15:00", 164.50),
        ("2025-07-11 15:59", 164.92),
        ("2025-07-11 16:45", 165.20),
        ("2025-07-11 17:30", 165.08),
        ("2025-07-11 17:45", 165.31),
        ("2025-07-11 18:59", 165.12),
        ("2025-07-11 19:44", 165.00),
        ("2025-07-11 19:59", 165.06),
    ],
    "AMD": [
        ("2025-07-11 15:00", 146.00),
        ("2025-07-11 15:59", 146.42),
        ("2025-07-11 16:45", 146.10),
        ("2025-07-11 17:30", 146.30),
        ("2025-07-11 17:45", 146.21),
        ("2025-07-11 18:59", 146.50),
        ("2025-07-11 19:44", 146.61),
        ("2025-07-11 19:59", 146.55),
    ],
}
VOLATILITY = {"NVDA": 0.0007, "AMD": 0.0009, "INTC": 0.0008, "TSM": 0.0006, "ASML": 0.0006}
# share of extended-hours minutes that trade at all (1-minute bars exist only where trades happened)
EXTENDED_DENSITY = {"NVDA": 0.85, "AMD": 0.6, "INTC": 0.25, "TSM": 0.2, "ASML": 0.1}


def _et(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ET)


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    count = int((end - start).total_seconds() // 60)
    return [start + timedelta(minutes=i) for i in range(count + 1)]


def _session_minutes(day: str, start: str, end: str) -> list[datetime]:
    return _minutes(_et(f"{day} {start}"), _et(f"{day} {end}"))


def _bridge(rng: random.Random, a: float, b: float, steps: int, vol: float) -> list[float]:
    """A Brownian bridge from a to b in `steps` steps (values after a, ending exactly at b)."""
    walk = [0.0]
    for _ in range(steps):
        walk.append(walk[-1] + rng.gauss(0.0, vol))
    return [a + (b - a) * i / steps + (walk[i] - walk[-1] * i / steps) * a for i in range(1, steps + 1)]


def _extended(moment: datetime) -> bool:
    local = moment.astimezone(ET)
    return not (local.hour, local.minute) >= (9, 30) or (local.hour, local.minute) >= (16, 0)


Row = tuple[datetime, float, float, float, float, int]


def bars_for(ticker: str, times: list[datetime], seed: int, table: dict | None = None) -> list[Row]:
    """(time, open, high, low, close, volume) through the ticker's anchors, sparse outside regular hours."""
    rng = random.Random(f"{ticker}-{seed}")
    anchors = [(_et(t), p) for t, p in (table or ANCHORS)[ticker]]
    fixed = {t for t, _ in anchors}
    path: dict[datetime, float] = {anchors[0][0]: anchors[0][1]}
    for (t0, p0), (t1, p1) in itertools.pairwise(anchors):
        span = [t for t in times if t0 < t <= t1]
        for t, price in zip(span, _bridge(rng, p0, p1, len(span), VOLATILITY[ticker]), strict=True):
            path[t] = price
    rows: list[Row] = []
    prev = None
    for t in times:
        if t not in path or (t not in fixed and _extended(t) and rng.random() > EXTENDED_DENSITY[ticker]):
            continue
        close = round(path[t], 2)
        prev = close if prev is None else prev
        wiggle = abs(rng.gauss(0, VOLATILITY[ticker] * close / 2))
        high, low = round(max(prev, close) + wiggle, 2), round(min(prev, close) - wiggle, 2)
        base = 400_000 if ticker == "NVDA" else 120_000
        volume = int(base * rng.uniform(0.4, 1.6) * (0.05 if _extended(t) else 1.0))
        rows.append((t, prev, high, low, close, volume))
        prev = close
    return rows


def demo_times() -> list[datetime]:
    return _session_minutes("2025-07-14", "09:30", "19:59") + _session_minutes("2025-07-15", "04:00", "10:29")


def write_demo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["ticker", "time", "open", "high", "low", "close", "volume"])
        for ticker in ANCHORS:
            for t, o, h, lo, c, v in bars_for(ticker, demo_times(), seed=1):
                stamp = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.writerow([ticker, stamp, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", v])


def write_yf_minute(
    path: Path, tickers: list[str], times: list[datetime], seed: int, table: dict | None = None
) -> None:
    """Long CSV of what yfinance.download(interval='1m', prepost=True) returned, index in exchange time."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["Ticker", "Datetime", "Open", "High", "Low", "Close", "Adj Close", "Volume"])
        for ticker in tickers:
            for t, o, h, lo, c, v in bars_for(ticker, times, seed, table):
                out.writerow([ticker, t.isoformat(), o, h, lo, c, c, v])


def main() -> None:
    write_demo(ROOT / "config" / "demo" / "prices.csv")
    tue = _session_minutes("2025-07-14", "19:00", "19:59") + _session_minutes("2025-07-15", "04:00", "10:29")
    write_yf_minute(HERE / "yf_1m_2025-07-15.csv", ["NVDA", "AMD"], tue, seed=2)
    fri = _session_minutes("2025-07-11", "15:00", "19:59")
    write_yf_minute(HERE / "yf_1m_2025-07-11.csv", ["NVDA", "AMD"], fri, seed=3, table=FRIDAY)


if __name__ == "__main__":
    main()
