"""Restart-intensity arithmetic against its definition (OTP's add_restart)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervision._intensity import add_restart, exceeded


def reference(
    restarts: tuple[float, ...], now: float, within: float, limit: int
) -> tuple[float, ...]:
    """The definition, spelled out: every time inside (now - within, now], plus now,
    of which only the newest limit + 1 are kept."""
    inside = [t for t in restarts if t > now - within] + [now]
    return tuple(inside[-(limit + 1) :])


@given(
    gaps=st.lists(st.floats(0, 10, allow_nan=False), max_size=60),
    within=st.floats(0.001, 30, allow_nan=False),
    limit=st.integers(0, 80),
)
def test_add_restart_keeps_the_window_and_at_most_limit_plus_one(
    gaps: list[float], within: float, limit: int
) -> None:
    restarts: tuple[float, ...] = ()
    now = 0.0
    for gap in gaps:
        now += gap
        expected = reference(restarts, now, within, limit)
        restarts = add_restart(restarts, now, within, limit)
        assert restarts == expected
        assert exceeded(restarts, limit) == (len(expected) > limit)
