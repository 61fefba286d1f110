"""What ``stats`` adds to the kernel's counters: event-loop lag, message rate, memory.

Loop lag is measured the cheap way: a task owned by the debug server sleeps
for a fixed interval and records how much later than asked it woke up. A
loop busy with long synchronous stretches (a handler that blocks, a huge
JSON dump) shows up there first.
"""

from __future__ import annotations

import collections
import os
import resource
import sys

import trio

__all__ = ["LoopLag", "Throughput", "rss_bytes"]


class LoopLag:
    """Wake-up lateness of a periodic sleep, in seconds (latest and recent max)."""

    def __init__(self, interval_s: float = 0.25, window: int = 40) -> None:
        if not interval_s > 0:
            raise ValueError(f"lag interval_s must be > 0, not {interval_s!r}")
        self.interval_s = interval_s
        self._recent: collections.deque[float] = collections.deque(maxlen=window)

    @property
    def last_s(self) -> float:
        """The latest measurement (0.0 before the first)."""
        return self._recent[-1] if self._recent else 0.0

    @property
    def max_s(self) -> float:
        """The largest of the recent measurements (about the last 10 s by default)."""
        return max(self._recent, default=0.0)

    async def run(self) -> None:
        """Measure forever; returns only by cancellation (a checkpoint every interval)."""
        while True:
            asked = trio.current_time() + self.interval_s
            await trio.sleep_until(asked)
            self._recent.append(max(0.0, trio.current_time() - asked))


class Throughput:
    """Messages per second between two readings of a monotonically counted total.

    The kernel keeps a processed count per actor, not a global one, so the
    rate is the change of the sum between consecutive ``stats`` requests (or
    since the server started). Actors that were passivated take their counts
    with them; a negative change reads as 0.
    """

    def __init__(self, total: int, now: float) -> None:
        self._total = total
        self._at = now

    def rate(self, total: int, now: float) -> float:
        """Messages/s since the previous call, then remember ``(total, now)``."""
        elapsed = now - self._at
        delta = total - self._total
        self._total, self._at = total, now
        return max(0.0, delta / elapsed) if elapsed > 0 else 0.0


def rss_bytes() -> int:
    """Resident memory of this process: ``/proc/self/statm`` where it exists,
    else the peak RSS from ``getrusage``. Never raises (0 if unknown)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):
        return 0
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
