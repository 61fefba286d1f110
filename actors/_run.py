"""``greenroom run`` and ``greenroom migrate``.

``run`` opens the Store (applying migrations, requeueing jobs a crash left
running), starts the tree, stays up until SIGINT/SIGTERM, stops the tree in
order, then closes the Store.

Exit statuses of ``greenroom run``:

- 0: stopped by SIGINT or SIGTERM;
- 1: the root supervisor failed (a subtree gave up);
- 2: it could not start (bad config, database unreachable, or owned by
  another greenroom process: one line on stderr, from ``bin/greenroom``);
- 3: it lost the database to another process while running (``/storage``
  logged ``ownership_lost`` naming the holder; see ``actors._storage``). The
  tree was stopped in order. A process manager that restarts it gets status 2
  for as long as the other process owns the database.
"""

from __future__ import annotations

import os
import signal

import structlog
import trio

from actors.brain import Brain
from config import Settings
from storage import DatabaseInUse, Store, open_store
from supervision import ActorSystem, open_system

from ._tree import build_root
from ._users import GAVE_UP, MAX_ATTEMPTS
from .connectors import tell_author

_log = structlog.get_logger("greenroom.run")

#: ``greenroom run``'s exit status after losing the database to another process.
EXIT_OWNERSHIP_LOST = 3


def _database_url(settings: Settings) -> str | None:
    return None if settings.database_url is None else settings.database_url.get_secret_value()


async def migrate(settings: Settings) -> list[int]:
    """Apply pending migrations to the configured database; return the versions applied.

    Raises ``storage.StoreUnavailable`` or ``storage.MigrationError`` (one line).
    """
    async with open_store(_database_url(settings), settings.data_dir, migrate=False) as store:
        return await store.migrate()


async def run(settings: Settings) -> int:
    """Run the application until a signal (exit status 0), a root failure (1) or
    the loss of the database to another process (3; see the module docstring).

    On SIGINT or SIGTERM the tree is stopped in order, each child within its
    shutdown timeout, before this returns. Raises ``storage.StoreUnavailable``
    (``DatabaseInUse`` when another greenroom owns the database) or
    ``storage.MigrationError`` before starting anything.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_store(_database_url(settings), settings.data_dir, exclusive=True) as store:
        # A job given up on is failed with the apology recorded for its author in
        # the same transaction: the user hears of it once, from whichever door.
        requeued, failed = await store.recover(max_attempts=MAX_ATTEMPTS, gave_up=GAVE_UP)
        _log.info(
            "store_opened",
            backend=store.backend,
            target=store.target,
            requeued_jobs=requeued,
            failed_jobs=failed,
        )
        brain = Brain(settings, store)
        if not brain.configured:
            _log.warning(
                "no_model_configured",
                hint="set ANTHROPIC_API_KEY, or an OpenAI-compatible model in [brain.models]; "
                "until then users are told so",
            )
        try:
            return await _run_tree(settings, store, brain)
        finally:
            with trio.CancelScope(shield=True):
                await brain.aclose()


async def redispatch(system: ActorSystem, store: Store, *, timeout_s: float) -> int:
    """Tell each queued job (requeued by ``recover``, or ingested while no actor
    took it) to its user's actor, oldest first, each waiting at most ``timeout_s``
    for room (``tell_author``: one left untold is the reconciler's); return how many
    were told.

    A user actor claims all its queued jobs on the first one, so a duplicate tell
    is harmless (the claim finds nothing)."""
    told = 0
    for received in await store.queued_work():
        told += await tell_author(system, received, timeout_s=timeout_s)
    return told


async def _run_tree(settings: Settings, store: Store, brain: Brain) -> int:
    for door, status in settings.enabled_doors().items():
        if status is not True:
            _log.info("door_not_started", door=door, reason=status)
    k = settings.kernel
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_system(
            build_root(settings, store, brain),
            mailbox_capacity=k.mailbox_capacity,
            ask_timeout_s=k.ask_timeout_s,
            dead_letter_capacity=k.dead_letter_capacity,
            shutdown_timeout_s=k.shutdown_timeout_s,
            clock=store.clock,  # the one wall clock: the Store's
        ) as system:
            resumed = await redispatch(system, store, timeout_s=k.ask_timeout_s)
            _log.info(
                "started",
                pid=os.getpid(),
                data_dir=str(settings.data_dir),
                actors=system.stats()["actors"],
                resumed_jobs=resumed,
            )
            exit_status = 0
            async with trio.open_nursery() as nursery:

                async def watch_root() -> None:
                    nonlocal exit_status
                    try:
                        await system.wait()
                    except DatabaseInUse:
                        exit_status = EXIT_OWNERSHIP_LOST  # /storage said so, in one line
                    except Exception as exc:
                        exit_status = 1
                        _log.critical("root_supervisor_failed", error=str(exc))
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_root)
                async for signum in signals:
                    _log.info("stopping", signal=signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    _log.info("stopped", status=exit_status)
    return exit_status
