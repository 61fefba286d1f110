"""The message in hand is settled whatever the shape of the exception (issue 10, item 4).

Under trio's strict exception groups a nursery inside ``receive`` turns a kill's
``Cancelled`` into ``BaseExceptionGroup[Cancelled]`` (or a group of it and an
error raised while cancelling). Whatever comes out, the message being handled
is dead-lettered and an ask waiting on it is answered; a ``KeyboardInterrupt``
still goes up, and the ask is still answered on its way.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from supervision import (
    Actor,
    ActorFailed,
    ActorStopped,
    ActorSystem,
    ChildSpec,
    Killed,
    Supervisor,
    open_system,
)
from supervision.testing import start_child

HANG_GUARD_S = 100.0  # virtual seconds: an unanswered ask fails the test here


class Nested(Actor):
    """Handles each message inside a nursery of its own, in one of several ways."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case "wait":  # the body awaits inside the nursery
                async with trio.open_nursery():
                    await trio.sleep_forever()
            case "wait_child":  # a child task waits; the body waits for it
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.sleep_forever)
            case "cleanup_breaks":  # a child raises while it is being cancelled

                async def child() -> None:
                    try:
                        await trio.sleep_forever()
                    finally:
                        raise ValueError("cleanup broke")

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(child)
                    await trio.sleep_forever()
            case "group":  # two children fail: an ExceptionGroup of errors

                async def fails(why: str) -> None:
                    raise ValueError(why)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fails, "one")
                    nursery.start_soon(fails, "two")
            case "interrupt":
                raise KeyboardInterrupt
        return msg


async def add(system: ActorSystem) -> Any:
    return await start_child(system, ChildSpec("n", Nested))


async def kill_while_asking(system: ActorSystem, msg: str) -> BaseException:
    """Ask ``msg`` with no timeout, kill the actor while it handles it; return what
    the ask raised (the hang guard fails the test if it is never answered)."""
    ref = await add(system)
    raised: list[BaseException] = []

    async def asker() -> None:
        try:
            await ref.ask(msg, timeout=None)
        except (ActorFailed, ActorStopped) as exc:
            raised.append(exc)

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(asker)
            await trio.testing.wait_all_tasks_blocked()
            system.kill("/n", "settle test")
    await system.quiescent()
    [exc] = raised
    return exc


@pytest.mark.parametrize("msg", ["wait", "wait_child"])
async def test_kill_inside_a_nursery_answers_the_ask(system: ActorSystem, msg: str) -> None:
    """Issue 10, item 4: receive awaits inside a nursery; a kill while an
    ask(timeout=None) waits makes the ask raise ActorFailed (cause Killed) and puts
    the message in the dead letters as interrupted; the actor is restarted. The old
    code caught only a bare Cancelled, so the BaseExceptionGroup[Cancelled] left
    the message neither dead-lettered nor answered: the ask waited forever."""
    exc = await kill_while_asking(system, msg)
    assert isinstance(exc, ActorFailed) and isinstance(exc.cause, Killed)
    assert [(d.path, d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("/n", "interrupted", msg)
    ]
    info = system.inspect("/n")
    assert info.restarts == 1 and info.state == "running"
    assert info.last_error is not None and info.last_error.type == "Killed"
    assert await system.lookup("/n").ask("next") == "next"


async def test_kill_while_cleanup_raises_answers_the_ask(system: ActorSystem) -> None:
    """Issue 10, item 4: killed inside a nursery whose child raises ValueError while
    being cancelled (a group of Cancelled and ValueError): the kill is the failure,
    the ask raises ActorFailed, the message is dead-lettered as interrupted, and the
    rest of the system is untouched. The old code let the leftover ExceptionGroup
    escape the drain task and crash the whole system."""
    exc = await kill_while_asking(system, "cleanup_breaks")
    assert isinstance(exc, ActorFailed) and isinstance(exc.cause, Killed)
    assert [(d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("interrupted", "cleanup_breaks")
    ]
    assert system.inspect("/n").restarts == 1 and system.failure is None
    assert await system.lookup("/n").ask("next") == "next"


async def test_a_receive_raising_an_exception_group_fails_the_ask(system: ActorSystem) -> None:
    """Issue 10, item 4: a receive whose nursery raises an ExceptionGroup of errors
    fails the actor with that group; the ask raises ActorFailed carrying it and the
    message is dead-lettered as caused_failure."""
    ref = await add(system)
    with trio.fail_after(HANG_GUARD_S), pytest.raises(ActorFailed) as info:
        await ref.ask("group", timeout=None)
    assert isinstance(info.value.cause, ExceptionGroup)
    assert sorted(str(e) for e in info.value.cause.exceptions) == ["one", "two"]
    await system.quiescent()
    assert [(d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("caused_failure", "group")
    ]
    assert system.inspect("/n").restarts == 1


async def test_keyboard_interrupt_goes_up_and_the_ask_is_answered(autojump_clock: Any) -> None:
    """Issue 10, item 4: a KeyboardInterrupt raised in receive is not swallowed (it
    ends the system), but the ask waiting on that message is answered first with
    ActorStopped and the message is dead-lettered as interrupted. The old code let
    it pass without settling the ask, which was then only ever cancelled."""
    answers: list[BaseException] = []
    with trio.fail_after(HANG_GUARD_S), pytest.raises(BaseException) as info:
        async with open_system(lambda: Supervisor([ChildSpec("n", Nested)])) as system:

            async def asker() -> None:
                try:
                    await system.lookup("/n").ask("interrupt", timeout=None)
                except ActorStopped as exc:
                    answers.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(asker)
    if isinstance(info.value, BaseExceptionGroup):
        interrupt, rest = info.value.split(KeyboardInterrupt)
        assert interrupt is not None and rest is None, info.value
    else:
        assert isinstance(info.value, KeyboardInterrupt), info.value
    assert [type(a) for a in answers] == [ActorStopped]
    assert [(d.reason, d.message) for d in system.dead_letters.recent()] == [
        ("interrupted", "interrupt")
    ]
