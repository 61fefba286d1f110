"""The one "system default" sentinel.

A kernel parameter left at :data:`DEFAULT` takes the value the
:class:`ActorSystem` was configured with when it is used, not when the
parameter is given: ``ActorRef.ask(timeout=DEFAULT)`` the system's
``ask_timeout_s``, ``ChildSpec(shutdown_timeout_s=DEFAULT)`` its
``shutdown_timeout_s`` (a supervisor's: no limit, so its subtree stops in
order). A sentinel, because ``None`` already means "no limit".
"""

from __future__ import annotations

import enum
from typing import Final


class Default(enum.Enum):
    """The type of :data:`DEFAULT` (one member, so ``x is DEFAULT`` narrows types)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: "The system's configured value"; see the module docstring.
DEFAULT: Final = Default.DEFAULT
