"""Ordered shutdown: right to left, each child within its timeout, then cancelled."""

from __future__ import annotations

import trio
import trio.testing

from supervision import ChildSpec, Supervisor, open_system
from tests.kit import Journal, Worker


async def test_children_stop_right_to_left_and_subtrees_first(autojump_clock: object) -> None:
    """Closing the system stops children last-started first; a nested supervisor
    stops its own children before the next sibling to its left stops."""
    j = Journal()
    inner = lambda: Supervisor(  # noqa: E731
        [ChildSpec(n, lambda n=n: Worker(n, j)) for n in ("i1", "i2")]  # type: ignore[misc]
    )
    specs = [
        ChildSpec("a", lambda: Worker("a", j)),
        ChildSpec("inner", inner),
        ChildSpec("c", lambda: Worker("c", j)),
    ]
    async with open_system(lambda: Supervisor(specs)):
        assert j.of("start") == ["a", "i1", "i2", "c"]
    assert j.of("stop") == ["c", "i2", "i1", "a"]
    assert j.of("stopped") == ["c", "i2", "i1", "a"]


async def test_a_child_that_ignores_its_timeout_is_cancelled(autojump_clock: object) -> None:
    """A child whose on_stop outlasts shutdown_timeout_s is cancelled at the timeout,
    and the shutdown goes on with the next child (to its left)."""
    j = Journal()
    specs = [
        ChildSpec("a", lambda: Worker("a", j)),
        ChildSpec("slow", lambda: Worker("slow", j, stop_delay=3600), shutdown_timeout_s=2.0),
        ChildSpec("c", lambda: Worker("c", j)),
    ]
    t0 = 0.0
    async with open_system(lambda: Supervisor(specs)):
        t0 = trio.current_time()
    elapsed = trio.current_time() - t0
    assert j.of("stop") == ["c", "slow", "a"]
    assert j.of("stopped") == ["c", "a"]  # slow never finished its on_stop
    assert 2.0 <= elapsed < 2.1


async def test_system_timeout_applies_when_the_spec_sets_none(autojump_clock: object) -> None:
    """A child without its own timeout gets the system's shutdown_timeout_s."""
    j = Journal()
    specs = [ChildSpec("slow", lambda: Worker("slow", j, stop_delay=3600))]
    async with open_system(lambda: Supervisor(specs), shutdown_timeout_s=0.5):
        t0 = trio.current_time()
    assert 0.5 <= trio.current_time() - t0 < 0.6
    assert j.of("stopped") == []


async def test_stop_waits_for_the_message_in_hand(autojump_clock: object) -> None:
    """A stop lets the current message finish (within the timeout) before on_stop."""
    j = Journal()

    class Slow(Worker):
        async def receive(self, msg: object) -> object:
            await trio.sleep(1.0)
            return await super().receive(msg)

    async with open_system(
        lambda: Supervisor([ChildSpec("s", lambda: Slow("s", j), shutdown_timeout_s=5.0)])
    ) as system:
        await system.lookup("/s").tell("finish me")
        await trio.testing.wait_all_tasks_blocked()
    assert j.handled == [("s", "finish me")]
    assert j.events[-2:] == [("stop", "s"), ("stopped", "s")]
