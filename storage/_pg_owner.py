"""Ownership of a Postgres database: the owner lock, on a session of its own, watched.

Ownership (issue 10, item 5): the owning process holds a session advisory
lock on a connection of its own, outside the pool. The lock lives exactly as
long as that server session, so the server can drop it (a restart, an
administrator's ``pg_terminate_backend``, an idle-session kill) and another
process can then take it. :meth:`OwnerLock.check` finds out; its states::

    not exclusive --take--> held
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

``lost`` is kept: every later ``check`` and ``take`` raises the same
:class:`DatabaseInUse` without asking the server, even if the other process
has let go meanwhile (it may have requeued this process's
running jobs: this process must end, not carry on).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
import trio

from ._aioloop import LoopThread
from ._errors import DatabaseInUse, StoreUnavailable
from ._pg_errors import CONNECTION_ERRORS, reason

__all__ = ["OWNER_LOCK", "OwnerLock"]

_log = structlog.get_logger("greenroom.storage")
# Session advisory lock held by the process that owns the database (< 2**32,
# so pg_locks shows it as classid 0, objid this).
OWNER_LOCK = 0x67726F77  # "grow"
# How long a session being let go may take to answer (an unlock, a close):
# a dead one has nothing to say.
_QUICK_S = 2.0
# How long to wait for our own earlier session to end once terminated (ms).
_TERMINATE_WAIT_MS = 2000


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


class OwnerLock:
    """The owner lock of one database, for one backend (see the module docstring)."""

    def __init__(
        self,
        target: str,
        loop: LoopThread,
        *,
        url: str,
        connect_timeout_s: float,
        command_timeout_s: float,
    ) -> None:
        self.target = target
        self._loop = loop
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
        self._exclusive = False  # take succeeded once: keep owning
        self._owner: asyncpg.Connection | None = None  # the session holding the lock now
        self._session: _Session | None = None
        self._lost: DatabaseInUse | None = None

    async def take(self) -> None:
        """Hold the owner lock (a session advisory lock on a connection of its own)
        until :meth:`release`. Idempotent once held.

        Raises DatabaseInUse naming the server process (backend pid) of the
        holder, StoreUnavailable when the server cannot be reached. After a
        loss (see :meth:`check`) it raises that loss again. A checkpoint; if
        cancelled, either no lock was taken or it is held and
        recorded (so :meth:`release` releases it): never one nobody knows of.
        """
        if self._lost is not None:
            raise self._lost
        if self._owner is None:
            await self._take()
        self._exclusive = True

    async def check(self) -> None:
        """Make sure this process still owns the database (after :meth:`take`).

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

        A no-op before :meth:`take`. A checkpoint; if cancelled, the state is
        as before the call (a session that broke meanwhile is found by the
        next one).
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
            *CONNECTION_ERRORS,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as exc:
            # Refused, down, or "database is not currently accepting connections"
            # (a PostgresError at connect): no answer either way, so nothing is
            # decided; the next check tries again.
            raise StoreUnavailable(self.target, reason(exc)) from exc
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

    async def release(self) -> None:
        """Stop owning: unlock and end the owner session, if there is one. Raises
        nothing but cancellation (the backend's close runs it shielded); a broken
        session is gone, and its lock with it."""
        self._exclusive = False
        if self._owner is not None:
            owner, self._owner = self._owner, None
            try:
                await self._loop.run(_release_owner, owner)
            except Exception:  # a broken connection: the session is gone anyway
                pass


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
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", OWNER_LOCK):
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
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", OWNER_LOCK):
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
        OWNER_LOCK,
    )
    return None if row is None else _Session(row["pid"], row["backend_start"])


async def _release_owner(conn: asyncpg.Connection) -> None:
    # Unlock, then end the session (which would release it anyway). The unlock
    # runs inside the backend's shielded close: under the 30 s command timeout a half-open
    # session would hold the process's exit that long, for a lock its end frees.
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", OWNER_LOCK, timeout=_QUICK_S)
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
