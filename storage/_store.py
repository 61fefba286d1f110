"""The Store: greenroom's one storage interface, over either backend.

The Store is one object composed of one part per concern (a mixin each: see
``_common`` for what a concern module holds), over one backend and one clock.
Every method is one transaction (one script of its concern module), so each
either happened entirely or not at all. Every method is a checkpoint.
Cancelling a caller mid-call may still leave the write done (the transaction
completes on the backend's own OS thread) unless its docstring says otherwise; every write that
a retry could repeat is therefore idempotent by a key (``ingest`` by the
platform's message id, ``record_reply`` by the idempotency key, ``mark_sent``
and ``decide`` by state). Unreachable databases raise :class:`StoreUnavailable`.

Mixins over one ``_run`` rather than typed facades (``store.inbox.ingest``):
callers keep calling ``store.ingest(...)`` (facades would change every caller
or need a delegating method each, a fourth copy of every operation), a
transaction that spans two concerns (``finish_with_reply``,
``propose_with_ack``) stays one script composed of theirs, and a new concern
is one more base class here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import trio

from protocols import Clock, system_clock
from supervision import ActorSystem

from ._approvals import Approvals
from ._audit import Audit
from ._backend import Backend, Script
from ._connector_state import ConnectorState
from ._dialect import Dialect, Q
from ._errors import StoreUnavailable
from ._group import GroupCommit
from ._held import Held
from ._inbox import Inbox
from ._jobs import Jobs
from ._ledger import Ledger
from ._memories import Memories
from ._messages import Messages
from ._outbox import Outbox
from ._users import Users

__all__ = ["Store", "open_store"]


class Store(
    Inbox,
    Held,
    Jobs,
    Outbox,
    Messages,
    Approvals,
    Ledger,
    Users,
    Memories,
    Audit,
    ConnectorState,
):
    """greenroom's storage. Made by :func:`open_store`; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        *,
        group_commit: bool = True,
        max_batch: int = 256,
        clock: Clock = system_clock,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._group = GroupCommit(self._flush_ingest, max_batch=max_batch) if group_commit else None

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._backend.dialect.name

    @property
    def target(self) -> str:
        """The database, as safe to show (a file path, or the URL with its password masked)."""
        return self._backend.target

    @property
    def clock(self) -> Clock:
        """The wall clock this Store stamps every record with: the one clock the
        application reads "now" and "today" from (see ``protocols.Clock``)."""
        return self._clock

    def now(self) -> datetime:
        """What time it is by :attr:`clock` (aware, UTC). Not a checkpoint."""
        return self._clock()

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty: up to date)."""
        return await self._backend.migrate()

    async def aclose(self) -> None:
        """Close the backend (pool or thread). Idempotent."""
        await self._backend.aclose()

    async def check_ownership(self) -> None:
        """For a store opened ``exclusive``: make sure this process still owns the
        database, taking it back if the server dropped the lock's session. Raises
        DatabaseInUse when another process took it meanwhile (this one must stop:
        both would answer the same messages). A no-op otherwise."""
        await self._backend.check_ownership()

    async def ping(self) -> bool:
        """One round trip to the database; raises StoreUnavailable when it is down."""
        return bool(await self._run(ping))


def ping(d: Dialect) -> Script[bool]:
    """A round trip to the database."""
    rows = yield Q("SELECT 1 AS one")
    return bool(rows and rows[0]["one"] == 1)


@asynccontextmanager
async def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    system: ActorSystem | None = None,
    migrate: bool = True,
    exclusive: bool = False,
    group_commit: bool = True,
    max_batch: int = 256,
    clock: Clock = system_clock,
) -> AsyncIterator[Store]:
    """Open the store and close it on leaving the block.

    ``database_url`` ``postgresql://...`` (or ``postgres://``) selects Postgres;
    None selects SQLite at ``<data_dir>/greenroom.db`` (the directory is
    created). With ``exclusive``, this process takes ownership of the
    database until the block ends (``greenroom run`` does: ``recover()`` is
    only safe in the one process that works the inbox). Pending migrations
    are applied first unless ``migrate`` is False. Raises StoreUnavailable
    (one line, password masked) when the database cannot be opened,
    DatabaseInUse when another process owns it, MigrationError when its
    schema cannot be brought up to date, ValueError for any other scheme.
    """
    from ._postgres import PostgresBackend
    from ._sqlite import SqliteBackend

    backend: Backend
    if database_url is None:
        path = Path(data_dir) / "greenroom.db"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(str(path), exc.strerror or str(exc)) from None
        backend = await SqliteBackend.open(path, system)
    elif database_url.startswith(("postgresql://", "postgres://")):
        backend = await PostgresBackend.open(database_url)
    else:
        raise ValueError("database_url must start with postgresql:// (or be unset for SQLite)")
    try:
        store = Store(backend, group_commit=group_commit, max_batch=max_batch, clock=clock)
        if exclusive:
            await backend.take_ownership()
        if migrate:
            await store.migrate()
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()
