"""What every concern module shares: the Store part base, checks and limits, SQL helpers.

A concern module (``_inbox``, ``_held``, ``_jobs``, ``_outbox``, ``_messages``,
``_approvals``, ``_ledger``, ``_users``, ``_memories``, ``_audit``,
``_connector_state``) holds three things about its tables, in this order:

- its records: plain frozen dataclasses rather than pydantic models, built from
  trusted rows on the hot path, where validation would only cost time; every
  timestamp is a timezone-aware UTC ``datetime``;
- its transaction scripts (see ``_backend``), written once for both backends
  with Postgres-style ``$1`` placeholders, each with its row converters;
- its part of the Store: a :class:`StorePart` subclass whose methods check
  their arguments and run one script each, so each is one transaction. A
  method and the script it runs share a name (``ingest`` runs ``ingest``):
  in the method's body the bare name is the module's script, never the
  method, which is only reached through ``self``.

A record another concern returns too (a message, a thread, a job) is
converted by its own module's ``to_<record>``, which the other imports: a
concern depends on those below it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from protocols import INBOUND_KEY_PREFIX, Clock, storable_problem

from ._backend import Backend, Script
from ._dialect import Dialect, Row
from ._errors import NotFound

__all__ = [
    "MAX_INT",
    "StorePart",
    "author_id",
    "author_key",
    "by_author",
    "check_after_id",
    "check_limit",
    "check_reply_key",
    "check_storable",
    "one",
    "split_key",
    "where_in",
]

T = TypeVar("T")
P = ParamSpec("P")

#: Ids and limits past this are refused before they reach a driver (SQLite
#: raises OverflowError on a 64-bit overflow, Postgres a DataError).
MAX_INT = (1 << 63) - 1


class StorePart:
    """One concern's methods of the Store, over the one backend and clock it shares.

    Only :class:`storage.Store` is made (it sets ``_backend`` and ``_clock``);
    a part on its own has neither.
    """

    _backend: Backend
    _clock: Clock

    async def _run(
        self,
        fn: Callable[Concatenate[Dialect, P], Script[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        return await self._backend.run(fn, *args, **kwargs)

    def _before(self, older_than_s: float | None) -> datetime | None:
        """The Store's "now" less ``older_than_s`` (None passes through)."""
        if older_than_s is None:
            return None
        if isinstance(older_than_s, bool) or not older_than_s >= 0:
            raise ValueError(f"older_than_s must be >= 0 or None, not {older_than_s!r}")
        return self._clock() - timedelta(seconds=older_than_s)


# ---------------------------------------------------------------- checks
def check_limit(name: str, value: int) -> None:
    """ValueError naming ``name`` unless ``value`` is an int in 1..MAX_INT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise ValueError(f"{name} must be an int >= 1, not {value!r}")


def check_after_id(value: int) -> None:
    """ValueError unless ``after_id`` (a sweep's cursor: only ids above it) is an int
    in 0..MAX_INT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise ValueError(f"after_id must be an int >= 0, not {value!r}")


def check_reply_key(key: str) -> None:
    """ValueError for an empty outbox key or one in the inbound namespace."""
    if not key:
        raise ValueError("idempotency_key must not be empty")
    if key.startswith(INBOUND_KEY_PREFIX):
        raise ValueError(f"idempotency_key must not start with {INBOUND_KEY_PREFIX!r} (inbound)")


@overload
def author_key(key: str) -> str: ...
@overload
def author_key(key: None) -> None: ...
def author_key(key: str | None) -> str | None:
    """A user key ``platform:id`` (an author) as given, or ValueError naming it."""
    if key is not None and (
        not isinstance(key, str) or ":" not in key[1:-1] or storable_problem(key)
    ):
        raise ValueError(f"author must be a user key 'platform:id', not {key!r}")
    return key


def check_storable(**values: Any) -> None:
    """ValueError naming the first value neither backend can store the same way."""
    for name, value in values.items():
        problem = storable_problem(value)
        if problem:
            raise ValueError(f"{name} {problem}")


# ---------------------------------------------------------------- SQL helpers
def one(rows: list[Row], what: str, ident: int) -> Row:
    """The first row, or NotFound(what, ident) when there is none."""
    if not rows:
        raise NotFound(what, ident)
    return rows[0]


def where_in(
    d: Dialect, column: str, pg_type: str, values: Sequence[Any]
) -> tuple[str, tuple[Any, ...]]:
    """``column`` is one of ``values`` (parameter ``$1``), and its argument."""
    predicate, args = d.any_of(pg_type, values)
    return f"{column} {predicate}", args


def author_id(n: int) -> str:
    """SQL for the ``users.id`` of the user key split into parameters ``$n``, ``$n+1``."""
    return f"(SELECT id FROM users WHERE platform = ${n} AND platform_user_id = ${n + 1})"


def split_key(author: str) -> tuple[str, str]:
    """A user key ``platform:id`` as (platform, id), the parameters of :func:`author_id`."""
    platform, _, user_id = author.partition(":")
    return platform, user_id


def by_author(author: str | None, n: int) -> tuple[str, tuple[str, ...]]:
    """The optional author filter of a WHERE clause: ``" AND user_id = "`` the
    ``users.id`` of the user key ``author`` (parameters ``$n``, ``$n+1``), and its
    arguments; nothing at all when ``author`` is None (every author's rows)."""
    if author is None:
        return "", ()
    return f" AND user_id = {author_id(n)}", split_key(author)
