"""Memories (``memories``): facts kept about one user, never read for another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._backend import Script
from ._common import StorePart, check_limit, check_storable
from ._dialect import Dialect, Q, Row

__all__ = ["Memories", "Memory"]


@dataclass(frozen=True, slots=True)
class Memory:
    """A fact kept about one user (``memories``)."""

    id: int
    user_key: str
    fact: str
    source_message_id: int | None
    created_at: datetime


# ---------------------------------------------------------------- rows -> records
_MEMORY = "id, user_key, fact, source_message_id, created_at"


def _memory(d: Dialect, r: Row) -> Memory:
    return Memory(
        id=r["id"],
        user_key=r["user_key"],
        fact=r["fact"],
        source_message_id=r["source_message_id"],
        created_at=d.from_ts(r["created_at"]),
    )


# ---------------------------------------------------------------- scripts
def remember(
    d: Dialect, user_key: str, fact: str, source_message_id: int | None, now: datetime
) -> Script[Memory]:
    """Keep one fact about a user."""
    rows = yield Q(
        "INSERT INTO memories (user_key, fact, source_message_id, created_at) "
        f"VALUES ($1, $2, $3, $4) RETURNING {_MEMORY}",
        (user_key, fact, source_message_id, d.ts(now)),
    )
    return _memory(d, rows[0])


def recall(d: Dialect, user_key: str, limit: int) -> Script[list[Memory]]:
    """The user's last ``limit`` facts, oldest first; never another user's."""
    rows = yield Q(
        f"SELECT {_MEMORY} FROM memories WHERE user_key = $1 ORDER BY id DESC LIMIT $2",
        (user_key, limit),
    )
    return [_memory(d, r) for r in reversed(rows)]


# ---------------------------------------------------------------- the Store's part
class Memories(StorePart):
    """The Store's memories."""

    async def remember(
        self, user_key: str, fact: str, *, source_message_id: int | None = None
    ) -> Memory:
        """Keep one fact about the user ``user_key`` (``platform:id``)."""
        if not fact.strip():
            raise ValueError("fact must not be empty")
        check_storable(fact=fact, user_key=user_key)
        return await self._run(remember, user_key, fact, source_message_id, self._clock())

    async def recall(self, user_key: str, limit: int = 50) -> list[Memory]:
        """That user's last ``limit`` facts, oldest first; never another user's."""
        check_limit("limit", limit)
        return await self._run(recall, user_key, limit)
