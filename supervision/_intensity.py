"""Restart-intensity arithmetic (OTP's ``add_restart``): pure functions of time.

The supervisor feeds these with ``trio.current_time()``, so a
``trio.testing.MockClock`` drives them in tests.
"""

from __future__ import annotations

from bisect import bisect_right


def add_restart(
    restarts: tuple[float, ...], now: float, within_s: float, max_restarts: int
) -> tuple[float, ...]:
    """Return the restart times still inside the window ``(now - within_s, now]``, plus ``now``.

    ``restarts`` must be in ascending order; the result is too. Only the newest
    ``max_restarts + 1`` matter to :func:`exceeded`, so no more are kept.
    """
    # bisect, not a scan: with a generous max_restarts (a Directory, a bench)
    # the window can hold thousands of times, and a Python-level scan per
    # restart made restarts quadratic (measured: 430 us of a 680 us restart).
    start = max(bisect_right(restarts, now - within_s), len(restarts) - max_restarts)
    return (*restarts[start:], now)


def exceeded(restarts: tuple[float, ...], max_restarts: int) -> bool:
    """True when the window holds more restarts than allowed (OTP: intensity exceeded)."""
    return len(restarts) > max_restarts
