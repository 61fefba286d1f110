"""The two actor base classes: :class:`Actor` (trio) and :class:`BlockingActor` (a pykka thread).

An actor keeps its state in attributes and handles one message at a time in
``receive``. The kernel sets the private ``_cell`` right after construction;
``ref``, ``path``, ``spawn_task`` and ``stop`` work from ``on_start`` on (not in
``__init__``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import structlog

from ._tasks import TaskHandle, spawn_task

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef
    from ._system import ActorSystem

Dispatcher = Literal["trio", "thread"]


class _ActorBase:
    """What every actor has, whatever runs its code."""

    __slots__ = ("__dict__", "_cell")

    #: mailbox capacity for this class; None takes the system default.
    mailbox_capacity: ClassVar[int | None] = None
    #: "trio": receive runs on the trio loop; "thread": on a dedicated pykka thread.
    dispatcher: ClassVar[Dispatcher] = "trio"
    #: The message types ``receive`` handles, for operators and tools (the debug
    #: socket's ``types`` op shows each registered one with its JSON schema).
    #: Informational: the kernel does not filter messages by it.
    accepts: ClassVar[tuple[type, ...]] = ()

    _cell: Cell

    @property
    def ref(self) -> ActorRef:
        """This actor's ref (stable across restarts of this actor)."""
        return self._cell.ref

    @property
    def path(self) -> str:
        """This actor's path, e.g. ``/users/telegram:42``."""
        return self._cell.path

    @property
    def system(self) -> ActorSystem:
        """The system this actor lives in."""
        return self._cell.system

    @property
    def log(self) -> Any:
        """A structlog logger bound to this actor's path (every line carries ``actor``)."""
        return structlog.get_logger("greenroom.actor").bind(actor=self._cell.path)

    def stop(self) -> None:
        """Ask to stop normally once the current message is handled.

        The supervisor applies the child's restart type to a normal exit: a
        ``permanent`` child is started again, ``transient`` and ``temporary``
        ones are removed. Not a checkpoint; returns at once.
        """
        self._cell.request_exit()


class Actor(_ActorBase):
    """An actor whose code runs on the trio loop.

    Subclasses implement ``receive`` and dispatch with ``match msg:``. Long work
    (an LLM call, an HTTP request) goes into ``self.spawn_task(...)`` so the
    actor stays responsive; the task reports back with a message.
    """

    __slots__ = ()

    async def receive(self, msg: Any) -> Any:
        """Handle one message; the return value answers an ``ask``.

        An exception fails the actor: the message is dead-lettered with reason
        ``caused_failure`` and the supervisor decides what happens next.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement receive")

    async def on_start(self) -> None:
        """Called once before the first message (not after a restart; see ``on_restart``)."""

    async def on_stop(self) -> None:
        """Called when the actor stops or before a restart replaces it, within the
        shutdown timeout; cancelled when that runs out. Also runs after a failure,
        so it must tolerate a partly started actor."""

    async def on_restart(self, error: BaseException) -> None:
        """Called on the fresh instance that replaces a failed one, instead of
        ``on_start``. The default calls ``on_start``."""
        await self.on_start()

    async def on_passivate(self) -> None:
        """Called by a Directory before it drops an idle actor: persist what must
        survive. A failure here fails the actor (it is not dropped)."""

    def spawn_task(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> TaskHandle:
        """Run ``fn(*args)`` as a task this actor owns and return its handle.

        The task is cancelled when the actor stops, fails or restarts; an
        exception from it fails the actor. Not a checkpoint. Raises
        ``ActorStopped`` if the actor is stopping or stopped.
        """
        return spawn_task(self._cell, fn, args, name)


class BlockingActor(_ActorBase):
    """An actor whose code blocks (stdlib ``sqlite3``, a sync SDK, CPU-bound work).

    Its hooks and ``receive`` are plain functions run on its own pykka
    ``ThreadingActor`` thread, one message at a time; the trio loop never
    blocks. Ref, supervision, dead letters and introspection are the same as
    for :class:`Actor`. To call back into trio from a handler, use
    :meth:`from_trio`.
    """

    __slots__ = ()
    dispatcher: ClassVar[Dispatcher] = "thread"

    def receive(self, msg: Any) -> Any:
        """Handle one message on the actor's thread; see :meth:`Actor.receive`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement receive")

    def on_start(self) -> None:
        """Called on the actor's thread before the first message."""

    def on_stop(self) -> None:
        """Called on the actor's thread when it stops or before a restart.

        Runs to completion even past the shutdown timeout (a thread cannot be
        cancelled); the kernel stops waiting for it then."""

    def on_restart(self, error: BaseException) -> None:
        """Called on the fresh instance after a failure; defaults to ``on_start``."""
        self.on_start()

    def on_passivate(self) -> None:
        """See :meth:`Actor.on_passivate`."""

    def from_trio(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the sync ``fn(*args)`` on the trio loop and return its result
        (e.g. ``self.from_trio(ref.tell_nowait, msg)``). Blocks this thread only."""
        import trio

        return trio.from_thread.run_sync(fn, *args, trio_token=self._cell.system.trio_token)


AnyActor: TypeAlias = Actor | BlockingActor


_HOOKS: dict[tuple[type, str], bool] = {}


def overrides_hook(cls: Any, op: str) -> bool:
    """Whether ``cls`` overrides the hook that ``op`` (``"start"``, ``"restart"``,
    ``"stop"``) runs, cached per class: an actor with no hook to run is running
    at once, and stopped at once, with no task spawned."""
    key = (cls, op)
    found = _HOOKS.get(key)
    if found is None:
        base: Any = BlockingActor if issubclass(cls, BlockingActor) else Actor
        if op == "stop":
            found = cls.on_stop is not base.on_stop
        else:
            found = cls.on_start is not base.on_start or (
                op == "restart" and cls.on_restart is not base.on_restart
            )
        _HOOKS[key] = found
    return found
