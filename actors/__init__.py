"""greenroom's application: the supervision tree and its actors."""

from __future__ import annotations

from ._run import migrate, redispatch, run
from ._storage import StorageActor
from ._tree import build_root
from ._users import UserActor, UserConfig, ack_text

__all__ = [
    "StorageActor",
    "UserActor",
    "UserConfig",
    "ack_text",
    "build_root",
    "migrate",
    "redispatch",
    "run",
]
