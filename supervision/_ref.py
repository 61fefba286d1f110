"""Refs: how actors and the outside world address an actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ._ask import _Ask
from ._default import DEFAULT, Default
from ._errors import AskTimeout
from ._state import RUNNING

if TYPE_CHECKING:
    from ._cell import Cell


class ActorRef:
    """The address of one actor. Cheap, hashable, stable across the actor's restarts.

    A ref to a stopped actor stays valid as a value: what is sent to it goes to
    the dead-letter log with reason ``stopped``.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        """The actor's path, e.g. ``/connectors/telegram``."""
        return self._cell.path

    async def tell(self, msg: Any) -> None:
        """Enqueue ``msg``, waiting while the mailbox is full (backpressure).

        Returns once the message is in the mailbox, not when it is handled.
        A checkpoint only when it has to wait for space; if cancelled while
        waiting, the message was not enqueued. Messages from one sender arrive
        in the order sent. A stopped actor's messages go to the dead letters.
        """
        cell = self._cell
        mb = cell.mailbox
        if mb is not None and len(mb) < cell.capacity and cell.state is RUNNING:
            mb.append(msg)  # the hot path: room in a live mailbox
            if not cell.active:
                cell.schedule()
            return
        await cell.put(msg)

    def has_room(self) -> bool:
        """Whether the mailbox has room now (a ``tell`` would not wait): what a door
        checks before it accepts work it must hand on. Reads the kernel's
        bookkeeping, not the mailbox's messages; not a checkpoint."""
        cell = self._cell
        mb = cell.mailbox
        return mb is None or len(mb) < cell.capacity

    def tell_nowait(self, msg: Any) -> None:
        """Enqueue ``msg`` or raise ``MailboxFull`` (the message is then dead-lettered
        with reason ``mailbox_full``). Never blocks; not a checkpoint."""
        self._cell.put_nowait(msg)

    async def ask(self, msg: Any, *, timeout: float | Default | None = DEFAULT) -> Any:
        """Send ``msg`` and return what the actor's ``receive`` returned.

        Raises ``ActorFailed`` if handling it raised (the actor is then failed
        and supervised), ``ActorStopped`` if the actor is or becomes stopped
        before handling it, ``AskTimeout`` after ``timeout`` seconds (the
        system default when omitted; None waits forever; fires at most 5 ms
        late). Always a checkpoint.

        On timeout or cancellation nothing is left behind: a message still
        queued is withdrawn (never handled); one being handled completes and
        its result is discarded.
        """
        cell = self._cell
        if timeout is DEFAULT:
            timeout = cell.system.ask_timeout_s
        slot = _Ask(msg)
        if timeout is None:
            await cell.put(slot)
            return await slot.wait()
        deadline = trio.current_time() + timeout
        mb = cell.mailbox
        if mb is not None and len(mb) >= cell.capacity:
            # Slow path, under backpressure: wait for space within the timeout.
            with trio.move_on_after(timeout) as cs:
                await cell.put(slot)
            if cs.cancelled_caught:
                slot.status = 3
                raise AskTimeout(cell.path, timeout)
        else:
            cell.put_nowait(slot)
        if slot.early is None:
            cell.system.ask_timer.add(deadline, slot, cell.path, timeout)
        return await slot.wait()

    def __repr__(self) -> str:
        return f"<ActorRef {self.path} {self._cell.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)
