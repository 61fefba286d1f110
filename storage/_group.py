"""Group commit: concurrent writes share one transaction, each caller released when durable.

Leader/follower, with no background task and no timer: the first caller to
find no flush in progress becomes the leader and commits everything queued
(up to ``max_batch``) in one transaction; callers arriving meanwhile queue,
and when the flush ends one of them leads the next batch with all of them.
A lone caller therefore pays no added latency, and under load a batch is
exactly what arrived during the previous commit (the fsync), which is how
Postgres's own ``commit_delay`` reasoning and InnoDB's group commit work,
without a tuning knob.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import outcome
import trio

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("item", "result", "taken")

    def __init__(self, item: T) -> None:
        self.item = item
        self.taken = False  # handed to a flush: its fate no longer depends on its caller
        self.result: outcome.Outcome[R] | None = None


class GroupCommit(Generic[T, R]):
    """Batches ``submit`` calls into calls of ``flush(items) -> outcomes``.

    ``flush`` returns one ``outcome.Outcome`` per item, in order, so one bad
    item need not fail its batch-mates; if it raises, every item of that batch
    gets the error. ``batches`` and ``items`` count what was flushed.
    """

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[outcome.Outcome[R]]]],
        *,
        max_batch: int = 256,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, not {max_batch!r}")
        self._flush = flush
        self.max_batch = max_batch
        self._queue: collections.deque[_Slot[T, R]] = collections.deque()
        self._busy = False
        self._flushed = trio.Event()
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is queued and return its result.

        Always a checkpoint. If cancelled before its batch began, the item is
        withdrawn (never written). Once its batch began, the batch completes
        (the flush is shielded; it must bound its own time), and a cancelled
        caller simply does not see the result: the write may be durable, so
        callers make writes idempotent (``ingest`` is, by message id).
        """
        slot: _Slot[T, R] = _Slot(item)
        self._queue.append(slot)
        try:
            while slot.result is None:
                if self._busy:
                    await self._flushed.wait()
                else:
                    await self._lead()
        except BaseException:
            if not slot.taken:
                self._queue.remove(slot)
            raise
        return slot.result.unwrap()

    async def _lead(self) -> None:
        self._busy = True
        batch: list[_Slot[T, R]] = []
        try:
            # One checkpoint first: the callers just released by the previous
            # flush are runnable now and mostly about to submit again; letting
            # them queue doubles the batch under load (measured: 64 -> 128 with
            # 128 producers) for one scheduler pass of latency.
            await trio.lowlevel.checkpoint()
            while self._queue and len(batch) < self.max_batch:
                slot = self._queue.popleft()
                slot.taken = True
                batch.append(slot)
            if not batch:
                return  # every queued caller withdrew meanwhile
            with trio.CancelScope(shield=True):
                try:
                    results = list(await self._flush([s.item for s in batch]))
                except Exception as exc:
                    results = [outcome.Error(exc) for _ in batch]  # each unwraps once
            if len(results) != len(batch):
                raise AssertionError(f"flush returned {len(results)} outcomes for {len(batch)}")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
            self.batches += 1
            self.items += len(batch)
        finally:
            # Whatever happened (a flush that broke its contract, a KeyboardInterrupt),
            # no taken slot is left without a result: its caller would lead empty
            # batches forever.
            for slot in batch:
                if slot.result is None:
                    slot.result = outcome.Error(RuntimeError("the group commit was interrupted"))
            self._busy = False
            flushed, self._flushed = self._flushed, trio.Event()
            flushed.set()
