"""``/storage``: the tree's view of the Store, first child of the root.

The Store itself is opened by ``greenroom run`` before the tree starts (so a
bad ``DATABASE_URL`` is one line and exit 2, not a crash loop) and closed
after the tree stopped (so every actor's last write lands). This actor makes
the database visible in the tree: ``ask /storage kernel.Ping`` is the
readiness probe operators and ``/readyz`` use.

It also watches that this process still owns the database (issue 10, item 5):
every ``check_interval_s`` (``[storage] ownership_check_s``) it calls
``Store.check_ownership``, and:

- **another process took the database**: one critical line,
  ``ownership_lost`` with ``database`` and ``holder`` (the other process: its
  Postgres backend pid, or its pid for SQLite), then the *root* of the tree is
  failed with that ``DatabaseInUse``. ``greenroom run`` then stops the whole
  tree in order and exits with status 3. Failing only this actor would not do:
  its supervisor would restart it and two processes would go on answering the
  same users. The loss is also kept in the backend (every later check raises
  it again), so nothing can "take the database back" after it.
- **the database cannot be reached** (an outage): nothing ends. The watch
  keeps trying at the same interval and logs ``storage_unreachable`` once, then
  ``storage_reachable`` once when a check succeeds again (the backend has then
  taken its lock back, unless another process took it meanwhile: see above).
"""

from __future__ import annotations

import math
from typing import Any

import trio

from protocols import Ping, Pong
from storage import DatabaseInUse, StorageError, Store
from supervision import Actor


class StorageActor(Actor):
    """Answers ``Ping`` with the backend, the database (password masked) and whether
    it answered a round trip; every ``check_interval_s`` seconds (None: never)
    checks ownership, and ends the process (see the module docstring) if another
    process took the database. Raises ValueError for an interval that is not a
    finite number > 0 or None."""

    accepts = (Ping,)

    def __init__(self, store: Store, *, check_interval_s: float | None = 30.0) -> None:
        if check_interval_s is not None and not (
            isinstance(check_interval_s, int | float)
            and math.isfinite(check_interval_s)
            and check_interval_s > 0
        ):
            raise ValueError(f"check_interval_s must be > 0 or None, not {check_interval_s!r}")
        self.store = store
        self.check_interval_s = check_interval_s
        self._unreachable = False  # the last check could not reach the database

    async def on_start(self) -> None:
        if self.check_interval_s is not None:
            self.spawn_task(self._watch_ownership, self.check_interval_s, name="ownership")

    async def _watch_ownership(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                await self.store.check_ownership()
            except DatabaseInUse as exc:
                self._end_the_process(exc)
                return
            except StorageError as exc:
                if not self._unreachable:
                    self.log.warning(
                        "storage_unreachable",
                        error=str(exc),
                        retry_every_s=interval,
                    )
                self._unreachable = True
                self.log.debug("ownership_checked", outcome="unreachable")
                continue
            if self._unreachable:
                self.log.info("storage_reachable", target=self.store.target)
            self._unreachable = False
            self.log.debug("ownership_checked", outcome="held")

    def _end_the_process(self, exc: DatabaseInUse) -> None:
        # Why the root: see the module docstring. ``system.fail`` fails it as if
        # it had raised ``exc``; the root has no supervisor, so the system records
        # the failure and ``greenroom run`` stops the tree in order.
        self.log.critical(
            "ownership_lost",
            database=exc.target,
            holder=exc.reason,
            action="stopping this process",
        )
        self.system.fail("/", exc)

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Ping():
                # A database outage is reported, not raised: failing this actor
                # would only restart it, and a flapping database must not make
                # the root supervisor give up on the whole process.
                try:
                    await self.store.ping()
                    state = "ok"
                except StorageError as exc:
                    state = f"unavailable: {exc}"
                return Pong(note=f"{self.store.backend} {self.store.target}: {state}")
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")
