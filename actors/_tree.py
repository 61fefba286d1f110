"""The composition root: the application's supervision tree, built from settings.

::

    /                 one_for_one
    ├── storage       the Store's health (``ask /storage kernel.Ping``)
    ├── connectors    one_for_one; one child per enabled door (added as doors land)
    ├── users         Directory of user threads (keyed, passivating)
    └── debug         the debug-socket server (<data_dir>/debug.sock); always last

The remaining children of DESIGN.md's tree (governor, brain,
payments, proactive, deploy) join here, before ``debug``, as their issues land.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import Settings
from storage import Store
from supervision import DEBUG_SOCKET_NAME, Backoff, ChildSpec, DebugServer, Directory, Supervisor

from ._storage import StorageActor
from ._users import UserThread


def build_root(settings: Settings, store: Store) -> Callable[[], Supervisor]:
    """A factory for the root supervisor of the application tree over ``store``."""
    sup = settings.supervision
    backoff = Backoff(
        min_s=sup.backoff_min_s,
        max_s=sup.backoff_max_s,
        jitter=sup.backoff_jitter,
        reset_after_s=sup.backoff_reset_after_s,
    )

    def connectors() -> Supervisor:
        return Supervisor((), max_restarts=sup.max_restarts, within_s=sup.within_s, backoff=backoff)

    def users() -> Directory:
        return Directory(
            UserThread,
            idle_timeout_s=settings.users.idle_timeout_s,
            max_live=settings.users.max_live,
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
                ChildSpec("storage", lambda: StorageActor(store)),
                ChildSpec("connectors", connectors),
                ChildSpec("users", users),
                ChildSpec("debug", debug),
            ],
            strategy="one_for_one",
            max_restarts=sup.max_restarts,
            within_s=sup.within_s,
            backoff=backoff,
        )

    return root
