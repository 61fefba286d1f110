"""The reply slot of an ask: the message plus the parked caller."""

from __future__ import annotations

from typing import Any

import outcome
import trio


class _Ask:
    """An ask in a mailbox: the message plus the parked caller's reply slot.

    status: 0 queued, 1 being handled, 2 answered, 3 abandoned by its caller.
    An abandoned ask that was still queued is withdrawn (never handled).
    """

    __slots__ = ("early", "msg", "parked", "status", "task")

    def __init__(self, msg: Any) -> None:
        self.msg = msg
        self.task = trio.lowlevel.current_task()
        self.status = 0
        self.parked = False
        # An outcome that arrived before the caller parked (dead-lettered on enqueue).
        self.early: outcome.Outcome[Any] | None = None

    def _settle(self, result: outcome.Outcome[Any]) -> None:
        if self.status == 3:
            return  # the caller gave up; nobody is waiting
        self.status = 2
        if self.parked:
            trio.lowlevel.reschedule(self.task, result)
        else:
            self.early = result

    def resolve(self, value: Any) -> None:
        self._settle(outcome.Value(value))

    def fail(self, exc: BaseException) -> None:
        self._settle(outcome.Error(exc))

    def abort(self, _: Any) -> trio.lowlevel.Abort:
        self.status = 3
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait(self) -> Any:
        """Park the caller until the actor answers; a checkpoint."""
        if self.early is not None:
            await trio.lowlevel.checkpoint()
            return self.early.unwrap()
        self.parked = True
        return await trio.lowlevel.wait_task_rescheduled(self.abort)
