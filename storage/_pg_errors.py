"""asyncpg's and the socket's exceptions, as the Postgres modules translate them.

Which exceptions mean the server cannot be reached (an outage, not a bad
request: :class:`StoreUnavailable`), and the one line of a message that is
safe to show.
"""

from __future__ import annotations

import asyncio

import asyncpg

__all__ = ["CONNECTION_ERRORS", "reason"]

CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


def reason(exc: BaseException) -> str:
    """One line: the first of the message (asyncpg adds DETAIL lines that can
    quote argument values), no URL (asyncpg puts none in its messages; socket
    errors carry only host and port)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
