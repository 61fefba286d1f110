"""A Directory's children back off and have a restart intensity of their own
(issue 10, item 5, the kernel part).

The scenario is a database outage seen by one user's actor: its ``on_start``
raises until the cause goes away. That key must retry on its own backoff while
every other key keeps working, neither the Directory nor the root may give up,
messages for the failing key queue, and once the cause is gone they are handled
exactly once. A key that exceeds its own intensity is removed, not the Directory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from supervision import (
    NO_BACKOFF,
    Actor,
    ActorStopped,
    ActorSystem,
    Backoff,
    ChildSpec,
    Directory,
    EntityRef,
    MailboxFull,
)
from supervision.debug import render_tree
from supervision.testing import start_child


@dataclass
class Outage:
    """What the entities see and did: keys whose start fails, start attempts, messages."""

    down: set[str] = field(default_factory=set)
    attempts: dict[str, list[float]] = field(default_factory=dict)  # key -> start times
    handled: list[tuple[str, Any]] = field(default_factory=list)


class Entity(Actor):
    """Loads from "storage" in on_start: raises while its key is in ``outage.down``."""

    def __init__(self, key: str, outage: Outage) -> None:
        self.key = key
        self.outage = outage

    async def on_start(self) -> None:
        self.outage.attempts.setdefault(self.key, []).append(trio.current_time())
        if self.key in self.outage.down:
            raise ConnectionError(f"database down for {self.key}")

    async def receive(self, msg: Any) -> Any:
        self.outage.handled.append((self.key, msg))
        return msg


async def start_users(system: ActorSystem, outage: Outage, **kw: Any) -> Directory:
    directory = Directory(lambda key: Entity(key, outage), idle_timeout_s=None, **kw)
    await start_child(system, ChildSpec("users", lambda: directory))
    return directory


async def test_one_key_failing_in_on_start_backs_off_while_others_work(
    system: ActorSystem,
) -> None:
    """Issue 10, item 5: with the Directory's default settings, key "bad" fails in
    on_start for 300 virtual seconds while "a" and "b" are asked every 5 s. The other
    keys answer every time; the Directory and the root never give up; "bad" is shown
    in backoff with its queued messages; its restarts are spaced by the default
    backoff (0.1 s doubling to 30 s, jitter up to +20 %); once the outage is over it
    starts and handles its queued messages once, in order. The old Directory
    restarted "bad" in a hot loop on one budget shared by every key, gave up within
    the same virtual instant, and the root gave up after it."""
    outage = Outage(down={"bad"})
    await start_users(system, outage)
    users = system.lookup("/users")
    bad = EntityRef(users, "bad")
    for i in range(3):
        await bad.tell(("queued", i))
    answered = 0
    while trio.current_time() < 300.0:
        for key in ("a", "b"):
            assert await EntityRef(users, key).ask(("hello", answered)) == ("hello", answered)
        answered += 1
        await trio.sleep(5.0)
    assert system.failure is None
    assert system.inspect("/").state == "running" and system.inspect("/").restarts == 0
    assert system.inspect("/users").state == "running"
    assert system.inspect("/users").restarts == 0
    info = system.inspect("/users/bad")
    assert (info.state, info.mailbox_depth) == ("backoff", 3)
    [row] = [line for line in render_tree(system.snapshot().to_dict()) if "bad" in line]
    assert "BACKOFF" in row and "mailbox 3/" in row
    attempts = outage.attempts["bad"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    for n, gap in enumerate(gaps):
        base = min(30.0, 0.1 * 2**n)
        assert base <= gap <= base * 1.2 + 1e-6, (n, gap)
    # the first, 9 retries after 0.1 + 0.2 + ... + 25.6 s (up to 20 % more), then one
    # every 30 to 36 s: 16 to 18 attempts in 300 s
    assert 16 <= len(attempts) <= 18, attempts
    assert [k for k, _ in outage.handled].count("a") == answered
    assert not [m for k, m in outage.handled if k == "bad"]

    outage.down.clear()
    await trio.sleep(37.0)
    await system.quiescent()
    assert system.inspect("/users/bad").state == "running"
    assert [m for k, m in outage.handled if k == "bad"] == [("queued", i) for i in range(3)]
    assert await bad.ask("after") == "after"
    assert [m for k, m in outage.handled if k == "bad"][-1] == "after"
    assert system.dead_letters.recent() == []


async def test_backoff_of_a_key_is_its_own(system: ActorSystem) -> None:
    """Issue 10, item 5: two keys failing at different times each wait their own
    exponential backoff (no jitter here: exactly 1, 2, 4 s), counted from their own
    failures, and the count restarts after reset_after_s of stable running."""
    outage = Outage(down={"x", "y"})
    backoff = Backoff(min_s=1.0, max_s=4.0, jitter=0.0, reset_after_s=10.0)
    await start_users(system, outage, backoff=backoff, max_restarts=100)
    users = system.lookup("/users")
    EntityRef(users, "x").resolve()
    await trio.sleep(0.5)
    EntityRef(users, "y").resolve()
    await trio.sleep(7.6)
    # x started at 0, retried at 1, 3, 7; y at 0.5, 1.5, 3.5 (and 7.5)
    assert outage.attempts["x"] == [0.0, 1.0, 3.0, 7.0]
    assert outage.attempts["y"] == [0.5, 1.5, 3.5, 7.5]
    outage.down.discard("x")
    await trio.sleep(4.0)  # x starts at 11
    assert system.inspect("/users/x").state == "running"
    await trio.sleep(10.5)  # stable for longer than reset_after_s
    outage.down.add("x")
    system.kill("/users/x", "fail again")
    await system.quiescent()
    t0 = trio.current_time()
    await trio.sleep(5.0)
    assert [round(t - t0, 6) for t in outage.attempts["x"][-2:]] == [1.0, 3.0]


async def test_a_key_over_its_intensity_is_removed_not_the_directory(
    system: ActorSystem,
) -> None:
    """Issue 10, item 5: without backoff and with max_restarts=3 per 10 s, key "bad"
    failing in on_start is restarted 3 times, then removed: its queued messages are
    dead-lettered with reason restart_limit, its queued ask fails with ActorStopped,
    the Directory and the other keys are untouched, and the next message for "bad"
    activates a fresh child (which, the outage over, handles it)."""
    outage = Outage(down={"bad"})
    d = await start_users(system, outage, backoff=NO_BACKOFF, max_restarts=3, within_s=10.0)
    users = system.lookup("/users")
    await EntityRef(users, "good").ask("hi")
    bad = EntityRef(users, "bad")
    await bad.tell("m1")
    await bad.tell("m2")
    with pytest.raises(ActorStopped):
        await bad.ask("m3", timeout=None)
    await system.quiescent()
    assert len(outage.attempts["bad"]) == 4  # the start and 3 restarts
    assert d.live() == 1 and system.inspect("/users/good").state == "running"
    letters = [(dl.path, dl.reason, dl.message) for dl in system.dead_letters.recent()]
    assert letters == [("/users/bad", "restart_limit", m) for m in ("m1", "m2", "m3")]
    assert system.inspect("/users").state == "running"
    assert system.inspect("/users").restarts == 0 and system.failure is None
    assert await EntityRef(users, "good").ask("still") == "still"
    outage.down.clear()
    assert await bad.ask("again") == "again"
    assert len(outage.attempts["bad"]) == 5
    assert system.inspect("/users/bad").restarts == 0  # a fresh child, a fresh window


async def test_a_key_within_its_intensity_keeps_restarting(system: ActorSystem) -> None:
    """Issue 10, item 5: restarts that leave the key's window do not add up: a key
    killed every 6 s (max_restarts=2 per 10 s, no backoff) is never removed, however
    long it goes on."""
    outage = Outage()
    await start_users(system, outage, backoff=NO_BACKOFF, max_restarts=2, within_s=10.0)
    users = system.lookup("/users")
    for _ in range(20):
        system.kill(str(EntityRef(users, "k").resolve().path), "again")
        await trio.sleep(6.0)
    assert system.inspect("/users/k").restarts == 20
    assert system.dead_letters.recent() == []


async def test_messages_for_a_key_in_backoff_queue_within_its_bound(system: ActorSystem) -> None:
    """Issue 10, item 5: a key waiting out its backoff takes messages into its
    mailbox, bounded as usual: past the capacity tell_nowait raises MailboxFull (the
    message dead-lettered mailbox_full) and tell waits for space, which the
    restarted child makes."""
    outage = Outage(down={"bad"})
    await start_users(system, outage, mailbox_capacity=2)
    bad = EntityRef(system.lookup("/users"), "bad")
    await bad.tell(1)
    await bad.tell(2)
    await system.quiescent()
    assert system.inspect("/users/bad").state == "backoff"
    with pytest.raises(MailboxFull):
        bad.tell_nowait(3)
    assert [(dl.reason, dl.message) for dl in system.dead_letters.recent()] == [("mailbox_full", 3)]
    outage.down.clear()
    with trio.fail_after(60):
        await bad.tell(4)  # waits until the child is back and has made room
    await system.quiescent()
    assert [m for k, m in outage.handled if k == "bad"] == [1, 2, 4]
