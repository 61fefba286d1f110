"""``/storage``: the tree's view of the Store, first child of the root.

The Store itself is opened by ``greenroom run`` before the tree starts (so a
bad ``DATABASE_URL`` is one line and exit 2, not a crash loop) and closed
after the tree stopped (so every actor's last write lands). This actor makes
the database visible in the tree: ``ask /storage kernel.Ping`` is the
readiness probe operators and ``/readyz`` use. It also watches that this
process still owns the database (see ``Store.check_ownership``).
"""

from __future__ import annotations

from typing import Any

import trio

from protocols import Ping, Pong
from storage import DatabaseInUse, StorageError, Store
from supervision import Actor


class StorageActor(Actor):
    """Answers ``Ping`` with the backend, the database (password masked) and whether
    it answered a round trip; every ``check_interval_s`` checks ownership and
    fails (letting its supervisor decide) if another process took the database."""

    accepts = (Ping,)

    def __init__(self, store: Store, *, check_interval_s: float | None = 30.0) -> None:
        self.store = store
        self.check_interval_s = check_interval_s

    async def on_start(self) -> None:
        if self.check_interval_s is not None:
            self.spawn_task(self._watch_ownership, name="ownership")

    async def _watch_ownership(self) -> None:
        assert self.check_interval_s is not None
        while True:
            await trio.sleep(self.check_interval_s)
            try:
                await self.store.check_ownership()
            except DatabaseInUse:
                raise  # two processes would answer the same messages: fail loudly
            except StorageError as exc:
                self.log.warning("storage_unreachable", error=str(exc))

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
