"""Ask deadlines without a cancel scope per ask.

A trio ``CancelScope`` costs ~10 us to enter and leave on these machines, more
than an ask round trip, so asks do not use ``move_on_after``. Each pending ask
with a timeout is pushed on one heap; one timer task (alive only while the
heap is non-empty) wakes at the earliest deadline, at most every
``RESOLUTION_S``, and reschedules the callers whose asks are still pending
with :class:`AskTimeout`, exactly as an abort would. Answered asks are dropped
lazily when their deadline passes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING

import outcome
import trio

from ._errors import AskTimeout

if TYPE_CHECKING:
    from ._ask import _Ask

#: Timeouts fire at most this late (virtual time under MockClock).
RESOLUTION_S = 0.005


class AskTimer:
    """The deadline heap and its timer task, one per system."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._heap: list[tuple[float, int, _Ask, str, float]] = []
        self._seq = itertools.count()
        self._running = False
        self._target = math.inf
        self._scope: trio.CancelScope | None = None

    def add(self, deadline: float, slot: _Ask, path: str, timeout: float) -> None:
        """Time ``slot`` out at ``deadline`` unless it is answered first. Not a checkpoint."""
        heapq.heappush(self._heap, (deadline, next(self._seq), slot, path, timeout))
        if not self._running:
            self._running = True
            self._nursery.start_soon(self._run, name="greenroom:ask-timer")
        elif deadline + RESOLUTION_S < self._target and self._scope is not None:
            self._scope.cancel()  # an earlier deadline than the one we sleep towards

    def pending(self) -> int:
        """Entries in the heap (answered ones included until their deadline)."""
        return len(self._heap)

    async def _run(self) -> None:
        heap = self._heap
        try:
            while heap:
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    _, _, slot, path, timeout = heapq.heappop(heap)
                    if slot.status < 2 and slot.parked:
                        slot.status = 3
                        trio.lowlevel.reschedule(
                            slot.task, outcome.Error(AskTimeout(path, timeout))
                        )
                if not heap:
                    break
                self._target = max(heap[0][0], now + RESOLUTION_S)
                with trio.CancelScope() as self._scope:
                    await trio.sleep_until(self._target)
                self._scope = None
        finally:
            self._running = False
            self._target = math.inf
