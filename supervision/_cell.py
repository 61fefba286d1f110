"""One actor's kernel bookkeeping: identity, instance, mailbox, stopping.

The cell is the state. Here: building, starting and restarting an instance,
the mailbox and its backpressure, failing from outside, stopping, waiting for
a state change. Elsewhere, by concern: the drain task that runs the actor's
code (``_drain``), failing (``_failure``), passivation (``_passivation``),
owned tasks (``_tasks``), the snapshot read from outside (``_introspect``),
the cold bookkeeping (``_cold``), the supervisor's side (``_supervising``).

Invariants (the memory target depends on them):

* An idle cell (empty mailbox, no owned tasks) holds **no trio task**: the drain
  task exists only while there is something to do (``active``), and the mailbox
  deque is dropped when it empties.
* Rarely used bookkeeping lives in ``cold`` (a :class:`~._cold.Cold`), allocated
  on first need (:meth:`Cell.ensure_cold`), so an idle actor that never failed
  costs a few hundred bytes.
* Only the drain task runs the actor's ``receive`` and lifecycle hooks, one at a
  time, except ``on_stop``, which the stopper runs after the drain task exited.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._actor import _ActorBase, overrides_hook
from ._ask import _Ask
from ._cold import Cold
from ._deadletters import DeadLetterReason
from ._drain import drain_task
from ._errors import ActorStopped, MailboxFull
from ._failure import NOTHING, fail
from ._ref import ActorRef
from ._state import ACCEPTING, BACKOFF, FAILED, RUNNING, STARTING, STOPPED, STOPPING
from ._supervising import ChildExited
from ._tasks import cancel_tasks
from ._threaded import call_on_thread, start_host, stop_host

if TYPE_CHECKING:
    from ._actor import AnyActor
    from ._spec import ChildSpec
    from ._system import ActorSystem

_log = structlog.get_logger("greenroom.kernel")


class Cell:
    """The kernel side of one actor. Not public: actors see ``ActorRef`` and ``Actor``."""

    __slots__ = (
        "_ref",
        "active",
        "actor",
        "capacity",
        "cold",
        "idle_since",
        "mailbox",
        "name",
        "parent",
        "processed",
        "scope",
        "spec",
        "state",
        "system",
    )

    def __init__(
        self, system: ActorSystem, parent: Cell | None, spec: ChildSpec, name: str
    ) -> None:
        self.system = system
        self.parent = parent
        self.spec = spec
        self.name = name
        self.mailbox: collections.deque[Any] | None = None
        self.cold: Cold | None = None
        self.state = STARTING
        self.active = False
        self.scope: trio.CancelScope | None = None
        self.processed = 0
        self.idle_since: float | None = None
        self._ref: ActorRef | None = None
        actor = self._build()
        cls_cap = type(actor).mailbox_capacity
        self.capacity: int = spec.mailbox_capacity or cls_cap or system.mailbox_capacity
        self._begin(("start",), actor)

    # ------------------------------------------------------------------ identity
    @property
    def path(self) -> str:
        parent = self.parent
        if parent is None:
            return "/"
        return "/" + self.name if parent.parent is None else parent.path + "/" + self.name

    @property
    def ref(self) -> ActorRef:
        ref = self._ref
        if ref is None:
            ref = self._ref = ActorRef(self)
        return ref

    def ensure_cold(self) -> Cold:
        """The cold bookkeeping, allocated on first use (then kept for good)."""
        cold = self.cold
        if cold is None:
            cold = self.cold = Cold()
        return cold

    def children(self) -> dict[str, Cell]:
        """The children by name (empty for an actor that has none)."""
        cold = self.cold
        return {} if cold is None or cold.children is None else cold.children

    # ------------------------------------------------------------------ instances
    def _build(self) -> AnyActor:
        actor = self.spec.build(self.name)
        if not isinstance(actor, _ActorBase):
            raise TypeError(
                f"factory of {self.spec.name!r} must return an Actor or BlockingActor, "
                f"not {type(actor).__name__}"
            )
        actor._cell = self
        return actor

    def _begin(self, op: tuple[Any, ...], actor: AnyActor) -> None:
        """Install ``actor`` and run its start (or restart) hook in a drain task.

        An actor that overrides neither hook is running at once, without a task.
        """
        self.actor = actor
        if self.cold is not None:
            self.cold.instance_down = False
        cls = type(actor)
        if cls.dispatcher == "thread":
            self.ensure_cold().host = start_host()
        if overrides_hook(cls, op[0]):
            self.state = STARTING
            cold = self.ensure_cold()
            cold.control.append(op)
            if not self.active:
                self.schedule()
        else:
            self.now_running(op)

    def now_running(self, op: tuple[Any, ...]) -> None:
        """The start (or restart) ``op`` is done: the instance takes messages."""
        self.state = RUNNING
        if self.cold is not None:
            self.cold.started_at = trio.current_time()
        self.wake_waiters()
        kind = "restarted" if self.cold is not None and self.cold.restarts else "started"
        self.system.emit(kind, self)
        if not self.active and (self.mailbox or (self.cold is not None and self.cold.attention)):
            self.schedule()

    def restart(self, error: BaseException | None) -> None:
        """Replace the stopped instance with a fresh one; it runs ``on_restart(error)``
        (``on_start`` when ``error`` is None: a normal exit of a permanent child).

        The mailbox is kept. If the factory raises, the actor fails again.
        """
        cold = self.ensure_cold()
        cold.restarts += 1
        cold.restart_times.append(trio.current_time())
        # Not running yet: until the fresh instance is RUNNING it has had no stable
        # period, so a failure in its start hook never resets the backoff.
        cold.started_at = math.inf
        cold.kill = None
        cold.exit_requested = False
        cold.sysq.clear()
        cold.attention = False
        try:
            actor = self._build()
        except Exception as exc:
            fail(self, exc, NOTHING)
            return
        self._begin(("start",) if error is None else ("restart", error), actor)

    # ------------------------------------------------------------------ mailbox
    def put_nowait(self, item: Any) -> None:
        """Enqueue without waiting; dead-letters if stopped; raises MailboxFull if full."""
        if self.state not in ACCEPTING:
            self.dead_letter(item, "stopped")
            return
        mb = self.mailbox
        if mb is None:
            mb = self.mailbox = collections.deque()
        elif len(mb) >= self.capacity:
            self.dead_letter(item, "mailbox_full")
            raise MailboxFull(self.path, self.capacity)
        mb.append(item)
        if not self.active and self.state is RUNNING:
            self.schedule()

    async def put(self, item: Any) -> None:
        """Enqueue, waiting for space while the mailbox is full (backpressure).

        A checkpoint only when it has to wait. If cancelled while waiting, the
        item was not enqueued. Dead-letters if the actor is or becomes stopped.
        """
        waited = False
        while True:
            if self.state not in ACCEPTING:
                self.dead_letter(item, "stopped")
                return
            mb = self.mailbox
            if mb is None or len(mb) < self.capacity:
                self.put_nowait(item)
                if waited and self.mailbox is not None and len(self.mailbox) < self.capacity:
                    self.space_freed()  # room is left: the next waiting sender goes on
                return
            cold = self.ensure_cold()
            if cold.space is None:
                cold.space = trio.lowlevel.ParkingLot()
            await cold.space.park()
            waited = True

    def space_freed(self) -> None:
        """Wake one sender waiting for space (woken by a pop from a full mailbox, or
        by the sender woken before it, while room is left)."""
        cold = self.cold
        if cold is not None and cold.space:
            cold.space.unpark()

    def dead_letter(self, item: Any, reason: DeadLetterReason) -> None:
        """Record ``item`` as undeliverable; its ask, if it is one, gets ``ActorStopped``."""
        if type(item) is _Ask:
            item.fail(ActorStopped(self.path))
            item = item.msg
        self.system.dead_letters.record(self.path, reason, item, trio.current_time())

    def push_system(self, msg: Any) -> None:
        """Queue a kernel message (ahead of the mailbox, never bounded)."""
        cold = self.ensure_cold()
        cold.sysq.append(msg)
        cold.attention = True
        if not self.active and self.state is RUNNING:
            self.schedule()

    # ------------------------------------------------------------------ the drain task
    def schedule(self) -> None:
        """Start the drain task (``_drain``); the caller checked it is not running."""
        self.active = True
        self.scope = trio.CancelScope()
        self.system.nursery.start_soon(drain_task, self)

    async def hook(self, name: str, *args: Any) -> None:
        """Run a lifecycle hook of the current instance (on its thread if blocking)."""
        fn: Callable[..., Any] = getattr(self.actor, name)
        host = self.cold.host if self.cold is not None else None
        if host is not None:
            await call_on_thread(host, self.system, fn, *args)
        else:
            await fn(*args)

    # ------------------------------------------------------------------ from outside
    def fail_from_outside(self, exc: BaseException) -> None:
        """Fail the actor as if ``receive`` had raised ``exc`` (kill, owned-task failure).

        If a message is being handled, it is interrupted at its next checkpoint
        and dead-lettered with reason ``interrupted``. A no-op for an actor that
        is already down.
        """
        if self.state not in (STARTING, RUNNING):
            _log.info("fail_ignored", actor=self.path, state=str(self.state), error=repr(exc))
            return
        if self.active:
            cold = self.ensure_cold()
            cold.kill = exc
            cold.attention = True
            assert self.scope is not None
            self.scope.cancel()
        else:
            fail(self, exc, NOTHING)

    def request_exit(self) -> None:
        """The actor asked to stop normally: stop draining, let the supervisor decide."""
        cold = self.ensure_cold()
        if cold.exit_requested:
            return
        cold.exit_requested = True
        cold.attention = True
        parent = self.parent
        if parent is None:
            self.system.root_exited()
        else:
            parent.push_system(ChildExited(self))

    # ------------------------------------------------------------------ stopping
    async def shutdown_instance(self, timeout: float | None, *, final: bool) -> None:
        """Stop the current instance: let the message in hand finish, run ``on_stop``
        (at most ``timeout`` seconds for both, None = no limit), then cancel
        whatever is left (drain task, owned tasks) and release its thread.

        ``final`` leaves the actor STOPPING (new messages dead-lettered);
        otherwise FAILED, keeping the mailbox for a restart. An instance that
        was already shut down (a child waiting out its backoff, taken into a
        group restart or stopped meanwhile) is not stopped again: its
        ``on_stop`` runs once per instance. If this call is cancelled, the
        cancellation of the actor's work still happens.
        """
        self.state = STOPPING if final else FAILED
        self.wake_waiters()
        cold = self.cold
        if cold is not None and cold.instance_down:
            return
        path = self.path
        limit = math.inf if timeout is None else timeout
        if not self.active and not overrides_hook(type(self.actor), "stop"):
            limit = 0.0 if cold is None or cold.host is None else limit
            if limit == 0.0:  # nothing to wait for and no on_stop: skip the cancel scope
                cancel_tasks(self)
                # A restart reads a missing mark as "still live", so one that may
                # follow (not final) needs the record; a final stop allocates none.
                if cold is not None or not final:
                    self.ensure_cold().instance_down = True
                return
        try:
            with trio.move_on_after(limit) as cs:
                while self.active:
                    await self._park()
                try:
                    with structlog.contextvars.bound_contextvars(actor=path):
                        await self.hook("on_stop")
                except Exception as exc:
                    _log.warning("on_stop_failed", actor=path, error=repr(exc))
            if cs.cancelled_caught:
                _log.warning("shutdown_timeout", actor=path, timeout_s=timeout)
            if self.active and self.scope is not None:
                # Still in its message after the timeout: cancel it and wait until
                # it has gone, so a restart never overlaps the old drain task.
                self.scope.cancel()
                while self.active:
                    await self._park()
        finally:
            if self.active and self.scope is not None:
                self.scope.cancel()
            cancel_tasks(self)
            cold = self.ensure_cold()
            cold.instance_down = True
            if cold.host is not None:
                stop_host(cold.host)
                cold.host = None

    async def stop(self, timeout: float | None, reason: DeadLetterReason = "stopped") -> None:
        """Stop for good (see ``shutdown_instance``); queued messages are dead-lettered
        with ``reason``, queued asks fail with ``ActorStopped``."""
        if self.state is STOPPED:
            return
        if self.state is STOPPING:
            while self.state is not STOPPED:
                await self._park()
            return
        try:
            await self.shutdown_instance(timeout, final=True)
        finally:
            self.finish_stop("stopped", reason)

    def finish_stop(self, event: str, reason: DeadLetterReason = "stopped") -> None:
        """The actor is STOPPED: dead-letter its mailbox, drop its kernel work,
        release its waiting senders, publish ``event``."""
        self.state = STOPPED
        mb, self.mailbox = self.mailbox, None
        while mb:
            self.dead_letter(mb.popleft(), reason)
        cold = self.cold
        if cold is not None:
            cold.sysq.clear()
            cold.control.clear()
            cold.attention = False
            if cold.space is not None:
                cold.space.unpark_all()
        self.wake_waiters()
        self.system.emit(event, self)

    def enter_backoff(self) -> None:
        """Mark a failed actor as waiting out its restart backoff (messages queue)."""
        self.state = BACKOFF
        self.wake_waiters()
        self.system.emit("backoff", self)

    # ------------------------------------------------------------------ waiting
    async def _park(self) -> None:
        cold = self.ensure_cold()
        if cold.lot is None:
            cold.lot = trio.lowlevel.ParkingLot()
        await cold.lot.park()

    def wake_waiters(self) -> None:
        """The state may have changed: every ``wait_until`` re-checks."""
        cold = self.cold
        if cold is not None and cold.lot:
            cold.lot.unpark_all()

    async def wait_until(self, predicate: Callable[[Cell], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked at every state change."""
        while not predicate(self):
            await self._park()
