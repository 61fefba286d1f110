"""An actor's cold bookkeeping: what most actors never touch.

A :class:`~._cell.Cell` holds only what every message needs; the rest lives
in one :class:`Cold` record, allocated on first need
(``Cell.ensure_cold()``), so an idle actor that never failed, never owned a
task and has no children costs a few hundred bytes (DESIGN.md: <= 1 KB with
its key and ref). Once allocated it stays for the cell's life: it survives
restarts, which is where the restart counts and times live.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    import pykka

    from ._cell import Cell
    from ._introspect import ErrorInfo
    from ._supervisor import DelayedRestart
    from ._tasks import TaskHandle

#: Restart times kept per actor for introspection.
RESTART_TIMES_KEPT = 10


class Cold:
    """Bookkeeping most actors never touch; see the module docstring."""

    __slots__ = (
        "attention",
        "backoff_n",
        "children",
        "control",
        "delayed",
        "exit_requested",
        "host",
        "instance_down",
        "kill",
        "last_error",
        "lot",
        "restart_gen",
        "restart_times",
        "restarts",
        "space",
        "started_at",
        "sysq",
        "tasks",
        "window",
    )

    def __init__(self) -> None:
        self.attention = False  # the drain loop must look at sysq / kill / exit
        self.sysq: collections.deque[Any] = collections.deque()
        self.control: list[tuple[Any, ...]] = []
        self.kill: BaseException | None = None
        self.exit_requested = False
        self.space: trio.lowlevel.ParkingLot | None = None
        self.lot: trio.lowlevel.ParkingLot | None = None
        self.tasks: set[TaskHandle] = set()
        self.children: dict[str, Cell] | None = None
        self.restart_times: collections.deque[float] = collections.deque(maxlen=RESTART_TIMES_KEPT)
        self.restarts = 0
        self.last_error: ErrorInfo | None = None
        self.host: pykka.ActorRef[Any] | None = None
        self.backoff_n = 0
        self.started_at = 0.0  # when the current instance became RUNNING (inf: not yet)
        # The current instance was shut down (on_stop ran, tasks cancelled); it
        # waits for a restart. Cleared when a fresh instance is installed.
        self.instance_down = False
        # Bumped by the supervisor at every restart decision about this child and
        # at every restart: a delayed restart scheduled at an older generation is
        # stale and is dropped (see Supervisor._restart).
        self.restart_gen = 0
        # The supervisor's delayed restarts pending for this child, so a restart
        # decision finds its group's timers without walking all of them (none or
        # one in practice; a tuple, so a decision taking in only part of an older
        # timer's children would still find both).
        self.delayed: tuple[DelayedRestart, ...] = ()
        # This child's own restart times, for a supervisor that keeps a restart
        # intensity per child (Directory); ascending, see _intensity.add_restart.
        self.window: tuple[float, ...] = ()
