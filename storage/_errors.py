"""Storage errors: what went wrong, and whose problem it is.

::

    StorageError                  anything the Store refuses or cannot do
    ├── StoreUnavailable          the database cannot be reached or opened (config or outage)
    │   └── DatabaseInUse         another greenroom process owns it (exclusive open)
    ├── MigrationError            the schema cannot be brought up to date
    ├── IllegalTransition         a status change the lifecycle forbids (caller's bug or a race)
    └── NotFound                  the id names no row

Errors from sqlite3 and asyncpg are translated to these at the backend
boundary (``raise ... from exc``); a message never contains a password.
"""

from __future__ import annotations

__all__ = [
    "DatabaseInUse",
    "IllegalTransition",
    "MigrationError",
    "NotFound",
    "StorageError",
    "StoreUnavailable",
]


class StorageError(Exception):
    """Base of every error the storage layer raises."""


class StoreUnavailable(StorageError):
    """The database cannot be reached or opened. ``target`` names it, password masked."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot open the database at {target}: {reason}")
        self.target = target
        self.reason = reason


class DatabaseInUse(StoreUnavailable):
    """Another greenroom process opened this database exclusively (``open_store(exclusive=True)``).

    Two processes on one database would each requeue the other's running jobs
    at start and answer those messages twice; the second one stops instead.
    """


class MigrationError(StorageError):
    """The schema cannot be brought to this version of greenroom's."""


class IllegalTransition(StorageError):
    """A status change its lifecycle does not allow (e.g. finishing a queued job)."""

    def __init__(self, what: str, ident: int, current: str, wanted: str) -> None:
        super().__init__(f"{what} {ident} is {current!r}; it cannot become {wanted!r}")
        self.what = what
        self.ident = ident
        self.current = current
        self.wanted = wanted


class NotFound(StorageError):
    """No row has that id."""

    def __init__(self, what: str, ident: int) -> None:
        super().__init__(f"no {what} with id {ident}")
        self.what = what
        self.ident = ident
