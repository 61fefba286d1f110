"""A circuit breaker per model: plain state plus functions of ``now``.

``now`` is ``trio.current_time()`` at the call site, so the virtual clock
drives it in tests. States::

    closed     calls go through; each failure counts, a success resets the count
    open       after ``failures_to_open`` consecutive failures: calls are skipped
               until ``cooldown_s`` has passed since it opened
    half_open  the cooldown passed: one trial call goes through (others are
               skipped while it runs); success closes, failure re-opens

Independently of the count, a ``retry-after`` from the provider holds the
model back (reported as ``open``) until that moment: the provider told us
when to come back, so the cascade moves to the next model rather than wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class Breaker:
    """One model's breaker. Not thread-safe; used from the trio loop only."""

    failures_to_open: int
    cooldown_s: float
    #: consecutive failures since the last success (never reset by the cooldown)
    failures: int = 0
    #: when the breaker last opened; None while closed
    opened_at: float | None = None
    #: a provider's retry-after: skip the model before this time
    held_until: float = -math.inf
    #: a half-open trial call is in flight
    probing: bool = False

    def __post_init__(self) -> None:
        if self.failures_to_open < 1:
            raise ValueError(f"failures_to_open must be >= 1, not {self.failures_to_open!r}")
        if not self.cooldown_s > 0:
            raise ValueError(f"cooldown_s must be > 0, not {self.cooldown_s!r}")

    def state(self, now: float) -> BreakerState:
        """The state at ``now``; pure."""
        if now < self.held_until:
            return "open"
        if self.opened_at is None:
            return "closed"
        return "half_open" if now >= self.opened_at + self.cooldown_s else "open"

    def try_acquire(self, now: float) -> bool:
        """May a call go through at ``now``? In half_open, True for one caller only,
        who must then call ``success``, ``failure`` or ``release``."""
        match self.state(now):
            case "closed":
                return True
            case "half_open" if not self.probing:
                self.probing = True
                return True
            case _:
                return False

    def success(self) -> None:
        """The call succeeded: close."""
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self, now: float, retry_after: float | None = None) -> None:
        """The call failed at ``now``: count it, open at the threshold (re-open when
        it was the half-open trial), and hold the model for ``retry_after`` seconds."""
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at = now
        self.probing = False
        if retry_after is not None:
            self.held_until = max(self.held_until, now + retry_after)

    def release(self) -> None:
        """The call ended with no verdict on the model (cancelled, or our request was
        bad): let the next caller try."""
        self.probing = False

    def describe(self, now: float) -> str:
        """``"open (2 failures, 12.5s left)"``-style text for skip reasons and status."""
        state = self.state(now)
        if state != "open":
            return f"{state} ({self.failures} failures)"
        reopen = (self.opened_at or 0.0) + self.cooldown_s
        until = self.held_until if now < self.held_until else reopen
        return f"open ({self.failures} failures, {until - now:.1f}s left)"
