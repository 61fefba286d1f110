"""Supervision rules: strategies, restart types, intensity, backoff, escalation."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio

from supervision import (
    Actor,
    ActorFailed,
    ActorSystem,
    Backoff,
    ChildSpec,
    Supervisor,
    SupervisorGaveUp,
    UnknownPath,
)
from supervision.testing import spawn_probe, start_child
from tests.kit import Boom, Exit, Journal, Worker


def workers(journal: Journal, *names: str, restart: str = "permanent") -> list[ChildSpec]:
    return [
        ChildSpec(n, lambda n=n: Worker(n, journal), restart=restart)  # type: ignore[misc]
        for n in names
    ]


async def start(system: ActorSystem, name: str, sup: Supervisor) -> None:
    await start_child(system, ChildSpec(name, lambda: sup))


async def fail(system: ActorSystem, path: str) -> None:
    with pytest.raises(ActorFailed):
        await system.lookup(path).ask(Boom())
    await system.quiescent()


async def test_children_start_left_to_right(system: ActorSystem) -> None:
    """A supervisor starts its children in spec order, each after the previous one's on_start."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "a", "b", "c")))
    assert j.of("start") == ["a", "b", "c"]
    assert [c.path for c in system.snapshot("/s").children] == ["/s/a", "/s/b", "/s/c"]


async def test_one_for_one_restarts_only_the_failed_child(system: ActorSystem) -> None:
    """one_for_one: the failed child restarts; its siblings are not touched."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "a", "b", "c"), strategy="one_for_one"))
    await fail(system, "/s/b")
    assert j.of("restart") == ["b"]
    assert j.of("stop") == ["b"]
    assert system.inspect("/s/b").restarts == 1
    assert system.inspect("/s/a").restarts == 0 and system.inspect("/s/c").restarts == 0
    assert await system.lookup("/s/b").ask("hello") == "hello"


async def test_one_for_all_restarts_every_child_in_order(system: ActorSystem) -> None:
    """one_for_all: all children stop right to left, then restart left to right."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "a", "b", "c"), strategy="one_for_all"))
    j.events.clear()
    await fail(system, "/s/b")
    assert j.of("stop") == ["c", "b", "a"]
    assert j.of("restart") == ["a", "b", "c"]
    assert [system.inspect(f"/s/{n}").restarts for n in "abc"] == [1, 1, 1]


async def test_rest_for_one_restarts_the_failed_and_later_children(system: ActorSystem) -> None:
    """rest_for_one: the failed child and those started after it restart; earlier ones stay."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "a", "b", "c", "d"), strategy="rest_for_one"))
    j.events.clear()
    await fail(system, "/s/b")
    assert j.of("stop") == ["d", "c", "b"]
    assert j.of("restart") == ["b", "c", "d"]
    assert system.inspect("/s/a").restarts == 0


async def test_permanent_child_restarts_after_failure_and_normal_exit(system: ActorSystem) -> None:
    """permanent: restarted after a failure and after a normal exit."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "p", restart="permanent")))
    await fail(system, "/s/p")
    await system.lookup("/s/p").tell(Exit())
    await system.quiescent()
    assert j.of("restart") == ["p"]
    assert j.of("start") == ["p", "p"]  # the normal exit restarts through on_start
    assert system.inspect("/s/p").state == "running"


async def test_transient_child_restarts_only_after_failure(system: ActorSystem) -> None:
    """transient: restarted after a failure, removed after a normal exit."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "t", restart="transient")))
    await fail(system, "/s/t")
    assert j.of("restart") == ["t"]
    await system.lookup("/s/t").tell(Exit())
    await system.quiescent()
    with pytest.raises(UnknownPath):
        system.lookup("/s/t")
    assert j.of("restart") == ["t"]


async def test_temporary_child_is_never_restarted(system: ActorSystem) -> None:
    """temporary: a failure removes the child, nothing restarts it."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "x", restart="temporary")))
    await fail(system, "/s/x")
    assert j.of("restart") == []
    with pytest.raises(UnknownPath):
        system.lookup("/s/x")


async def test_temporary_sibling_is_not_restarted_by_one_for_all(system: ActorSystem) -> None:
    """one_for_all stops a temporary sibling but does not restart it (OTP)."""
    j = Journal()
    specs = [*workers(j, "a"), *workers(j, "tmp", restart="temporary")]
    await start(system, "s", Supervisor(specs, strategy="one_for_all"))
    await fail(system, "/s/a")
    assert j.of("restart") == ["a"]
    with pytest.raises(UnknownPath):
        system.lookup("/s/tmp")


async def test_intensity_exceeded_escalates_through_two_levels(system: ActorSystem) -> None:
    """More than max_restarts within within_s: the supervisor stops its children and
    fails; its parent (same limits) restarts it, and when that parent's limit is
    exceeded too it gives up in turn, reaching the root."""
    j = Journal()
    inner = lambda: Supervisor(workers(j, "w"), max_restarts=1, within_s=10.0)  # noqa: E731
    outer = Supervisor([ChildSpec("inner", inner)], max_restarts=1, within_s=10.0)
    await start(system, "outer", outer)
    with system.subscribe() as events:
        await fail(system, "/outer/inner/w")  # 1 restart: allowed
        await fail(system, "/outer/inner/w")  # 2nd within 10 s: inner gives up
        info = system.inspect("/outer/inner")
        assert info.restarts == 1  # outer restarted inner
        assert info.last_error is not None and info.last_error.type == "SupervisorGaveUp"
        await fail(system, "/outer/inner/w")
        await fail(system, "/outer/inner/w")  # inner gives up again: outer's 2nd restart
        seen = []
        while True:
            try:
                seen.append(events.receive_nowait())
            except trio.WouldBlock:
                break
    outer_info = system.inspect("/outer")
    assert outer_info.restarts == 1  # the root restarted outer after outer gave up
    assert outer_info.last_error is not None and outer_info.last_error.type == "SupervisorGaveUp"
    assert "/outer/inner gave up" in outer_info.last_error.message
    kinds = [(e.kind, e.path) for e in seen]
    assert ("failed", "/outer/inner") in kinds and ("failed", "/outer") in kinds
    assert ("restarted", "/outer") in kinds
    # w stopped once per restart of its own and once per give-up (which stopped it
    # before inner failed), each instance once: 2 restarts + 2 give-ups
    assert j.of("stopped").count("w") == 4
    assert system.inspect("/outer/inner/w").state == "running"


async def test_root_giving_up_ends_the_system_with_its_error(autojump_clock: object) -> None:
    """When the root supervisor exceeds its intensity, system.wait() raises its error
    (the process then exits non-zero)."""
    from supervision import open_system

    j = Journal()
    async with open_system(lambda: Supervisor(workers(j, "w"), max_restarts=0)) as system:
        with pytest.raises(ActorFailed):
            await system.lookup("/w").ask(Boom())
        with pytest.raises(SupervisorGaveUp, match="/ gave up"):
            await system.wait()
        assert system.inspect("/").state == "failed"
    assert j.of("stopped") == ["w"]


async def test_restarts_outside_the_window_do_not_count(system: ActorSystem) -> None:
    """Restarts older than within_s drop out of the intensity window."""
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "w"), max_restarts=1, within_s=5.0))
    for _ in range(4):
        await fail(system, "/s/w")
        await trio.sleep(6.0)  # virtual: the previous restart leaves the window
    assert system.inspect("/s").state == "running"
    assert system.inspect("/s/w").restarts == 4


async def test_backoff_is_exponential_on_the_virtual_clock(system: ActorSystem) -> None:
    """With backoff (no jitter) the n-th consecutive restart waits min_s * 2**n, capped
    at max_s; the child is in state backoff meanwhile and messages queue."""
    j = Journal()
    backoff = Backoff(min_s=1.0, max_s=4.0, jitter=0.0, reset_after_s=100.0)
    await start(system, "s", Supervisor(workers(j, "w"), max_restarts=100, backoff=backoff))
    delays = []
    for _ in range(4):
        with pytest.raises(ActorFailed):
            await system.lookup("/s/w").ask(Boom())
        await system.lookup("/s/w").tell("queued")
        await system.quiescent()  # the supervisor has handled the failure
        assert system.inspect("/s/w").state == "backoff"
        assert system.inspect("/s/w").mailbox_depth == 1
        await system.lookup("/s/w").ask("probe", timeout=None)
        info = system.inspect("/s/w")
        assert info.last_error is not None
        delays.append(round(info.restart_times[-1] - info.last_error.at, 3))
    assert delays == [1.0, 2.0, 4.0, 4.0]
    assert [m for _, m in j.handled].count("queued") == 4


async def test_backoff_resets_after_a_stable_period(system: ActorSystem) -> None:
    """A child that ran for reset_after_s before failing starts again from min_s."""
    backoff = Backoff(min_s=1.0, max_s=60.0, jitter=0.0, reset_after_s=30.0)
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "w"), max_restarts=100, backoff=backoff))
    for _ in range(3):
        await fail(system, "/s/w")
        await system.lookup("/s/w").ask("x", timeout=None)
    await trio.sleep(31.0)
    t0 = trio.current_time()
    await fail(system, "/s/w")
    await system.lookup("/s/w").ask("x", timeout=None)
    assert round(system.inspect("/s/w").restart_times[-1] - t0, 3) == 1.0


async def test_backoff_jitter_stays_within_bounds(system: ActorSystem) -> None:
    """Jitter lengthens each delay by at most jitter * delay, never shortens it."""
    backoff = Backoff(min_s=2.0, max_s=2.0, jitter=0.5, reset_after_s=100.0)
    j = Journal()
    await start(system, "s", Supervisor(workers(j, "w"), max_restarts=100, backoff=backoff))
    for _ in range(5):
        t0 = trio.current_time()
        await fail(system, "/s/w")
        await system.lookup("/s/w").ask("x", timeout=None)
        assert 2.0 <= system.inspect("/s/w").restart_times[-1] - t0 <= 3.0 + 0.01


def test_backoff_and_supervisor_reject_bad_parameters() -> None:
    """Bad parameters fail at construction with the parameter and the value named."""
    with pytest.raises(ValueError, match="min_s must be >= 0, not -1"):
        Backoff(min_s=-1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)
    with pytest.raises(ValueError, match="max_restarts must be an int >= 0, not -2"):
        Supervisor(max_restarts=-2)
    with pytest.raises(ValueError, match="strategy"):
        Supervisor(strategy="one_for_none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ChildSpec("a", Supervisor), ChildSpec("a", Supervisor)])
    with pytest.raises(ValueError, match="actor name"):
        ChildSpec("a/b", Supervisor)
    with pytest.raises(ValueError, match="restart must be"):
        ChildSpec("a", Supervisor, restart="sometimes")  # type: ignore[arg-type]


async def test_a_failing_child_does_not_disturb_another_subtree(system: ActorSystem) -> None:
    """A crash under one supervisor is invisible to actors under another."""
    j = Journal()
    await start(system, "left", Supervisor(workers(j, "a")))
    await start(system, "right", Supervisor(workers(j, "b")))
    probe = await spawn_probe(system)
    for _ in range(3):
        await fail(system, "/left/a")
        await system.lookup("/probe").tell("still here")
        await probe.expect(str)
    assert system.inspect("/right/b").restarts == 0
    assert system.inspect("/right").restarts == 0


class NeverRestarts(Actor):
    """Fails on any message; every restart of it fails in on_restart (its database is down)."""

    attempts: ClassVar[list[float]] = []

    async def on_restart(self, error: BaseException) -> None:
        NeverRestarts.attempts.append(trio.current_time())
        raise ConnectionError("still down")

    async def receive(self, msg: object) -> object:
        raise RuntimeError("down")


async def test_backoff_keeps_growing_for_a_child_failing_in_its_start(system: ActorSystem) -> None:
    """Issue 10, item 5: a child whose restarts keep failing in on_restart never runs
    stably, so its delays double up to max_s and stay there, past reset_after_s. The
    old code measured the stable period from the child's last good start, so once
    reset_after_s had passed every delay dropped back to min_s: a hot loop."""
    NeverRestarts.attempts.clear()
    backoff = Backoff(min_s=1.0, max_s=4.0, jitter=0.0, reset_after_s=5.0)
    sup = Supervisor([ChildSpec("n", NeverRestarts)], max_restarts=100, backoff=backoff)
    await start(system, "s", sup)
    t0 = trio.current_time()
    await system.lookup("/s/n").tell("fail")
    await trio.sleep(30.0)
    times = [round(t - t0, 6) for t in NeverRestarts.attempts]
    assert times == [1.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0, 27.0]
    assert system.inspect("/s").state == "running"


class Remembers(Actor):
    """Records the error each restart was given, across its instances."""

    errors: ClassVar[list[BaseException]] = []

    async def on_restart(self, error: BaseException) -> None:
        Remembers.errors.append(error)

    async def receive(self, msg: Any) -> Any:
        if msg == "hold":
            await trio.sleep_forever()
        return msg


async def test_system_fail_fails_the_actor_as_if_receive_had_raised(system: ActorSystem) -> None:
    """Issue 11 (review, kernel finding 11): ``ActorSystem.fail(path, exc)`` is public
    (the application reached for a cell's fail_from_outside). The actor fails as if
    its receive had raised ``exc``: its supervisor restarts it with ``exc``, the
    message it was handling is dead-lettered ``interrupted`` and its ask answered,
    and it is shown as the last error. Not a checkpoint (nothing is awaited);
    UnknownPath when no live actor is at the path."""
    Remembers.errors.clear()
    await start(system, "s", Supervisor([ChildSpec("r", Remembers)]))
    error = ConnectionError("the database went away")
    async with trio.open_nursery() as nursery:

        async def ask_and_hold() -> None:
            with pytest.raises(ActorFailed) as failed:
                await system.lookup("/s/r").ask("hold", timeout=None)
            assert failed.value.cause is error

        nursery.start_soon(ask_and_hold)
        await system.quiescent()
        system.fail("/s/r", error)
    await system.quiescent()
    assert Remembers.errors == [error]
    info = system.inspect("/s/r")
    assert (info.state, info.restarts) == ("running", 1)
    assert info.last_error is not None and info.last_error.type == "ConnectionError"
    assert [(d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("interrupted", "hold")
    ]
    with pytest.raises(UnknownPath):
        system.fail("/s/nobody", error)


async def test_system_fail_of_the_root_ends_the_system_with_that_error(
    autojump_clock: object,
) -> None:
    """Issue 11 (review, kernel finding 11): the root included: failing "/" ends the
    system, and ``wait`` raises the very error (how losing the database's ownership
    ends the process)."""
    from supervision import open_system

    error = RuntimeError("ownership lost")
    async with open_system(lambda: Supervisor([ChildSpec("r", Remembers)])) as system:
        system.fail("/", error)
        with pytest.raises(RuntimeError) as raised:
            await system.wait()
        assert raised.value is error and system.failure is error
