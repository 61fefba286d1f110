"""Supervisors: OTP's strategies, restart types and intensity, with Akka's backoff.

A supervisor is an actor whose kernel messages (``ChildFailed``, ``ChildExited``,
``RestartDue``) arrive ahead of its mailbox. Children start left to right, each
waiting for the previous one's ``on_start``; they stop right to left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._actor import Actor
from ._backoff import NO_BACKOFF, Backoff
from ._cell import Cell
from ._default import DEFAULT
from ._errors import SupervisorGaveUp
from ._intensity import add_restart, exceeded
from ._spec import STRATEGIES, ChildSpec, ExitReason, Strategy, should_restart, validate_timeout
from ._state import BACKOFF, FAILED, STARTING, STOPPED
from ._supervising import ChildExited, ChildFailed, RestartDue

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._tasks import TaskHandle

_log = structlog.get_logger("greenroom.supervisor")


class Supervisor(Actor):
    """Starts, watches and restarts its children.

    ``strategy``: ``one_for_one`` restarts the failed child; ``one_for_all``
    stops every child (right to left) and restarts them all; ``rest_for_one``
    does that for the failed child and those started after it. More than
    ``max_restarts`` restarts within ``within_s`` seconds and the supervisor
    stops its children and fails with :class:`SupervisorGaveUp`, escalating to
    its own supervisor. ``backoff`` delays each restart (default
    :data:`NO_BACKOFF`: at once).
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        within_s: float = 5.0,
        backoff: Backoff = NO_BACKOFF,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, not {max_restarts!r}")
        if validate_timeout("within_s", within_s) is None or within_s <= 0:
            raise ValueError(f"within_s must be > 0, not {within_s!r}")
        names = [c.name for c in children]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"child names must be unique, not repeated: {dupes}")
        self.specs = tuple(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within_s = float(within_s)
        self.backoff = backoff
        self._restarts: tuple[float, ...] = ()

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        for spec in self.specs:
            await self.start_child(spec)

    async def on_stop(self) -> None:
        await self.stop_children()

    async def receive(self, msg: Any) -> Any:
        """Supervisors take no application messages; one is logged and dropped."""
        self.log.warning("supervisor_ignored_message", type=type(msg).__name__)
        return None

    # ------------------------------------------------------------------ children
    def _kids(self) -> dict[str, Cell]:
        cold = self._cell.ensure_cold()
        if cold.children is None:
            cold.children = {}
        return cold.children

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        """Start one more child and wait until its ``on_start`` has finished.

        Raises ValueError if a child of that name exists. If the child's start
        fails, it is handled like any failure (restart policy) and the ref is
        still returned. Cancelling this wait does not undo the start.
        """
        kids = self._kids()
        if spec.name in kids:
            raise ValueError(f"{self.path} already has a child named {spec.name!r}")
        cell = Cell(self._cell.system, self._cell, spec, spec.name)
        kids[spec.name] = cell
        await cell.wait_until(lambda c: c.state is not STARTING)
        return cell.ref

    async def stop_child(self, name: str) -> None:
        """Stop one child for good (no restart) and forget it; unknown names are ignored."""
        cell = self._kids().get(name)
        if cell is not None:
            await cell.stop(self.shutdown_timeout(cell))
            if self._kids().get(name) is cell:
                del self._kids()[name]

    async def stop_children(self) -> None:
        """Stop every child, last started first, each within its shutdown timeout."""
        kids = self._kids()
        for cell in reversed(list(kids.values())):
            await cell.stop(self.shutdown_timeout(cell))
        kids.clear()

    def shutdown_timeout(self, cell: Cell) -> float | None:
        """The child's own timeout; supervisors by default wait for their subtree."""
        t = cell.spec.shutdown_timeout_s
        if t is not DEFAULT:
            return t
        return None if isinstance(cell.actor, Supervisor) else cell.system.shutdown_timeout_s

    # ------------------------------------------------------------------ kernel messages
    async def _system_receive(self, msg: Any) -> None:
        match msg:
            case ChildFailed(cell=cell, error=error):
                if self._kids().get(cell.name) is cell and cell.state is FAILED:
                    await self._child_down(cell, "failure", error)
            case ChildExited(cell=cell):
                if self._kids().get(cell.name) is cell and cell.state is not STOPPED:
                    await self._child_down(cell, "normal", None)
            case RestartDue(cells=cells, error=error):
                await self._restart(cells, error)

    async def _child_down(
        self, cell: Cell, reason: ExitReason, error: BaseException | None
    ) -> None:
        kids = self._kids()
        if not should_restart(reason, cell.spec.restart):
            _log.info("child_removed", actor=self.path, child=cell.path, reason=reason)
            await cell.stop(self.shutdown_timeout(cell))
            kids.pop(cell.name, None)
            return
        now = trio.current_time()
        if self._intensity_exceeded(cell, now):
            await self._give_up(cell, error)
            return
        group = self._group(cell)
        self._supersede(group)
        for c in reversed(group):
            await c.shutdown_instance(self.shutdown_timeout(c), final=False)
        restart: list[Cell] = []
        for c in group:
            if c is not cell and c.spec.restart == "temporary":
                await c.stop(0)  # OTP: temporary siblings are not restarted
                kids.pop(c.name, None)
            else:
                restart.append(c)
        due = tuple((c, c.ensure_cold().restart_gen) for c in restart)
        delay = self._delay(cell, now)
        _log.info(
            "child_restarting", actor=self.path, child=cell.path, reason=reason, delay_s=delay
        )
        if delay <= 0:
            await self._restart(due, error)
            return
        pending = DelayedRestart(tuple(restart))
        for c in restart:
            c.enter_backoff()
            cold = c.ensure_cold()
            cold.delayed = (*cold.delayed, pending)
        pending.handle = self.spawn_task(
            self._restart_later, delay, due, error, pending, name="backoff"
        )

    # ------------------------------------------------------------------ intensity
    def _intensity_exceeded(self, cell: Cell, now: float) -> bool:
        """Count one more restart at ``now``; True if that exceeds the intensity.

        A Supervisor keeps one window for all its children (OTP); a Directory
        overrides this to keep one per key.
        """
        self._restarts = add_restart(self._restarts, now, self.within_s, self.max_restarts)
        return exceeded(self._restarts, self.max_restarts)

    async def _give_up(self, cell: Cell, error: BaseException | None) -> None:
        """The intensity was exceeded by ``cell``'s exit: stop every child and fail."""
        last = error if error is not None else RuntimeError(f"{cell.path} exited")
        _log.error(
            "supervisor_gave_up",
            actor=self.path,
            child=cell.path,
            max_restarts=self.max_restarts,
            within_s=self.within_s,
        )
        await self.stop_children()
        raise SupervisorGaveUp(self.path, self.max_restarts, self.within_s, last)

    # ------------------------------------------------------------------ restarts
    def _group(self, cell: Cell) -> list[Cell]:
        # one_for_one never lists the children: a Directory has thousands.
        match self.strategy:
            case "one_for_one":
                return [cell]
            case "one_for_all":
                return list(self._kids().values())
            case "rest_for_one":
                kids = list(self._kids().values())
                return kids[kids.index(cell) :]
        raise AssertionError(self.strategy)  # pragma: no cover

    def _supersede(self, group: list[Cell]) -> None:
        """A new restart decision about ``group``: every delayed restart pending for
        one of them is stale. Its generation is bumped (a RestartDue already queued
        is dropped for it) and a timer that only served these children is cancelled.
        Not a checkpoint, so no timer fires between the decision and this.

        Only the group's own timers are looked at (each child indexes those pending
        for it, ``Cold.delayed``): walking every pending timer made each decision
        O(keys in backoff), so an outage of thousands of Directory keys was quadratic."""
        members = set(group)
        for c in group:
            cold = c.ensure_cold()
            cold.restart_gen += 1
            for pending in cold.delayed:  # a tuple: cancel() replaces it, not edits it
                if members.issuperset(pending.cells):
                    pending.cancel()

    def _delay(self, cell: Cell, now: float) -> float:
        cold = cell.ensure_cold()
        n = 0 if now - cold.started_at >= self.backoff.reset_after_s else cold.backoff_n
        cold.backoff_n = n + 1
        return self.backoff.delay(n, cell.system.rng)

    async def _restart_later(
        self,
        delay: float,
        due: tuple[tuple[Cell, int], ...],
        error: BaseException | None,
        pending: DelayedRestart,
    ) -> None:
        try:
            await trio.sleep(delay)
            self._cell.push_system(RestartDue(due, error))
        finally:
            pending.forget()  # due, cancelled, or the supervisor went: no longer pending

    async def _restart(
        self, due: tuple[tuple[Cell, int], ...], error: BaseException | None
    ) -> None:
        """Restart, left to right, each child still waiting for this restart: still
        ours, in BACKOFF or FAILED with its instance shut down (a live instance is
        never replaced), and not superseded since (same generation). Each waits for
        the previous one's start hook."""
        kids = self._kids()
        for c, gen in due:
            cold = c.ensure_cold()
            waiting = c.state in _WAITING and cold.instance_down
            if kids.get(c.name) is c and waiting and cold.restart_gen == gen:
                cold.restart_gen += 1  # consumed: a duplicate of this restart is stale
                c.restart(error)
                await c.wait_until(lambda x: x.state is not STARTING)


#: Child states a restart may replace: the instance is down, waiting for it.
_WAITING = frozenset({BACKOFF, FAILED})


class DelayedRestart:
    """A delayed restart not yet due: the children it restarts and its timer task.

    Each of those children lists it in its cold record (``Cold.delayed``) until
    the timer ends (fired, cancelled, or the supervisor's instance went), so a
    restart decision finds the timers of its own group without a global walk.
    """

    __slots__ = ("cells", "handle")

    def __init__(self, cells: tuple[Cell, ...]) -> None:
        self.cells = cells
        self.handle: TaskHandle | None = None  # set right after the task is spawned

    def cancel(self) -> None:
        """Cancel the timer and stop listing it. Not a checkpoint."""
        assert self.handle is not None
        self.handle.cancel()
        self.forget()

    def forget(self) -> None:
        """Stop listing this timer on its children (idempotent)."""
        for c in self.cells:
            cold = c.ensure_cold()
            if self in cold.delayed:
                cold.delayed = tuple(d for d in cold.delayed if d is not self)
