"""The few things the two SQL dialects do differently, in one place.

Every transaction script (in the concern modules) is written once, with
Postgres-style ``$1`` placeholders; each backend's :class:`Dialect` converts
values in and out (timestamps, JSON) and supplies the clauses only one of them has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["POSTGRES", "SQLITE", "Dialect", "Q", "Row"]


class Row(Protocol):
    """A result row: ``sqlite3.Row`` and ``asyncpg.Record`` both index by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Q:
    """One statement of a transaction script: SQL with ``$n`` placeholders, and its arguments."""

    sql: str
    args: tuple[Any, ...] = ()


class Dialect:
    """How one backend spells values and clauses; stateless and shared."""

    name: str = ""
    #: appended to the SELECT that picks jobs to claim
    skip_locked: str = ""

    def ts(self, value: datetime) -> Any:
        """A timestamp as this backend stores it."""
        raise NotImplementedError

    def from_ts(self, value: Any) -> datetime:
        """A stored timestamp as an aware UTC datetime."""
        raise NotImplementedError

    def json(self, value: Any) -> Any:
        """A JSON value as this backend stores it."""
        raise NotImplementedError

    def from_json(self, value: Any) -> Any:
        """A stored JSON value as Python data."""
        raise NotImplementedError

    def opt_ts(self, value: Any) -> datetime | None:
        """``from_ts`` that passes NULL through."""
        return None if value is None else self.from_ts(value)

    def rows(
        self, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, tuple[Any, ...]]:
        """The row source of a multi-row INSERT (``VALUES ...`` or a SELECT), with
        its arguments numbered from ``$1``. ``types`` are Postgres type names."""
        raise NotImplementedError

    def any_of(self, pg_type: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """A predicate tail meaning "is one of ``values``" (``$1``) and its argument."""
        raise NotImplementedError


class _Postgres(Dialect):
    # timestamptz and jsonb: asyncpg converts datetimes itself, and the pool
    # installs a jsonb codec (json.dumps/json.loads) on every connection.
    name = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def ts(self, value: datetime) -> Any:
        return value

    def from_ts(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def json(self, value: Any) -> Any:
        return value

    def from_json(self, value: Any) -> Any:
        return value

    # One array per column: the statement text is the same whatever the batch
    # size, so asyncpg prepares it once per connection. With "VALUES ($1..$n)"
    # every batch size was a new statement to parse and plan (measured: the
    # dedup SELECT alone took 7.9 ms of a 29 ms batch of 80).
    def rows(
        self, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, tuple[Any, ...]]:
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
        return f"SELECT * FROM unnest({arrays})", tuple(
            list(col) for col in zip(*rows, strict=True)
        )

    def any_of(self, pg_type: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        return f"= ANY($1::{pg_type}[])", (list(values),)


class _Sqlite(Dialect):
    # REAL Unix seconds sort and compare like the timestamps they are, and
    # survive the round trip to microseconds; JSON is TEXT.
    name = "sqlite"
    skip_locked = ""  # one writer: BEGIN IMMEDIATE already excludes every other claimer

    def ts(self, value: datetime) -> Any:
        return value.timestamp()

    def from_ts(self, value: Any) -> datetime:
        return datetime.fromtimestamp(value, UTC)

    def json(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def from_json(self, value: Any) -> Any:
        return json.loads(value)

    def rows(
        self, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, tuple[Any, ...]]:
        width = len(types)
        marks = ", ".join(
            "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
            for r in range(len(rows))
        )
        return f"VALUES {marks}", tuple(v for row in rows for v in row)

    def any_of(self, pg_type: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        # One parameter whatever the count (SQLite caps parameters per statement).
        return "IN (SELECT value FROM json_each($1))", (json.dumps(list(values)),)


POSTGRES: Dialect = _Postgres()
SQLITE: Dialect = _Sqlite()
