"""Find or start a PostgreSQL server for tests and benchmarks, and make throwaway databases.

The order (issue 3; facts in ../shared/PEERS.md):

1. ``GREENROOM_TEST_DATABASE_URL``, if set: a server someone else runs.
2. A server answering on 127.0.0.1:5432 (trust auth, user ``postgres``).
3. ``initdb``/``pg_ctl`` on PATH or under /usr/lib/postgresql/*/bin: a
   throwaway cluster in a temporary directory on a free port, run as the
   ``postgres`` user when we are root (initdb refuses root), stopped by
   :meth:`Server.stop`.

``GREENROOM_TEST_PG=throwaway`` skips step 2, to try on a machine that has a
server what a fresh machine does.

``python ops/pg.py ensure`` is what ``make test`` runs first: when none of the
three is available it installs Debian's ``postgresql`` package (as root, with
apt-get), so a fresh machine can run the Postgres contract tests.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5432
ENV_URL = "GREENROOM_TEST_DATABASE_URL"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A PostgreSQL server to make databases on; ``stop()`` ends it if we started it."""

    admin_url: str  # a URL to a database we may CREATE DATABASE from
    how: str  # "env", "local", or "throwaway"
    _stop: list[str] = field(default_factory=list)
    _dir: str | None = None
    _start: list[str] = field(default_factory=list)

    def pause(self) -> None:
        """Stop a throwaway cluster's server but keep its data (an outage); ``resume``
        starts it again on the same port. RuntimeError for a server we did not start
        (or stopped), and with pg_ctl's last line when it fails."""
        _pg_ctl(self._usable("paused", self._stop), "pause")

    def resume(self) -> None:
        """Start a paused throwaway cluster again (waits until it accepts connections).
        RuntimeError as for :meth:`pause`."""
        _pg_ctl(self._usable("resumed", self._start), "resume")

    def stop(self) -> None:
        """Stop a throwaway cluster and remove its directory; nothing for the others.
        After it, ``pause`` and ``resume`` raise RuntimeError."""
        if self._stop:
            subprocess.run(self._stop, check=False, capture_output=True)
            self._stop = []
        self._start = []
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _usable(self, done: str, command: list[str]) -> list[str]:
        if not command:
            what = "stopped throwaway" if self.how == "throwaway" else self.how
            raise RuntimeError(f"only a throwaway cluster can be {done}, not a {what} one")
        return command


def find_or_start() -> Server:
    """Return a server by the order in the module docstring; raise RuntimeError (one
    line saying what to do) when none can be had."""
    url = os.environ.get(ENV_URL)
    if url:
        return Server(url, "env")
    if os.environ.get("GREENROOM_TEST_PG") != "throwaway" and _answers(DEFAULT_HOST, DEFAULT_PORT):
        return Server(f"postgresql://postgres@{DEFAULT_HOST}:{DEFAULT_PORT}/postgres", "local")
    try:
        return start_throwaway()
    except _NotInstalled as exc:
        raise RuntimeError(
            f"no PostgreSQL: nothing answers on {DEFAULT_HOST}:{DEFAULT_PORT}, {ENV_URL} is unset "
            f"and {exc}"
        ) from None


class _NotInstalled(RuntimeError):
    """No initdb/pg_ctl here (what step 3 needs)."""


def start_throwaway() -> Server:
    """A new throwaway cluster of our own (step 3), whatever else answers: also for
    tests that stop and start their server. RuntimeError without initdb/pg_ctl, or
    with the last line of the one that failed."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise _NotInstalled(
            "initdb/pg_ctl are not installed (run `python ops/pg.py ensure` as root, or "
            "apt-get install postgresql)"
        )
    root = tempfile.mkdtemp(prefix="greenroom-pg-")
    data = os.path.join(root, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        as_user = ["runuser", "-u", "postgres", "--"]
        try:
            shutil.chown(root, "postgres")
        except LookupError:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                "initdb refuses root and there is no 'postgres' user to run it as "
                "(apt-get install postgresql creates one)"
            ) from None
    port = free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        log = os.path.join(root, "log")
        start = [*as_user, pg_ctl, "-D", data, "-o", opts, "-l", log, "-w", "start"]
        subprocess.run(start, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start a throwaway PostgreSQL: {_last_line(exc)}") from None
    stop = [*as_user, pg_ctl, "-D", data, "stop", "-m", "fast"]
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return Server(url, "throwaway", stop, root, start)


def _pg_ctl(command: list[str], what: str) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        detail = _last_line(exc)
        raise RuntimeError(f"could not {what} the throwaway PostgreSQL: {detail}") from None


def _last_line(exc: subprocess.CalledProcessError) -> str:
    """The last line the failed command wrote to stderr (or the failure itself)."""
    detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
    return detail[-1] if detail else str(exc)


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (with or without a path before)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def create_database(admin_url: str, prefix: str = "gr_test") -> str:
    """Create a fresh, empty database and return its URL. Not for use inside a
    running event loop (it runs its own)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    return _with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by :func:`create_database` (its connections are ended first)."""
    name = urlsplit(url).path.lstrip("/")
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_url: str, sql: str) -> None:
    # CREATE/DROP DATABASE cannot run in a transaction: one plain connection.
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def ensure() -> int:
    """For ``make test``: make sure a server or the binaries exist; install them if not."""
    if os.environ.get(ENV_URL) or _answers(DEFAULT_HOST, DEFAULT_PORT):
        return 0
    if _pg_bin("initdb") and _pg_bin("pg_ctl"):
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            "ops/pg.py: no PostgreSQL here and cannot install one (needs root and apt-get); "
            f"set {ENV_URL} or install postgresql",
            file=sys.stderr,
        )
        return 1
    print("ops/pg.py: installing Debian's postgresql package for the storage tests", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["ensure"]:
        sys.exit(ensure())
    print("usage: python ops/pg.py ensure", file=sys.stderr)
    sys.exit(2)
