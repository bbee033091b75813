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


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (the forkserver's, the workers') split among their sharers."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(pid)


def tree_pss() -> int:
    """Proportional memory of this process and its live children, now (the honest sum for a process tree)."""
    return sum(_pss(p) for p in process_tree())


class PeakRss:
    """Samples RSS and PSS of the process tree every `interval` seconds in a thread; peaks in bytes."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_main = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-rss")

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss())
            self.peak_pss = max(self.peak_pss, tree_pss())
            self.peak_main = max(self.peak_main, _rss(os.getpid()))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
