"""The drain task: the one task that runs an actor's code.

A cell has a drain task only while it has something to do (``Cell.active``):
the task runs the start, restart or passivate hook queued for it, then
handles messages until the mailbox stays empty, and ends; the next message
schedules a new one (``Cell.schedule``). So an idle actor holds no trio task.
Only the drain task runs ``receive`` and the lifecycle hooks, one at a time,
except ``on_stop``, which the stopper runs after the drain task has gone.

Whatever ends the task, :func:`settle` is the one place that settles the
message it had in hand and applies a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import structlog
import trio

from ._ask import _Ask
from ._failure import NOTHING, fail, record_failure
from ._passivation import passivate
from ._state import RUNNING, STARTING
from ._supervising import Supervising
from ._threaded import call_on_thread

if TYPE_CHECKING:
    from ._cell import Cell
    from ._cold import Cold

_log = structlog.get_logger("greenroom.kernel")

#: Messages handled in a row before the drain task yields to other tasks.
FAIRNESS_BATCH = 64
#: Scheduler ticks a drain task stays after its mailbox empties (see ``_drain``).
LINGER_TICKS = 2


async def drain_task(cell: Cell) -> None:
    """The body of a cell's drain task (started by ``Cell.schedule``)."""
    structlog.contextvars.bind_contextvars(actor=cell.path)
    scope = cell.scope
    assert scope is not None
    hand: list[Any] = [NOTHING]  # the message _drain held when it raised
    failure: Exception | None = None
    passing = True  # until proven otherwise, a BaseException is going up
    try:
        try:
            with scope:
                if cell.cold is not None and cell.cold.control:
                    await _run_control(cell)
                if cell.state is RUNNING:
                    await _drain(cell, hand)
        except Exception as exc:
            # An error from receive or a hook: a group of errors too, and what
            # is left of a group once our scope has taken its Cancelled out.
            failure = exc
        passing = False
    finally:
        cell.scope = None
        cell.active = False
        settle(cell, hand[0], failure, passing=passing, cancelled=scope.cancel_called)
        cell.wake_waiters()


def settle(
    cell: Cell, item: Any, failure: Exception | None, *, passing: bool, cancelled: bool
) -> None:
    """The drain task is ending: the one place that settles the message it had
    in hand (dead letter, and the waiting ask answered) and applies a failure.

    ``passing``: a BaseException that is not ours (KeyboardInterrupt, a
    cancellation from outside the system) goes on up; the message is then
    dead-lettered as ``interrupted`` and its ask gets ``ActorStopped``. A
    kill wins over whatever its cancellation made ``receive`` raise. An
    instance its supervisor is shutting down is not failed again: a message
    it finished by raising is still ``caused_failure``, one cut short by the
    shutdown's cancellation is ``interrupted``.
    """
    cold = cell.cold
    kill = None
    if cold is not None and cold.kill is not None:
        kill, cold.kill = cold.kill, None
    if passing or cell.state not in (STARTING, RUNNING):
        if failure is not None and not cancelled:
            record_failure(cell, failure, item, interrupted=False)
        elif item is not NOTHING:
            if failure is not None:
                _log.warning("error_while_stopping", actor=cell.path, error=repr(failure))
            cell.dead_letter(item, "interrupted")
    elif kill is not None:
        if failure is not None:
            _log.warning("error_while_killed", actor=cell.path, error=repr(failure))
        fail(cell, kill, item, interrupted=True)
    elif failure is not None:
        fail(cell, failure, item)
    elif item is not NOTHING:
        cell.dead_letter(item, "interrupted")  # cancelled in hand: not its fault
    elif not cell.mailbox:
        cell.mailbox = None
        cell.idle_since = trio.current_time()


async def _drain(cell: Cell, hand: list[Any]) -> None:
    """Handle messages until the mailbox stays empty, a kernel message or exit
    needs the drain to stop, or the state leaves RUNNING. If anything is raised
    while a message is in hand, the message is left in ``hand[0]`` for
    ``settle``, whatever the exception's shape."""
    actor = cell.actor
    receive = actor.receive
    host = cell.cold.host if cell.cold is not None else None
    system = cell.system
    # Locals, not globals, on the per-message path (the tell benchmark's budget
    # is about 0.5 us a message; each lookup saved is a few per cent of it).
    ask, nothing, running = _Ask, NOTHING, RUNNING
    was_full = cell.capacity - 1  # the length right after a pop from a full mailbox
    n = FAIRNESS_BATCH
    lingered = 0
    item: Any = nothing
    try:
        while True:
            cold = cell.cold
            if cold is not None and cold.attention and not await _attend(cell, cold):
                return
            mb = cell.mailbox
            if not mb:
                if lingered == LINGER_TICKS:
                    return
                # Stay a few scheduler ticks: a request/reply partner's next
                # message then finds us active and costs no task spawn (~11 us
                # here). Two ticks, because trio shuffles each runnable batch.
                # Runnable, never parked: an idle actor still holds no task.
                lingered += 1
                await trio.lowlevel.checkpoint()
                continue
            lingered = 0
            item = mb.popleft()
            if len(mb) == was_full:
                # Senders wait for space only while the mailbox is full, so only
                # this pop can free one; ``put`` passes the wake-up on while room
                # is left. (Asking the parking lot on every pop cost ~15 % here.)
                cell.space_freed()
            if type(item) is ask:
                if item.status:
                    item = nothing
                    continue  # withdrawn by its caller before we got to it
                item.status = 1
                if host is None:
                    item.resolve(await receive(item.msg))
                else:
                    item.resolve(await call_on_thread(host, system, receive, item.msg))
            elif host is None:
                await receive(item)
            else:
                await call_on_thread(host, system, receive, item)
            item = nothing
            cell.processed += 1
            if cell.state is not running:
                return
            n -= 1
            if not n:
                n = FAIRNESS_BATCH
                await trio.lowlevel.checkpoint()
    except BaseException:
        hand[0] = item  # not handled here: drain_task settles it, then this goes on up
        raise


async def _attend(cell: Cell, cold: Cold) -> bool:
    """Handle kill / kernel messages / exit; False when the drain must stop."""
    if cold.kill is not None:
        kill, cold.kill = cold.kill, None
        raise kill
    while cold.sysq:
        msg = cold.sysq.popleft()
        # Only a Supervisor has kernel messages queued (see _supervising).
        await cast(Supervising, cell.actor)._system_receive(msg)
        if cell.state is not RUNNING:
            cold.attention = bool(cold.sysq) or cold.exit_requested
            return False
    cold.attention = cold.exit_requested
    return not cold.exit_requested


async def _run_control(cell: Cell) -> None:
    """Run the lifecycle ops queued for the drain task (start, restart, passivate)."""
    cold = cell.ensure_cold()
    while cold.control and cell.state in (STARTING, RUNNING):
        op = cold.control.pop(0)
        match op:
            case ("start",):
                await cell.hook("on_start")
                if cell.state is STARTING:
                    cell.now_running(op)
            case ("restart", error):
                await cell.hook("on_restart", error)
                if cell.state is STARTING:
                    cell.now_running(op)
            case ("passivate",):
                if await passivate(cell, cold):
                    return
