"""The dead-letter log: messages that could not be delivered, with the reason."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import structlog

#: Why a message was not delivered. ``restart_limit``: it was queued for a
#: Directory child that exceeded its own restart intensity and was removed,
#: which only happens without backoff or with a very short one (a backoff
#: spaces the restarts; under the Directory's default a failing key is never
#: removed, its messages wait in its mailbox).
DeadLetterReason = Literal[
    "stopped", "unknown_path", "caused_failure", "mailbox_full", "interrupted", "restart_limit"
]

_log = structlog.get_logger("greenroom.deadletters")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One undeliverable message. ``at`` is ``trio.current_time()`` when it was recorded."""

    path: str
    reason: DeadLetterReason
    message: Any
    at: float


class DeadLetters:
    """A bounded log (oldest dropped first) plus per-reason totals that never drop."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"dead_letter_capacity must be >= 1, not {capacity!r}")
        self._log: collections.deque[DeadLetter] = collections.deque(maxlen=capacity)
        self.totals: dict[DeadLetterReason, int] = {}

    def record(self, path: str, reason: DeadLetterReason, message: Any, at: float) -> None:
        """Append one dead letter and log it at debug level (messages may hold user text)."""
        self._log.append(DeadLetter(path, reason, message, at))
        self.totals[reason] = self.totals.get(reason, 0) + 1
        _log.debug("dead_letter", path=path, reason=reason, type=type(message).__name__)

    def recent(self, limit: int | None = None) -> list[DeadLetter]:
        """The newest ``limit`` dead letters (all kept ones if None), oldest first."""
        items = list(self._log)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def __len__(self) -> int:
        return len(self._log)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(list(self._log))
