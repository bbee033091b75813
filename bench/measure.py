"""CPU seconds and memory of this process and its children (the parse workers), read from /proc.

Helper processes the bench starts itself (the stand-in Bot API) are excluded by pid.
"""

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


def _pss(pid: int) -> int:
    """Proportional set size: pages shared with other processes (forkserver, workers) split among them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(pid)


class ProcessTree:
    """This process and its live descendants, minus `exclude` (and theirs)."""

    def __init__(self) -> None:
        self.exclude: set[int] = set()

    def pids(self) -> list[int]:
        todo = [os.getpid()]
        seen: list[int] = []
        while todo:
            current = todo.pop()
            if current in self.exclude:
                continue
            seen.append(current)
            todo.extend(_children(current))
        return seen

    def cpu(self) -> float:
        """CPU seconds (user + system) of the live tree and of the children this process has reaped."""
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return sum(_cpu(p) for p in self.pids()) + reaped.ru_utime + reaped.ru_stime

    def rss(self) -> int:
        """Resident bytes of the tree, summed (pages shared between processes count in each)."""
        return sum(_rss(p) for p in self.pids())

    def pss(self) -> int:
        """Proportional bytes of the tree (shared pages split): the honest sum for a process tree."""
        return sum(_pss(p) for p in self.pids())


TREE = ProcessTree()


class PeakRss:
    """Samples the tree's RSS and this process's RSS every `interval` seconds (PSS every tenth) in a thread."""

    def __init__(self, tree: ProcessTree = TREE, interval: float = 0.05) -> None:
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_main = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-rss")

    def _run(self) -> None:
        tick = 0
        while True:
            self.peak = max(self.peak, self.tree.rss())
            self.peak_main = max(self.peak_main, _rss(os.getpid()))
            if tick % 10 == 0:  # PSS costs the kernel ~1 ms a process (charged to us): ten times less often
                self.peak_pss = max(self.peak_pss, self.tree.pss())
            tick += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_main = max(self.peak_main, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        self.peak = max(self.peak, self.peak_main)
