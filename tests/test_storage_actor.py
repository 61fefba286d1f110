"""/storage: readiness ping and the ownership watch, on the virtual clock."""

from __future__ import annotations

import trio

from actors import StorageActor
from protocols import Ping, Pong
from storage import DatabaseInUse, StoreUnavailable
from supervision import ActorSystem, ChildSpec, Supervisor


class Database:
    """Stands in for the Store's two health calls (a double of our own Store)."""

    backend = "postgres"
    target = "postgresql://u:***@db/x"

    def __init__(self) -> None:
        self.checks = 0
        self.fail_with: Exception | None = None

    async def ping(self) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        return True

    async def check_ownership(self) -> None:
        self.checks += 1
        if self.fail_with is not None:
            raise self.fail_with


async def start(system: ActorSystem, db: Database) -> None:
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    await root.actor.start_child(
        ChildSpec("storage", lambda: StorageActor(db, check_interval_s=30.0), restart="temporary")  # type: ignore[arg-type]
    )


async def test_ping_reports_the_database_and_an_outage_without_failing(
    system: ActorSystem,
) -> None:
    db = Database()
    await start(system, db)
    ok = await system.lookup("/storage").ask(Ping())
    assert ok == Pong(note="postgres postgresql://u:***@db/x: ok")
    db.fail_with = StoreUnavailable("postgresql://u:***@db/x", "connection refused")
    down = await system.lookup("/storage").ask(Ping())
    assert down.note.startswith("postgres postgresql://u:***@db/x: unavailable: cannot open")


async def test_losing_the_database_to_another_process_fails_the_actor(
    system: ActorSystem,
) -> None:
    db = Database()
    await start(system, db)
    with system.subscribe() as events:
        await trio.sleep(31)
        assert db.checks == 1  # healthy: checked, still running
        db.fail_with = StoreUnavailable("x", "down")
        await trio.sleep(30)
        assert db.checks == 2 and system.inspect("/storage").state == "running"
        db.fail_with = DatabaseInUse("x", "another greenroom process (pid 7) has it open")
        await trio.sleep(30)
        kinds = []
        while True:
            event = events.receive_nowait()
            kinds.append(event.kind)
            if event.kind == "failed":
                break
    assert "DatabaseInUse" in (event.error or "")
