"""GroupCommit: batching, per-item outcomes and cancellation, with a flush the test controls."""

from __future__ import annotations

from collections.abc import Sequence

import outcome
import pytest
import trio
import trio.testing

from storage import GroupCommit


class Flush:
    """A flush that records its batches and waits for the test to release each one."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = trio.Event()
        self.started = trio.Event()
        self.fail: set[int] = set()

    async def __call__(self, items: Sequence[int]) -> list[outcome.Outcome[int]]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        return [
            outcome.Error(ValueError(f"bad {i}")) if i in self.fail else outcome.Value(i * 10)
            for i in items
        ]


async def test_a_lone_caller_commits_at_once() -> None:
    flush = Flush()
    flush.release.set()
    group: GroupCommit[int, int] = GroupCommit(flush)
    assert await group.submit(1) == 10
    assert flush.batches == [[1]] and (group.batches, group.items) == (1, 1)


async def test_callers_arriving_during_a_flush_share_the_next_one() -> None:
    flush = Flush()
    group: GroupCommit[int, int] = GroupCommit(flush)
    results: dict[int, int] = {}

    async def submit(i: int) -> None:
        results[i] = await group.submit(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, 0)
        await flush.started.wait()  # 0 leads a batch of its own
        for i in range(1, 6):
            nursery.start_soon(submit, i)
        await trio.testing.wait_all_tasks_blocked()
        flush.release.set()
    # trio starts tasks in no promised order: the batch holds them all, in queue order
    assert flush.batches[0] == [0] and sorted(flush.batches[1]) == [1, 2, 3, 4, 5]
    assert len(flush.batches) == 2
    assert results == {i: i * 10 for i in range(6)}


async def test_max_batch_splits_a_long_queue() -> None:
    flush = Flush()
    group: GroupCommit[int, int] = GroupCommit(flush, max_batch=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(group.submit, 0)
        await flush.started.wait()
        for i in range(1, 6):
            nursery.start_soon(group.submit, i)
        await trio.testing.wait_all_tasks_blocked()
        flush.release.set()
    assert [len(b) for b in flush.batches] == [1, 2, 2, 1]
    assert sorted(i for b in flush.batches for i in b) == [0, 1, 2, 3, 4, 5]


async def test_one_bad_item_fails_alone_and_a_raising_flush_fails_its_batch() -> None:
    flush = Flush()
    flush.release.set()
    flush.fail = {2}
    group: GroupCommit[int, int] = GroupCommit(flush)
    with pytest.raises(ValueError, match="bad 2"):
        await group.submit(2)
    assert await group.submit(3) == 30

    async def broken(items: Sequence[int]) -> list[outcome.Outcome[int]]:
        raise ConnectionError("database down")

    down: GroupCommit[int, int] = GroupCommit(broken)
    errors = []

    async def submit(i: int) -> None:
        try:
            await down.submit(i)
        except ConnectionError as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(submit, i)
    assert errors == ["database down"] * 3


async def test_a_caller_cancelled_before_its_batch_is_withdrawn() -> None:
    flush = Flush()
    group: GroupCommit[int, int] = GroupCommit(flush)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(group.submit, 0)
        await flush.started.wait()
        victim = trio.CancelScope()

        async def doomed() -> None:
            with victim:
                await group.submit(7)

        nursery.start_soon(doomed)
        await trio.testing.wait_all_tasks_blocked()
        victim.cancel()
        await trio.testing.wait_all_tasks_blocked()
        flush.release.set()
    assert flush.batches == [[0]]  # 7 was queued, then withdrawn: never written


async def test_a_caller_cancelled_during_its_flush_does_not_break_the_batch() -> None:
    flush = Flush()
    group: GroupCommit[int, int] = GroupCommit(flush)
    got = []
    scope = trio.CancelScope()

    async def leader() -> None:
        with scope:
            got.append(await group.submit(1))

    async def follower() -> None:
        got.append(await group.submit(2))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await flush.started.wait()
        scope.cancel()  # the leader's flush is shielded: it completes
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        flush.release.set()
    assert flush.batches == [[1], [2]]
    assert 20 in got and (group.batches, group.items) == (2, 2)


def test_max_batch_is_validated() -> None:
    with pytest.raises(ValueError, match="max_batch must be an int >= 1, not 0"):
        GroupCommit(Flush(), max_batch=0)


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt: not an Exception, so the flush does not catch it."""


async def test_a_flush_that_breaks_leaves_no_batch_mate_without_an_answer() -> None:
    """Regression (review of issue 3): a flush raising a BaseException, or returning
    the wrong number of outcomes, left its batch-mates without a result, and each
    then led empty batches in a tight loop."""
    calls: list[list[int]] = []
    release = trio.Event()

    async def breaks(items: Sequence[int]) -> list[outcome.Outcome[int]]:
        calls.append(list(items))
        await release.wait()
        if len(calls) == 1:
            raise Interrupt
        return []  # the wrong number of outcomes

    group: GroupCommit[int, int] = GroupCommit(breaks)
    errors: list[str] = []

    async def submit(i: int) -> None:
        try:
            await group.submit(i)
        except (Interrupt, RuntimeError, AssertionError) as exc:
            errors.append(type(exc).__name__)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, 0)
        await trio.testing.wait_all_tasks_blocked()
        for i in (1, 2):
            nursery.start_soon(submit, i)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert len(calls) == 2 and all(calls)  # never an empty batch
    assert sorted(errors) == ["AssertionError", "Interrupt", "RuntimeError"]
