"""The composition root: the application's supervision tree, built from settings.

::

    /                 one_for_one
    ├── connectors    one_for_one; one child per enabled door (added as doors land)
    └── users         Directory of user threads (keyed, passivating)

The remaining children of DESIGN.md's tree (storage, governor, brain,
payments, proactive, deploy, debug) join here as their issues land.
"""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from supervision import Backoff, ChildSpec, Directory, Supervisor

from ._users import UserThread


def build_root(settings: Settings) -> Callable[[], Supervisor]:
    """A factory for the root supervisor of the application tree."""
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

    def root() -> Supervisor:
        return Supervisor(
            [ChildSpec("connectors", connectors), ChildSpec("users", users)],
            strategy="one_for_one",
            max_restarts=sup.max_restarts,
            within_s=sup.within_s,
            backoff=backoff,
        )

    return root
