"""The composition root: the application's supervision tree, built from settings.

::

    /                 one_for_one
    ├── storage       the Store's health (``ask /storage kernel.Ping``)
    ├── brain         the LLM gateway's status (``ask /brain kernel.Ping``)
    ├── users         Directory of user actors (keyed, passivating)
    ├── connectors    one_for_one; one child per enabled door
    │   ├── http      the HTTP door: REST API, web chat, /healthz /readyz /metrics
    │   ├── telegram  the Telegram door (with TELEGRAM_BOT_TOKEN): polling or webhook
    │   └── nostr     the Nostr door (NOSTR_PRIVATE_KEY, NOSTR_RELAYS): one child per relay
    ├── reconciler    every interval: stale queued jobs to their actors, unsent replies to doors
    └── debug         the debug-socket server (<data_dir>/debug.sock); always last

The remaining children of DESIGN.md's tree (governor,
payments, proactive, deploy) join here, before ``debug``, as their issues land.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import structlog

from actors.brain import Brain, BrainActor, BrainError, CallContext
from config import Settings
from storage import Store
from supervision import Backoff, ChildSpec, Directory, Supervisor
from supervision.debug import DEBUG_SOCKET_NAME, DebugServer

from ._reconciler import Reconciler
from ._storage import StorageActor
from ._users import UserActor, UserConfig
from .connectors import HttpConnector, NostrConnector, TelegramConnector

_log = structlog.get_logger("greenroom.tree")


def build_root(settings: Settings, store: Store, brain: Brain) -> Callable[[], Supervisor]:
    """A factory for the root supervisor of the application tree over ``store``
    and ``brain`` (both opened by ``greenroom run`` and outliving the tree)."""
    user_config = UserConfig(store=store, brain=brain)
    sup = settings.supervision
    backoff = Backoff(
        min_s=sup.backoff_min_s,
        max_s=sup.backoff_max_s,
        jitter=sup.backoff_jitter,
        reset_after_s=sup.backoff_reset_after_s,
    )

    # A door whose platform is down must not take the others down: it backs off
    # (up to connectors_backoff_max_s) under a generous intensity instead.
    door_backoff = Backoff(
        min_s=sup.backoff_min_s,
        max_s=max(sup.connectors_backoff_max_s, sup.backoff_min_s),
        jitter=sup.backoff_jitter,
        reset_after_s=sup.backoff_reset_after_s,
    )

    async def describe(key: str, image: bytes, media_type: str) -> dict[str, Any] | None:
        # Photos on a door are described by the brain (vision) before they are
        # stored; without a model, or when it fails, the door keeps metadata only.
        user = await store.get_user(*key.split(":", 1))
        ctx = CallContext(key, user.tier if user is not None else "public", None)
        try:
            return await brain.describe_image(ctx, image, media_type)
        except BrainError as exc:
            _log.warning("photo_not_described", user=key, error=str(exc))
            return None

    def connectors() -> Supervisor:
        doors = [ChildSpec("http", lambda: HttpConnector(settings, store))]
        if settings.enabled_doors()["telegram"] is True:
            doors.append(
                ChildSpec("telegram", lambda: TelegramConnector(settings, store, describe=describe))
            )
        if settings.enabled_doors()["nostr"] is True:
            # A supervisor of one child per relay: its subtree stops in order.
            nostr = partial(NostrConnector, settings, store, backoff=backoff)
            doors.append(ChildSpec("nostr", nostr, shutdown_timeout_s=None))
        return Supervisor(
            doors,
            max_restarts=sup.connectors_max_restarts,
            within_s=sup.connectors_within_s,
            backoff=door_backoff,
        )

    def users() -> Directory:
        # Each user's actor backs off on its own (a database outage fails every
        # thread's start; none may exhaust a budget the others share).
        return Directory(
            lambda key: UserActor(key, user_config),
            idle_timeout_s=settings.users.idle_timeout_s,
            max_live=settings.users.max_live,
            backoff=backoff,
        )

    async def audit(record: dict[str, Any]) -> None:
        # Every inject/ask/kill over the debug socket lands in audit_log before
        # it is carried out (a failed write refuses the action).
        peer = record.get("peer") or {}
        who = f"uid:{peer['uid']}" if "uid" in peer else str(peer.get("address", "unknown"))
        await store.audit(who, f"debug.{record['op']}", record)

    def debug() -> DebugServer:
        # Last child: started after everything it shows, stopped first.
        token = settings.debug_token
        return DebugServer(
            settings.data_dir / DEBUG_SOCKET_NAME,
            tcp=settings.debug.tcp or None,
            token=None if token is None else token.get_secret_value(),
            audit=audit,
            max_frame_bytes=settings.debug.max_frame_bytes,
            max_connections=settings.debug.max_connections,
            max_in_flight=settings.debug.max_in_flight,
        )

    def root() -> Supervisor:
        return Supervisor(
            [
                # Left to right: what a child needs is started before it;
                # connectors after users (an inbound message has a user actor to
                # go to) and stopped before them.
                ChildSpec(
                    "storage",
                    lambda: StorageActor(
                        store, check_interval_s=settings.storage.ownership_check_s
                    ),
                ),
                ChildSpec("brain", lambda: BrainActor(brain)),
                ChildSpec("users", users),
                ChildSpec("connectors", connectors),
                # After the doors and the user actors it hands work back to.
                ChildSpec("reconciler", lambda: Reconciler(store, settings.reconciler)),
                ChildSpec("debug", debug),
            ],
            strategy="one_for_one",
            max_restarts=sup.max_restarts,
            within_s=sup.within_s,
            backoff=backoff,
        )

    return root
