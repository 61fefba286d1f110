"""What passes between a cell and the actor that supervises it.

Downwards nothing: a supervisor acts on its children's cells. Upwards, two
channels. Kernel messages (:class:`ChildFailed`, :class:`ChildExited`, and
:class:`RestartDue` a supervisor sends itself) are queued on the parent's
cell ahead of its mailbox and handled by the parent actor's
``_system_receive``, in its drain task. Passivation is reported by direct
calls, in the child's drain task: ``_child_passivated`` once the child is
gone, ``_passivation_cancelled`` when a message arrived first.

:class:`Supervising` and :class:`Passivating` are those callbacks as typed
protocols (``Supervisor`` is the one, ``Directory`` both). The kernel checks
an actor against them once per class, not per call (:func:`supervising`,
:func:`passivating`): a ``runtime_checkable`` ``isinstance`` costs about
4 us, a dict lookup 40 ns, and restarts are measured in tens of us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

if TYPE_CHECKING:
    from ._cell import Cell


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


@runtime_checkable
class Supervising(Protocol):
    """An actor with children: it handles the kernel messages about them."""

    async def _system_receive(self, msg: Any) -> None:
        """Handle one kernel message (in the actor's drain task, ahead of its mailbox)."""
        ...


@runtime_checkable
class Passivating(Protocol):
    """An actor whose children passivate (a ``Directory``)."""

    def _child_passivated(self, cell: Cell) -> None:
        """``cell`` passivated: it is stopped and may be forgotten."""
        ...

    def _passivation_cancelled(self, cell: Cell) -> None:
        """``cell`` was asked to passivate but got a message first: it stays live."""
        ...


_CONFORMS: dict[tuple[type, Any], bool] = {}


def _conforms(actor: object, protocol: Any) -> bool:
    """``isinstance(actor, protocol)``, decided once per (class, protocol)."""
    key = (type(actor), protocol)
    known = _CONFORMS.get(key)
    if known is None:
        known = _CONFORMS[key] = isinstance(actor, protocol)
    return known


def _is_supervising(actor: object) -> TypeGuard[Supervising]:
    return _conforms(actor, Supervising)


def _is_passivating(actor: object) -> TypeGuard[Passivating]:
    return _conforms(actor, Passivating)


def supervising(cell: Cell) -> Supervising:
    """``cell``'s actor, which kernel messages were queued for; raises TypeError
    if it is no supervisor (a kernel bug: only supervisors have children)."""
    actor = cell.actor
    if _is_supervising(actor):
        return actor
    raise TypeError(f"{cell.path} ({type(actor).__qualname__}) is not a supervisor")


def passivating(cell: Cell) -> Passivating:
    """``cell``'s actor, whose child passivated; raises TypeError if it keeps no
    passivating children (a kernel bug: only a Directory asks a child to passivate)."""
    actor = cell.actor
    if _is_passivating(actor):
        return actor
    raise TypeError(f"{cell.path} ({type(actor).__qualname__}) has no passivating children")
