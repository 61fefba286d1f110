"""Restart-intensity arithmetic (OTP's ``add_restart``): pure functions of time.

The supervisor feeds these with ``trio.current_time()``, so a
``trio.testing.MockClock`` drives them in tests.
"""

from __future__ import annotations


def add_restart(
    restarts: tuple[float, ...], now: float, within_s: float, max_restarts: int
) -> tuple[float, ...]:
    """Return the restart times still inside the window ``(now - within_s, now]``, plus ``now``.

    ``restarts`` must be in ascending order; the result is too. Only the newest
    ``max_restarts + 1`` matter to :func:`exceeded`, so no more are kept.
    """
    cutoff = now - within_s
    kept = (*(t for t in restarts[-(max_restarts + 1) :] if t > cutoff), now)
    return kept[-(max_restarts + 1) :]


def exceeded(restarts: tuple[float, ...], max_restarts: int) -> bool:
    """True when the window holds more restarts than allowed (OTP: intensity exceeded)."""
    return len(restarts) > max_restarts
