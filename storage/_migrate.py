"""Migrations: numbered, forward-only SQL files per dialect, recorded in ``schema_migrations``.

``storage/migrations/<dialect>/NNNN_name.sql``. Both dialects carry the same
numbers (a test holds them to it). Which ones to apply is a pure function of
what the code knows and what the database has recorded; each backend applies
them in its own transaction (Postgres: all of them in one, under an advisory
lock, so two processes starting at once cannot both migrate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from ._errors import MigrationError

__all__ = ["SCHEMA_TABLE", "Migration", "known_migrations", "pending_migrations"]

SCHEMA_TABLE = "schema_migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: its number, its name and its SQL for one dialect."""

    version: int
    name: str
    sql: str


def known_migrations(dialect: str) -> list[Migration]:
    """Every migration shipped for ``dialect`` ("sqlite" or "postgres"), in order.

    Raises MigrationError for a badly named file or a gap in the numbers.
    """
    folder = resources.files("storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"migration file {dialect}/{entry.name} is not NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{dialect} migrations skip from {expected - 1} to {migration.version}"
            )
    return found


def pending_migrations(known: list[Migration], applied: set[int]) -> list[Migration]:
    """The known migrations not yet applied, in order.

    Raises MigrationError when the database records a version this code does
    not know (it was migrated by a newer greenroom: running older code on it
    could corrupt it).
    """
    newest = max((m.version for m in known), default=0)
    unknown = sorted(v for v in applied if v > newest)
    if unknown:
        raise MigrationError(
            f"the database schema is at version {unknown[-1]}, newer than this greenroom's "
            f"{newest}: run the greenroom release that migrated it"
        )
    return [m for m in known if m.version not in applied]
