"""Property tests: delivery under failures and restarts; nothing left running after shutdown.

Each example is its own ``trio.run`` on an autojumping ``MockClock``, so restart windows,
backoff and shutdown timeouts take no real time, and a deadlock turns into the hang guard's
``TooSlowError`` (the clock jumps to its deadline) instead of a hung test.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision import (
    Actor,
    ActorFailed,
    ActorState,
    ActorSystem,
    Backoff,
    ChildSpec,
    Supervisor,
    UnknownPath,
    open_system,
)
from supervision.testing import start_child
from tests.kit import count_tasks

HANG_GUARD_S = 10_000.0  # virtual seconds
#: open_system gives the ordered shutdown this long (virtual) before cancelling everything.
SHUTDOWN_GRACE_S = 60.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Boom:
    """Makes a Recorder raise; ``id`` tells the dead letters apart."""

    id: int


class Recorder(Actor):
    """Appends every non-Boom message to a list shared with the test; checkpoints on odd ids."""

    def __init__(self, handled: list[Any], slow_start: bool) -> None:
        self.handled = handled
        self.slow_start = slow_start

    async def on_start(self) -> None:
        if self.slow_start:  # messages then queue while STARTING
            await trio.lowlevel.checkpoint()

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, Boom):
            if msg.id % 2:
                await trio.lowlevel.checkpoint()
            raise RuntimeError(f"boom {msg.id}")
        _sender, i = msg
        if i % 2:
            await trio.lowlevel.checkpoint()  # let other tasks interleave mid-message
        self.handled.append(msg)
        return msg


def run_virtual(main: Any, *args: Any) -> None:
    async def guarded() -> None:
        with trio.fail_after(HANG_GUARD_S):
            await main(*args)

    trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))


# ---------------------------------------------------------------------- delivery

SEND_OPS = st.tuples(
    st.integers(0, 1), st.sampled_from(["tell", "tell", "ask", "boom", "ask_boom"])
)
PHASES = st.lists(
    st.tuples(
        st.lists(SEND_OPS, max_size=8),  # sender A's operations
        st.lists(SEND_OPS, max_size=8),  # sender B's, concurrently
        st.sets(st.integers(0, 1)),  # actors killed once both are done and all is idle
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phases=PHASES,
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    slow_start=st.booleans(),
)
def test_every_message_is_handled_once_in_order_despite_failures(
    phases: list[tuple[list[tuple[int, str]], list[tuple[int, str]], set[int]]],
    strategy: str,
    slow_start: bool,
) -> None:
    """Two actors under one Supervisor, two concurrent senders doing tell / ask / tell(Boom) /
    ask(Boom), idle actors killed between phases: every message that did not itself cause a
    failure is handled exactly once, in each sender's order; each Boom leaves exactly one
    "caused_failure" dead letter and nothing else is dead-lettered; each ask answers its own
    message (ask(Boom) raises ActorFailed)."""
    handled: list[list[Any]] = [[], []]
    sent: list[list[Any]] = [[], []]  # per actor, in send order (ordered per sender)
    booms: list[list[Boom]] = [[], []]
    ids = iter(range(1_000_000))

    async def send(system: ActorSystem, sender: str, ops: list[tuple[int, str]]) -> None:
        for actor, op in ops:
            ref = system.lookup(f"/s/a{actor}")
            i = next(ids)
            match op:
                case "tell":
                    sent[actor].append((sender, i))
                    await ref.tell((sender, i))
                case "ask":
                    sent[actor].append((sender, i))
                    assert await ref.ask((sender, i), timeout=None) == (sender, i)
                case "boom":
                    booms[actor].append(Boom(i))
                    await ref.tell(Boom(i))
                case "ask_boom":
                    booms[actor].append(Boom(i))
                    with pytest.raises(ActorFailed):
                        await ref.ask(Boom(i), timeout=None)

    async def main() -> None:
        specs = [
            ChildSpec(f"a{n}", lambda n=n: Recorder(handled[n], slow_start))  # type: ignore[misc]
            for n in (0, 1)
        ]
        sup = Supervisor(specs, strategy=strategy, max_restarts=1000)  # type: ignore[arg-type]
        async with open_system(Supervisor, seed=1) as system:
            await start_child(system, ChildSpec("s", lambda: sup))
            for ops_a, ops_b, kills in phases:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send, system, "A", ops_a)
                    nursery.start_soon(send, system, "B", ops_b)
                await trio.testing.wait_all_tasks_blocked()
                for actor in sorted(kills):
                    system.kill(f"/s/a{actor}", "property test")
                    await trio.testing.wait_all_tasks_blocked()
            await system.quiescent()
            for n in (0, 1):
                assert collections.Counter(handled[n]) == collections.Counter(sent[n])
                for sender in "AB":
                    got = [m for m in handled[n] if m[0] == sender]
                    assert got == [m for m in sent[n] if m[0] == sender]
                letters = [d for d in system.dead_letters.recent() if d.path == f"/s/a{n}"]
                assert all(d.reason == "caused_failure" for d in letters), letters
                assert sorted(d.message.id for d in letters) == sorted(b.id for b in booms[n])
            assert len(system.dead_letters) == sum(map(len, booms))
            assert system.failure is None

    run_virtual(main)


# ---------------------------------------------------------------------- clean shutdown


@dataclass(frozen=True)
class Leaf:
    owns_task: bool  # spawn_task(sleep_forever) in on_start
    slow_stop: bool  # on_stop outlasts the shutdown timeout (cancelled)


@dataclass(frozen=True)
class Node:
    strategy: str
    max_restarts: int
    backoff_s: float  # 0: restart at once; else a backoff task is pending after a failure
    restart: str
    children: tuple[Leaf | Node, ...]


class Busy(Actor):
    """A leaf that may own a forever-task and may be slow to stop; fails on Boom."""

    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf

    async def on_start(self) -> None:
        if self.leaf.owns_task:
            self.spawn_task(trio.sleep_forever)

    async def on_stop(self) -> None:
        if self.leaf.slow_stop:
            await trio.sleep_forever()

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, Boom):
            raise RuntimeError("boom")
        return msg


def build(node: Node) -> Supervisor:
    specs = []
    for i, child in enumerate(node.children):
        factory: Any = (
            (lambda c=child: build(c)) if isinstance(child, Node) else (lambda c=child: Busy(c))
        )
        restart = child.restart if isinstance(child, Node) else "permanent"
        specs.append(ChildSpec(f"c{i}", factory, restart=restart))  # type: ignore[arg-type]
    backoff = Backoff(min_s=node.backoff_s, max_s=max(node.backoff_s, 1.0), jitter=0.5)
    return Supervisor(
        specs,
        strategy=node.strategy,  # type: ignore[arg-type]
        max_restarts=node.max_restarts,
        backoff=backoff,
    )


def paths(node: Node, prefix: str = "") -> list[str]:
    out = []
    for i, child in enumerate(node.children):
        path = f"{prefix}/c{i}"
        out.append(path)
        if isinstance(child, Node):
            out.extend(paths(child, path))
    return out


LEAVES = st.builds(Leaf, owns_task=st.booleans(), slow_stop=st.booleans())


def _nodes(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Node]:
    return st.builds(
        Node,
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_restarts=st.integers(0, 3),
        backoff_s=st.sampled_from([0.0, 0.5, 30.0]),
        restart=st.sampled_from(["permanent", "transient", "temporary"]),
        children=st.lists(children, min_size=1, max_size=3).map(tuple),
    )


TREES = _nodes(st.recursive(LEAVES, _nodes, max_leaves=8))
FAILURES = st.lists(
    st.tuples(st.integers(0, 50), st.sampled_from(["boom", "kill"]), st.sampled_from([0, 0.1, 40])),
    max_size=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES, failures=FAILURES)
def test_no_task_outlives_the_system(tree: Node, failures: list[tuple[int, str, float]]) -> None:
    """Random trees (strategies, restart types, intensities, backoffs; leaves owning tasks or
    slow to stop) hit by random failures, some escalating to the root: once open_system has
    exited, the ordered shutdown finished within the grace period, the root is stopped, and
    the task tree is back to what it was before it opened (no task outlives it)."""
    every = paths(tree, "/t")

    async def main() -> None:
        before = count_tasks()
        async with open_system(Supervisor, seed=7, shutdown_timeout_s=1.0) as system:
            await start_child(system, ChildSpec("t", lambda: build(tree)))
            for index, kind, pause in failures:
                path = every[index % len(every)]
                try:
                    if kind == "kill":
                        system.kill(path, "property test")
                    else:
                        await system.tell(path, Boom(index))
                except UnknownPath:
                    pass  # gone: removed, given up on, or the root failed
                await trio.sleep(pause)
            await system.quiescent()
            closing_at = trio.current_time()
        assert trio.current_time() - closing_at < SHUTDOWN_GRACE_S  # ordered, not cancelled
        assert system.root_cell is not None and system.root_cell.state is ActorState.STOPPED
        assert count_tasks() == before

    run_virtual(main)
