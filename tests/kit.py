"""Small actors and helpers shared by the tests."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing

from supervision import Actor


@dataclass(frozen=True)
class Boom:
    """Makes a ``Worker`` raise."""

    why: str = "boom"


@dataclass(frozen=True)
class Exit:
    """Makes a ``Worker`` stop normally."""


@dataclass
class Journal:
    """What every incarnation of some actors did, shared with the test."""

    events: list[tuple[str, str]] = field(default_factory=list)
    handled: list[tuple[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [name for k, name in self.events if k == kind]


class Echo(Actor):
    """Answers with the message. No hooks, no tasks: a cell that needs no cold record."""

    async def receive(self, msg: Any) -> Any:
        return msg


class Worker(Actor):
    """Records starts, stops, restarts and messages in a journal; fails on ``Boom``."""

    def __init__(self, name: str, journal: Journal, stop_delay: float = 0.0) -> None:
        self.name = name
        self.journal = journal
        self.stop_delay = stop_delay

    async def on_start(self) -> None:
        self.journal.events.append(("start", self.name))

    async def on_restart(self, error: BaseException) -> None:
        self.journal.events.append(("restart", self.name))

    async def on_stop(self) -> None:
        self.journal.events.append(("stop", self.name))
        if self.stop_delay:
            await trio.sleep(self.stop_delay)
        self.journal.events.append(("stopped", self.name))

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Boom(why=why):
                raise RuntimeError(why)
            case Exit():
                self.stop()
                return None
            case _:
                self.journal.handled.append((self.name, msg))
                return msg


def count_tasks() -> int:
    """Every task in the run, found by walking the task tree from the root task."""
    stack = [trio.lowlevel.current_root_task()]
    n = 0
    while stack:
        task = stack.pop()
        n += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return n


async def until(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0, cushion: float = 0.005
) -> None:
    """Until ``condition()`` (plain or async) holds, checked each time every task is
    blocked: the scheduler is the sync point, not a clock. ``within`` seconds is a
    hang guard (on a MockClock, virtual seconds)."""
    with trio.fail_after(within):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await trio.testing.wait_all_tasks_blocked(cushion=cushion)
