"""The Directory: a supervisor of keyed, passivating children (Orleans-style virtual actors).

``get_or_spawn(key)`` activates the child for ``key`` on first use. A child idle
for ``idle_timeout_s`` (empty mailbox, no owned task, nothing running) is
passivated: ``on_passivate`` persists what must persist and the child is
dropped; the next message builds a fresh one, which reloads from storage in
``on_start``. Past ``max_live`` live children, the least recently used idle one
is passivated. Refs from ``get_or_spawn`` are valid while the child is live;
:class:`EntityRef` re-resolves the key at every send and survives passivation.

Restarts are per key. A failed child waits out its own exponential backoff
(``backoff``, by default 0.1 s doubling to 30 s with jitter, reset after 30 s
of stable running) while messages told to it queue in its bounded mailbox. No
key's failures fail the Directory: one user's restart loop (a database that is
down, a poison state) cannot end every other user's actor. Under the default
backoff a failing key is never removed: it keeps retrying (in the end every
30 to 36 s) for as long as it fails.

``max_restarts``/``within_s`` (10 within 10 s) count each key's own restarts;
a key that exceeds them is stopped and removed (its queued messages are
dead-lettered with reason ``restart_limit``; the next message activates a
fresh child). That only guards a Directory without backoff or with a very
short one: the backoff spaces a key's restarts (from 0.1 s doubling, the
eighth comes 12.7 s after the first), so with :data:`DEFAULT_BACKOFF`, or any
backoff whose first ``max_restarts`` delays add up to ``within_s`` or more and
whose ``reset_after_s`` is at least ``within_s``, the limit is never reached.
It fires with ``NO_BACKOFF``, a ``min_s`` of a few milliseconds, or a
``reset_after_s`` shorter than the time a key runs before failing again.

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

from ._backoff import Backoff
from ._cell import Cell
from ._default import DEFAULT, Default
from ._errors import ActorStopped
from ._intensity import add_restart, exceeded
from ._passivation import request_passivate
from ._spec import ChildSpec, RestartType, validate_capacity, validate_name, validate_timeout
from ._state import RUNNING, STARTING, STOPPED
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from ._actor import AnyActor
    from ._ref import ActorRef
    from ._tasks import TaskHandle

_log = structlog.get_logger("greenroom.directory")

#: How many busy children at the front of the LRU order eviction looks past.
EVICTION_SCAN = 64

#: A Directory child's restart backoff unless told otherwise: a key failing in
#: ``on_start`` (its database is down) retries at most every 30 s, not in a hot loop.
DEFAULT_BACKOFF = Backoff(min_s=0.1, max_s=30.0, jitter=0.2, reset_after_s=30.0)


class Directory(Supervisor):
    """Keyed dynamic children built by ``factory(key)``; see the module docstring.

    One user's failures restart that user's actor only (``one_for_one``), after
    that child's own ``backoff`` (default :data:`DEFAULT_BACKOFF`; ``NO_BACKOFF``
    restarts at once). ``max_restarts``/``within_s`` are each key's own restart
    intensity: past it the key is removed, never the Directory failed. The
    backoff spaces restarts, so the intensity is only reached without backoff or
    with a very short one; under the default backoff a failing key is never
    removed, it keeps retrying (see the module docstring).
    ``idle_timeout_s=None`` disables passivation; ``max_live=None`` disables the cap.
    """

    def __init__(
        self,
        factory: Callable[[str], AnyActor],
        *,
        idle_timeout_s: float | None = 600.0,
        max_live: int | None = 100_000,
        restart: RestartType = "permanent",
        shutdown_timeout_s: float | Default | None = DEFAULT,
        mailbox_capacity: int | None = None,
        max_restarts: int = 10,
        within_s: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
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
            if request_passivate(cell):
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
                    if request_passivate(cell):
                        self._passivating.add(key)
                    else:
                        next_due = min(next_due, now + timeout)
                if next_due is math.inf:
                    next_due = now + timeout
                await trio.sleep_until(next_due)
        finally:
            self._sweeper = None

    # ------------------------------------------------------------------ per-key intensity
    def _intensity_exceeded(self, cell: Cell, now: float) -> bool:
        """Count a restart of ``cell``'s key in that key's own window (reachable
        only when the backoff lets restarts come that fast; see the module docstring)."""
        cold = cell.ensure_cold()
        cold.window = add_restart(cold.window, now, self.within_s, self.max_restarts)
        return exceeded(cold.window, self.max_restarts)

    async def _give_up(self, cell: Cell, error: BaseException | None) -> None:
        """One key exceeded its intensity: stop and remove that child only (its
        queued messages are dead-lettered ``restart_limit``). The Directory goes on;
        the next message for the key activates a fresh child with a fresh window."""
        _log.error(
            "directory_key_removed",
            actor=self.path,
            child=cell.path,
            max_restarts=self.max_restarts,
            within_s=self.within_s,
            error=repr(error),
        )
        await cell.stop(self.shutdown_timeout(cell), reason="restart_limit")
        kids = self._kids()
        if kids.get(cell.name) is cell:
            del kids[cell.name]
        self._passivating.discard(cell.name)

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
