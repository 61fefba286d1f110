"""An asyncio event loop on its own thread, for asyncpg, awaited from trio.

asyncpg needs asyncio. Rather than run trio-asyncio's loop inside trio (which
ties the pool's lifetime to a trio task holding ``open_loop()``), the pool
lives on a plain asyncio loop in a daemon thread: a call is one
``run_coroutine_threadsafe`` there and one ``run_sync_soon`` back, so the trio
loop never blocks and a whole transaction costs a single round trip.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple

import outcome
import trio

__all__ = ["LoopThread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class LoopThread:
    """A running asyncio loop on a daemon thread. Start with ``LoopThread()``; end with
    :meth:`aclose`."""

    def __init__(self, name: str = "greenroom-asyncio") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    async def run(self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Run ``await fn(*args)`` on the loop and return (or raise) its outcome.

        A checkpoint. If the trio caller is cancelled, the asyncio task is
        cancelled too and the caller waits until it has really ended (asyncpg
        rolls back and the connection is back in the pool): only then does it
        see ``trio.Cancelled``, so the next call never races the last one's
        commit. If the work finished anyway, its result is returned and the
        cancellation is delivered at the caller's next checkpoint. Raises
        ``trio.ClosedResourceError`` after :meth:`aclose`.
        """
        if self._closed:
            raise trio.ClosedResourceError("this LoopThread is closed")
        await trio.lowlevel.checkpoint_if_cancelled()  # never start what nobody awaits
        token = trio.lowlevel.current_trio_token()
        trio_task = trio.lowlevel.current_task()
        started: list[asyncio.Task[Any]] = []  # touched on the loop thread only
        raise_cancel: list[Callable[[], Any]] = []  # set by abort, on the trio thread

        def finish(done: asyncio.Task[Any]) -> None:  # on the trio thread
            if done.cancelled():
                result: outcome.Outcome[Any] = (
                    outcome.capture(raise_cancel[0])
                    if raise_cancel
                    else outcome.Error(RuntimeError("cancelled on the asyncio loop"))
                )
            else:
                result = outcome.capture(done.result)
            trio.lowlevel.reschedule(trio_task, result)

        def on_done(done: asyncio.Task[Any]) -> None:  # on the loop thread
            try:
                token.run_sync_soon(finish, done)
            except trio.RunFinishedError:
                pass  # trio is gone: nobody waits for this result any more

        def start() -> None:  # on the loop thread
            task = self.loop.create_task(_call(fn, args))
            task.add_done_callback(on_done)
            started.append(task)

        def cancel() -> None:  # on the loop thread, always after start()
            for task in started:
                task.cancel()

        self.loop.call_soon_threadsafe(start)

        def abort(rc: Callable[[], Any]) -> trio.lowlevel.Abort:
            raise_cancel.append(rc)
            self.loop.call_soon_threadsafe(cancel)
            return trio.lowlevel.Abort.FAILED  # finish() reschedules once it ended

        # wait_task_rescheduled is untyped (Any): this is the outcome finish() unwrapped.
        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    async def aclose(self) -> None:
        """Cancel what still runs on the loop, stop it, join its thread, close it.

        Idempotent; a checkpoint, shielded: it completes even when its caller
        is cancelled (a half-closed loop would leak sockets and the thread).
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            done = asyncio.run_coroutine_threadsafe(_cancel_pending(), self.loop)
            await trio.to_thread.run_sync(done.result)
            self.loop.call_soon_threadsafe(self.loop.stop)
            await trio.to_thread.run_sync(self._thread.join)
        self.loop.close()


async def _call(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> Any:
    return await fn(*args)


async def _cancel_pending() -> None:
    # Everything but this task: cancel, then let each run its cleanup.
    me = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not me]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
