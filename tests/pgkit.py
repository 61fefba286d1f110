"""Postgres sessions beside a backend under test: the ``sessions`` fixture.

What the ownership tests (``test_ownership.py``, ``test_storage_actor.py``,
``test_store_contract.py``) do to a real server: find the session holding
greenroom's owner lock, end it, let "another process" take the lock, refuse
connections to the test's database (an outage). Registered in
``tests/conftest.py``'s ``pytest_plugins``, so any test can ask for
``sessions``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio

from ops import pg
from storage._aioloop import LoopThread

__all__ = ["OWNER_LOCK", "Proxy", "Sessions", "sessions"]

#: The owner lock as ``pg_locks`` shows it (classid 0, objid this, objsubid 1):
#: storage/_pg_owner.py's ``OWNER_LOCK``, spelled out so a change to it is seen.
OWNER_LOCK = 0x67726F77

_LOCKS_IN = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 "
    "AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = $2)"
)

# Another process taking the database the moment the owner's session is gone:
# one statement on the server, so the owner (whose next try needs a new
# connection, a fork on the server) cannot get in between; if it ever did, this
# fails loudly instead of letting the test pass for the wrong reason.
_TAKE_OVER = f"""
DO $$
BEGIN
    PERFORM pg_terminate_backend(pid, 5000) FROM pg_locks
     WHERE locktype = 'advisory' AND classid = 0 AND objid = {OWNER_LOCK} AND objsubid = 1
       AND granted AND pid <> pg_backend_pid()
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
    IF NOT pg_try_advisory_lock({OWNER_LOCK}) THEN
        RAISE EXCEPTION 'the owner took its lock back before the usurper';
    END IF;
END $$
"""


class Sessions:
    """Sessions of our own beside the backend under test, on an asyncio loop
    thread: an administrator's (on the server's admin database) and, on demand,
    "another process" (the usurper) on the test's database. Everything it does
    is limited to the test's database."""

    def __init__(self, loop: LoopThread, admin: asyncpg.Connection, url: str) -> None:
        self._loop = loop
        self._admin = admin
        self._url = url
        self.database = urlsplit(url).path.lstrip("/")
        self._usurper: asyncpg.Connection | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, admin_url: str) -> AsyncIterator[Sessions]:
        loop = LoopThread()
        try:
            admin = await loop.run(asyncpg.connect, admin_url)
            sessions = cls(loop, admin, url)
            try:
                yield sessions
            finally:
                with trio.CancelScope(shield=True):
                    await sessions.allow_connections()
                    for conn in (sessions._usurper, admin):
                        if conn is not None:
                            await loop.run(conn.close)
        finally:
            await loop.aclose()

    async def owner_pid(self) -> int | None:
        """The backend pid of the session holding the owner lock in the test's
        database, or None."""
        rows = await self._loop.run(self._admin.fetch, _LOCKS_IN, OWNER_LOCK, self.database)
        assert len(rows) <= 1, rows
        return rows[0]["pid"] if rows else None

    async def terminate(self, pid: int) -> None:
        """End that server session (waiting until it has gone)."""
        sql = "SELECT pg_terminate_backend($1, 5000)"
        assert await self._loop.run(self._admin.fetchval, sql, pid)

    @contextmanager
    def stalled(self, pid: int) -> Iterator[None]:
        """The server process of session ``pid`` stopped (SIGSTOP) until the block
        ends (SIGCONT): a session that neither answers nor ends, like a hung
        backend's. Needs the server on this machine and the right to signal its
        processes (the tests run as root); skips the test otherwise."""
        try:
            os.kill(pid, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError) as exc:
            pytest.skip(f"cannot stop the server's process {pid}: {exc}")
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    async def usurper(self) -> int:
        """Connect "another process" to the test's database; return its backend pid."""
        if self._usurper is None:
            self._usurper = await self._loop.run(asyncpg.connect, self._url)
        pid: int = await self._loop.run(self._usurper.fetchval, "SELECT pg_backend_pid()")
        return pid

    async def take_over(self) -> int:
        """End the owner's session and take its lock at once, as another process
        would; return the usurper's backend pid (it holds the lock from now on)."""
        pid = await self.usurper()
        assert self._usurper is not None
        await self._loop.run(self._usurper.execute, _TAKE_OVER)
        assert await self.owner_pid() == pid
        return pid

    async def refuse_connections(self, *, keep: tuple[int, ...] = ()) -> None:
        """An outage of the test's database: the server refuses new connections to
        it and ends every session on it except ``keep``."""
        await self._loop.run(
            self._admin.execute, f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false'
        )
        await self._loop.run(
            self._admin.execute,
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> ALL($2::int[])",
            self.database,
            list(keep),
        )

    async def allow_connections(self) -> None:
        """The outage is over."""
        await self._loop.run(
            self._admin.execute, f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true'
        )

    async def others(self, *but: int) -> int:
        """How many sessions are open on the test's database, ``but`` those."""
        count: int = await self._loop.run(
            self._admin.fetchval,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> ALL($2::int[])",
            self.database,
            list(but),
        )
        return count


@pytest.fixture
async def sessions(pg_url: str, pg_server: pg.Server) -> AsyncIterator[Sessions]:
    async with Sessions.open(pg_url, pg_server.admin_url) as s:
        yield s


class _Link:
    __slots__ = ("frozen",)

    def __init__(self) -> None:
        self.frozen = False


class Proxy:
    """A TCP relay to the server whose connections can be frozen: from then on
    nothing passes either way and neither end is closed, whatever the other end
    does. A frozen connection is half-open: the client gives up on it, and its
    server session lives on, holding what it held, with nobody to answer.
    Serve it with ``await nursery.start(proxy.serve)``; cancel that to end it."""

    def __init__(self, url: str) -> None:
        self._parts = urlsplit(url)
        self._upstream = (self._parts.hostname or "127.0.0.1", self._parts.port or 5432)
        self._links: list[_Link] = []
        self.url = ""  # ``url`` through the relay, once it serves

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        user, at, _ = self._parts.netloc.rpartition("@")
        self.url = urlunsplit(self._parts._replace(netloc=f"{user}{at}127.0.0.1:{port}"))
        task_status.started()
        await trio.serve_listeners(self._relay, [listener])

    def freeze(self) -> int:
        """Freeze every connection made so far; return how many."""
        for link in self._links:
            link.frozen = True
        return len(self._links)

    async def _relay(self, client: trio.SocketStream) -> None:
        link = _Link()
        self._links.append(link)
        try:
            async with (
                client,
                await trio.open_tcp_stream(*self._upstream) as server,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self._pump, client, server, link, nursery.cancel_scope)
                nursery.start_soon(self._pump, server, client, link, nursery.cancel_scope)
        except (trio.BrokenResourceError, OSError):
            pass  # one end went away: so does the other

    @staticmethod
    async def _pump(
        src: trio.SocketStream, dst: trio.SocketStream, link: _Link, done: trio.CancelScope
    ) -> None:
        while True:
            data = await src.receive_some()
            if link.frozen:
                await trio.sleep_forever()
            if not data:
                done.cancel()  # closes both ends
                return
            await dst.send_all(data)
