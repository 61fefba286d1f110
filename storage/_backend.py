"""The seam between the Store and a backend: a transaction script, and who runs it.

A script is a generator: it yields one :class:`Q` (a statement) at a time and
is sent back that statement's rows; what it returns is the method's result.
A backend drives the whole script inside one transaction, in one hop to the
thread that owns the connection (the SQLite thread or the asyncpg loop), and
commits when it returns or rolls back when it raises. This is why the SQLite
backend pays one thread hop per transaction instead of one per statement
(about 170 us each, measured), and why no SQL lives outside the concern
modules and the migrations.

``Backend.run`` is generic over the script's arguments and result, so a
Store method that runs ``finish_job(d, job_id, ...) -> Script[Job]`` is
checked for its arguments and returns a ``Job``, without a cast.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from ._dialect import Dialect, Q, Row

__all__ = ["Backend", "Script"]

T = TypeVar("T")
P = ParamSpec("P")

#: A transaction script returning ``T`` (see the module docstring).
Script = Generator[Q, list[Row], T]


class Backend(Protocol):
    """What the Store needs of a backend: run a script in a transaction, migrate, close."""

    dialect: Dialect
    target: str  # what to call the database in messages (Postgres: URL, password masked)

    async def run(
        self,
        fn: Callable[Concatenate[Dialect, P], Script[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the script ``fn(dialect, *args, **kwargs)`` in one transaction; return
        what it returns. A checkpoint; on cancellation see each backend."""
        ...

    async def take_ownership(self) -> None: ...
    async def check_ownership(self) -> None: ...
    async def migrate(self) -> list[int]: ...
    async def aclose(self) -> None: ...
