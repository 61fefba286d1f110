"""Storage from the command line: `greenroom migrate`, the backend `run` picks, bad URLs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from storage import known_migrations
from tests.test_cli import GREENROOM, env, run_until_started


def greenroom(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GREENROOM, *args], capture_output=True, text=True, env=env(**extra), timeout=60
    )


def test_migrate_applies_once_then_reports_up_to_date(tmp_path: Path) -> None:
    first = greenroom("--data-dir", str(tmp_path), "migrate")
    latest = known_migrations("sqlite")[-1].version
    assert (first.returncode, first.stdout) == (0, f"migrated to {latest}\n")
    assert (tmp_path / "greenroom.db").is_file()
    again = greenroom("--data-dir", str(tmp_path), "migrate")
    assert (again.returncode, again.stdout) == (0, "the schema is up to date\n")


@pytest.mark.parametrize("command", ["run", "migrate"])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://bob:s3cret-pw@127.0.0.1:1/nowhere", "Connect call failed"),
        ("postgresql://bob:s3cret-pw@host.invalid/x", "Name or service not known"),
        ("postgresql://bob:s3cret-pw@127.0.0.1:abc/db", "invalid literal for int()"),
        ("postgresql://bob:s3cret-pw@127.0.0.1/db?sslmode=bogus", "sslmode"),
        ("postgresql://bob:s3cret-pw@[::1/db", "Invalid IPv6 URL"),
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line_with_the_password_masked(
    tmp_path: Path, command: str, url: str, reason: str
) -> None:
    """Issue 3: a DATABASE_URL pointing nowhere gives a one-line error naming the
    URL (password masked) and a non-zero exit, not a traceback."""
    done = greenroom(
        "--data-dir", str(tmp_path), command, DATABASE_URL=url, GREENROOM_LOG__FORMAT="json"
    )
    assert done.returncode == 2
    masked = url.replace("s3cret-pw", "***")
    assert done.stderr.startswith(f"greenroom: cannot open the database at {masked}: ")
    assert reason in done.stderr and done.stderr.count("\n") == 1
    assert "s3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr


async def test_run_uses_sqlite_by_default(tmp_path: Path) -> None:
    events, _ = await run_until_started(tmp_path)
    [opened] = [e for e in events if e["event"] == "store_opened"]
    assert opened["backend"] == "sqlite" and opened["target"] == str(tmp_path / "greenroom.db")
    assert (tmp_path / "greenroom.db").is_file()


async def test_run_uses_postgres_when_database_url_is_set(tmp_path: Path, pg_url: str) -> None:
    events, _ = await run_until_started(tmp_path, DATABASE_URL=pg_url)
    [opened] = [e for e in events if e["event"] == "store_opened"]
    assert opened["backend"] == "postgres" and opened["target"] == pg_url
    every = [m.version for m in known_migrations("postgres")]
    assert [e["version"] for e in events if e["event"] == "migrated"] == every
    assert not (tmp_path / "greenroom.db").exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_second_greenroom_on_the_same_database_stops_with_one_line(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two processes on one database would requeue each other's running jobs at
    start and answer those messages twice: the second refuses to start."""
    extra = {} if backend == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}
    seen: list[subprocess.CompletedProcess[str]] = []

    def second(pid: int) -> None:
        other = tmp_path / "other"  # another data dir: only the database is shared
        data_dir = str(tmp_path if backend == "sqlite" else other)
        seen.append(greenroom("--data-dir", data_dir, "run", **extra))

    await run_until_started(tmp_path, second, **extra)
    [done] = seen
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "another greenroom process" in done.stderr and "Traceback" not in done.stderr
