"""The testing kit: a system on a virtual clock, probes, injection, quiescence.

Load it as a pytest plugin (``pytest_plugins = ["supervision.testing"]`` in
``conftest.py``) with pytest-trio (``trio_mode = true``)::

    async def test_echo(system):              # the ``system`` fixture: MockClock, autojump
        probe = await spawn_probe(system)
        await inject(system, "/probe", Ping())
        await probe.expect(Ping, within=1.0)

``system`` runs under ``trio.testing.MockClock(autojump_threshold=0)``: restart
backoff, idle timeouts and ask timeouts take no real time. Tests of
``BlockingActor`` use ``real_system`` instead, because a virtual clock would
jump while the thread works.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from ._actor import Actor
from ._ref import ActorRef
from ._spec import ChildSpec
from ._supervisor import Supervisor
from ._system import ActorSystem, open_system

T = TypeVar("T")

__all__ = [
    "Probe",
    "inject",
    "real_system",
    "spawn_probe",
    "start_child",
    "system",
]


class Probe(Actor):
    """Records every message it receives; tests assert on them in order.

    ``answer`` (optional) computes the reply to asks; the default echoes.
    """

    def __init__(self, answer: Callable[[Any], Any] | None = None) -> None:
        self.received: collections.deque[Any] = collections.deque()
        self.history: list[Any] = []
        self._lot = trio.lowlevel.ParkingLot()
        self._answer = answer

    async def receive(self, msg: Any) -> Any:
        self.received.append(msg)
        self.history.append(msg)
        self._lot.unpark_all()
        return self._answer(msg) if self._answer is not None else msg

    async def next(self, *, within: float = 1.0) -> Any:
        """The next message not yet consumed, waiting up to ``within`` (virtual) seconds.

        Raises AssertionError naming the probe if nothing arrives in time.
        """
        with trio.move_on_after(within):
            while not self.received:
                await self._lot.park()
            return self.received.popleft()
        raise AssertionError(f"probe {self.path}: no message within {within}s")

    async def expect(
        self, kind: type[T], *, within: float = 1.0, where: Callable[[T], bool] | None = None
    ) -> T:
        """Consume the next message and check it is a ``kind`` (and matches ``where``)."""
        msg = await self.next(within=within)
        if not isinstance(msg, kind):
            raise AssertionError(f"probe {self.path}: expected {kind.__name__}, got {msg!r}")
        if where is not None and not where(msg):
            raise AssertionError(f"probe {self.path}: {msg!r} does not match the condition")
        return msg

    async def expect_nothing(self, *, for_: float = 0.1) -> None:
        """Wait ``for_`` (virtual) seconds and check no message arrived."""
        await trio.sleep(for_)
        if self.received:
            raise AssertionError(f"probe {self.path}: unexpected {self.received[0]!r}")


async def start_child(system: ActorSystem, spec: ChildSpec) -> ActorRef:
    """Start ``spec`` as a child of the root supervisor and return its ref once its
    ``on_start`` has finished (see ``Supervisor.start_child``: ValueError for a name
    already taken). The root must be a ``Supervisor``, as the ``system`` fixtures'
    is; AssertionError otherwise."""
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor), "root must be a Supervisor"
    return await root.actor.start_child(spec)


async def spawn_probe(
    system: ActorSystem, name: str = "probe", answer: Callable[[Any], Any] | None = None
) -> Probe:
    """Start a :class:`Probe` under the root supervisor and return the instance."""
    made: list[Probe] = []

    def factory() -> Probe:
        made.append(Probe(answer))
        return made[-1]

    await start_child(system, ChildSpec(name, factory))
    return made[-1]


async def inject(system: ActorSystem, path: str, msg: Any) -> None:
    """Tell ``msg`` to the live actor at ``path`` (raises ``UnknownPath``)."""
    await system.lookup(path).tell(msg)


def _run_on_virtual_clock(fn: Callable[[], Any], *, clock: Any = None, **kw: Any) -> Any:
    """``trio.run`` with an autojumping MockClock unless the test brought its own clock."""
    return trio.run(fn, clock=clock or trio.testing.MockClock(autojump_threshold=0), **kw)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that uses the ``system`` fixture on the virtual clock.

    pytest-trio takes the clock only from a test's direct arguments; its
    ``trio(run=...)`` marker is the supported way to choose the runner.
    """
    for item in items:
        if "system" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trio(run=_run_on_virtual_clock))


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    """A system with an empty root ``Supervisor`` on an autojumping virtual clock
    (every test using this fixture runs under ``MockClock(autojump_threshold=0)``)."""
    async with open_system(Supervisor, seed=1234) as sys:
        yield sys


@pytest.fixture
async def real_system() -> AsyncIterator[ActorSystem]:
    """A system on the real clock (for BlockingActor tests)."""
    async with open_system(Supervisor, seed=1234) as sys:
        yield sys
