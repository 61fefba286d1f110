"""BlockingActor: receive and hooks on a pykka thread, supervision, from_trio, thread cleanup.

These run on the real clock (``real_system``): a virtual clock would jump while a thread
works. Sync points are asks (the mailbox is FIFO) and ``system.quiescent()``, never sleeps.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest
import trio

from supervision import (
    ActorFailed,
    ActorRef,
    ActorSystem,
    BlockingActor,
    ChildSpec,
    Directory,
    Supervisor,
    open_system,
)
from supervision.testing import spawn_probe, start_child


@dataclass
class Trace:
    """What every incarnation did, with the thread it did it on."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # (event, message or None, thread object, instance id)
    events: list[tuple[str, Any, threading.Thread, int]] = field(default_factory=list)

    def add(self, kind: str, msg: Any, actor: object) -> None:
        with self.lock:
            self.events.append((kind, msg, threading.current_thread(), id(actor)))

    def of(self, kind: str) -> list[tuple[str, Any, threading.Thread, int]]:
        with self.lock:
            return [e for e in self.events if e[0] == kind]


class Blocker(BlockingActor):
    """Records where its hooks and messages ran; raises on "boom"; forwards via from_trio."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def on_start(self) -> None:
        self.trace.add("start", None, self)

    def on_restart(self, error: BaseException) -> None:
        self.trace.add("restart", repr(error), self)

    def on_stop(self) -> None:
        self.trace.add("stop", None, self)

    def on_passivate(self) -> None:
        self.trace.add("passivate", None, self)

    def receive(self, msg: Any) -> Any:
        self.trace.add("enter", msg, self)
        match msg:
            case "boom":
                raise RuntimeError("boom on the thread")
            case ("forward", ActorRef() as target, payload):
                self.from_trio(target.tell_nowait, payload)
            case ("work", seconds):
                time.sleep(seconds)  # blocking work, the reason this actor is a BlockingActor
        self.trace.add("exit", msg, self)
        return msg


async def start_blocker(system: ActorSystem, trace: Trace, name: str = "b") -> ActorRef:
    return await start_child(system, ChildSpec(name, lambda: Blocker(trace)))


async def test_hooks_and_receive_run_on_one_thread_that_is_not_trios(
    real_system: ActorSystem,
) -> None:
    """on_start and receive run on the actor's own thread, never on the trio thread; ask
    returns receive's value; the snapshot says dispatcher "thread"."""
    trace = Trace()
    ref = await start_blocker(real_system, trace)
    assert await ref.ask("hello") == "hello"
    trio_thread = threading.current_thread()
    [(_, _, start_thread, _)] = trace.of("start")
    [(_, _, recv_thread, _)] = trace.of("enter")
    assert start_thread is recv_thread
    assert recv_thread is not trio_thread
    assert recv_thread.ident != threading.get_ident()
    assert real_system.inspect("/b").dispatcher == "thread"
    [info] = real_system.snapshot("/").children
    assert info.dispatcher == "thread" and info.state == "running"


async def test_messages_are_handled_in_order_one_at_a_time(real_system: ActorSystem) -> None:
    """Told messages are handled in send order, each finishing before the next begins."""
    trace = Trace()
    ref = await start_blocker(real_system, trace)
    sent = [("work", 0.001) for _ in range(3)] + list(range(20))
    for msg in sent:
        await ref.tell(msg)
    assert await ref.ask("last") == "last"
    kinds = [(k, m) for k, m, _, _ in trace.events if k in ("enter", "exit")]
    expected = [(k, m) for m in [*sent, "last"] for k in ("enter", "exit")]
    assert kinds == expected
    assert real_system.inspect("/b").processed == len(sent) + 1


async def test_a_failure_restarts_a_fresh_instance_on_a_fresh_thread(
    real_system: ActorSystem,
) -> None:
    """receive raising fails the actor: the asker gets ActorFailed, the culprit is
    dead-lettered "caused_failure", last_error is recorded; the supervisor restarts a fresh
    instance on a new thread (on_restart there) that handles the messages queued after."""
    trace = Trace()
    ref = await start_blocker(real_system, trace)
    await ref.tell(1)
    await ref.tell("boom")
    await ref.tell(2)
    await ref.tell(3)
    assert await ref.ask(4) == 4
    handled = [(m, thread, inst) for k, m, thread, inst in trace.of("exit")]
    assert [m for m, _, _ in handled] == [1, 2, 3, 4]
    (_, old_thread, old_inst), *after = handled
    assert all(t is not old_thread and i != old_inst for _, t, i in after)
    assert len({t for _, t, _ in after}) == 1 and len({i for _, _, i in after}) == 1
    [(_, error, restart_thread, restart_inst)] = trace.of("restart")
    assert "boom on the thread" in error
    assert (restart_thread, restart_inst) == (after[0][1], after[0][2])
    [(_, _, stop_thread, stop_inst)] = trace.of("stop")
    assert (stop_thread, stop_inst) == (old_thread, old_inst)
    info = real_system.inspect("/b")
    assert info.restarts == 1 and info.state == "running"
    assert info.last_error is not None and info.last_error.type == "RuntimeError"
    letters = real_system.dead_letters.recent()
    assert [(d.path, d.reason, d.message) for d in letters] == [("/b", "caused_failure", "boom")]
    await trio.to_thread.run_sync(old_thread.join, 5.0)
    assert not old_thread.is_alive()


async def test_ask_that_fails_raises_actor_failed(real_system: ActorSystem) -> None:
    """An ask whose receive raises on the thread gets ActorFailed carrying the cause."""
    ref = await start_blocker(real_system, Trace())
    with pytest.raises(ActorFailed) as info:
        await ref.ask("boom")
    assert isinstance(info.value.cause, RuntimeError)
    assert await ref.ask("again") == "again"
    assert real_system.inspect("/b").restarts == 1


async def test_from_trio_lets_the_thread_tell_a_trio_actor(real_system: ActorSystem) -> None:
    """from_trio runs a sync call on the trio loop: the thread tells a trio actor (a probe)."""
    probe = await spawn_probe(real_system)
    ref = await start_blocker(real_system, Trace())
    await ref.ask(("forward", probe.ref, "from the thread"))
    assert await probe.next(within=5.0) == "from the thread"


async def test_passivation_runs_on_the_thread_and_releases_it(real_system: ActorSystem) -> None:
    """A BlockingActor evicted from a Directory runs on_passivate on its thread, which ends."""
    trace = Trace()
    directory = Directory(lambda key: Blocker(trace), idle_timeout_s=None, max_live=1)
    await start_child(real_system, ChildSpec("d", lambda: directory))
    await directory.get_or_spawn("a").ask("x")
    await real_system.quiescent()
    await directory.get_or_spawn("b").ask("y")  # evicts a
    await real_system.quiescent()
    [(_, _, passivate_thread, _)] = trace.of("passivate")
    [(_, _, a_thread, _), (_, _, b_thread, _)] = trace.of("start")
    assert passivate_thread is a_thread and a_thread is not b_thread
    await trio.to_thread.run_sync(a_thread.join, 5.0)
    assert not a_thread.is_alive()
    assert [c.path for c in real_system.snapshot("/d").children] == ["/d/b"]


async def test_closing_the_system_stops_the_pykka_threads() -> None:
    """After open_system exits, every pykka actor the system started is unregistered and
    its thread has ended."""
    before = set(pykka.ActorRegistry.get_all())
    trace = Trace()
    async with open_system(Supervisor) as system:
        for name in ("x", "y", "z"):
            ref = await start_blocker(system, trace, name)
            assert await ref.ask(name) == name
        with pytest.raises(ActorFailed):
            await system.lookup("/y").ask("boom")
        assert await system.lookup("/y").ask("back") == "back"
        hosts = set(pykka.ActorRegistry.get_all()) - before
        assert len(hosts) == 3
    threads = {t for _, _, t, _ in trace.events}
    assert len(threads) == 4  # x, z, and y before and after its restart
    for thread in threads:
        await trio.to_thread.run_sync(thread.join, 5.0)
    assert not any(t.is_alive() for t in threads)
    assert not any(h.is_alive() for h in hosts)
    assert hosts.isdisjoint(pykka.ActorRegistry.get_all())
