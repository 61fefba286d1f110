"""The audit log (``audit_log``): who did what, append-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._backend import Script
from ._common import StorePart, check_limit, check_storable
from ._dialect import Dialect, Q

__all__ = ["Audit", "AuditEntry"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what (``audit_log``): operator actions, refused tool calls."""

    id: int
    actor: str
    action: str
    detail: dict[str, Any]
    created_at: datetime


# ---------------------------------------------------------------- scripts
def audit(
    d: Dialect, actor: str, action: str, detail: dict[str, Any], now: datetime
) -> Script[int]:
    """Append one entry to the audit log."""
    rows = yield Q(
        "INSERT INTO audit_log (actor, action, detail, created_at) VALUES ($1, $2, $3, $4) "
        "RETURNING id",
        (actor, action, d.json(detail), d.ts(now)),
    )
    return int(rows[0]["id"])


def audit_entries(d: Dialect, limit: int, action: str | None) -> Script[list[AuditEntry]]:
    """The newest ``limit`` audit entries, newest first, optionally of one action."""
    where = " WHERE action = $2" if action is not None else ""
    rows = yield Q(
        f"SELECT id, actor, action, detail, created_at FROM audit_log{where} "
        "ORDER BY id DESC LIMIT $1",
        (limit,) + ((action,) if action is not None else ()),
    )
    return [
        AuditEntry(
            r["id"], r["actor"], r["action"], d.from_json(r["detail"]), d.from_ts(r["created_at"])
        )
        for r in rows
    ]


# ---------------------------------------------------------------- the Store's part
class Audit(StorePart):
    """The Store's audit log."""

    async def audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
        """Append an entry to the audit log (who, what, details); return its id.

        ValueError for details neither backend can store (NUL, NaN, non-JSON)."""
        check_storable(actor=actor, action=action, detail=detail or {})
        return await self._run(audit, actor, action, detail or {}, self._clock())

    async def audit_entries(
        self, limit: int = 100, *, action: str | None = None
    ) -> list[AuditEntry]:
        """The newest audit entries, newest first, optionally only one ``action``."""
        check_limit("limit", limit)
        return await self._run(audit_entries, limit, action)
