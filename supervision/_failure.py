"""How an actor fails: the error recorded, the message that caused it
dead-lettered (its ask answered with ``ActorFailed``), its owned tasks
cancelled, the failure logged and published, and its supervisor told
(``ChildFailed``; the system, for the root).

Called from the drain task when ``receive`` or a hook raised (see
``_drain.settle``), from a restart whose factory raised, and from outside
(``Cell.fail_from_outside``: a kill, an owned task's error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._ask import _Ask
from ._deadletters import DeadLetterReason
from ._errors import ActorFailed
from ._introspect import ErrorInfo
from ._state import FAILED
from ._supervising import ChildFailed
from ._tasks import cancel_tasks

if TYPE_CHECKING:
    from ._cell import Cell

_log = structlog.get_logger("greenroom.kernel")


class _Nothing:
    __slots__ = ()


#: "No message in hand": a failure that no message caused.
NOTHING: Any = _Nothing()


def fail(cell: Cell, exc: BaseException, item: Any, *, interrupted: bool = False) -> None:
    """The actor failed: record, dead-letter the culprit, tell the supervisor."""
    cell.state = FAILED
    record_failure(cell, exc, item, interrupted=interrupted)
    parent = cell.parent
    if parent is None:
        cell.system.root_failed(exc)
    else:
        parent.push_system(ChildFailed(cell, exc))


def record_failure(cell: Cell, exc: BaseException, item: Any, *, interrupted: bool) -> None:
    """Record ``exc`` as the last error, dead-letter ``item`` (failing its ask with
    ActorFailed), cancel the owned tasks, log and publish the failure."""
    now = trio.current_time()
    cold = cell.ensure_cold()
    cold.last_error = ErrorInfo.capture(exc, now)
    if item is not NOTHING:
        msg = item
        if type(item) is _Ask:
            item.fail(ActorFailed(cell.path, exc))
            msg = item.msg
        reason: DeadLetterReason = "interrupted" if interrupted else "caused_failure"
        cell.system.dead_letters.record(cell.path, reason, msg, now)
    cancel_tasks(cell)
    _log.error(
        "actor_failed",
        actor=cell.path,
        error_type=type(exc).__name__,
        error=str(exc),
        message_type=None if item is NOTHING else type(getattr(item, "msg", item)).__name__,
    )
    cell.system.emit("failed", cell, cold.last_error.summary())
    cell.wake_waiters()
