"""Losing ownership of the database ends greenroom; losing the database does not.

Issue 10, item 5 (second half). One process owns a database: a session
advisory lock on Postgres, a flock on SQLite. These tests take it away for
real: ``pg_terminate_backend`` of the owner's session (found by its lock in
``pg_locks``, in the test's own database only) and another session taking the
lock, against a real Postgres database from ``ops/pg.py`` and a real
``greenroom run`` child; and a replaced lock file on SQLite. In-process tests
of ``/storage`` on the virtual clock are in ``test_storage_actor.py``; the
helpers here (``LogWatch``, ``within``) serve both, and both take the server's
sessions from ``tests/pgkit.py`` (the ``sessions`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from config import ConfigError, load_settings
from storage import DatabaseInUse, Store, StoreUnavailable, open_store
from storage._postgres import PostgresBackend
from tests.appkit import open_app
from tests.pgkit import Proxy, Sessions
from tests.runkit import JsonLog
from tests.test_cli import env, start_run


class LogWatch:
    """structlog events while active (``capture_logs``), and a wait for them.

    The wait is the sync point for tests of ``/storage`` on a virtual clock:
    each ownership check ends with a log line (``ownership_checked`` at debug
    level, or ``ownership_lost``)."""

    def __init__(self) -> None:
        self.entries: list[MutableMapping[str, Any]] = []
        self._lot = trio.lowlevel.ParkingLot()

    def _wake(self, _: Any, __: str, event: Any) -> Any:
        if trio.lowlevel.in_trio_task():  # structlog lines from other threads wake nobody
            self._lot.unpark_all()
        return event

    @contextmanager
    def capture(self) -> Iterator[LogWatch]:
        with structlog.testing.capture_logs(processors=[self._wake]) as entries:
            self.entries = entries
            yield self

    def named(self, event: str, **match: Any) -> list[MutableMapping[str, Any]]:
        return [
            e
            for e in self.entries
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, event: str, count: int = 1, **match: Any) -> None:
        """Until ``count`` lines ``event`` (with the fields in ``match``) were logged.
        No timeout of its own: wrap it in :func:`within`."""
        while len(self.named(event, **match)) < count:
            await self._lot.park()


async def within(seconds: float, what: str, afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``await afn(*args)`` and return (or raise) what it does; fail the test with
    ``what`` if that takes more than ``seconds`` of real time.

    A hang guard for tests on ``mock_clock``, whose trio timeouts only fire when
    the test jumps the clock, while the database works in real time; never a
    sync point."""
    finished = threading.Event()
    error: Exception | None = None
    value: Any = None
    with trio.CancelScope() as guard:
        async with trio.open_nursery() as nursery:

            async def alarm() -> None:
                if not await trio.to_thread.run_sync(finished.wait, seconds):
                    guard.cancel()

            nursery.start_soon(alarm)
            try:
                value = await afn(*args)
            except Exception as exc:
                error = exc
            finally:
                finished.set()
    if guard.cancelled_caught:
        raise AssertionError(f"{what} (nothing within {seconds} s)")
    if error is not None:
        raise error
    return value


# --------------------------------------------------------------------------- a real process


class Child(JsonLog):
    """A ``greenroom run`` child and its JSON log lines, read as they come."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stderr is not None
        super().__init__(proc.stderr)
        self.proc = proc


@asynccontextmanager
async def greenroom_run(tmp_path: Path, **extra: str) -> AsyncIterator[Child]:
    """``greenroom run`` as a child process, started (its ``started`` line read)."""
    async with trio.open_nursery() as nursery:
        proc = await start_run(nursery, tmp_path, **extra)
        child = Child(proc)
        try:
            await child.wait("started")
            yield child
        finally:
            if proc.returncode is None:
                proc.kill()


async def test_a_greenroom_whose_database_was_taken_over_stops_in_order_with_status_3(
    tmp_path: Path, pg_url: str, sessions: Sessions
) -> None:
    """Issue 10, item 5: after the first DatabaseInUse the ownership probe returned
    early forever, so the process whose lock session was killed kept serving
    while another process owned the database. Now: the owner's session is
    terminated and another session takes the lock; at its next check (0.5 s
    here) ``greenroom run`` logs one ``ownership_lost`` line naming the database
    and the holder's backend pid, stops the tree in order and exits 3. (The old
    code never exited: this test's 60 s hang guard failed.)"""
    async with greenroom_run(
        tmp_path, DATABASE_URL=pg_url, GREENROOM_STORAGE__OWNERSHIP_CHECK_S="0.5"
    ) as child:
        owner = await sessions.owner_pid()
        assert owner is not None
        usurper = await sessions.take_over()
        stopped = await child.wait("stopped")
        assert await child.proc.wait() == 3
    [lost] = child.named("ownership_lost")
    assert (lost["level"], lost["actor"], lost["database"]) == ("critical", "/storage", pg_url)
    holder = f"another greenroom process (postgres backend pid {usurper}) took it over"
    assert lost["holder"] == holder
    assert stopped["status"] == 3
    # In order: the doors were stopped (the HTTP door's last line) after the loss
    # and before the end; /storage was neither failed nor restarted.
    assert child.index("ownership_lost") < child.index("http_stopped") < child.index("stopped")
    assert [e for e in child.events if e["event"] == "actor_failed" and e["actor"] != "/"] == []
    # It closed the Store on the way out and left the usurper's lock alone.
    assert await sessions.others(usurper) == 0
    assert await sessions.owner_pid() == usurper


async def test_a_greenroom_whose_lock_session_was_killed_takes_it_back_and_stays_up(
    tmp_path: Path, pg_url: str, sessions: Sessions
) -> None:
    """Issue 10, item 5: the owner's session is terminated and nobody else takes
    the lock: at its next check the process takes it back on a new session
    (another greenroom is then refused, naming that session) and stays up until
    SIGTERM, exit 0."""
    async with greenroom_run(
        tmp_path, DATABASE_URL=pg_url, GREENROOM_STORAGE__OWNERSHIP_CHECK_S="0.5"
    ) as child:
        first = await sessions.owner_pid()
        assert first is not None
        await sessions.terminate(first)
        await child.wait("ownership_regained")
        second = await sessions.owner_pid()
        assert second is not None and second != first
        with pytest.raises(DatabaseInUse, match=rf"postgres backend pid {second}\) has it open"):
            async with open_store(pg_url, tmp_path / "other", exclusive=True):
                pass
        child.proc.send_signal(signal.SIGTERM)
        stopped = await child.wait("stopped")
        assert await child.proc.wait() == 0
    assert stopped["status"] == 0
    assert [e["signal"] for e in child.named("stopping")] == ["SIGTERM"]
    assert len(child.named("ownership_session_lost")) == 1
    assert child.named("ownership_lost") == [] and child.named("storage_unreachable") == []


@asynccontextmanager
async def owning(url: str, **options: Any) -> AsyncIterator[Store]:
    """A Store owning the Postgres database at ``url`` whose commands time out
    after 1 s (an ownership probe of a session that does not answer gives up then)."""
    backend = await PostgresBackend.open(url, command_timeout_s=1.0, **options)
    try:
        await backend.take_ownership()
        yield Store(backend)
    finally:
        await backend.aclose()


async def test_an_owner_whose_own_session_stalled_does_not_call_it_a_takeover(
    tmp_path: Path, pg_url: str, sessions: Sessions
) -> None:
    """Review of issue 11: the owner's session stopped answering but did not end
    (its backend SIGSTOPped; a hung one). The probe gave up on it, and the re-take
    found the lock held by that very session, recorded "another greenroom process
    took it over", final, and greenroom exited 3 with nobody else there. Now the
    check terminates its own earlier session; while that has not ended yet it is
    StoreUnavailable (try again), and the next check takes the lock back."""
    with LogWatch().capture() as logs:
        async with owning(pg_url) as store:
            first = await sessions.owner_pid()
            assert first is not None
            with sessions.stalled(first):
                with pytest.raises(StoreUnavailable, match=rf"earlier session .*pid {first}\)"):
                    await store.check_ownership()
                assert await sessions.owner_pid() == first  # stopped: it cannot end yet
                with pytest.raises(StoreUnavailable) as again:
                    await store.check_ownership()
                assert not isinstance(again.value, DatabaseInUse)
            # Continued, it ends (the termination was waiting for it): taken back.
            await store.check_ownership()
            second = await sessions.owner_pid()
            assert second is not None and second != first
            with pytest.raises(DatabaseInUse, match=rf"pid {second}\) has it open"):
                async with open_store(pg_url, tmp_path, exclusive=True):
                    pass
            await store.check_ownership()
    assert [e["pid"] for e in logs.named("ownership_session_terminated")][:2] == [first, first]
    assert logs.named("ownership_lost") == []


async def test_an_owner_whose_session_went_half_open_ends_it_and_keeps_the_lock(
    pg_url: str, sessions: Sessions
) -> None:
    """Review of issue 11: a half-open owner connection (through a relay that stops
    passing anything, both ends left open): the server's session lives on, idle,
    holding the lock, while the owner's probe times out. The check terminates
    that session, which ends at once, and takes the lock on a new one."""
    proxy = Proxy(pg_url)
    with LogWatch().capture() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            # No idle pool connections: the owner's session is the relay's only one.
            async with owning(proxy.url, min_size=0) as store:
                first = await sessions.owner_pid()
                assert first is not None
                assert proxy.freeze() == 1
                await store.check_ownership()
                second = await sessions.owner_pid()
                assert second is not None and second != first
                await store.check_ownership()
            nursery.cancel_scope.cancel()
    assert [e["pid"] for e in logs.named("ownership_session_terminated")] == [first]
    assert len(logs.named("ownership_session_lost")) == 1
    assert logs.named("ownership_lost") == []


async def test_closing_beside_a_stalled_owner_session_takes_seconds(
    tmp_path: Path, pg_url: str, sessions: Sessions
) -> None:
    """Review of issue 11: the owner's unlock at close ran under the 30 s command
    timeout inside aclose's shield, so an owner session that stopped answering
    (half-open, a hung backend: here SIGSTOPped) held the process's exit for
    ~30 s. Now the unlock has 2 s and the close 2 s more, then the socket is
    dropped."""
    async with open_store(pg_url, tmp_path, exclusive=True) as store:
        owner = await sessions.owner_pid()
        assert owner is not None
        with sessions.stalled(owner):
            began = trio.current_time()
            await store.aclose()
            took = trio.current_time() - began
    assert took < 15.0  # 4 s and some; the old code took the 30 s command timeout


# --------------------------------------------------------------------------- SQLite


# Another greenroom process owning a SQLite database until its stdin closes.
_SQLITE_OWNER = """
import sys, trio
from pathlib import Path
from storage import open_store

async def main():
    async with open_store(None, Path(sys.argv[1]), exclusive=True):
        print("owner", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)

trio.run(main)
"""


@asynccontextmanager
async def another_sqlite_owner(data_dir: Path) -> AsyncIterator[int]:
    """Another process that opened the SQLite database exclusively; yields its pid
    and holds the database until the block ends."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", _SQLITE_OWNER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        out = b""
        with trio.fail_after(60):  # a hang guard for a real process, not a sync point
            while b"owner\n" not in out:  # after its log lines (structlog's default: stdout)
                chunk = await proc.stdout.receive_some()
                assert chunk, f"the other owner exited: {out!r}"
                out += chunk
        yield proc.pid
    finally:
        await proc.stdin.aclose()
        with trio.fail_after(60):
            assert await proc.wait() == 0
        await proc.stdout.aclose()


async def test_a_sqlite_owner_whose_lock_file_another_process_replaced_loses_it(
    tmp_path: Path,
) -> None:
    """Issue 10, item 5: a flock cannot be taken away, but its file can: removed
    (an operator clearing "stale" locks), a second greenroom locks a new file at
    the same path and both run. The old check was a no-op and never noticed;
    now the owner sees another process holds the file at the path, and the loss
    is final."""
    async with open_store(None, tmp_path, exclusive=True) as first:
        (tmp_path / "greenroom.db.lock").unlink()
        async with another_sqlite_owner(tmp_path) as other:
            with pytest.raises(DatabaseInUse, match=rf"\(pid {other}\) took it over"):
                await first.check_ownership()
        with pytest.raises(DatabaseInUse, match=rf"\(pid {other}\) took it over"):
            await first.check_ownership()  # final, though the other has gone


async def test_a_sqlite_owner_finds_that_another_process_owned_it_meanwhile(
    tmp_path: Path,
) -> None:
    """Issue 10, item 5: the lock file removed, another greenroom owned the
    database (and could have requeued the owner's running jobs) and is gone
    again before the owner's next check: its pid in the file tells, and the
    owner's check raises."""
    async with open_store(None, tmp_path, exclusive=True) as first:
        (tmp_path / "greenroom.db.lock").unlink()
        async with another_sqlite_owner(tmp_path) as other:
            pass
        with pytest.raises(DatabaseInUse, match=rf"\(pid {other}\) took it over"):
            await first.check_ownership()


async def test_a_sqlite_owner_whose_lock_file_was_removed_locks_it_again(tmp_path: Path) -> None:
    """Issue 10, item 5: the lock file removed and nobody else there yet: the
    owner's next check locks a new one, so a second greenroom is refused again
    (the old code let it in)."""
    async with open_store(None, tmp_path, exclusive=True) as owner:
        lock = tmp_path / "greenroom.db.lock"
        lock.unlink()
        await owner.check_ownership()
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(DatabaseInUse, match=rf"\(pid {os.getpid()}\) has it open"):
            async with open_store(None, tmp_path, exclusive=True):
                pass
        await owner.check_ownership()  # the same file again: nothing to do


# --------------------------------------------------------------------------- the setting


def test_the_ownership_check_interval_is_a_setting() -> None:
    """``[storage] ownership_check_s``: 30 s by default, > 0 and at most an hour."""
    assert load_settings(env={}).storage.ownership_check_s == 30.0
    env_name = "GREENROOM_STORAGE__OWNERSHIP_CHECK_S"
    assert load_settings(env={env_name: "0.5"}).storage.ownership_check_s == 0.5
    for bad in ("0", "-1", "nan", "inf", "3601", "soon"):
        with pytest.raises(ConfigError) as info:
            load_settings(env={env_name: bad})
        assert f"'storage.ownership_check_s' = '{bad}'" in str(info.value)


async def test_the_tree_checks_ownership_at_the_configured_interval(tmp_path: Path) -> None:
    settings = load_settings(
        env={"GREENROOM_STORAGE__OWNERSHIP_CHECK_S": "7.5", "GREENROOM_HTTP_PORT": "0"},
        overrides={"data_dir": str(tmp_path)},
    )
    async with open_app(settings, tmp_path) as (system, _, _):
        [storage] = [c.actor for c in system.cells() if c.path == "/storage"]
        assert getattr(storage, "check_interval_s", None) == 7.5
