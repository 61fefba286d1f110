"""ops/pg.py, which every Postgres test and benchmark depends on."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ops import pg


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # Regression (review of issue 3): a URL without a database path lost its host.
        ("postgresql://postgres@localhost:5432", "postgresql://postgres@localhost:5432/x"),
        ("postgresql://u:p@h:1/db?sslmode=disable", "postgresql://u:p@h:1/x?sslmode=disable"),
        ("postgresql://h/", "postgresql://h/x"),
    ],
)
def test_with_database_replaces_only_the_database(url: str, expected: str) -> None:
    assert pg._with_database(url, "x") == expected


def test_a_made_database_is_usable_and_dropped(pg_server: pg.Server) -> None:
    url = pg.create_database(pg_server.admin_url)
    assert url.rsplit("/", 1)[1].startswith("gr_test_")

    async def answers() -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT current_database()")
        finally:
            await conn.close()

    assert asyncio.run(answers()) == url.rsplit("/", 1)[1]
    pg.drop_database(pg_server.admin_url, url)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        asyncio.run(answers())
