"""Exponential restart backoff with jitter (Akka's ``BackoffSupervisor`` rule).

``delay(n) = min(max_s, min_s * 2**n) * (1 + jitter * U[0,1))`` for the n-th
consecutive failure (n from 0), where the count resets once the child has run
for ``reset_after_s`` without failing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delay policy. ``min_s == 0`` restarts at once (no backoff)."""

    min_s: float = 0.1
    max_s: float = 10.0
    jitter: float = 0.2
    reset_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.min_s >= 0:
            raise ValueError(f"backoff min_s must be >= 0, not {self.min_s!r}")
        if not self.max_s >= self.min_s:
            raise ValueError(f"backoff max_s must be >= min_s ({self.min_s}), not {self.max_s!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be in [0, 1], not {self.jitter!r}")
        if not self.reset_after_s >= 0:
            raise ValueError(f"backoff reset_after_s must be >= 0, not {self.reset_after_s!r}")

    def delay(self, consecutive: int, rng: random.Random) -> float:
        """Seconds to wait before the restart that follows ``consecutive`` earlier failures."""
        if self.min_s == 0:
            return 0.0
        base = min(self.max_s, self.min_s * (2 ** min(consecutive, 62)))
        return float(base * (1 + self.jitter * rng.random()))


NO_BACKOFF = Backoff(min_s=0.0, max_s=0.0, jitter=0.0)
