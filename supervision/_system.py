"""The actor system: the nursery actors run in, path lookup, dead letters, introspection."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import structlog
import trio
import trio.testing

from protocols import Clock, system_clock

from ._cell import Cell
from ._deadletters import DeadLetters
from ._errors import Killed, UnknownPath
from ._introspect import ActorInfo, TreeEvent, actor_info
from ._spec import ChildSpec, validate_capacity, validate_timeout
from ._state import STARTING, STOPPED
from ._timer import AskTimer

if TYPE_CHECKING:
    from ._actor import AnyActor
    from ._ref import ActorRef

_log = structlog.get_logger("greenroom.system")

#: How long ``open_system`` gives the ordered shutdown before cancelling everything.
SHUTDOWN_GRACE_S = 60.0


class ActorSystem:
    """One tree of actors on one trio loop. Made by :func:`open_system`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        mailbox_capacity: int = 1000,
        ask_timeout_s: float | None = 5.0,
        dead_letter_capacity: int = 1000,
        shutdown_timeout_s: float | None = 5.0,
        seed: int | None = None,
        clock: Clock = system_clock,
    ) -> None:
        validate_capacity(mailbox_capacity)
        validate_timeout("ask_timeout_s", ask_timeout_s)
        validate_timeout("shutdown_timeout_s", shutdown_timeout_s)
        self.nursery = nursery
        self.trio_token = trio.lowlevel.current_trio_token()
        self.mailbox_capacity = mailbox_capacity
        self.ask_timeout_s = ask_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.dead_letters = DeadLetters(dead_letter_capacity)
        self.rng = random.Random(seed)
        self.started_at = trio.current_time()
        #: the wall clock (``protocols.Clock``) for what operators read as a time
        self.clock = clock
        self.started_wall = clock().timestamp()
        self.failure: BaseException | None = None
        self._done = trio.Event()
        self._subscribers: list[trio.MemorySendChannel[TreeEvent]] = []
        self.events_dropped = 0
        self.root_cell: Cell | None = None
        self.ask_timer = AskTimer(nursery)
        #: calls running on BlockingActor threads right now (see ``quiescent``)
        self.thread_calls = 0
        self.threads_idle = trio.lowlevel.ParkingLot()

    # ------------------------------------------------------------------ the root
    async def _start_root(self, factory: Callable[[], AnyActor]) -> None:
        spec = ChildSpec("root", factory, restart="temporary", shutdown_timeout_s=None)
        root = self.root_cell = Cell(self, None, spec, "root")
        await root.wait_until(lambda c: c.state is not STARTING)

    @property
    def root(self) -> ActorRef:
        """The root actor's ref (path ``/``)."""
        assert self.root_cell is not None
        return self.root_cell.ref

    def root_failed(self, exc: BaseException) -> None:
        """The root failed: the process is expected to end non-zero (see ``wait``)."""
        self.failure = exc
        _log.critical("root_failed", error_type=type(exc).__name__, error=str(exc))
        self._done.set()

    def root_exited(self) -> None:
        self._done.set()

    async def wait(self) -> None:
        """Wait until the root stops or fails; re-raise the root's failure, if any.

        Cancelling the wait changes nothing in the system.
        """
        await self._done.wait()
        if self.failure is not None:
            raise self.failure

    async def shutdown(self) -> None:
        """Stop the whole tree in order (each supervisor stops its children right to
        left, each child within its shutdown timeout). Idempotent."""
        if self.root_cell is not None:
            await self.root_cell.stop(None)
        self._done.set()

    # ------------------------------------------------------------------ lookup
    def _find(self, path: str) -> Cell | None:
        cell = self.root_cell
        if cell is None or not isinstance(path, str) or not path.startswith("/"):
            return None
        for part in path.split("/")[1:]:
            if not part:
                continue
            cell = cell.children().get(part)
            if cell is None:
                return None
        return cell if cell.state is not STOPPED else None

    def _live(self, path: str) -> Cell:
        """The live cell at ``path``; raises ``UnknownPath``."""
        cell = self._find(path)
        if cell is None:
            raise UnknownPath(path)
        return cell

    def lookup(self, path: str) -> ActorRef:
        """The ref of the live actor at ``path``; raises ``UnknownPath``."""
        return self._live(path).ref

    async def tell(self, path: str, msg: Any) -> bool:
        """Tell the actor at ``path``; False (and a dead letter, reason
        ``unknown_path``) when there is none. See ``ActorRef.tell``."""
        cell = self._find(path)
        if cell is None:
            self.dead_letters.record(path, "unknown_path", msg, trio.current_time())
            return False
        await cell.ref.tell(msg)
        return True

    # ------------------------------------------------------------------ introspection
    def snapshot(self, path: str = "/") -> ActorInfo:
        """The subtree at ``path`` as immutable data, read without any mailbox."""
        return actor_info(self._live(path), recursive=True)

    def fail(self, path: str, exc: Exception) -> None:
        """Fail the live actor at ``path`` as if its ``receive`` had raised ``exc``;
        its supervisor handles it like any failure, and the root failing ends the
        system (``wait`` raises ``exc``). A message being handled is interrupted at
        its next checkpoint and dead-lettered with reason ``interrupted``; an actor
        already down (failed, in backoff, stopping) is left as it is. ``kill`` is
        this with :class:`Killed`.

        Not a checkpoint: the failure is applied, or scheduled for the actor's
        drain task, before this returns. Raises ``UnknownPath`` if there is no
        live actor at ``path``.
        """
        self._live(path).fail_from_outside(exc)

    def kill(self, path: str, reason: str = "killed by operator") -> None:
        """See :func:`kill`."""
        kill(self, path, reason)

    def inspect(self, path: str) -> ActorInfo:
        """One actor, without its children."""
        return actor_info(self._live(path), recursive=False)

    def children(self, path: str) -> list[str]:
        """The names of the children of the actor at ``path``, in start order (a
        Directory's in least-recently-used order); raises ``UnknownPath``."""
        return list(self._live(path).children())

    def accepts(self, path: str) -> tuple[type, ...]:
        """The message types the actor at ``path`` declares (its class's
        ``accepts``); raises ``UnknownPath``."""
        return type(self._live(path).actor).accepts

    def task_names(self, path: str) -> list[str]:
        """The names of the tasks the actor at ``path`` owns now, sorted; raises
        ``UnknownPath``."""
        cold = self._live(path).cold
        return sorted(t.name for t in cold.tasks) if cold is not None else []

    def cells(self) -> Iterator[Cell]:
        """Every live cell, depth first (kernel and testing-kit use)."""
        stack = [self.root_cell] if self.root_cell is not None else []
        while stack:
            cell = stack.pop()
            yield cell
            stack.extend(reversed(list(cell.children().values())))

    def stats(self) -> dict[str, Any]:
        """Counters for operators: actors, processed, dead letters, uptime."""
        count = processed = depth = 0
        for cell in self.cells():
            count += 1
            processed += cell.processed
            depth += len(cell.mailbox) if cell.mailbox else 0
        return {
            "actors": count,
            "processed": processed,
            "queued": depth,
            "dead_letters": dict(self.dead_letters.totals),
            "uptime_s": trio.current_time() - self.started_at,
            "events_dropped": self.events_dropped,
        }

    # ------------------------------------------------------------------ tree events
    def emit(self, kind: str, cell: Cell, error: str | None = None) -> None:
        """Publish a tree event to every subscriber (dropped, and counted, if one is full)."""
        if not self._subscribers:
            return
        event = TreeEvent(kind, cell.path, trio.current_time(), error)
        for send in self._subscribers:
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.events_dropped += 1

    @contextmanager
    def subscribe(self, buffer: int = 1000) -> Iterator[trio.MemoryReceiveChannel[TreeEvent]]:
        """Receive tree events (started, failed, backoff, restarted, stopped,
        passivated) while the block runs; a full buffer drops events."""
        send, recv = trio.open_memory_channel[TreeEvent](buffer)
        self._subscribers.append(send)
        try:
            yield recv
        finally:
            self._subscribers.remove(send)
            send.close()

    async def quiescent(self) -> None:
        """Wait until every task is blocked and no actor has work queued or running
        on a thread. Under ``MockClock`` this is the point the clock would jump."""
        while True:
            await trio.testing.wait_all_tasks_blocked()
            if self.thread_calls:
                await self.threads_idle.park()
                continue
            return


@asynccontextmanager
async def open_system(
    root: Callable[[], AnyActor],
    *,
    mailbox_capacity: int = 1000,
    ask_timeout_s: float | None = 5.0,
    dead_letter_capacity: int = 1000,
    shutdown_timeout_s: float | None = 5.0,
    seed: int | None = None,
    clock: Clock = system_clock,
) -> AsyncIterator[ActorSystem]:
    """Start a system whose root actor is ``root()`` and yield it once the root
    has started (for a Supervisor: its whole tree, left to right).

    On leaving the block the tree is stopped in order (at most
    ``SHUTDOWN_GRACE_S``), then anything left is cancelled. ``clock`` is the wall
    clock the system shows times by (the application passes its Store's). If the root failed,
    ``system.failure`` holds why (``system.wait()`` raises it).
    """
    try:
        async with trio.open_nursery() as nursery:
            system = ActorSystem(
                nursery,
                mailbox_capacity=mailbox_capacity,
                ask_timeout_s=ask_timeout_s,
                dead_letter_capacity=dead_letter_capacity,
                shutdown_timeout_s=shutdown_timeout_s,
                seed=seed,
                clock=clock,
            )
            try:
                await system._start_root(root)
                yield system
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE_S) as cs:
                    await system.shutdown()
                if cs.cancelled_caught:
                    _log.error("shutdown_grace_exceeded", grace_s=SHUTDOWN_GRACE_S)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery's own tasks never raise (drain and owned-task wrappers turn
        # errors into actor failures), so a group here wraps the caller's error
        # from the ``async with`` body: hand it back unwrapped.
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise


def kill(system: ActorSystem, path: str, reason: str) -> None:
    """Fail the actor at ``path`` as if it had raised ``Killed(reason)``
    (``ActorSystem.fail``); its supervisor handles it like any failure. Raises
    ``UnknownPath``."""
    cell = system._live(path)
    system.fail(cell.path, Killed(cell.path, reason))
