"""greenroom's application: the supervision tree and its actors."""

from __future__ import annotations

from ._run import migrate, run
from ._storage import StorageActor
from ._tree import build_root
from ._users import UserThread

__all__ = ["StorageActor", "UserThread", "build_root", "migrate", "run"]
