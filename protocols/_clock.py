"""The one wall clock: every "now" and "today" in greenroom comes from a :data:`Clock`.

The kernel's timers, backoff and idle timeouts run on trio's clock (virtual
under ``trio.testing.MockClock``). Wall time, what a day or a timestamp
means to people, comes from one injected :data:`Clock` instead, handed out
by the composition root (the Store's clock): the token ledger, the tools, the
doors and, soon, the governor and the scheduler then agree on what day it
is, and tests set it. :func:`system_clock` is the only place greenroom reads
the operating system's wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

#: A source of "now": an aware UTC datetime. Tests pass a settable one.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The operating system's wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)
