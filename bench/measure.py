"""CPU seconds and resident memory of this process and its children (a process pool), read from /proc."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(c) for c in task.read_text().split())
        except OSError:
            continue
    return found


def process_tree(pid: int | None = None) -> list[int]:
    """This process and all its live descendants."""
    todo = [pid or os.getpid()]
    seen: list[int] = []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo.extend(_children(current))
    return seen


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except OSError:
        return 0


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process, its live children, and the children it has reaped."""
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(_cpu(p) for p in process_tree()) + reaped.ru_utime + reaped.ru_stime


def tree_rss() -> int:
    """Resident bytes of this process and its live children, now."""
    return sum(_rss(p) for p in process_tree())


class PeakRss:
    """Samples `tree_rss` every `interval` seconds in a thread; `peak` is the largest seen (bytes)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-rss")

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
