"""The Postgres backend: an asyncpg pool on its own asyncio loop thread.

A transaction script runs entirely on the loop (one round trip from trio per
transaction); claiming uses ``FOR UPDATE SKIP LOCKED``; migrations run under
an advisory lock in one transaction. asyncpg's and the socket's exceptions
are translated here: an outage is :class:`StoreUnavailable` naming the URL
with its password masked.

Ownership (issue 10, item 5) is :class:`OwnerLock`'s (``_pg_owner``): the
backend makes one and hands ``take_ownership``/``check_ownership`` to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg
import structlog
import trio

from protocols import mask_url

from ._aioloop import LoopThread
from ._backend import Script
from ._dialect import POSTGRES, Dialect
from ._errors import MigrationError, StorageError, StoreUnavailable
from ._migrate import SCHEMA_TABLE, known_migrations, pending_migrations
from ._pg_errors import CONNECTION_ERRORS, reason
from ._pg_owner import OwnerLock

__all__ = ["PostgresBackend"]

T = TypeVar("T")
P = ParamSpec("P")
_log = structlog.get_logger("greenroom.storage")
# pg_advisory_xact_lock key for migrations: any constant unique to greenroom.
_MIGRATION_LOCK = 0x67726E72  # "grnr"


class PostgresBackend:
    """One Postgres database behind an asyncpg pool. Made by :meth:`open`."""

    dialect: Dialect = POSTGRES

    def __init__(
        self,
        target: str,
        loop: LoopThread,
        pool: asyncpg.Pool,
        ownership: OwnerLock,
    ) -> None:
        self.target = target
        self._loop = loop
        self._pool = pool
        self._ownership = ownership  # on ``loop``, for the same database

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
            *CONNECTION_ERRORS,
            ValueError,
            asyncpg.InterfaceError,
            asyncpg.PostgresError,
        ) as exc:
            # Refused, unknown host, bad credentials, missing database, and a
            # malformed URL or option (ValueError, ClientConfigurationError,
            # an unknown server setting): all one line naming the URL.
            await loop.aclose()
            raise StoreUnavailable(target, reason(exc)) from None
        except BaseException:
            await loop.aclose()  # shielded inside: cancelled mid-connect leaks nothing
            raise
        ownership = OwnerLock(
            target,
            loop,
            url=url,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
        )
        return cls(target, loop, pool, ownership)

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
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(self.target, reason(exc)) from exc
        except asyncpg.InterfaceError as exc:
            if "closed" in str(exc) or "connection" in str(exc):
                # The server went away mid-transaction ("the underlying
                # connection is closed"): an outage, not a bad request.
                raise StoreUnavailable(self.target, reason(exc)) from exc
            raise StorageError(f"postgres: {reason(exc)}") from exc
        except (
            asyncpg.PostgresError,
            asyncpg.InternalClientError,
            ValueError,
            TypeError,
            OverflowError,
        ) as exc:
            raise StorageError(f"postgres: {reason(exc)}") from exc

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
        """Hold the owner lock until :meth:`aclose` (see :meth:`OwnerLock.take`)."""
        await self._ownership.take()

    async def check_ownership(self) -> None:
        """Make sure this process still owns the database (see :meth:`OwnerLock.check`)."""
        await self._ownership.check()

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions (empty: up to date)."""
        try:
            return await self._loop.run(self._migrate)
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(self.target, reason(exc)) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # e.g. no CREATE on schema public (Postgres 15's default for new roles)
            raise MigrationError(f"postgres migration failed: {reason(exc)}") from exc

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
                        f"postgres migration {m.version:04d}_{m.name} failed: {reason(exc)}"
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
            await self._ownership.release()
            try:
                await self._loop.run(_close_pool, self._pool)
            except Exception:  # a closed loop: nothing left to close
                pass
            await self._loop.aclose()


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
