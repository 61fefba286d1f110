"""The token ledger (``token_ledger``): one row per LLM call, summed by scope and day."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from ._backend import Script
from ._common import MAX_INT, StorePart, check_storable
from ._dialect import Dialect, Q

__all__ = ["Ledger", "Scope", "TokenSpend", "TokenUsage"]

Scope = Literal["proactive", "reactive"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One LLM call's cost, as written to ``token_ledger``."""

    scope: Scope
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenSpend:
    """The sum of the ledger for one scope and one UTC day."""

    calls: int
    tokens_in: int
    tokens_out: int
    tokens_total: int
    cost: float


# ---------------------------------------------------------------- scripts
def record_tokens(d: Dialect, u: TokenUsage, now: datetime) -> Script[int]:
    """Append one call to the token ledger."""
    rows = yield Q(
        "INSERT INTO token_ledger (scope, provider, model, tokens_in, tokens_out, tokens_total, "
        "cost, meta, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        (
            u.scope,
            u.provider,
            u.model,
            u.tokens_in,
            u.tokens_out,
            u.tokens_in + u.tokens_out,
            u.cost,
            d.json(u.meta),
            d.ts(now),
        ),
    )
    return int(rows[0]["id"])


def token_spend(d: Dialect, scope: str, start: datetime, end: datetime) -> Script[TokenSpend]:
    """Sum of the ledger for ``scope`` with ``start <= created_at < end``."""
    rows = yield Q(
        "SELECT COUNT(*) AS calls, CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT) AS tin, "
        "CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT) AS tout, "
        "CAST(COALESCE(SUM(tokens_total), 0) AS BIGINT) AS ttotal, "
        "COALESCE(SUM(cost), 0.0) AS cost FROM token_ledger "
        "WHERE scope = $1 AND created_at >= $2 AND created_at < $3",
        (scope, d.ts(start), d.ts(end)),
    )
    r = rows[0]
    return TokenSpend(
        calls=int(r["calls"]),
        tokens_in=int(r["tin"]),
        tokens_out=int(r["tout"]),
        tokens_total=int(r["ttotal"]),
        cost=float(r["cost"]),
    )


def token_totals(d: Dialect) -> Script[list[tuple[str, str, str, int, int, int, float]]]:
    """All-time ledger sums by (scope, provider, model): calls, tokens in, out, cost."""
    rows = yield Q(
        "SELECT scope, provider, model, COUNT(*) AS calls, "
        "CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT) AS tin, "
        "CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT) AS tout, "
        "COALESCE(SUM(cost), 0.0) AS cost FROM token_ledger "
        "GROUP BY scope, provider, model ORDER BY scope, provider, model"
    )
    return [
        (
            r["scope"],
            r["provider"],
            r["model"],
            int(r["calls"]),
            int(r["tin"]),
            int(r["tout"]),
            float(r["cost"]),
        )
        for r in rows
    ]


# ---------------------------------------------------------------- the Store's part
class Ledger(StorePart):
    """The Store's token ledger."""

    async def record_tokens(self, usage: TokenUsage) -> int:
        """Append one LLM call to the token ledger; return its id."""
        if usage.scope not in ("proactive", "reactive"):
            raise ValueError(f"scope must be proactive or reactive, not {usage.scope!r}")
        if not (0 <= usage.tokens_in <= MAX_INT and 0 <= usage.tokens_out <= MAX_INT):
            raise ValueError("token counts must be >= 0")
        check_storable(cost=float(usage.cost), meta=usage.meta, model=usage.model)
        return await self._run(record_tokens, usage, self._clock())

    async def token_spend(self, scope: Scope, day: date) -> TokenSpend:
        """What ``scope`` spent on the UTC calendar day ``day``."""
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return await self._run(token_spend, scope, start, start + timedelta(days=1))

    async def token_totals(self) -> list[tuple[str, str, str, int, int, int, float]]:
        """All-time ledger sums as ``(scope, provider, model, calls, tokens_in,
        tokens_out, cost)``, sorted: monotonic, as Prometheus counters must be.
        Scans the ledger (one aggregate per scrape)."""
        return await self._run(token_totals)
