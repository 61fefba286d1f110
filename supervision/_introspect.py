"""What introspection returns: immutable snapshots read from kernel bookkeeping.

They are built from outside the actors (never through a mailbox), so a stuck
actor is still visible: :func:`actor_info` reads a cell's bookkeeping.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cell import Cell


class ErrorInfo:
    """The last error of an actor: type, message, traceback, virtual time.

    Formatting a traceback costs more than a whole restart, so it is formatted
    on first read; the frames' locals are cleared at capture so the error keeps
    no actor state alive.
    """

    __slots__ = ("_exc", "_traceback", "at", "message", "type")

    def __init__(self, exc: BaseException, at: float) -> None:
        self.type = type(exc).__qualname__
        self.message = str(exc)
        self.at = at
        self._exc: BaseException | None = exc
        self._traceback: str | None = None
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)

    @classmethod
    def capture(cls, exc: BaseException, at: float) -> ErrorInfo:
        """Record ``exc`` (cheap: the traceback is formatted when first read)."""
        return cls(exc, at)

    @property
    def traceback(self) -> str:
        """The formatted traceback (computed once)."""
        if self._traceback is None:
            exc, self._exc = self._exc, None
            self._traceback = "".join(traceback.format_exception(exc)) if exc else ""
        return self._traceback

    def __repr__(self) -> str:
        return f"ErrorInfo({self.type}: {self.message!r} at {self.at})"

    def summary(self) -> str:
        """``Type: message`` on one line, cut to 200 characters."""
        line = f"{self.type}: {self.message}".splitlines()[0] if self.message else self.type
        return line if len(line) <= 200 else line[:197] + "..."


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """One actor as introspection sees it; ``children`` is empty unless asked for."""

    path: str
    cls: str
    state: str
    dispatcher: str
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    restarts: int
    restart_times: tuple[float, ...]
    last_error: ErrorInfo | None
    tasks: int
    children: tuple[ActorInfo, ...] = ()

    def walk(self) -> list[ActorInfo]:
        """This actor and every descendant, depth first in start order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the debug socket and ``--json``)."""
        return {
            "path": self.path,
            "class": self.cls,
            "state": self.state,
            "dispatcher": self.dispatcher,
            "mailbox_depth": self.mailbox_depth,
            "mailbox_capacity": self.mailbox_capacity,
            "processed": self.processed,
            "restarts": self.restarts,
            "restart_times": list(self.restart_times),
            "last_error": None
            if self.last_error is None
            else {
                "type": self.last_error.type,
                "message": self.last_error.message,
                "traceback": self.last_error.traceback,
                "at": self.last_error.at,
            },
            "tasks": self.tasks,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass(frozen=True, slots=True)
class TreeEvent:
    """A change in the tree: started, failed, restarted, stopped or passivated."""

    kind: str
    path: str
    at: float
    error: str | None = None


def actor_info(cell: Cell, *, recursive: bool) -> ActorInfo:
    """``cell`` as an :class:`ActorInfo`, with its subtree if ``recursive``."""
    cold = cell.cold
    kids: tuple[ActorInfo, ...] = ()
    if recursive and cold is not None and cold.children:
        kids = tuple(actor_info(c, recursive=True) for c in list(cold.children.values()))
    return ActorInfo(
        path=cell.path,
        cls=type(cell.actor).__qualname__,
        state=cell.state.value,
        dispatcher=type(cell.actor).dispatcher,
        mailbox_depth=len(cell.mailbox) if cell.mailbox else 0,
        mailbox_capacity=cell.capacity,
        processed=cell.processed,
        restarts=cold.restarts if cold else 0,
        restart_times=tuple(cold.restart_times) if cold else (),
        last_error=cold.last_error if cold else None,
        tasks=len(cold.tasks) if cold else 0,
        children=kids,
    )
