"""Directory: keyed activation, idle passivation, the LRU cap, EntityRef, no task per idle actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from supervision import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    ChildSpec,
    Directory,
    EntityRef,
    UnknownPath,
)
from supervision.testing import start_child
from tests.kit import count_tasks


@dataclass
class World:
    """What every incarnation of the entities did, shared with the test."""

    store: dict[str, int] = field(default_factory=dict)  # what on_passivate persisted
    events: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, key, instance id)
    gate: trio.Event | None = None  # when set, on_passivate waits for it

    def of(self, kind: str) -> list[str]:
        return [key for k, key, _ in self.events if k == kind]


class Counter(Actor):
    """Counts ``"inc"``; persists the count in on_passivate and reloads it in on_start."""

    def __init__(self, key: str, world: World) -> None:
        self.key = key
        self.world = world
        self.count = 0

    def note(self, kind: str) -> None:
        self.world.events.append((kind, self.key, id(self)))

    async def on_start(self) -> None:
        self.count = self.world.store.get(self.key, 0)
        self.note("start")

    async def on_passivate(self) -> None:
        self.note("passivate")
        if self.world.gate is not None:
            await self.world.gate.wait()
        self.world.store[self.key] = self.count

    async def receive(self, msg: Any) -> Any:
        self.note("receive")
        match msg:
            case "inc":
                self.count += 1
            case "boom":
                raise RuntimeError("boom")
            case ("work", seconds):
                self.spawn_task(trio.sleep, seconds)
        return self.count


async def start_directory(system: ActorSystem, world: World, **kw: Any) -> Directory:
    """Start a Directory of Counters at ``/users`` and return its instance."""
    directory = Directory(lambda key: Counter(key, world), **kw)
    await start_child(system, ChildSpec("users", lambda: directory))
    return directory


def live_keys(system: ActorSystem) -> list[str]:
    return [c.path.rsplit("/", 1)[1] for c in system.snapshot("/users").children]


async def test_get_or_spawn_activates_once_and_returns_the_live_ref(system: ActorSystem) -> None:
    """The first get_or_spawn builds factory(key) at <dir>/<key>; the second returns that ref."""
    world = World()
    d = await start_directory(system, world, idle_timeout_s=None)
    first = d.get_or_spawn("alice")
    await system.quiescent()
    second = d.get_or_spawn("alice")
    assert first == second
    assert first.path == "/users/alice"
    assert system.lookup("/users/alice") == first
    assert world.of("start") == ["alice"]
    assert live_keys(system) == ["alice"]
    assert d.live() == 1


@pytest.mark.parametrize("key", ["", "a/b", " a"])
async def test_bad_keys_are_rejected(system: ActorSystem, key: str) -> None:
    """A blank key, one with '/' or with edge spaces is not a path segment: ValueError, no child."""
    d = await start_directory(system, World(), idle_timeout_s=None)
    with pytest.raises(ValueError):
        d.get_or_spawn(key)
    with pytest.raises(ValueError):
        EntityRef(system.lookup("/users"), key)
    assert d.live() == 0


async def test_idle_child_is_passivated_and_reloads_its_state(system: ActorSystem) -> None:
    """Idle for idle_timeout_s (virtual): on_passivate runs, the child leaves the tree with a
    "passivated" event; the next message reactivates a fresh instance whose on_start reloads."""
    world = World()
    await start_directory(system, world, idle_timeout_s=10.0)
    alice = EntityRef(system.lookup("/users"), "alice")
    for _ in range(3):
        await alice.ask("inc")
    with system.subscribe() as events:
        await trio.sleep(9.9)
        assert live_keys(system) == ["alice"] and world.of("passivate") == []
        await trio.sleep(0.2)
        await system.quiescent()
        assert world.of("passivate") == ["alice"]
        assert world.store == {"alice": 3}
        assert live_keys(system) == []
        with pytest.raises(UnknownPath):
            system.lookup("/users/alice")
        kinds = [(e.kind, e.path) for e in _drain(events)]
    assert ("passivated", "/users/alice") in kinds
    assert await alice.ask("inc") == 4
    starts = [inst for kind, _, inst in world.events if kind == "start"]
    assert len(starts) == 2 and starts[0] != starts[1]


def _drain(events: trio.MemoryReceiveChannel[Any]) -> list[Any]:
    out = []
    while True:
        try:
            out.append(events.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_a_child_that_keeps_receiving_is_not_passivated(system: ActorSystem) -> None:
    """Activity more recent than idle_timeout_s keeps a child live; once it stops, it goes."""
    world = World()
    await start_directory(system, world, idle_timeout_s=10.0)
    alice = EntityRef(system.lookup("/users"), "alice")
    for _ in range(12):  # 60 virtual seconds, a message every 5
        await alice.tell("inc")
        await trio.sleep(5)
    assert world.of("passivate") == []
    assert live_keys(system) == ["alice"]
    await trio.sleep(10.1)
    await system.quiescent()
    assert world.of("passivate") == ["alice"]
    assert world.store == {"alice": 12}


async def test_a_child_with_an_owned_task_is_not_passivated(system: ActorSystem) -> None:
    """A child owning a running task (spawn_task) is not idle, however long it has been quiet."""
    world = World()
    await start_directory(system, world, idle_timeout_s=10.0)
    await EntityRef(system.lookup("/users"), "alice").ask(("work", 100.0))
    await trio.sleep(90)
    assert world.of("passivate") == []
    assert system.inspect("/users/alice").tasks == 1
    await trio.sleep(25)  # the task ended at 100; the child is idle again
    await system.quiescent()
    assert world.of("passivate") == ["alice"]


async def test_a_message_during_on_passivate_cancels_the_passivation(system: ActorSystem) -> None:
    """A message arriving while on_passivate runs is not lost: the same instance handles it and
    stays live (no "passivated" event, no dead letter)."""
    world = World(gate=trio.Event())
    await start_directory(system, world, idle_timeout_s=10.0)
    alice = EntityRef(system.lookup("/users"), "alice")
    ref = alice.resolve()
    await alice.ask("inc")
    with system.subscribe() as events:
        await trio.sleep(10.1)
        await trio.testing.wait_all_tasks_blocked()
        assert world.of("passivate") == ["alice"]  # parked in on_passivate
        await alice.tell("inc")
        assert alice.resolve() == ref
        world.gate.set()
        await system.quiescent()
        kinds = [e.kind for e in _drain(events)]
    assert "passivated" not in kinds
    assert system.lookup("/users/alice") == ref
    instances = {inst for _, _, inst in world.events}
    assert len(instances) == 1 and world.of("receive") == ["alice", "alice"]
    assert await ref.ask("get") == 2
    assert len(system.dead_letters) == 0


async def test_lru_cap_passivates_the_least_recently_used_idle_child(system: ActorSystem) -> None:
    """max_live=3: activating a 4th key passivates the least recently touched idle child only."""
    world = World()
    d = await start_directory(system, world, idle_timeout_s=None, max_live=3)
    for key in ("a", "b", "c"):
        d.get_or_spawn(key)
    await system.quiescent()
    d.get_or_spawn("a")  # touch: b is now the least recently used
    d.get_or_spawn("d")
    await system.quiescent()
    assert world.of("passivate") == ["b"]
    assert sorted(live_keys(system)) == ["a", "c", "d"]
    assert d.live() == 3
    with pytest.raises(UnknownPath):
        system.lookup("/users/b")


async def test_lru_cap_holds_after_a_cancelled_passivation(system: ActorSystem) -> None:
    """Regression: a passivation cancelled by a late message must not loosen max_live.

    The bug: Directory counted request_passivate() in an int ``_passivating`` that a
    passivation cancelled by the cell (message during on_passivate) never decremented, so
    later activations saw room that was not there and the Directory grew past max_live.
    """
    world = World(gate=trio.Event())
    d = await start_directory(system, world, idle_timeout_s=10.0, max_live=2)
    a = EntityRef(system.lookup("/users"), "a")
    await a.ask("inc")
    await trio.sleep(10.1)
    await trio.testing.wait_all_tasks_blocked()
    await a.tell("inc")  # cancels the passivation in progress
    world.gate.set()
    await system.quiescent()
    d.get_or_spawn("b")
    await system.quiescent()
    d.get_or_spawn("c")
    await system.quiescent()
    assert d.live() <= 2, live_keys(system)


async def test_a_busy_child_does_not_shield_idle_children_from_passivation(
    system: ActorSystem,
) -> None:
    """Regression: a child kept busy through its plain ActorRef (valid while live, by the
    Directory's contract) sits at the front of the LRU order; the idle child behind it must
    still be passivated within about idle_timeout_s. The bug: Directory._sweep stopped at the
    first child whose idle deadline was in the future, so it never looked behind it.
    """
    world = World()
    d = await start_directory(system, world, idle_timeout_s=10.0)
    busy = d.get_or_spawn("busy")
    d.get_or_spawn("idle")
    await system.quiescent()
    await trio.sleep(0.5)
    for _ in range(20):  # 60 virtual seconds, a message every 3, never touching the LRU order
        await busy.tell("inc")
        await trio.sleep(3)
    assert world.of("passivate") == ["idle"]


async def test_a_failing_child_restarts_alone(system: ActorSystem) -> None:
    """one_for_one in a Directory: a failing child is restarted after its own backoff
    (in state backoff meanwhile); its siblings keep their state."""
    world = World()
    await start_directory(system, world, idle_timeout_s=None)
    users = system.lookup("/users")
    for key in ("a", "b", "c"):
        await EntityRef(users, key).ask("inc")
    with pytest.raises(ActorFailed):
        await EntityRef(users, "b").ask("boom")
    await system.quiescent()
    assert system.inspect("/users/b").state == "backoff"
    await trio.sleep(0.2)  # the first delay: 0.1 s plus at most 20 % jitter
    assert system.inspect("/users/b").state == "running"
    assert system.inspect("/users/b").restarts == 1
    assert [system.inspect(f"/users/{k}").restarts for k in "ac"] == [0, 0]
    assert await EntityRef(users, "a").ask("inc") == 2  # in-memory state kept
    assert await EntityRef(users, "c").ask("inc") == 2
    assert await EntityRef(users, "b").ask("inc") == 1  # fresh instance
    assert world.of("start") == ["a", "b", "c", "b"]
    assert [dl.reason for dl in system.dead_letters.recent()] == ["caused_failure"]


async def test_entity_ref_routes_by_key_and_survives_passivation(system: ActorSystem) -> None:
    """EntityRef.tell/ask reach the child of their key and reactivate it after passivation;
    the old ActorRef of the passivated child dead-letters with reason "stopped"."""
    world = World()
    await start_directory(system, world, idle_timeout_s=10.0)
    users = system.lookup("/users")
    a, b = EntityRef(users, "a"), EntityRef(users, "b")
    await a.tell("inc")
    await a.tell("inc")
    assert await b.ask("inc") == 1
    assert await a.ask("get") == 2
    old: ActorRef = a.resolve()
    await trio.sleep(11)
    await system.quiescent()
    assert sorted(world.of("passivate")) == ["a", "b"]
    await old.tell("lost")
    with pytest.raises(ActorStopped):
        await old.ask("lost too")
    letters = system.dead_letters.recent()
    assert [(dl.path, dl.reason, dl.message) for dl in letters] == [
        ("/users/a", "stopped", "lost"),
        ("/users/a", "stopped", "lost too"),
    ]
    await a.tell("inc")
    assert await a.ask("get") == 3
    assert await b.ask("get") == 1
    assert a.resolve() != old


async def test_an_idle_actor_holds_no_task(system: ActorSystem) -> None:
    """An idle actor holds no trio task: after one message each and quiescence, the task tree
    is as large with 200 idle actors as with 1, and each reports tasks == 0."""
    world = World()
    d = await start_directory(system, world, idle_timeout_s=None, max_live=None)
    users = system.lookup("/users")
    await EntityRef(users, "k0").tell("inc")
    await system.quiescent()
    with_one = count_tasks()
    for i in range(1, 200):
        await EntityRef(users, f"k{i}").tell("inc")
    await system.quiescent()
    assert d.live() == 200
    assert len(world.of("receive")) == 200
    assert count_tasks() == with_one
    infos = system.snapshot("/users").children
    assert len(infos) == 200
    assert all(i.tasks == 0 and i.mailbox_depth == 0 and i.state == "running" for i in infos)
