"""``/reconciler``: nothing waits for a restart to be recovered.

Doors re-send what a previous run left unsent when they start, and ``greenroom
run`` re-dispatches queued jobs at start; between restarts, work can still be
left behind: a ``chat.Received`` that found its user actor's mailbox full, a
``chat.Deliver`` that waited more than its bound, a Telegram send that failed.
Every ``interval_s`` this actor sweeps storage: jobs queued longer than
``queued_after_s`` go to their user's actor again, replies unsent longer than
``unsent_after_s`` go to their door again. Each is still handled once: a
user actor claims a job once (a second tell finds nothing to claim), and a door
sends a reply only while the outbox says it is unsent (and drops one it is
already sending). A platform whose send cannot tell whether it landed
(Telegram's timed-out send) is at-least-once, as the README says.

Bounded: at most ``batch`` of each per sweep, each tell waits at most
``tell_timeout_s``, and each job or reply is sent out again at most
``max_resends`` times in this process's life (a door that keeps refusing a
reply, a blocked bot, stops being asked; the next start tries again).
``ask /reconciler chat.Reconcile`` sweeps at once.
"""

from __future__ import annotations

from typing import Any

import trio

from config import ReconcilerSettings
from protocols import Deliver, Reconcile, Reconciled
from storage import StorageError, Store
from supervision import Actor, KernelError, UnknownPath

from .connectors import tell_author

__all__ = ["Reconciler"]


class Reconciler(Actor):
    """See the module docstring. Accepts ``chat.Reconcile``."""

    accepts = (Reconcile,)

    def __init__(
        self, store: Store, settings: ReconcilerSettings, *, tell_timeout_s: float = 1.0
    ) -> None:
        self.store = store
        self.settings = settings
        self.tell_timeout_s = tell_timeout_s
        self.resends: dict[str, int] = {}  # "job:<id>" / "reply:<id>" -> times sent out again
        self.sweeps = 0
        # One sweep at a time: the interval's and an operator's ask would otherwise
        # tell the same work twice and spend its resends twice.
        self._sweeping = trio.Lock()
        # Where the next sweep's pages start (job id, reply id): a full page moves
        # past what it read, so items that used up their resends (and stay queued
        # or unsent) cannot fill every page and starve the ones behind them.
        self._after = {"job": 0, "reply": 0}

    async def on_start(self) -> None:
        self.spawn_task(self._every_interval, name="sweep")

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Reconcile():
                return await self.sweep()
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    async def _every_interval(self) -> None:
        while True:
            await trio.sleep(self.settings.interval_s)
            try:
                await self.sweep()
            except StorageError as exc:
                # The database is down: /storage and /readyz say so; try next time.
                self.log.warning("reconcile_skipped", error=str(exc))

    async def sweep(self) -> Reconciled:
        """One sweep (see the module docstring); what it sent out again. Waits for a
        sweep in progress to end first. A checkpoint; cancelled half-way, what was
        told stays told. Storage errors propagate."""
        async with self._sweeping:
            return await self._sweep()

    async def _sweep(self) -> Reconciled:
        s = self.settings
        jobs = await self.store.queued_work(
            s.batch, older_than_s=s.queued_after_s, after_id=self._after["job"]
        )
        replies = await self.store.unsent_replies(
            limit=s.batch, older_than_s=s.unsent_after_s, after_id=self._after["reply"]
        )
        told_jobs = told_replies = skipped = 0
        for received in jobs:
            if self._spent(f"job:{received.job_id}"):
                skipped += 1
            elif await tell_author(self.system, received, timeout_s=self.tell_timeout_s):
                told_jobs += 1
            else:
                skipped += 1
        for pending in replies:
            if self._spent(f"reply:{pending.message.id}"):
                skipped += 1
            elif await self._tell_door(pending.deliver()):
                told_replies += 1
            else:
                skipped += 1
        self.sweeps += 1
        if told_jobs or told_replies:
            self.log.info("reconciled", jobs=told_jobs, replies=told_replies, skipped=skipped)
        self._page("job", [r.job_id for r in jobs])
        self._page("reply", [p.message.id for p in replies])
        return Reconciled(jobs=told_jobs, replies=told_replies, skipped=skipped)

    def _page(self, kind: str, ids: list[int]) -> None:
        """Move ``kind``'s cursor past a full page (back to the start after a short
        one), and forget the counts of items in the range read that are gone (no
        longer queued or unsent): the map stays as small as the backlog."""
        after = self._after[kind]
        full = len(ids) == self.settings.batch
        upto = ids[-1] if full else float("inf")
        self._after[kind] = ids[-1] if full else 0
        seen = set(ids)
        prefix = kind + ":"
        for key in [k for k in self.resends if k.startswith(prefix)]:
            n = int(key[len(prefix) :])
            if after < n <= upto and n not in seen:
                del self.resends[key]

    def _spent(self, key: str) -> bool:
        """Count one more resend of ``key``; True when it had all it may have."""
        n = self.resends.get(key, 0)
        if n >= self.settings.max_resends:
            if n == self.settings.max_resends:
                self.log.warning("reconcile_gave_up", item=key, resends=n,
                                 hint="it is tried again at the next start")  # fmt: skip
                self.resends[key] = n + 1  # logged once
            return True
        self.resends[key] = n + 1
        return False

    async def _tell_door(self, deliver: Deliver) -> bool:
        path = f"/connectors/{deliver.platform}"
        try:
            door = self.system.lookup(path)
        except UnknownPath:
            return False  # that door is not running (not configured now): nothing to do
        with trio.move_on_after(self.tell_timeout_s):
            try:
                await door.tell(deliver)
                return True
            except KernelError as exc:
                self.log.warning("reconcile_reply_not_told", door=path, error=repr(exc))
        return False
