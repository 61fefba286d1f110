"""ops/pg.py, which every Postgres test and benchmark depends on."""

from __future__ import annotations

import asyncio
import socket
import sys

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


def _command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


FAILS = _command(
    "import sys; sys.stderr.write('pg_ctl: starting\\npg_ctl: no such cluster\\n'); sys.exit(1)"
)


def test_pause_and_resume_say_why_pg_ctl_failed() -> None:
    """Review of issue 11: pause/resume hid pg_ctl's stderr (a bare CalledProcessError)."""
    server = pg.Server("postgresql://x/postgres", "throwaway", FAILS, None, FAILS)
    with pytest.raises(RuntimeError, match=r"could not pause .*: pg_ctl: no such cluster$"):
        server.pause()
    with pytest.raises(RuntimeError, match=r"could not resume .*: pg_ctl: no such cluster$"):
        server.resume()


def test_a_stopped_cluster_cannot_be_resumed_and_others_cannot_be_paused() -> None:
    """Review of issue 11: stop() left the start command, so resume() after stop()
    tried to start a cluster whose directory was gone instead of raising."""
    ok = _command("pass")
    server = pg.Server("postgresql://x/postgres", "throwaway", ok, None, ok)
    server.stop()
    with pytest.raises(RuntimeError, match="not a stopped throwaway one"):
        server.resume()
    with pytest.raises(RuntimeError, match="not a stopped throwaway one"):
        server.pause()
    with pytest.raises(RuntimeError, match="can be paused, not a local one"):
        pg.Server("postgresql://x/postgres", "local").pause()


def test_without_a_server_or_the_binaries_find_or_start_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(pg.ENV_URL, raising=False)
    monkeypatch.setattr(pg, "_answers", lambda host, port: False)
    monkeypatch.setattr(pg, "_pg_bin", lambda name: None)
    with pytest.raises(RuntimeError) as info:
        pg.find_or_start()
    assert str(info.value) == (
        f"no PostgreSQL: nothing answers on 127.0.0.1:5432, {pg.ENV_URL} is unset and "
        "initdb/pg_ctl are not installed (run `python ops/pg.py ensure` as root, or "
        "apt-get install postgresql)"
    )
    with pytest.raises(RuntimeError, match=r"^initdb/pg_ctl are not installed"):
        pg.start_throwaway()


def test_free_port_is_one_that_can_be_bound() -> None:
    port = pg.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
