"""One actor's kernel bookkeeping: mailbox, drain task, lifecycle, failure.

Invariants (the memory target depends on them):

* An idle cell (empty mailbox, no owned tasks) holds **no trio task**: the drain
  task exists only while there is something to do (``active``), and the mailbox
  deque is dropped when it empties.
* Rarely used bookkeeping lives in ``cold`` (a :class:`_Cold`), allocated on
  first need, so an idle actor that never failed costs a few hundred bytes.
* Only the drain task runs the actor's ``receive`` and lifecycle hooks, one at a
  time, except ``on_stop``, which the stopper runs after the drain task exited.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._actor import Actor, BlockingActor, _ActorBase
from ._ask import _Ask
from ._deadletters import DeadLetterReason
from ._errors import ActorFailed, ActorStopped, MailboxFull
from ._introspect import ActorInfo, ErrorInfo
from ._ref import ActorRef
from ._state import ActorState
from ._tasks import TaskHandle
from ._threaded import call_on_thread, start_host, stop_host

if TYPE_CHECKING:
    import pykka

    from ._actor import AnyActor
    from ._spec import ChildSpec
    from ._system import ActorSystem

_log = structlog.get_logger("greenroom.kernel")

STARTING = ActorState.STARTING
RUNNING = ActorState.RUNNING
BACKOFF = ActorState.BACKOFF
FAILED = ActorState.FAILED
STOPPING = ActorState.STOPPING
STOPPED = ActorState.STOPPED
_ACCEPTING = frozenset({STARTING, RUNNING, BACKOFF, FAILED})

#: Messages handled in a row before the drain task yields to other tasks.
FAIRNESS_BATCH = 64
#: Scheduler ticks a drain task stays after its mailbox empties (see ``_drain``).
LINGER_TICKS = 2
#: Restart times kept per actor for introspection.
RESTART_TIMES_KEPT = 10


class _Nothing:
    __slots__ = ()


_NOTHING: Any = _Nothing()


class _Cold:
    """Bookkeeping most actors never touch; see the module docstring."""

    __slots__ = (
        "attention",
        "backoff_n",
        "children",
        "control",
        "exit_requested",
        "host",
        "instance_down",
        "kill",
        "last_error",
        "lot",
        "restart_gen",
        "restart_times",
        "restarts",
        "space",
        "started_at",
        "sysq",
        "tasks",
        "window",
    )

    def __init__(self) -> None:
        self.attention = False  # the drain loop must look at sysq / kill / exit
        self.sysq: collections.deque[Any] = collections.deque()
        self.control: list[tuple[Any, ...]] = []
        self.kill: BaseException | None = None
        self.exit_requested = False
        self.space: trio.lowlevel.ParkingLot | None = None
        self.lot: trio.lowlevel.ParkingLot | None = None
        self.tasks: set[TaskHandle] = set()
        self.children: dict[str, Cell] | None = None
        self.restart_times: collections.deque[float] = collections.deque(maxlen=RESTART_TIMES_KEPT)
        self.restarts = 0
        self.last_error: ErrorInfo | None = None
        self.host: pykka.ActorRef[Any] | None = None
        self.backoff_n = 0
        self.started_at = 0.0  # when the current instance became RUNNING (inf: not yet)
        # The current instance was shut down (on_stop ran, tasks cancelled); it
        # waits for a restart. Cleared when a fresh instance is installed.
        self.instance_down = False
        # Bumped by the supervisor at every restart decision about this child and
        # at every restart: a delayed restart scheduled at an older generation is
        # stale and is dropped (see Supervisor._restart).
        self.restart_gen = 0
        # This child's own restart times, for a supervisor that keeps a restart
        # intensity per child (Directory); ascending, see _intensity.add_restart.
        self.window: tuple[float, ...] = ()


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
        self.cold: _Cold | None = None
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

    def hot(self) -> _Cold:
        """The cold bookkeeping, allocated on first use."""
        cold = self.cold
        if cold is None:
            cold = self.cold = _Cold()
        return cold

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
            self.hot().host = start_host()
        if _needs_hook(cls, op[0]):
            self.state = STARTING
            cold = self.hot()
            cold.control.append(op)
            if not self.active:
                self._schedule()
        else:
            self._running(op)

    def _running(self, op: tuple[Any, ...]) -> None:
        self.state = RUNNING
        if self.cold is not None:
            self.cold.started_at = trio.current_time()
        self._notify_lot()
        kind = "restarted" if self.cold is not None and self.cold.restarts else "started"
        self.system.emit(kind, self)
        if not self.active and (self.mailbox or (self.cold is not None and self.cold.attention)):
            self._schedule()

    def restart(self, error: BaseException | None) -> None:
        """Replace the stopped instance with a fresh one; it runs ``on_restart(error)``
        (``on_start`` when ``error`` is None: a normal exit of a permanent child).

        The mailbox is kept. If the factory raises, the actor fails again.
        """
        cold = self.hot()
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
            self._fail(exc, _NOTHING)
            return
        self._begin(("start",) if error is None else ("restart", error), actor)

    # ------------------------------------------------------------------ mailbox
    def put_nowait(self, item: Any) -> None:
        """Enqueue without waiting; dead-letters if stopped; raises MailboxFull if full."""
        if self.state not in _ACCEPTING:
            self._undeliverable(item, "stopped")
            return
        mb = self.mailbox
        if mb is None:
            mb = self.mailbox = collections.deque()
        elif len(mb) >= self.capacity:
            self._undeliverable(item, "mailbox_full")
            raise MailboxFull(self.path, self.capacity)
        mb.append(item)
        if not self.active and self.state is RUNNING:
            self._schedule()

    async def put(self, item: Any) -> None:
        """Enqueue, waiting for space while the mailbox is full (backpressure).

        A checkpoint only when it has to wait. If cancelled while waiting, the
        item was not enqueued. Dead-letters if the actor is or becomes stopped.
        """
        waited = False
        while True:
            if self.state not in _ACCEPTING:
                self._undeliverable(item, "stopped")
                return
            mb = self.mailbox
            if mb is None or len(mb) < self.capacity:
                self.put_nowait(item)
                if waited and self.mailbox is not None and len(self.mailbox) < self.capacity:
                    self._space_freed()  # room is left: the next waiting sender goes on
                return
            cold = self.hot()
            if cold.space is None:
                cold.space = trio.lowlevel.ParkingLot()
            await cold.space.park()
            waited = True

    def _space_freed(self) -> None:
        """Wake one sender waiting for space (woken by a pop from a full mailbox, or
        by the sender woken before it, while room is left)."""
        cold = self.cold
        if cold is not None and cold.space:
            cold.space.unpark()

    def _undeliverable(self, item: Any, reason: DeadLetterReason) -> None:
        if type(item) is _Ask:
            item.fail(ActorStopped(self.path))
            item = item.msg
        self.system.dead_letters.record(self.path, reason, item, trio.current_time())

    def push_system(self, msg: Any) -> None:
        """Queue a kernel message (ahead of the mailbox, never bounded)."""
        cold = self.hot()
        cold.sysq.append(msg)
        cold.attention = True
        if not self.active and self.state is RUNNING:
            self._schedule()

    # ------------------------------------------------------------------ the drain task
    def _schedule(self) -> None:
        self.active = True
        self.scope = trio.CancelScope()
        self.system.nursery.start_soon(self._run)

    async def _run(self) -> None:
        structlog.contextvars.bind_contextvars(actor=self.path)
        scope = self.scope
        assert scope is not None
        hand: list[Any] = [_NOTHING]  # the message _drain held when it raised
        failure: Exception | None = None
        passing = True  # until proven otherwise, a BaseException is going up
        try:
            try:
                with scope:
                    if self.cold is not None and self.cold.control:
                        await self._run_control()
                    if self.state is RUNNING:
                        await self._drain(hand)
            except Exception as exc:
                # An error from receive or a hook: a group of errors too, and what
                # is left of a group once our scope has taken its Cancelled out.
                failure = exc
            passing = False
        finally:
            self.scope = None
            self.active = False
            self._settle(hand[0], failure, passing=passing, cancelled=scope.cancel_called)
            self._notify_lot()

    def _settle(
        self, item: Any, failure: Exception | None, *, passing: bool, cancelled: bool
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
        cold = self.cold
        kill = None
        if cold is not None and cold.kill is not None:
            kill, cold.kill = cold.kill, None
        if passing or self.state not in (STARTING, RUNNING):
            if failure is not None and not cancelled:
                self._record_failure(failure, item, interrupted=False)
            elif item is not _NOTHING:
                if failure is not None:
                    _log.warning("error_while_stopping", actor=self.path, error=repr(failure))
                self._undeliverable_interrupted(item)
        elif kill is not None:
            if failure is not None:
                _log.warning("error_while_killed", actor=self.path, error=repr(failure))
            self._fail(kill, item, interrupted=True)
        elif failure is not None:
            self._fail(failure, item)
        elif item is not _NOTHING:
            self._undeliverable_interrupted(item)  # cancelled in hand: not its fault
        elif not self.mailbox:
            self.mailbox = None
            self.idle_since = trio.current_time()

    async def _drain(self, hand: list[Any]) -> None:
        """Handle messages until the mailbox stays empty, a kernel message or exit
        needs the drain to stop, or the state leaves RUNNING. If anything is raised
        while a message is in hand, the message is left in ``hand[0]`` for
        ``_settle``, whatever the exception's shape."""
        actor = self.actor
        receive = actor.receive
        host = self.cold.host if self.cold is not None else None
        system = self.system
        # Locals, not globals, on the per-message path (the tell benchmark's budget
        # is about 0.5 us a message; each lookup saved is a few per cent of it).
        ask, nothing, running = _Ask, _NOTHING, RUNNING
        was_full = self.capacity - 1  # the length right after a pop from a full mailbox
        n = FAIRNESS_BATCH
        lingered = 0
        item: Any = nothing
        try:
            while True:
                cold = self.cold
                if cold is not None and cold.attention and not await self._attend(cold):
                    return
                mb = self.mailbox
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
                    self._space_freed()
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
                self.processed += 1
                if self.state is not running:
                    return
                n -= 1
                if not n:
                    n = FAIRNESS_BATCH
                    await trio.lowlevel.checkpoint()
        except BaseException:
            hand[0] = item  # not handled here: _run settles it, then this goes on up
            raise

    async def _attend(self, cold: _Cold) -> bool:
        """Handle kill / kernel messages / exit; False when the drain must stop."""
        if cold.kill is not None:
            kill, cold.kill = cold.kill, None
            raise kill
        while cold.sysq:
            msg = cold.sysq.popleft()
            await self.actor._system_receive(msg)  # type: ignore[union-attr]
            if self.state is not RUNNING:
                cold.attention = bool(cold.sysq) or cold.exit_requested
                return False
        cold.attention = cold.exit_requested
        return not cold.exit_requested

    async def _run_control(self) -> None:
        cold = self.hot()
        while cold.control and self.state in (STARTING, RUNNING):
            op = cold.control.pop(0)
            match op:
                case ("start",):
                    await self.hook("on_start")
                    if self.state is STARTING:
                        self._running(op)
                case ("restart", error):
                    await self.hook("on_restart", error)
                    if self.state is STARTING:
                        self._running(op)
                case ("passivate",):
                    if not (self.mailbox or cold.attention or cold.tasks):
                        await self.hook("on_passivate")
                        if not self.mailbox and not cold.attention and self.state is RUNNING:
                            self._passivated()
                            return
                    # busy again: passivation is cancelled, the instance stays live
                    parent = self.parent
                    if parent is not None:
                        parent.actor._passivation_cancelled(self)  # type: ignore[union-attr]

    async def hook(self, name: str, *args: Any) -> None:
        """Run a lifecycle hook of the current instance (on its thread if blocking)."""
        fn: Callable[..., Any] = getattr(self.actor, name)
        host = self.cold.host if self.cold is not None else None
        if host is not None:
            await call_on_thread(host, self.system, fn, *args)
        else:
            await fn(*args)

    def _undeliverable_interrupted(self, item: Any) -> None:
        if type(item) is _Ask:
            item.fail(ActorStopped(self.path))
            item = item.msg
        self.system.dead_letters.record(self.path, "interrupted", item, trio.current_time())

    # ------------------------------------------------------------------ failure
    def _fail(self, exc: BaseException, item: Any, *, interrupted: bool = False) -> None:
        """The actor failed: record, dead-letter the culprit, tell the supervisor."""
        self.state = FAILED
        self._record_failure(exc, item, interrupted=interrupted)
        parent = self.parent
        if parent is None:
            self.system.root_failed(exc)
        else:
            from ._supervisor import ChildFailed

            parent.push_system(ChildFailed(self, exc))

    def _record_failure(self, exc: BaseException, item: Any, *, interrupted: bool) -> None:
        """Record ``exc`` as the last error, dead-letter ``item`` (failing its ask with
        ActorFailed), cancel the owned tasks, log and publish the failure."""
        now = trio.current_time()
        cold = self.hot()
        cold.last_error = ErrorInfo.capture(exc, now)
        if item is not _NOTHING:
            msg = item
            if type(item) is _Ask:
                item.fail(ActorFailed(self.path, exc))
                msg = item.msg
            reason: DeadLetterReason = "interrupted" if interrupted else "caused_failure"
            self.system.dead_letters.record(self.path, reason, msg, now)
        self._cancel_tasks()
        _log.error(
            "actor_failed",
            actor=self.path,
            error_type=type(exc).__name__,
            error=str(exc),
            message_type=None if item is _NOTHING else type(getattr(item, "msg", item)).__name__,
        )
        self.system.emit("failed", self, cold.last_error.summary())
        self._notify_lot()

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
            cold = self.hot()
            cold.kill = exc
            cold.attention = True
            assert self.scope is not None
            self.scope.cancel()
        else:
            self._fail(exc, _NOTHING)

    def request_exit(self) -> None:
        """The actor asked to stop normally: stop draining, let the supervisor decide."""
        cold = self.hot()
        if cold.exit_requested:
            return
        cold.exit_requested = True
        cold.attention = True
        parent = self.parent
        if parent is None:
            self.system.root_exited()
        else:
            from ._supervisor import ChildExited

            parent.push_system(ChildExited(self))

    # ------------------------------------------------------------------ owned tasks
    def spawn_task(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], name: str | None
    ) -> TaskHandle:
        if self.state not in (STARTING, RUNNING):
            raise ActorStopped(self.path)
        handle = TaskHandle(self, name or str(getattr(fn, "__qualname__", repr(fn))))
        self.hot().tasks.add(handle)
        self.system.nursery.start_soon(handle._run, fn, args, name=f"{self.path}:{handle.name}")
        return handle

    def owns(self, handle: TaskHandle) -> bool:
        return self.cold is not None and handle in self.cold.tasks

    def forget_task(self, handle: TaskHandle) -> None:
        if self.cold is not None:
            self.cold.tasks.discard(handle)

    def _cancel_tasks(self) -> None:
        cold = self.cold
        if cold is not None and cold.tasks:
            tasks, cold.tasks = cold.tasks, set()
            for t in tasks:
                t.cancel()

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
        self._notify_lot()
        cold = self.cold
        if cold is not None and cold.instance_down:
            return
        path = self.path
        limit = math.inf if timeout is None else timeout
        if not self.active and not _needs_hook(type(self.actor), "stop"):
            limit = 0.0 if cold is None or cold.host is None else limit
            if limit == 0.0:  # nothing to wait for and no on_stop: skip the cancel scope
                self._cancel_tasks()
                if cold is not None:
                    cold.instance_down = True
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
            self._cancel_tasks()
            cold = self.hot()
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
            self._finish_stop("stopped", reason)

    def _finish_stop(self, event: str, reason: DeadLetterReason = "stopped") -> None:
        self.state = STOPPED
        mb, self.mailbox = self.mailbox, None
        while mb:
            self._undeliverable(mb.popleft(), reason)
        cold = self.cold
        if cold is not None:
            cold.sysq.clear()
            cold.control.clear()
            cold.attention = False
            if cold.space is not None:
                cold.space.unpark_all()
        self._notify_lot()
        self.system.emit(event, self)

    def enter_backoff(self) -> None:
        """Mark a failed actor as waiting out its restart backoff (messages queue)."""
        self.state = BACKOFF
        self._notify_lot()
        self.system.emit("backoff", self)

    # ------------------------------------------------------------------ passivation
    def request_passivate(self) -> bool:
        """Ask an idle actor to passivate; False (nothing done) unless it is idle."""
        cold = self.cold
        if (
            self.state is not RUNNING
            or self.active
            or self.mailbox
            or (cold is not None and (cold.tasks or cold.attention))
        ):
            return False
        self.hot().control.append(("passivate",))
        self._schedule()
        return True

    def _passivated(self) -> None:
        cold = self.hot()
        if cold.host is not None:
            stop_host(cold.host)
            cold.host = None
        self._finish_stop("passivated")
        parent = self.parent
        if parent is not None:
            parent.actor._child_passivated(self)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ waiting
    async def _park(self) -> None:
        cold = self.hot()
        if cold.lot is None:
            cold.lot = trio.lowlevel.ParkingLot()
        await cold.lot.park()

    def _notify_lot(self) -> None:
        cold = self.cold
        if cold is not None and cold.lot:
            cold.lot.unpark_all()

    async def wait_until(self, predicate: Callable[[Cell], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked at every state change."""
        while not predicate(self):
            await self._park()

    # ------------------------------------------------------------------ introspection
    def children(self) -> dict[str, Cell]:
        cold = self.cold
        return {} if cold is None or cold.children is None else cold.children

    def info(self, *, recursive: bool) -> ActorInfo:
        cold = self.cold
        kids: tuple[ActorInfo, ...] = ()
        if recursive and cold is not None and cold.children:
            kids = tuple(c.info(recursive=True) for c in list(cold.children.values()))
        return ActorInfo(
            path=self.path,
            cls=type(self.actor).__qualname__,
            state=self.state.value,
            dispatcher=type(self.actor).dispatcher,
            mailbox_depth=len(self.mailbox) if self.mailbox else 0,
            mailbox_capacity=self.capacity,
            processed=self.processed,
            restarts=cold.restarts if cold else 0,
            restart_times=tuple(cold.restart_times) if cold else (),
            last_error=cold.last_error if cold else None,
            tasks=len(cold.tasks) if cold else 0,
            children=kids,
        )


_HOOKS: dict[tuple[type, str], bool] = {}


def _needs_hook(cls: Any, op: str) -> bool:
    """Whether ``cls`` overrides the hook that ``op`` runs (cached per class): an
    actor with no hook to run is running at once, with no task spawned."""
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
