"""Child specifications: plain data, defaults in one place, one validator per field.

The restart policy table (OTP ``supervisor.erl``, ``do_restart``) is
:func:`should_restart`: a pure function of (exit reason, restart type).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._default import DEFAULT, Default

if TYPE_CHECKING:
    from ._actor import AnyActor

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
ExitReason = Literal["normal", "failure"]

RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")
STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")


def validate_name(name: str) -> str:
    """Return ``name`` if it can be one segment of an actor path, else raise ValueError."""
    if not isinstance(name, str) or not name or "/" in name or name != name.strip():
        raise ValueError(
            f"actor name must be a non-empty string without '/' or edge spaces, not {name!r}"
        )
    return name


def validate_timeout(what: str, value: float | None) -> float | None:
    """``None`` (wait forever) or a finite number >= 0; else ValueError naming ``what``."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0)
        or math.isinf(value)
    ):
        raise ValueError(f"{what} must be a finite number >= 0 or None, not {value!r}")
    return float(value)


def validate_capacity(value: int | None) -> int | None:
    """``None`` (the actor class or system default) or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"mailbox_capacity must be an int >= 1 or None, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    ``factory`` builds a fresh actor instance: it is called at start and again at
    every restart (state is never carried over a restart; persist what matters).
    ``shutdown_timeout_s`` bounds the child's ``on_stop``; ``None`` waits forever,
    which is what supervisors use so their whole subtree stops in order (OTP's
    ``infinity``). The default, :data:`DEFAULT`, takes the system's configured
    value (for a supervisor: ``None``).
    """

    name: str
    factory: Callable[[], AnyActor] | Callable[[str], AnyActor]
    restart: RestartType = "permanent"
    shutdown_timeout_s: float | Default | None = DEFAULT
    mailbox_capacity: int | None = None
    # Directory children are built by ``factory(key)``; set by Directory only.
    keyed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if not callable(self.factory):
            raise ValueError(
                f"factory of child {self.name!r} must be callable, not {self.factory!r}"
            )
        if self.restart not in RESTART_TYPES:
            raise ValueError(f"restart must be one of {RESTART_TYPES}, not {self.restart!r}")
        if self.shutdown_timeout_s is not DEFAULT:
            validate_timeout("shutdown_timeout_s", self.shutdown_timeout_s)
        validate_capacity(self.mailbox_capacity)

    def build(self, name: str) -> AnyActor:
        """A fresh actor instance for the child called ``name``."""
        factory: Any = self.factory
        actor: AnyActor = factory(name) if self.keyed else factory()
        return actor


def should_restart(reason: ExitReason, restart: RestartType) -> bool:
    """OTP's policy: permanent always; transient only after a failure; temporary never."""
    match (reason, restart):
        case (_, "permanent"):
            return True
        case ("failure", "transient"):
            return True
        case _:
            return False
