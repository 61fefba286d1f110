"""Mailboxes, tell/ask, dead letters, owned tasks, kill, logging."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
import trio
import trio.testing

from supervision import (
    Actor,
    ActorFailed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    ChildSpec,
    MailboxFull,
    Supervisor,
)
from supervision.testing import start_child
from tests.kit import Boom, Journal, Worker


class Gate(Actor):
    """Handles a message only when the test opens the gate; records what it handled."""

    def __init__(self, gate: trio.Event, handled: list[Any]) -> None:
        self.gate = gate
        self.handled = handled

    async def receive(self, msg: Any) -> Any:
        if msg == "wait":
            await self.gate.wait()
        self.handled.append(msg)
        return msg


def reasons(system: ActorSystem) -> list[str]:
    return [d.reason for d in system.dead_letters.recent()]


async def test_messages_from_one_sender_arrive_in_order(system: ActorSystem) -> None:
    """Tells from one sender are handled in the order sent, exactly once."""
    j = Journal()
    ref = await start_child(system, ChildSpec("w", lambda: Worker("w", j)))
    for i in range(500):
        await ref.tell(i)
    await system.quiescent()
    assert [m for _, m in j.handled] == list(range(500))
    assert system.inspect("/w").processed == 500


async def test_tell_waits_for_space_and_tell_nowait_raises_mailbox_full(
    system: ActorSystem,
) -> None:
    """A full mailbox makes tell wait (backpressure) and tell_nowait raise MailboxFull,
    dead-lettering the message with reason mailbox_full."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled), mailbox_capacity=2))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()  # "wait" is being handled
    await ref.tell(1)
    await ref.tell(2)
    with pytest.raises(MailboxFull, match="capacity 2"):
        ref.tell_nowait(3)
    assert reasons(system) == ["mailbox_full"]
    sent = trio.Event()

    async def blocked_sender() -> None:
        await ref.tell(4)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()  # backpressure: still waiting for space
        gate.set()
    assert handled[:1] == ["wait"]
    await system.quiescent()
    assert handled == ["wait", 1, 2, 4]


async def test_ask_returns_the_reply_and_failed_ask_raises_actor_failed(
    system: ActorSystem,
) -> None:
    """ask returns receive's value; a raising handler gives ActorFailed with the cause."""
    j = Journal()
    ref = await start_child(system, ChildSpec("w", lambda: Worker("w", j)))
    assert await ref.ask("x") == "x"
    with pytest.raises(ActorFailed) as info:
        await ref.ask(Boom("bad input"))
    assert isinstance(info.value.cause, RuntimeError) and str(info.value.cause) == "bad input"
    assert reasons(system) == ["caused_failure"]


async def test_ask_timeout_on_the_virtual_clock(system: ActorSystem) -> None:
    """An unanswered ask raises AskTimeout at its deadline; the queued message is
    withdrawn and never handled (nothing left behind)."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled)))
    await ref.tell("wait")
    t0 = trio.current_time()
    with pytest.raises(AskTimeout, match=r"within 2\.0s"):
        await ref.ask("late", timeout=2.0)
    assert 2.0 <= trio.current_time() - t0 <= 2.0 + 0.006
    gate.set()
    await system.quiescent()
    assert handled == ["wait"]  # "late" was withdrawn
    assert system.inspect("/g").mailbox_depth == 0


async def test_ask_cancelled_by_its_caller_leaves_nothing_behind(system: ActorSystem) -> None:
    """A caller cancelling its ask withdraws a still-queued message; the actor goes on."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled)))
    await ref.tell("wait")
    with trio.move_on_after(1.0) as cs:
        await ref.ask("withdrawn", timeout=None)
    assert cs.cancelled_caught
    gate.set()
    assert await ref.ask("next") == "next"
    assert handled == ["wait", "next"]
    assert system.dead_letters.recent() == []


async def test_ask_cancelled_while_handled_discards_the_result(system: ActorSystem) -> None:
    """An ask cancelled while its message is being handled: the handler completes, the
    result is dropped, and the actor is healthy."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled)))
    with trio.move_on_after(1.0):
        await ref.ask("wait", timeout=None)
    gate.set()
    await system.quiescent()
    assert handled == ["wait"]
    assert system.inspect("/g").state == "running"


async def test_dead_letters_for_stopped_and_unknown_path(system: ActorSystem) -> None:
    """Messages to a stopped actor and to an unknown path are dead-lettered with a
    reason; an ask to a stopped actor raises ActorStopped."""
    j = Journal()
    ref = await start_child(system, ChildSpec("w", lambda: Worker("w", j)))
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    await root.actor.stop_child("w")
    await ref.tell("after stop")
    with pytest.raises(ActorStopped):
        await ref.ask("ask after stop")
    assert await system.tell("/nobody/here", "hello") is False
    letters = system.dead_letters.recent()
    assert [(d.reason, d.message) for d in letters] == [
        ("stopped", "after stop"),
        ("stopped", "ask after stop"),
        ("unknown_path", "hello"),
    ]
    assert system.dead_letters.totals == {"stopped": 2, "unknown_path": 1}


async def test_queued_messages_are_dead_lettered_when_the_actor_stops(system: ActorSystem) -> None:
    """Messages still queued at stop go to the dead letters; queued asks get ActorStopped."""
    gate, handled = trio.Event(), []
    ref = await start_child(
        system, ChildSpec("g", lambda: Gate(gate, handled), shutdown_timeout_s=1.0)
    )
    await ref.tell("wait")
    await ref.tell("queued")
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    async with trio.open_nursery() as nursery:

        async def asker() -> None:
            with pytest.raises(ActorStopped):
                await ref.ask("queued ask", timeout=None)

        nursery.start_soon(asker)
        await trio.testing.wait_all_tasks_blocked()
        await root.actor.stop_child("g")  # "wait" never finishes: cancelled at 1 s
    assert [(d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("interrupted", "wait"),
        ("stopped", "queued"),
        ("stopped", "queued ask"),
    ]


async def test_mailbox_survives_a_restart_but_not_the_poison_message(system: ActorSystem) -> None:
    """Messages queued behind the failing one are handled by the restarted instance;
    the failing message is not redelivered."""
    j = Journal()
    ref = await start_child(system, ChildSpec("w", lambda: Worker("w", j)))
    for m in ("a", Boom(), "b", "c"):
        await ref.tell(m)
    await system.quiescent()
    assert [m for _, m in j.handled] == ["a", "b", "c"]
    assert system.inspect("/w").restarts == 1
    assert reasons(system) == ["caused_failure"]


class Spawner(Actor):
    """Owns tasks; 'fail' makes one raise, 'sleep' starts a long one."""

    def __init__(self, log: list[str]) -> None:
        self.log_ = log

    async def receive(self, msg: Any) -> Any:
        if msg == "sleep":

            async def sleeper() -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    self.log_.append("sleeper cancelled")

            self.spawn_task(sleeper)
        elif msg == "fail":

            async def failing() -> None:
                await trio.sleep(1)
                raise ValueError("task broke")

            self.spawn_task(failing)
        elif msg == "supersede":
            handle = self.spawn_task(trio.sleep_forever)
            handle.cancel()
            await handle.wait()
            self.log_.append(f"superseded done={handle.done}")
        return len(self._cell.cold.tasks) if self._cell.cold else 0


async def test_owned_task_failure_fails_the_actor_and_restart_cancels_tasks(
    system: ActorSystem,
) -> None:
    """An exception in an owned task fails the actor; its other tasks are cancelled."""
    log: list[str] = []
    ref = await start_child(system, ChildSpec("s", lambda: Spawner(log)))
    assert await ref.ask("sleep") == 1
    await ref.tell("fail")
    await system.quiescent()
    await trio.sleep(2)
    info = system.inspect("/s")
    assert info.restarts == 1 and info.tasks == 0
    assert info.last_error is not None and info.last_error.message == "task broke"
    assert log == ["sleeper cancelled"]
    assert await ref.ask("supersede") == 0
    assert log[-1] == "superseded done=True"


async def test_kill_fails_the_actor_mid_message(system: ActorSystem) -> None:
    """kill interrupts the message in hand (dead letter 'interrupted'), fails the actor
    with Killed, and the supervisor restarts it."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled)))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    system.kill("/g", "operator test")
    await system.quiescent()
    info = system.inspect("/g")
    assert info.restarts == 1 and info.state == "running"
    assert info.last_error is not None and info.last_error.type == "Killed"
    assert "operator test" in info.last_error.message
    assert reasons(system) == ["interrupted"]
    system.kill("/g", "idle kill")
    await system.quiescent()
    assert system.inspect("/g").restarts == 2


async def test_actor_log_lines_carry_the_actor_path(system: ActorSystem) -> None:
    """Every line an actor logs through self.log carries its path."""

    class Talker(Actor):
        async def receive(self, msg: Any) -> Any:
            self.log.info("said", what=msg)

    ref = await start_child(system, ChildSpec("talker", Talker))
    with structlog.testing.capture_logs() as logs:
        await ref.ask("hi")
    said = [e for e in logs if e["event"] == "said"]
    assert said == [{"event": "said", "what": "hi", "actor": "/talker", "log_level": "info"}]


async def test_snapshot_reports_state_depth_and_errors(system: ActorSystem) -> None:
    """snapshot() reads every actor from outside: a stuck actor is still inspectable."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled), mailbox_capacity=7))
    await ref.tell("wait")
    await ref.tell("x")
    await trio.testing.wait_all_tasks_blocked()
    tree = system.snapshot()
    g = next(a for a in tree.walk() if a.path == "/g")
    assert (g.state, g.mailbox_depth, g.mailbox_capacity, g.cls) == ("running", 1, 7, "Gate")
    assert tree.to_dict()["children"][0]["path"] == "/g"
    gate.set()


async def test_every_sender_waiting_for_space_gets_through(system: ActorSystem) -> None:
    """Backpressure with many senders: eight tasks each tell one message, and three
    more tell three each, into a mailbox of capacity 2 while the actor is held; once
    it goes on, every message is handled, each sender's in order, and no sender is
    left waiting (a pop from a full mailbox wakes one sender, which passes the
    wake-up on while room is left: senders that have nothing more to send never
    fill the mailbox again for the others)."""
    gate, handled = trio.Event(), []
    ref = await start_child(system, ChildSpec("g", lambda: Gate(gate, handled), mailbox_capacity=2))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    done: list[str] = []
    counts = {name: 1 for name in "abcdefgh"} | {name: 3 for name in "xyz"}

    async def sender(name: str) -> None:
        for i in range(counts[name]):
            await ref.tell((name, i))
        done.append(name)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            for name in counts:
                nursery.start_soon(sender, name)
            await trio.testing.wait_all_tasks_blocked()
            assert len(done) <= 2 and system.inspect("/g").mailbox_depth == 2
            gate.set()
    assert sorted(done) == sorted(counts)
    await system.quiescent()
    assert len(handled) == 1 + sum(counts.values())
    for name, count in counts.items():
        assert [m for m in handled if m[0] == name] == [(name, i) for i in range(count)]
