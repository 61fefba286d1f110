"""The Directory: a supervisor of keyed, passivating children (Orleans-style virtual actors).

``get_or_spawn(key)`` activates the child for ``key`` on first use. A child idle
for ``idle_timeout_s`` (empty mailbox, no owned task, nothing running) is
passivated: ``on_passivate`` persists what must persist and the child is
dropped; the next message builds a fresh one, which reloads from storage in
``on_start``. Past ``max_live`` live children, the least recently used idle one
is passivated. Refs from ``get_or_spawn`` are valid while the child is live;
:class:`EntityRef` re-resolves the key at every send and survives passivation.

The LRU order is the insertion order of the children dict: a touch moves the
key to the end. One sweeper task (an owned task, present only while there are
children) walks the front of that order, so sweeping costs O(passivations), not
O(children).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ._cell import RUNNING, STARTING, STOPPED, Cell
from ._errors import ActorStopped
from ._spec import ChildSpec, RestartType, validate_capacity, validate_name, validate_timeout
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from ._actor import AnyActor
    from ._backoff import Backoff
    from ._ref import ActorRef
    from ._tasks import TaskHandle

_log = structlog.get_logger("greenroom.directory")

#: How many busy children at the front of the LRU order eviction looks past.
EVICTION_SCAN = 64


class Directory(Supervisor):
    """Keyed dynamic children built by ``factory(key)``; see the module docstring.

    One user's failures restart that user's actor only (``one_for_one``);
    ``max_restarts``/``within_s`` count over all children, so the defaults are
    generous. ``idle_timeout_s=None`` disables passivation; ``max_live=None``
    disables the cap.
    """

    def __init__(
        self,
        factory: Callable[[str], AnyActor],
        *,
        idle_timeout_s: float | None = 600.0,
        max_live: int | None = 100_000,
        restart: RestartType = "permanent",
        shutdown_timeout_s: float | None = -1.0,
        mailbox_capacity: int | None = None,
        max_restarts: int = 100,
        within_s: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__((), max_restarts=max_restarts, within_s=within_s, backoff=backoff)
        validate_timeout("idle_timeout_s", idle_timeout_s)
        if idle_timeout_s is not None and idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0 or None, not {idle_timeout_s!r}")
        if max_live is not None and (
            isinstance(max_live, bool) or not isinstance(max_live, int) or max_live < 1
        ):
            raise ValueError(f"max_live must be an int >= 1 or None, not {max_live!r}")
        validate_capacity(mailbox_capacity)
        self.idle_timeout_s = idle_timeout_s
        self.max_live = max_live
        self.child_spec = ChildSpec(
            name="key",
            factory=factory,
            restart=restart,
            shutdown_timeout_s=shutdown_timeout_s,
            mailbox_capacity=mailbox_capacity,
            keyed=True,
        )
        self._passivating: set[str] = set()  # keys asked to passivate, not yet done
        self._sweeper: TaskHandle | None = None

    # ------------------------------------------------------------------ keyed access
    def get_or_spawn(self, key: str) -> ActorRef:
        """The live child for ``key``, activating it if needed; marks it recently used.

        Synchronous and not a checkpoint (a new child's ``on_start`` runs in its
        own task; messages told meanwhile queue). Raises ValueError for a key
        with ``/`` or blank, ``ActorStopped`` if the directory is not running.
        """
        kids = self._kids()
        cell = kids.get(key)
        if cell is not None and cell.state is not STOPPED:
            del kids[key]  # LRU touch: move to the end
            kids[key] = cell
            return cell.ref
        validate_name(key)
        if self._cell.state not in (RUNNING, STARTING):
            raise ActorStopped(self.path)
        if self.max_live is not None and len(kids) - len(self._passivating) >= self.max_live:
            self._evict()
        cell = Cell(self._cell.system, self._cell, self.child_spec, key)
        kids[key] = cell
        if self._sweeper is None and self.idle_timeout_s is not None:
            self._sweeper = self.spawn_task(self._sweep, name="sweeper")
        return cell.ref

    def live(self) -> int:
        """Children currently live (including those being passivated)."""
        return len(self._kids())

    def _evict(self) -> None:
        for cell in list(itertools.islice(self._kids().values(), EVICTION_SCAN)):
            if cell.request_passivate():
                self._passivating.add(cell.name)
                _log.debug("evicted", actor=self.path, child=cell.path)
                return
        _log.warning("eviction_found_no_idle_actor", actor=self.path, max_live=self.max_live)

    def _child_passivated(self, cell: Cell) -> None:
        kids = self._kids()
        if kids.get(cell.name) is cell:
            del kids[cell.name]
        self._passivating.discard(cell.name)

    def _passivation_cancelled(self, cell: Cell) -> None:
        """A message arrived before passivation began: the child stays live."""
        self._passivating.discard(cell.name)

    # ------------------------------------------------------------------ idle sweeping
    async def _sweep(self) -> None:
        """Passivate children idle for ``idle_timeout_s``; exits when none are left."""
        timeout = self.idle_timeout_s
        assert timeout is not None
        kids = self._kids()
        try:
            while kids:
                now = trio.current_time()
                next_due = math.inf
                for key in list(itertools.islice(kids, EVICTION_SCAN * 4)):
                    cell = kids.get(key)
                    if cell is None or key in self._passivating:
                        continue
                    if cell.idle_since is None:
                        cell.idle_since = now  # spawned, never messaged: idle from now
                    due = cell.idle_since + timeout
                    if cell.active or cell.mailbox or due > now:
                        # Busy, or active more recently than its place in the LRU
                        # order says (told through a ref): move it to the back and
                        # go on, so it never shields older idle children behind it.
                        del kids[key]
                        kids[key] = cell
                        next_due = min(next_due, now + timeout if due <= now else due)
                        continue
                    if cell.request_passivate():
                        self._passivating.add(key)
                    else:
                        next_due = min(next_due, now + timeout)
                if next_due is math.inf:
                    next_due = now + timeout
                await trio.sleep_until(next_due)
        finally:
            self._sweeper = None

    async def _system_receive(self, msg: Any) -> None:
        cell = getattr(msg, "cell", None)
        if cell is not None:
            self._passivating.discard(cell.name)  # failed or exited while passivating
        await super()._system_receive(msg)


class EntityRef:
    """A ref by key into a :class:`Directory`: it survives passivation.

    Every send resolves the key to the live child, activating it if needed
    (``Directory.get_or_spawn``), then behaves like ``ActorRef``'s method.
    """

    __slots__ = ("_directory", "key")

    def __init__(self, directory: ActorRef, key: str) -> None:
        actor = directory._cell.actor
        if not isinstance(actor, Directory):
            raise TypeError(f"{directory.path} is not a Directory")
        validate_name(key)
        self._directory = directory
        self.key = key

    def resolve(self) -> ActorRef:
        """The live child's ref (activating it). Raises ``ActorStopped`` if the
        directory is down."""
        actor = self._directory._cell.actor
        assert isinstance(actor, Directory)
        return actor.get_or_spawn(self.key)

    async def tell(self, msg: Any) -> None:
        """See ``ActorRef.tell``."""
        await self.resolve().tell(msg)

    def tell_nowait(self, msg: Any) -> None:
        """See ``ActorRef.tell_nowait``."""
        self.resolve().tell_nowait(msg)

    async def ask(self, msg: Any, **kw: Any) -> Any:
        """See ``ActorRef.ask``."""
        return await self.resolve().ask(msg, **kw)

    def __repr__(self) -> str:
        return f"<EntityRef {self._directory.path}/{self.key}>"
