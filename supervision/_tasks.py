"""Tasks an actor owns (``spawn_task``): cancelled with the actor, failing it when they fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._errors import ActorStopped
from ._state import RUNNING, STARTING

if TYPE_CHECKING:
    from ._cell import Cell

_log = structlog.get_logger("greenroom.kernel")


class TaskHandle:
    """A handle on one owned task. ``cancel()`` supersedes it; the actor then carries on."""

    __slots__ = ("_cell", "_done", "_scope", "name")

    def __init__(self, cell: Cell, name: str) -> None:
        self._cell = cell
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self.name = name

    def cancel(self) -> None:
        """Cancel the task (idempotent; a no-op once it finished). Not a checkpoint."""
        self._scope.cancel()

    @property
    def done(self) -> bool:
        """True once the task has returned, raised or been cancelled."""
        return self._done.is_set()

    async def wait(self) -> None:
        """Wait until the task has finished. Cancelling this wait does not cancel the task."""
        await self._done.wait()

    async def _run(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        cell = self._cell
        structlog.contextvars.bind_contextvars(actor=cell.path)
        try:
            with self._scope:
                await fn(*args)
        except Exception as exc:
            # Only a task still owned by the current instance may fail it: a task
            # of a replaced instance that raises while being cancelled is history.
            cold = cell.cold
            if cold is not None and self in cold.tasks:
                cell.fail_from_outside(exc)
            else:
                _log.debug("orphan_task_error", actor=cell.path, task=self.name, error=repr(exc))
        finally:
            if cell.cold is not None:
                cell.cold.tasks.discard(self)
            self._done.set()


def spawn_task(
    cell: Cell, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], name: str | None
) -> TaskHandle:
    """Start ``fn(*args)`` as a task ``cell``'s actor owns (see ``Actor.spawn_task``)."""
    if cell.state not in (STARTING, RUNNING):
        raise ActorStopped(cell.path)
    handle = TaskHandle(cell, name or str(getattr(fn, "__qualname__", repr(fn))))
    cell.ensure_cold().tasks.add(handle)
    cell.system.nursery.start_soon(handle._run, fn, args, name=f"{cell.path}:{handle.name}")
    return handle


def cancel_tasks(cell: Cell) -> None:
    """Cancel every task ``cell``'s actor owns (its instance is going). Not a checkpoint."""
    cold = cell.cold
    if cold is not None and cold.tasks:
        tasks, cold.tasks = cold.tasks, set()
        for t in tasks:
            t.cancel()
