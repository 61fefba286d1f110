"""The SQLite backend: stdlib ``sqlite3`` in WAL mode, one connection on one thread.

The connection lives on a :class:`supervision.BlockingWorker` (the kernel's
thread dispatcher), the single writer; the trio loop only ever waits for it.
``synchronous=FULL``: a commit that returned survives a power cut, not only a
process crash; group commit is what pays for the fsync.

Ownership is a flock on ``<file>.lock``: it cannot be lost while this process
keeps the descriptor open, so there is no session to watch as on Postgres;
``check_ownership`` watches that the lock file is still the one locked.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import structlog

from supervision import ActorSystem, BlockingWorker

from ._backend import Script
from ._dialect import SQLITE, Dialect
from ._errors import DatabaseInUse, MigrationError, StorageError, StoreUnavailable
from ._migrate import SCHEMA_TABLE, known_migrations, pending_migrations

__all__ = ["SqliteBackend"]

T = TypeVar("T")
P = ParamSpec("P")
_log = structlog.get_logger("greenroom.storage")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_converted: dict[str, str] = {}
# Unix seconds with a fraction (unixepoch('subsec') needs SQLite 3.42; Debian 12 has 3.40).
_NOW = "(julianday('now') - 2440587.5) * 86400.0"


def _sql(sql: str) -> str:
    # "$1" (Postgres) -> "?1" (SQLite's numbered parameter): same numbering, so
    # a script may use a parameter twice.
    out = _converted.get(sql)
    if out is None:
        out = _converted[sql] = _PLACEHOLDER.sub(r"?\1", sql)
    return out


class SqliteBackend:
    """One SQLite database file behind one thread. Made by :meth:`open`."""

    dialect: Dialect = SQLITE

    def __init__(self, path: Path, worker: BlockingWorker, conn: sqlite3.Connection) -> None:
        self.path = path
        self.target = str(path)
        self._worker = worker
        self._conn = conn
        self._lock_fd: int | None = None  # the open lock file holding the flock
        self._lost: DatabaseInUse | None = None  # final once set (see check_ownership)

    @classmethod
    async def open(cls, path: Path, system: ActorSystem | None = None) -> SqliteBackend:
        """Open (creating if needed) the database file at ``path``.

        Raises StoreUnavailable naming the path when it cannot be opened
        (missing directory, permissions, not a database). A checkpoint.
        """
        worker = BlockingWorker(system)
        try:
            conn = await worker.run(_connect, path)
        except BaseException:
            worker.close()
            raise
        return cls(path, worker, conn)

    async def run(
        self,
        fn: Callable[Concatenate[Dialect, P], Script[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the transaction script ``fn(dialect, *args, **kwargs)`` in one transaction.

        A checkpoint. If cancelled, the transaction still completes (or rolls
        back) on the thread; its result is discarded.
        """
        # Made here, run on the thread: a generator does nothing until it is driven.
        script = fn(SQLITE, *args, **kwargs)
        return await self._worker.run(self._drive, script)

    def _drive(self, script: Script[T]) -> T:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                query = next(script)
                while True:
                    rows = conn.execute(_sql(query.sql), query.args).fetchall()
                    query = script.send(rows)
            except StopIteration as done:
                conn.execute("COMMIT")
                result: T = done.value  # what the script returned (StopIteration is untyped)
                return result
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise _translate(exc, self.target) from exc
        except (ValueError, TypeError, OverflowError) as exc:
            # Binding refused a value (an int past 64 bits, an unencodable
            # string): the request's fault, reported like any storage error.
            raise StorageError(f"sqlite: {exc}") from exc
        finally:
            script.close()

    async def take_ownership(self) -> None:
        """Hold an exclusive lock (``<file>.lock``, flock) until :meth:`aclose`.

        Raises DatabaseInUse naming the process that holds it (and, after a
        loss, that loss again; see :meth:`check_ownership`); StoreUnavailable
        when the lock file cannot be made. Not a checkpoint in effect (flock
        with LOCK_NB never waits).
        """
        if self._lost is not None:
            raise self._lost
        if self._lock_fd is None:
            self._lock_fd = _lock(self._lock_path, self.target, "has it open")

    async def check_ownership(self) -> None:
        """Make sure this process still owns the database (after :meth:`take_ownership`).

        The flock itself cannot be lost: nobody can break or steal it while
        this process keeps its file descriptor open, and no server session
        carries it. What can go is the lock *file*: removed or replaced (an
        operator clearing "stale" locks, a wiped data directory), a second
        process would lock a new file at the same path and both would run. So
        this compares the file at the path with the one locked:

        - the same file: nothing to do (the usual case; two ``stat`` calls);
        - none, or another that nobody holds and no other process wrote its
          pid into: lock the file at the path (this process owns it again);
        - another that a process holds, or that another process wrote its pid
          into (it owned the database meanwhile, and may have requeued this
          process's running jobs, even if it has gone since): raise
          DatabaseInUse naming that pid. Final: every later call raises it
          again.

        StoreUnavailable when the lock file cannot be made (the data
        directory is gone); the next call tries again. A no-op before
        :meth:`take_ownership`. Not a checkpoint in effect.
        """
        if self._lost is not None:
            raise self._lost
        fd = self._lock_fd
        if fd is None:
            return
        mine = os.fstat(fd)
        try:
            there: os.stat_result | None = os.stat(self._lock_path)
        except FileNotFoundError:
            there = None
        if there is not None and (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
            return
        _log.warning(
            "ownership_lock_file_replaced", path=str(self._lock_path), missing=there is None
        )
        written = "" if there is None else _written_pid(self._lock_path)
        try:
            self._lock_fd = _lock(self._lock_path, self.target, "took it over")
        except DatabaseInUse as exc:
            self._lost = exc
            raise
        os.close(fd)  # the old file's lock guarded nothing any more
        if written not in ("", str(os.getpid())):
            self._lost = DatabaseInUse(
                self.target, f"another greenroom process (pid {written}) took it over"
            )
            raise self._lost
        _log.info("ownership_regained", target=self.target)

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions (empty: up to date)."""
        return await self._worker.run(self._migrate)

    def _migrate(self) -> list[int]:
        # One write transaction from reading what is applied to the last step:
        # two processes starting at once (`greenroom migrate` racing `run`)
        # serialise here instead of both applying step 1.
        conn = self._conn
        name = ""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = {r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA_TABLE}")}
            pending = pending_migrations(known_migrations("sqlite"), applied)
            for m in pending:
                name = f"{m.version:04d}_{m.name}"
                for statement in _statements(m.sql):
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {SCHEMA_TABLE} VALUES (?, ?, {_NOW})", (m.version, m.name)
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            what = f"migration {name}" if name else "reading the schema version"
            raise MigrationError(f"sqlite {what} failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        for m in pending:
            _log.info("migrated", backend="sqlite", version=m.version, name=m.name)
        return [m.version for m in pending]

    async def aclose(self) -> None:
        """Close the connection and end the thread. Idempotent; a checkpoint."""
        try:
            await self._worker.run(self._conn.close)
        except Exception:  # already closed thread: nothing left to close
            pass
        self._worker.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _lock(path: Path, target: str, verb: str) -> int:
    """Open (creating) ``path`` and flock it without waiting; write our pid into it;
    return the descriptor. DatabaseInUse "another greenroom process (pid N) <verb>"
    when another process holds it; StoreUnavailable when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreUnavailable(target, f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUse(target, f"another greenroom process (pid {holder}) {verb}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _written_pid(path: Path) -> str:
    """The pid a lock file holds as text ("" when empty or unreadable)."""
    try:
        with path.open("rb") as f:
            return f.read(32).decode(errors="replace").strip()
    except OSError:
        return ""


def _statements(script: str) -> list[str]:
    """Split a migration file into statements (``executescript`` would commit
    the surrounding transaction first)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current)
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        out.append(current)
    return out


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":  # e.g. a file system without shared memory
            _log.warning("sqlite_not_wal", path=str(path), journal_mode=mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        raise StoreUnavailable(str(path), str(exc)) from exc
    return conn


def _translate(exc: sqlite3.Error, target: str) -> StorageError:
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "disk" in str(exc) or "unable to open" in str(exc)
    ):
        return StoreUnavailable(target, str(exc))
    return StorageError(f"sqlite: {exc}")
