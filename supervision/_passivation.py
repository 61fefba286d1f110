"""Passivation: a Directory drops an idle child, after its ``on_passivate``.

The Directory asks (:func:`request_passivate`, never for a busy child); the
child's drain task then runs ``on_passivate`` (:func:`passivate`) and, if
nothing arrived meanwhile, the child is stopped as ``passivated`` and its
parent told (``_child_passivated``). A message that arrived first cancels the
passivation (``_passivation_cancelled``): the instance stays live. Only a
Directory asks a child to passivate, so the parent is one (``cast``, see
``_supervising``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._state import RUNNING
from ._supervising import Passivating
from ._threaded import stop_host

if TYPE_CHECKING:
    from ._cell import Cell
    from ._cold import Cold


def request_passivate(cell: Cell) -> bool:
    """Ask an idle actor to passivate; False (nothing done) unless it is idle."""
    cold = cell.cold
    if (
        cell.state is not RUNNING
        or cell.active
        or cell.mailbox
        or (cold is not None and (cold.tasks or cold.attention))
    ):
        return False
    cell.ensure_cold().control.append(("passivate",))
    cell.schedule()
    return True


async def passivate(cell: Cell, cold: Cold) -> bool:
    """The ``passivate`` control op, in the drain task: True if the actor is gone."""
    if not (cell.mailbox or cold.attention or cold.tasks):
        await cell.hook("on_passivate")
        if not cell.mailbox and not cold.attention and cell.state is RUNNING:
            _passivated(cell)
            return True
    # busy again: passivation is cancelled, the instance stays live
    parent = cell.parent
    if parent is not None:
        cast(Passivating, parent.actor)._passivation_cancelled(cell)
    return False


def _passivated(cell: Cell) -> None:
    cold = cell.ensure_cold()
    if cold.host is not None:
        stop_host(cold.host)
        cold.host = None
    cell.finish_stop("passivated")
    parent = cell.parent
    if parent is not None:
        cast(Passivating, parent.actor)._child_passivated(cell)
