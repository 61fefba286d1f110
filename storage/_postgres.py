"""The Postgres backend: an asyncpg pool on its own asyncio loop thread.

A transaction script runs entirely on the loop (one round trip from trio per
transaction); claiming uses ``FOR UPDATE SKIP LOCKED``; migrations run under
an advisory lock in one transaction. asyncpg's and the socket's exceptions
are translated here: an outage is :class:`StoreUnavailable` naming the URL
with its password masked.

Ownership (issue 10, item 5): the owning process holds a session advisory
lock on a connection of its own, outside the pool. The lock lives exactly as
long as that server session, so the server can drop it (a restart, an
administrator's ``pg_terminate_backend``, an idle-session kill) and another
process can then take it. :meth:`PostgresBackend.check_ownership` finds out;
its states::

    not exclusive --take_ownership--> held
    held --session gone--> unconfirmed (server unreachable, or our own earlier
                           session not ended yet: retried at each check)
    unconfirmed --lock free, or held by our own earlier session, ended--> held
    held / unconfirmed --another session holds it--> lost (final)

"Our own earlier session" is the one this backend took the lock on, known by
its backend pid (and start time: a pid is reused once its process ends). It
still holds the lock when it stopped answering without ending: a half-open
connection, a stopped or hung backend. This process's probe gave up on it, so
the next take finds the lock held by it; that is not another process, and is
never recorded as the loss: it is terminated (``pg_terminate_backend``) and
the lock tried once more.

``lost`` is kept: every later ``check_ownership`` and ``take_ownership``
raises the same :class:`DatabaseInUse` without asking the server, even if the
other process has let go meanwhile (it may have requeued this process's
running jobs: this process must end, not carry on).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg
import structlog
import trio

from protocols import mask_url

from ._aioloop import LoopThread
from ._backend import Script
from ._dialect import POSTGRES, Dialect
from ._errors import DatabaseInUse, MigrationError, StorageError, StoreUnavailable
from ._migrate import SCHEMA_TABLE, known_migrations, pending_migrations

__all__ = ["PostgresBackend"]

T = TypeVar("T")
P = ParamSpec("P")
_log = structlog.get_logger("greenroom.storage")
# pg_advisory_xact_lock key for migrations: any constant unique to greenroom.
_MIGRATION_LOCK = 0x67726E72  # "grnr"
# Session advisory lock held by the process that owns the database (< 2**32,
# so pg_locks shows it as classid 0, objid this).
_OWNER_LOCK = 0x67726F77  # "grow"
# How long a session being let go may take to answer (an unlock, a close):
# a dead one has nothing to say.
_QUICK_S = 2.0
# How long to wait for our own earlier session to end once terminated (ms).
_TERMINATE_WAIT_MS = 2000
_CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


@dataclass(frozen=True, slots=True)
class _Session:
    """A server session: its backend pid and, when known, when it started (a pid is
    reused once its process has ended; None: its activity row was already gone)."""

    pid: int
    started: datetime | None

    def is_(self, other: _Session | None) -> bool:
        """Whether this is the session ``other`` (the same pid, not started later)."""
        return (
            other is not None
            and self.pid == other.pid
            and (self.started is None or self.started == other.started)
        )


class PostgresBackend:
    """One Postgres database behind an asyncpg pool. Made by :meth:`open`."""

    dialect: Dialect = POSTGRES

    def __init__(
        self,
        target: str,
        loop: LoopThread,
        pool: asyncpg.Pool,
        *,
        url: str,
        connect_timeout_s: float,
        command_timeout_s: float,
    ) -> None:
        self.target = target
        self._loop = loop
        self._pool = pool
        # Where the owner session connects (the real URL, password included:
        # never logged; ``target`` is what messages show).
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        # Invariants: _owner is not None only while _exclusive; _lost is final
        # (set once, never cleared) and, once set, _owner is None. _session is
        # the session the lock was last taken on: _owner's while it is set, and
        # kept after it is discarded (what tells our own stalled session from
        # another process's).
        self._exclusive = False  # take_ownership succeeded once: keep owning
        self._owner: asyncpg.Connection | None = None  # the session holding the lock now
        self._session: _Session | None = None
        self._lost: DatabaseInUse | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout_s: float = 10.0,
        command_timeout_s: float = 30.0,
    ) -> PostgresBackend:
        """Connect a pool to ``url`` (``postgresql://...``).

        Raises StoreUnavailable naming the URL, password masked, when no
        connection can be made within ``connect_timeout_s`` (refused, wrong
        host, bad credentials, missing database). A checkpoint.
        """
        target = mask_url(url)
        loop = LoopThread()
        try:
            pool = await loop.run(
                _create_pool, url, min_size, max_size, connect_timeout_s, command_timeout_s
            )
        except (
            *_CONNECTION_ERRORS,
            ValueError,
            asyncpg.InterfaceError,
            asyncpg.PostgresError,
        ) as exc:
            # Refused, unknown host, bad credentials, missing database, and a
            # malformed URL or option (ValueError, ClientConfigurationError,
            # an unknown server setting): all one line naming the URL.
            await loop.aclose()
            raise StoreUnavailable(target, _reason(exc)) from None
        except BaseException:
            await loop.aclose()  # shielded inside: cancelled mid-connect leaks nothing
            raise
        return cls(
            target,
            loop,
            pool,
            url=url,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
        )

    async def run(
        self,
        fn: Callable[Concatenate[Dialect, P], Script[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the transaction script ``fn(dialect, *args, **kwargs)`` in one transaction.

        A checkpoint. If cancelled, the transaction is rolled back.
        """
        # Made here, run on the loop: a generator does nothing until it is driven.
        script = fn(POSTGRES, *args, **kwargs)
        try:
            return await self._loop.run(self._drive, script)
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(self.target, _reason(exc)) from exc
        except asyncpg.InterfaceError as exc:
            if "closed" in str(exc) or "connection" in str(exc):
                # The server went away mid-transaction ("the underlying
                # connection is closed"): an outage, not a bad request.
                raise StoreUnavailable(self.target, _reason(exc)) from exc
            raise StorageError(f"postgres: {_reason(exc)}") from exc
        except (
            asyncpg.PostgresError,
            asyncpg.InternalClientError,
            ValueError,
            TypeError,
            OverflowError,
        ) as exc:
            raise StorageError(f"postgres: {_reason(exc)}") from exc

    async def _drive(self, script: Script[T]) -> T:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                query = next(script)
                while True:
                    rows = await conn.fetch(query.sql, *query.args)
                    query = script.send(rows)
            except StopIteration as done:
                result: T = done.value  # what the script returned (StopIteration is untyped)
                return result
            finally:
                script.close()

    async def take_ownership(self) -> None:
        """Hold the owner lock (a session advisory lock on a connection of its own)
        until :meth:`aclose`. Idempotent once held.

        Raises DatabaseInUse naming the server process (backend pid) of the
        holder, StoreUnavailable when the server cannot be reached. After a
        loss (see :meth:`check_ownership`) it raises that loss again. A
        checkpoint; if cancelled, either no lock was taken or it is held and
        recorded (so :meth:`aclose` releases it): never one nobody knows of.
        """
        if self._lost is not None:
            raise self._lost
        if self._owner is None:
            await self._take()
        self._exclusive = True

    async def check_ownership(self) -> None:
        """Make sure this process still owns the database (after :meth:`take_ownership`).

        One round trip on the owner session when all is well. If the server
        dropped that session, the lock went with it: take it again at once.
        Raises:

        - DatabaseInUse when another session holds the lock (another process
          took the database while this one's session was gone). Final: every
          later call raises it again, without I/O.
        - StoreUnavailable when the server cannot be reached (or refuses
          connections) to take the lock back, or when this process's own
          earlier session, which stopped answering, still holds it after it
          was terminated; the next call tries again. This process does not
          own the database meanwhile, but nobody else provably does either.

        A no-op before :meth:`take_ownership`. A checkpoint; if cancelled, the
        state is as before the call (a session that broke meanwhile is found
        by the next one).
        """
        if self._lost is not None:
            raise self._lost
        if not self._exclusive:
            return  # never exclusive
        owner = self._owner
        if owner is not None:
            try:
                await self._loop.run(owner.fetchval, "SELECT 1")
                return
            except Exception:
                # Closed, terminated mid-operation (asyncpg then says InternalClientError
                # "another operation is in progress"), timed out (a half-open TCP
                # connection): any failure of the probe means this session, and the
                # lock, may be gone. Close it for certain, so no lock survives on a
                # session this process no longer watches.
                pass
            self._owner = None
            with trio.CancelScope(shield=True):
                await self._discard(owner)
            _log.warning("ownership_session_lost", target=self.target)
        await self._take()
        _log.info("ownership_regained", target=self.target)

    async def _take(self) -> None:
        """One try at the lock on a fresh connection; sets ``_owner`` or raises
        (DatabaseInUse, which is recorded as the loss once this backend owned the
        database, or StoreUnavailable). Our own earlier session holding it is
        ended first (see the module docstring)."""
        try:
            attempt = await self._loop.run(
                _try_lock,
                self._url,
                self._connect_timeout_s,
                self._command_timeout_s,
                self._session,
            )
        except (
            *_CONNECTION_ERRORS,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as exc:
            # Refused, down, or "database is not currently accepting connections"
            # (a PostgresError at connect): no answer either way, so nothing is
            # decided; the next check tries again.
            raise StoreUnavailable(self.target, _reason(exc)) from exc
        if attempt.ended is not None:
            _log.warning("ownership_session_terminated", target=self.target, pid=attempt.ended)
        holder = attempt.session
        if attempt.conn is not None:
            self._owner, self._session = attempt.conn, holder
            return
        if holder is not None and holder.is_(self._session):
            raise StoreUnavailable(
                self.target,
                f"this process's earlier session (postgres backend pid {holder.pid}) stopped "
                "answering and, terminated, still holds the lock",
            )
        who = "unknown" if holder is None else str(holder.pid)
        if self._exclusive:
            self._lost = DatabaseInUse(
                self.target,
                f"another greenroom process (postgres backend pid {who}) took it over",
            )
            raise self._lost
        raise DatabaseInUse(
            self.target, f"another greenroom process (postgres backend pid {who}) has it open"
        )

    async def _discard(self, conn: asyncpg.Connection) -> None:
        try:
            await self._loop.run(_close_quickly, conn)
        except Exception:  # a closed loop: the connection went with it
            pass

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions (empty: up to date)."""
        try:
            return await self._loop.run(self._migrate)
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(self.target, _reason(exc)) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # e.g. no CREATE on schema public (Postgres 15's default for new roles)
            raise MigrationError(f"postgres migration failed: {_reason(exc)}") from exc

    async def _migrate(self) -> list[int]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            applied = {
                r["version"] for r in await conn.fetch(f"SELECT version FROM {SCHEMA_TABLE}")
            }
            done = []
            for m in pending_migrations(known_migrations("postgres"), applied):
                try:
                    await conn.execute(m.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"postgres migration {m.version:04d}_{m.name} failed: {_reason(exc)}"
                    ) from exc
                await conn.execute(
                    f"INSERT INTO {SCHEMA_TABLE} (version, name) VALUES ($1, $2)", m.version, m.name
                )
                _log.info("migrated", backend="postgres", version=m.version, name=m.name)
                done.append(m.version)
            return done

    async def aclose(self) -> None:
        """Close the pool (waiting for connections in use) and the loop thread. Idempotent."""
        with trio.CancelScope(shield=True):
            self._exclusive = False
            if self._owner is not None:
                owner, self._owner = self._owner, None
                try:
                    await self._loop.run(_release_owner, owner)
                except Exception:  # a broken connection: the session is gone anyway
                    pass
            try:
                await self._loop.run(_close_pool, self._pool)
            except Exception:  # a closed loop: nothing left to close
                pass
            await self._loop.aclose()


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one try at the owner lock found."""

    conn: asyncpg.Connection | None  # now holding the lock, or None
    session: _Session | None  # conn's session; else the holder's (None: unknown, gone)
    ended: int | None = None  # the pid of our own earlier session it terminated


async def _try_lock(
    url: str, connect_timeout_s: float, command_timeout_s: float, ours: _Session | None
) -> _Attempt:
    """Connect and try the owner lock. When our own earlier session ``ours`` holds
    it (or the holder is gone by the time we look), end that session and try once
    more.

    A connection of its own, not a pooled one: after an outage the pool's idle
    connections are dead until used, and a re-take through the pool would
    fail once for each of them before it reached a live one."""
    conn = await asyncpg.connect(url, timeout=connect_timeout_s, command_timeout=command_timeout_s)
    try:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _OWNER_LOCK):
            return _Attempt(conn, await _own_session(conn))
        holder = await _holder(conn)
        ended = None
        if holder is None or holder.is_(ours):
            if holder is not None:
                await conn.fetchval(
                    "SELECT pg_terminate_backend($1, $2)",
                    holder.pid,
                    _TERMINATE_WAIT_MS,
                    timeout=_TERMINATE_WAIT_MS / 1000 + _QUICK_S,  # the wait, then an answer
                )
                ended = holder.pid
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _OWNER_LOCK):
                return _Attempt(conn, await _own_session(conn), ended)
            holder = await _holder(conn)
    except BaseException:
        await _close_quickly(conn)
        raise
    await _close_quickly(conn)
    return _Attempt(None, holder, ended)


async def _own_session(conn: asyncpg.Connection) -> _Session:
    started: datetime | None = await conn.fetchval(
        "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    )
    return _Session(conn.get_server_pid(), started)


async def _holder(conn: asyncpg.Connection) -> _Session | None:
    """The session holding the owner lock in this database, or None (nobody now)."""
    row = await conn.fetchrow(
        "SELECT l.pid, a.backend_start FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1 "
        "AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        _OWNER_LOCK,
    )
    return None if row is None else _Session(row["pid"], row["backend_start"])


async def _release_owner(conn: asyncpg.Connection) -> None:
    # Unlock, then end the session (which would release it anyway). The unlock
    # runs inside aclose's shield: under the 30 s command timeout a half-open
    # session would hold the process's exit that long, for a lock its end frees.
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", _OWNER_LOCK, timeout=_QUICK_S)
    finally:
        await _close_quickly(conn)


async def _close_quickly(conn: asyncpg.Connection) -> None:
    """Close a connection, or drop its socket at once if closing fails or the
    server does not answer within 2 s (a dead session has nothing to say). Raises
    nothing but cancellation (after dropping the socket)."""
    try:
        await asyncio.wait_for(conn.close(), timeout=_QUICK_S)
    except Exception:
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise


async def _close_pool(pool: asyncpg.Pool) -> None:
    # Connections still busy past the grace are terminated, so closing never hangs.
    try:
        await asyncio.wait_for(pool.close(), timeout=10.0)
    except TimeoutError:
        pool.terminate()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset hook: nothing. The default reset is a round trip per
    release (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``),
    about 1 ms here, for session state our scripts never change; asyncpg still
    rolls back a transaction left open."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _create_pool(
    url: str, min_size: int, max_size: int, connect_timeout_s: float, command_timeout_s: float
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout_s,
        command_timeout=command_timeout_s,
        init=_init_connection,
        reset=_keep_session,
    )


def _reason(exc: BaseException) -> str:
    """One line: the first of the message (asyncpg adds DETAIL lines that can
    quote argument values), no URL (asyncpg puts none in its messages; socket
    errors carry only host and port)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
