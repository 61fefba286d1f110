"""Group restarts over children in backoff (issue 10, item 3).

A ``one_for_all`` / ``rest_for_one`` restart that takes in a sibling already
waiting out its backoff must not stop that sibling's dead instance again, and
the sibling's own pending delayed restart must not fire later and replace the
instance the group restart made. Every test actor counts its instances in
class-level registries, so the checks see every incarnation.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any, ClassVar

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision import (
    NO_BACKOFF,
    Actor,
    ActorFailed,
    ActorSystem,
    Backoff,
    ChildSpec,
    Supervisor,
    UnknownPath,
    open_system,
)
from supervision.testing import start_child
from tests.kit import Echo


class Tracked(Actor):
    """Registers each instance: started (live until on_stop), stops, owned tasks alive."""

    ids: ClassVar[itertools.count[int]] = itertools.count()
    live: ClassVar[dict[str, set[int]]] = collections.defaultdict(set)
    stops: ClassVar[collections.Counter[int]] = collections.Counter()
    tasks: ClassVar[dict[int, str]] = {}  # instance id -> child name, while its task runs
    overlaps: ClassVar[list[str]] = []  # child names started while another instance was live

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = next(Tracked.ids)

    @classmethod
    def reset(cls) -> None:
        cls.live.clear()
        cls.stops.clear()
        cls.tasks.clear()
        cls.overlaps.clear()

    async def on_start(self) -> None:
        if Tracked.live[self.name]:
            Tracked.overlaps.append(self.name)
        Tracked.live[self.name].add(self.id)
        self.spawn_task(self._owned)

    async def _owned(self) -> None:
        Tracked.tasks[self.id] = self.name
        try:
            await trio.sleep_forever()
        finally:
            del Tracked.tasks[self.id]

    async def on_stop(self) -> None:
        Tracked.stops[self.id] += 1
        Tracked.live[self.name].discard(self.id)

    async def receive(self, msg: Any) -> Any:
        if msg == "boom":
            raise RuntimeError(f"{self.name} boom")
        return self.id


def tracked(*names: str) -> list[ChildSpec]:
    return [ChildSpec(n, lambda n=n: Tracked(n)) for n in names]  # type: ignore[misc]


async def start(system: ActorSystem, sup: Supervisor) -> None:
    await start_child(system, ChildSpec("s", lambda: sup))


def current_ids(system: ActorSystem, names: str) -> dict[str, int]:
    out = {}
    for n in names:
        cell = system._find(f"/s/{n}")
        assert cell is not None
        out[n] = cell.actor.id  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("strategy", ["rest_for_one", "one_for_all"])
async def test_group_restart_over_a_sibling_in_backoff(system: ActorSystem, strategy: str) -> None:
    """Issue 10, item 3: b fails and its group waits out the backoff (b and c under
    rest_for_one; a and b under one_for_all, where d is then added and runs); half-way
    through, a (rest_for_one) or d (one_for_all) fails too, and its group takes in the
    children already in backoff. The group restart must not run their dead instances'
    on_stop again and must cancel their pending delayed restart: once every backoff has
    run out, each child has exactly one live instance, whose owned task is the only one
    of that child still running. The old code ran on_stop twice and, when b's stale
    RestartDue fired, replaced the running instances without on_stop, leaving their
    owned tasks running."""
    Tracked.reset()
    backoff = Backoff(min_s=1.0, max_s=1.0, jitter=0.0, reset_after_s=100.0)
    names = "abc" if strategy == "rest_for_one" else "ab"
    sup = Supervisor(
        tracked(*names),
        strategy=strategy,  # type: ignore[arg-type]
        max_restarts=10,
        backoff=backoff,
    )
    await start(system, sup)
    with pytest.raises(ActorFailed):
        await system.lookup("/s/b").ask("boom")
    await system.quiescent()
    waiting = [n for n in names if system.inspect(f"/s/{n}").state == "backoff"]
    assert waiting == (["b", "c"] if strategy == "rest_for_one" else ["a", "b"])
    await trio.sleep(0.5)
    second = "a"
    if strategy == "one_for_all":
        second = "d"
        await sup.start_child(*tracked("d"))
        names += "d"
    with pytest.raises(ActorFailed):
        await system.lookup(f"/s/{second}").ask("boom")
    await trio.sleep(10.0)  # every backoff, stale or not, has long run out
    await system.quiescent()
    assert [system.inspect(f"/s/{n}").state for n in names] == ["running"] * len(names)
    assert max(Tracked.stops.values()) == 1, Tracked.stops
    assert Tracked.overlaps == []
    ids = current_ids(system, names)
    assert {n: Tracked.live[n] for n in names} == {n: {i} for n, i in ids.items()}
    assert sorted(Tracked.tasks) == sorted(ids.values())
    assert system.inspect("/s").state == "running" and system.failure is None


def pending_timers(system: ActorSystem, sup: Supervisor) -> dict[str, int]:
    """How many delayed restarts each child of ``sup`` still lists (its cold record)."""
    return {n: len(c.cold.delayed) if c.cold else 0 for n, c in sup._kids().items()}


async def test_a_delayed_restart_is_unlisted_once_it_fired_or_was_superseded(
    system: ActorSystem,
) -> None:
    """Issue 11 (review, kernel finding 1): each child lists the delayed restarts
    pending for it, so a restart decision looks only at its group's timers. b fails
    under one_for_all and both children list the timer until it fires; b fails again
    and, half-way through that backoff, a new child d fails and its group restart
    supersedes it: the cancelled timer is unlisted at once and the new one once it
    fired. When the supervisor itself goes while a timer is pending, the timer's end
    unlists it too."""
    Tracked.reset()
    backoff = Backoff(min_s=1.0, max_s=1.0, jitter=0.0, reset_after_s=100.0)
    sup = Supervisor(tracked("a", "b"), strategy="one_for_all", max_restarts=10, backoff=backoff)
    await start(system, sup)
    with pytest.raises(ActorFailed):
        await system.lookup("/s/b").ask("boom")
    await system.quiescent()
    assert pending_timers(system, sup) == {"a": 1, "b": 1}
    await trio.sleep(2.0)
    await system.quiescent()
    assert pending_timers(system, sup) == {"a": 0, "b": 0}
    with pytest.raises(ActorFailed):
        await system.lookup("/s/b").ask("boom")
    await trio.sleep(0.5)
    await sup.start_child(*tracked("d"))
    system.kill("/s/d", "supersede b's backoff")
    await system.quiescent()
    assert pending_timers(system, sup) == {"a": 1, "b": 1, "d": 1}  # the new timer only
    await trio.sleep(2.0)
    await system.quiescent()
    assert pending_timers(system, sup) == {"a": 0, "b": 0, "d": 0}
    assert [system.inspect(f"/s/{n}").state for n in "abd"] == ["running"] * 3
    with pytest.raises(ActorFailed):
        await system.lookup("/s/b").ask("boom")
    await system.quiescent()
    cells = list(sup._kids().values())
    assert [len(c.cold.delayed) for c in cells if c.cold] == [1, 1, 1]
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    await root.actor.stop_child("s")
    await system.quiescent()
    assert [len(c.cold.delayed) for c in cells if c.cold] == [0, 0, 0]


async def test_an_instance_shut_down_for_a_restart_is_marked_down_without_a_cold_record(
    system: ActorSystem,
) -> None:
    """Issue 11 (review, kernel finding 7): shutdown_instance's fast path (nothing
    running, no on_stop) marked the instance down only if the cell already had its
    cold record; _restart then read the missing mark as "still live" and skipped the
    child. The supervisor happened to allocate the record first (_supersede); a
    shutdown for a restart now records it whatever the caller did before, while a
    final stop still allocates nothing."""
    sup = Supervisor([ChildSpec("p", Echo), ChildSpec("q", Echo)])
    await start(system, sup)
    p, q = sup._kids()["p"], sup._kids()["q"]
    assert p.cold is None and q.cold is None
    first = p.actor
    await p.shutdown_instance(0.0, final=False)
    assert p.cold is not None and p.cold.instance_down
    await sup._restart(((p, p.cold.restart_gen),), None)
    assert p.actor is not first and system.inspect("/s/p").state == "running"
    await q.stop(0.0)  # a final shutdown_instance, then the stop is finished
    assert q.cold is None


# ---------------------------------------------------------------------- property

HANG_GUARD_S = 10_000.0  # virtual seconds


class Flaky(Tracked):
    """A Tracked child that can also fail from an owned task, or in its next start."""

    fail_next_start: ClassVar[set[str]] = set()

    async def on_start(self) -> None:
        await super().on_start()
        await trio.lowlevel.checkpoint()  # a start that takes a scheduler tick
        if self.name in Flaky.fail_next_start:
            Flaky.fail_next_start.discard(self.name)
            raise RuntimeError(f"{self.name} failed to start")

    async def receive(self, msg: Any) -> Any:
        match msg:
            case "task_fails":

                async def breaks() -> None:
                    await trio.sleep(0.01)
                    raise ValueError(f"{self.name} task broke")

                self.spawn_task(breaks)
            case "start_fails":
                Flaky.fail_next_start.add(self.name)
                raise RuntimeError(f"{self.name} boom, next start fails")
        return await super().receive(msg)


BACKOFFS = st.sampled_from(
    [
        NO_BACKOFF,
        Backoff(min_s=0.2, max_s=1.0, jitter=0.0, reset_after_s=5.0),
        Backoff(min_s=0.05, max_s=2.0, jitter=0.5, reset_after_s=0.5),
    ]
)
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 3),  # which child (modulo the number of children)
        st.sampled_from(["boom", "kill", "task_fails", "start_fails"]),
        st.sampled_from([0.0, 0.0, 0.03, 0.15, 0.5, 3.0]),  # virtual pause afterwards
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    backoff=BACKOFFS,
    n_children=st.integers(2, 4),
    max_restarts=st.sampled_from([2, 1000]),
    events=EVENTS,
)
def test_random_failures_never_leave_two_instances_or_a_leaked_task(
    strategy: str,
    backoff: Backoff,
    n_children: int,
    max_restarts: int,
    events: list[tuple[int, str, float]],
) -> None:
    """Issue 10, item 3, as a property: children of one supervisor (any strategy, with
    or without backoff, an intensity that may run out so the root restarts the whole
    group) fail at random moments by raising in receive, by kill, from an owned task,
    or again in their next start. At no moment are two instances of one child live
    (started, not yet stopped); no instance's on_stop runs twice; and once the system
    is quiescent every child has exactly one live instance, the current one, and the
    owned tasks still running are exactly those of the current instances."""
    Tracked.reset()
    Flaky.fail_next_start.clear()
    names = [f"c{i}" for i in range(n_children)]

    def sup() -> Supervisor:
        specs = [ChildSpec(n, lambda n=n: Flaky(n)) for n in names]  # type: ignore[misc]
        return Supervisor(
            specs,
            strategy=strategy,  # type: ignore[arg-type]
            max_restarts=max_restarts,
            within_s=1.0,
            backoff=backoff,
        )

    async def main() -> None:
        root = lambda: Supervisor([ChildSpec("s", sup)], max_restarts=10**6)  # noqa: E731
        async with open_system(root, seed=3) as system:
            for index, kind, pause in events:
                path = f"/s/{names[index % n_children]}"
                try:
                    if kind == "kill":
                        system.kill(path, "property test")
                    else:
                        await system.tell(path, kind)
                except UnknownPath:
                    pass  # its supervisor is being restarted
                await trio.sleep(pause)
            await trio.sleep(100.0)  # every backoff has run out
            await system.quiescent()
            assert Tracked.overlaps == []
            assert max(Tracked.stops.values(), default=0) <= 1, Tracked.stops
            assert system.failure is None
            assert system.inspect("/s").state == "running"
            ids = {}
            for n in names:
                cell = system._find(f"/s/{n}")
                assert cell is not None and cell.state.value == "running", n
                ids[n] = cell.actor.id  # type: ignore[union-attr]
            assert {n: Tracked.live[n] for n in names} == {n: {i} for n, i in ids.items()}
            assert sorted(Tracked.tasks) == sorted(ids.values())

    async def guarded() -> None:
        with trio.fail_after(HANG_GUARD_S):
            await main()

    trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))
