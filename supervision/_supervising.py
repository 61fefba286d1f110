"""What passes between a cell and the actor that supervises it.

Downwards nothing: a supervisor acts on its children's cells. Upwards, two
channels. Kernel messages (:class:`ChildFailed`, :class:`ChildExited`, and
:class:`RestartDue` a supervisor sends itself) are queued on the parent's
cell ahead of its mailbox and handled by the parent actor's
``_system_receive``, in its drain task. Passivation is reported by direct
calls, in the child's drain task: ``_child_passivated`` once the child is
gone, ``_passivation_cancelled`` when a message arrived first.

:class:`Supervising` and :class:`Passivating` are those callbacks as typed
protocols (``Supervisor`` is the one, ``Directory`` both). Construction is
what guarantees them: only a ``Supervisor`` makes child cells and queues
kernel messages, and only a ``Directory`` asks a child to passivate. So the
kernel does not test for them at run time (a ``runtime_checkable`` check per
restart would cost more than the restart's bookkeeping); it ``cast``s, and
mypy checks below that both classes satisfy the protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._cell import Cell
    from ._directory import Directory
    from ._supervisor import Supervisor


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """Kernel message: a child raised (or was killed)."""

    cell: Cell
    error: BaseException


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Kernel message: a child asked to stop normally (``Actor.stop()``)."""

    cell: Cell


@dataclass(frozen=True, slots=True)
class RestartDue:
    """Kernel message: the backoff of these children is over.

    Each child comes with the restart generation it was scheduled at: a later
    restart decision about that child (a group restart that took it in) makes
    this one stale, and it is dropped for that child (OTP cancels the pending
    restart; a generation also covers a message already queued).
    """

    cells: tuple[tuple[Cell, int], ...]
    error: BaseException | None


class Supervising(Protocol):
    """An actor with children: it handles the kernel messages about them."""

    async def _system_receive(self, msg: Any) -> None:
        """Handle one kernel message (in the actor's drain task, ahead of its mailbox)."""
        ...


class Passivating(Protocol):
    """An actor whose children passivate (a ``Directory``)."""

    def _child_passivated(self, cell: Cell) -> None:
        """``cell`` passivated: it is stopped and may be forgotten."""
        ...

    def _passivation_cancelled(self, cell: Cell) -> None:
        """``cell`` was asked to passivate but got a message first: it stays live."""
        ...


if TYPE_CHECKING:

    def _parents_call_back(
        s: Supervisor, d: Directory
    ) -> tuple[Supervising, Supervising, Passivating]:
        """Static conformance, checked by mypy (``make lint``), never run: a
        ``Supervisor`` is what a child's cell calls back, and a ``Directory`` also
        what a passivating child does. (It stands here, not in the tests, because
        mypy checks the packages, not ``tests/``.)"""
        return s, d, d
