"""Shared fixtures: the kernel's testing kit (``system``, ``real_system``) and storage.

Storage fixtures: ``store`` runs each contract test against both backends
(SQLite in a temporary directory, Postgres in a fresh database); ``pg_url`` is
a fresh Postgres database. Postgres comes from ``ops/pg.py`` (an env URL, the
local server, or a throwaway cluster); under ``CI=true`` its absence fails the
run instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops import pg
from storage import Store, open_store

pytest_plugins = [
    "supervision.testing",
    "tests.fake_llm",
    "tests.fake_telegram",
    "tests.nostrkit",
    "tests.pgkit",
]


class Clock:
    """A settable wall clock for the Store (``clock=``): token spend by day, timestamps."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.Server]:
    try:
        server = pg.find_or_start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the Postgres contract tests: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: pg.Server) -> Iterator[str]:
    url = pg.create_database(pg_server.admin_url)
    yield url
    pg.drop_database(pg_server.admin_url, url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite) or a fresh Postgres database URL: one run per backend."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    async with open_store(database_url, tmp_path, clock=clock) as st:
        yield st
