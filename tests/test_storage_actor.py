"""/storage against a real Postgres database: readiness ping and the ownership watch.

Time is ``mock_clock`` (pytest-trio's, which does not jump by itself): the
watch's interval passes only when a test jumps it, while the database answers
in real time. Each check ends with a log line; tests wait for those lines
(``LogWatch``), under a real-time hang guard (``within``). The outage is real
too: the server refuses connections to the test's database and ends its
sessions. The tree's end through a real ``greenroom run`` is in
``test_ownership.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import StorageActor
from protocols import Ping
from storage import DatabaseInUse, Store, open_store
from supervision import ActorSystem, ChildSpec, Supervisor, open_system
from supervision.testing import Probe
from tests.pgkit import Sessions
from tests.test_ownership import LogWatch, within

INTERVAL = 30.0
GUARD_S = 30.0  # real seconds: a hang guard, far above a check's few milliseconds


@pytest.fixture
async def store(pg_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A real Postgres store, owned by this process (as ``greenroom run`` opens it)."""
    async with open_store(pg_url, tmp_path, exclusive=True) as st:
        yield st


@asynccontextmanager
async def watched(store: Store) -> AsyncIterator[ActorSystem]:
    """A tree of ``/storage`` (checking every INTERVAL) and a sibling started after it."""

    def root() -> Supervisor:
        return Supervisor(
            [
                ChildSpec("storage", lambda: StorageActor(store, check_interval_s=INTERVAL)),
                ChildSpec("after", Probe),
            ]
        )

    async with open_system(root) as system:
        yield system


async def check(clock: trio.testing.MockClock, logs: LogWatch, nth: int, outcome: str) -> None:
    """Let one interval pass and wait for the ``nth`` check to end with ``outcome``."""
    clock.jump(INTERVAL)
    await within(GUARD_S, f"check {nth} did not end", logs.wait_for, "ownership_checked", nth)
    assert logs.named("ownership_checked")[nth - 1]["outcome"] == outcome


async def failure_of(wait: Callable[[], object]) -> BaseException:
    try:
        await wait()  # type: ignore[misc]
    except Exception as exc:
        return exc
    raise AssertionError("the system ended without a failure")


async def test_ping_reports_the_database_and_an_outage_without_failing(
    store: Store, sessions: Sessions, mock_clock: trio.testing.MockClock
) -> None:
    async with watched(store) as system:
        ok = await system.lookup("/storage").ask(Ping(), timeout=None)
        assert ok.note == f"postgres {store.target}: ok"
        await sessions.refuse_connections()
        down = await system.lookup("/storage").ask(Ping(), timeout=None)
        assert down.note.startswith(f"postgres {store.target}: unavailable: ")
        assert system.inspect("/storage").state == "running"
        await sessions.allow_connections()
        # The pool finds each connection the outage ended when it next uses it
        # (one failed ping per dead idle connection, at most its size).
        for _ in range(12):
            again = await system.lookup("/storage").ask(Ping(), timeout=None)
            if again.note.endswith(": ok"):
                break
        assert again.note == f"postgres {store.target}: ok"


async def test_a_database_taken_over_ends_the_tree_at_the_next_check(
    store: Store, sessions: Sessions, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 5: the owner's lock session is terminated and another session
    takes the lock. At the very next check (one interval later) /storage logs
    ``ownership_lost`` naming the holder and fails the root with DatabaseInUse,
    so the tree ends (greenroom run then stops it in order) instead of /storage
    being restarted. The old code failed /storage, its supervisor restarted it,
    and the new instance's probe returned early forever: the tree never ended
    (this test's hang guard failed)."""
    with LogWatch().capture() as logs:
        async with watched(store) as system:
            with system.subscribe() as events:
                assert await sessions.owner_pid() is not None
                usurper = await sessions.take_over()
                mock_clock.jump(INTERVAL)
                lost = await within(
                    GUARD_S,
                    "the tree did not end at the first check after the takeover",
                    failure_of,
                    system.wait,
                )
                await system.shutdown()  # what leaving greenroom run's tree does
                seen = []
                while True:
                    try:
                        seen.append(events.receive_nowait())
                    except trio.WouldBlock:
                        break
    holder = f"another greenroom process (postgres backend pid {usurper}) took it over"
    assert isinstance(lost, DatabaseInUse) and lost.reason == holder
    assert system.failure is lost
    [line] = logs.named("ownership_lost")
    assert (line["log_level"], line["actor"]) == ("critical", "/storage")
    assert (line["database"], line["holder"]) == (store.target, holder)
    # The root failed (no supervisor restarted /storage), then the tree stopped
    # right to left.
    failures = [(e.kind, e.path) for e in seen if e.kind in ("failed", "restarted")]
    assert failures == [("failed", "/")]
    stops = [e.path for e in seen if e.kind == "stopped"]
    assert stops.index("/after") < stops.index("/storage")
    # The loss is final: checked again, it is raised again, even after the other
    # process let go (it may have requeued this one's running jobs).
    with pytest.raises(DatabaseInUse, match=re.escape(holder)):
        await store.check_ownership()
    await sessions.terminate(usurper)
    assert await sessions.owner_pid() is None
    with pytest.raises(DatabaseInUse, match=re.escape(holder)):
        await store.check_ownership()
    assert await sessions.owner_pid() is None


async def test_a_dropped_lock_session_is_taken_back_and_the_tree_stays_up(
    store: Store, sessions: Sessions, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 5: the owner's lock session is terminated and nobody else
    takes the lock: the next check takes it back on a new session."""
    with LogWatch().capture() as logs:
        async with watched(store) as system:
            first = await sessions.owner_pid()
            assert first is not None
            await check(mock_clock, logs, 1, "held")
            await sessions.terminate(first)
            await check(mock_clock, logs, 2, "held")
            second = await sessions.owner_pid()
            assert second is not None and second != first
            await check(mock_clock, logs, 3, "held")
            assert await sessions.owner_pid() == second
            assert system.failure is None and system.inspect("/storage").state == "running"
    assert len(logs.named("ownership_session_lost")) == 1
    assert len(logs.named("ownership_regained")) == 1
    assert logs.named("ownership_lost") == [] and logs.named("storage_unreachable") == []


async def test_an_outage_is_logged_once_and_the_lock_taken_back_when_it_ends(
    store: Store, sessions: Sessions, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 5: while the database is unreachable the watch keeps
    trying, says so once (not at every check), and takes the lock back when the
    database returns. The old code gave up after the first failed re-take."""
    with LogWatch().capture() as logs:
        async with watched(store) as system:
            first = await sessions.owner_pid()
            await sessions.refuse_connections()
            for nth in (1, 2, 3):
                await check(mock_clock, logs, nth, "unreachable")
            assert await sessions.owner_pid() is None
            await sessions.allow_connections()
            await check(mock_clock, logs, 4, "held")
            back = await sessions.owner_pid()
            assert back is not None and back != first
            await check(mock_clock, logs, 5, "held")
            assert system.failure is None and system.inspect("/storage").state == "running"
    [down] = logs.named("storage_unreachable")
    assert down["log_level"] == "warning" and "not currently accepting connections" in down["error"]
    assert len(logs.named("storage_reachable")) == 1
    assert len(logs.named("ownership_regained")) == 1
    assert logs.named("ownership_lost") == []


async def test_a_database_taken_over_during_an_outage_ends_the_tree_when_it_returns(
    store: Store, sessions: Sessions, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 5: another process took the lock while this one could not
    reach the database: the first check that reaches it again ends the tree."""
    with LogWatch().capture() as logs:
        async with watched(store) as system:
            usurper = await sessions.usurper()
            await sessions.refuse_connections(keep=(usurper,))
            assert await sessions.take_over() == usurper
            await check(mock_clock, logs, 1, "unreachable")
            await sessions.allow_connections()
            mock_clock.jump(INTERVAL)
            lost = await within(
                GUARD_S, "the tree did not end when the database returned", failure_of, system.wait
            )
    assert isinstance(lost, DatabaseInUse)
    assert lost.reason == f"another greenroom process (postgres backend pid {usurper}) took it over"
    assert len(logs.named("storage_unreachable")) == 1
    assert len(logs.named("ownership_lost")) == 1


def test_the_interval_is_checked() -> None:
    for bad in (0, -1.0, float("nan"), float("inf"), "30"):
        with pytest.raises(ValueError, match="check_interval_s must be > 0 or None"):
            StorageActor(None, check_interval_s=bad)  # type: ignore[arg-type]
