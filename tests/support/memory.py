"""Peak memory of everything a test session started: this process and all its descendants.

Measured as PSS (proportional set size, /proc/<pid>/smaps_rollup): a page shared by n processes counts
1/n in each, so the sum over the tree is the memory the tree really occupies. The plain sum of RSS counts
shared pages (Ray's libraries, mapped by every Ray process) once per process; it is kept as an upper bound."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _pss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_memory(root: int) -> tuple[int, int]:
    """(PSS, RSS) of root and its descendants, in bytes."""
    page = os.sysconf("SC_PAGE_SIZE")
    pss = rss = 0
    for pid in _tree(root):
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
        pss += _pss_bytes(pid) or 0
    return pss, rss


class PeakMemory:
    """Samples the process tree's memory in a thread until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peak_pss = 0
        self.peak_rss = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        """The peaks (PSS, RSS) in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_pss, self.peak_rss

    def _run(self) -> None:
        root = os.getpid()
        while not self._stop.is_set():
            pss, rss = tree_memory(root)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self._stop.wait(self._interval)
