"""greenroom's application: the supervision tree and its actors."""

from __future__ import annotations

from ._run import run
from ._tree import build_root
from ._users import UserThread

__all__ = ["UserThread", "build_root", "run"]
