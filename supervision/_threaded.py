"""The thread dispatcher: a :class:`BlockingActor` runs on its own pykka ``ThreadingActor``.

Crossing back into trio uses ``TrioToken.run_sync_soon`` (thread-safe), so the
trio loop never blocks on the thread: the waiting trio task parks with
``wait_task_rescheduled`` and is rescheduled with the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

import outcome
import pykka
import trio

if TYPE_CHECKING:
    from ._system import ActorSystem


T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _Job:
    """One call to run on the actor's thread; its outcome goes back to a parked trio task."""

    __slots__ = ("abandoned", "args", "fn", "task", "token")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], token: trio.lowlevel.TrioToken
    ) -> None:
        self.fn = fn
        self.args = args
        self.token = token
        self.task = trio.lowlevel.current_task()
        self.abandoned = False

    def run(self) -> None:  # on the pykka thread
        result = outcome.capture(self.fn, *self.args)
        try:
            self.token.run_sync_soon(self._deliver, result)
        except trio.RunFinishedError:
            pass  # the system is gone; nobody waits for this result any more

    def _deliver(self, result: outcome.Outcome[Any]) -> None:  # on the trio thread
        if not self.abandoned:
            trio.lowlevel.reschedule(self.task, result)


class ThreadHost(pykka.ThreadingActor):
    """The pykka actor hosting one BlockingActor: it runs the jobs it is told, in order."""

    use_daemon_thread = True

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Job):
            message.run()


def start_host() -> pykka.ActorRef[Any]:
    """Start a fresh host thread (about 0.1 ms)."""
    return ThreadHost.start()


async def call_on_thread(
    host: pykka.ActorRef[Any], system: ActorSystem | None, fn: Callable[..., Any], *args: Any
) -> Any:
    """Run ``fn(*args)`` on ``host``'s thread and return (or raise) its outcome.

    A checkpoint. Cancelled before the call was handed over, ``fn`` never runs;
    cancelled after, it keeps running on the thread (threads cannot be
    interrupted) and its outcome is discarded. With a ``system``, the
    call counts as work in progress for ``system.quiescent()``.
    """
    # A caller already cancelled must not start work it will never see.
    await trio.lowlevel.checkpoint_if_cancelled()
    token = system.trio_token if system is not None else trio.lowlevel.current_trio_token()
    job = _Job(fn, args, token)
    host.tell(job)
    if system is None:
        return await trio.lowlevel.wait_task_rescheduled(lambda _: _abandon(job))

    system.thread_calls += 1
    try:
        return await trio.lowlevel.wait_task_rescheduled(lambda _: _abandon(job))
    finally:
        system.thread_calls -= 1
        if not system.thread_calls:
            system.threads_idle.unpark_all()


def _abandon(job: _Job) -> trio.lowlevel.Abort:
    job.abandoned = True
    return trio.lowlevel.Abort.SUCCEEDED


def stop_host(host: pykka.ActorRef[Any]) -> None:
    """Ask the host thread to finish after its queued jobs; does not wait."""
    try:
        host.stop(block=False)
    except pykka.ActorDeadError:
        pass


class BlockingWorker:
    """One dedicated pykka thread that runs blocking calls for trio code, one at a
    time, in the order they were submitted: the thread dispatcher without an actor.

    ``storage`` hosts its SQLite connection on one (a connection must stay on the
    thread that made it). Made and closed on the trio thread; ``run`` never
    blocks the trio loop.
    """

    __slots__ = ("_closed", "_host", "_system")

    def __init__(self, system: ActorSystem | None = None) -> None:
        self._host = start_host()
        self._system = system
        self._closed = False

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` on the thread and return (or raise) what it did.

        A checkpoint. If cancelled, ``fn`` still runs to completion on the
        thread (a thread cannot be interrupted) and its outcome is discarded.
        Raises ``trio.ClosedResourceError`` after :meth:`close`.
        """
        if self._closed:
            raise trio.ClosedResourceError("this BlockingWorker is closed")
        result: T = await call_on_thread(self._host, self._system, fn, *args)
        return result

    def close(self) -> None:
        """Let the thread finish the calls already submitted, then end. Idempotent;
        does not wait."""
        if not self._closed:
            self._closed = True
            stop_host(self._host)
