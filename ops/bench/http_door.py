"""HTTP door benchmark: POST /api/messages to 202, over real HTTP, in one process.

(Not ``http.py``: run as a script, that name would shadow the standard library's ``http``.)

The door runs as in production (Hypercorn's trio worker inside
``/connectors/http``, FastAPI, the SQLite Store with group commit) with a
no-op user actor under ``/users`` (so the figure is the door's: auth,
validation, durable ingest, the hand-off, the 202). The client is httpx over
loopback in the same trio loop, which shares the one core with the server:
the figures are an upper bound on latency, a lower bound on what the server
alone could do.

Sequential: ``--requests`` messages one after another on one keep-alive
connection, each timed from send to 202 (p50, p99). Concurrent: ``--clients``
connections sending together for the same count, for throughput.

Prints a table, then one JSON object as the last line. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from _common import Sink, pct  # noqa: E402

from actors import StorageActor  # noqa: E402
from actors.connectors import HttpConnector  # noqa: E402
from config import Settings  # noqa: E402
from storage import open_store  # noqa: E402
from supervision import ChildSpec, Directory, Supervisor, open_system  # noqa: E402


async def sequential(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> list[float]:
    out: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        resp = await client.post("/api/messages", json={"text": f"seq {i}"}, headers=auth)
        out.append(time.perf_counter() - t0)
        assert resp.status_code == 202, resp.text
    return sorted(out)


async def concurrent(url: str, auth: dict[str, str], n: int, clients: int) -> tuple[float, int]:
    left = n
    done = 0

    async def one() -> None:
        nonlocal left, done
        async with httpx.AsyncClient(base_url=url) as client:
            while left > 0:
                left -= 1
                resp = await client.post("/api/messages", json={"text": "c"}, headers=auth)
                done += resp.status_code == 202

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one)
    return time.perf_counter() - t0, done


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            http={"port": 0, "session_rate_per_minute": 1000},
            log={"level": "warning"},
        )
        made: list[HttpConnector] = []
        async with open_store(None, Path(tmp)) as store:

            def connector() -> HttpConnector:
                made.append(HttpConnector(settings, store))
                return made[-1]

            def root() -> Supervisor:
                return Supervisor(
                    [
                        ChildSpec("storage", lambda: StorageActor(store)),
                        ChildSpec("users", lambda: Directory(Sink, idle_timeout_s=None)),
                        ChildSpec("connectors", lambda: Supervisor([ChildSpec("http", connector)])),
                    ]
                )

            async with open_system(root):
                url = f"http://127.0.0.1:{made[-1].port}"
                async with httpx.AsyncClient(base_url=url) as client:
                    token = (await client.post("/api/session")).json()["token"]
                    auth = {"Authorization": f"Bearer {token}"}
                    await sequential(client, auth, 20)  # warm-up
                    lat = await sequential(client, auth, args.requests)
                elapsed, ok = await concurrent(url, auth, args.requests * 5, args.clients)
    return {
        "requests": args.requests,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "max_ms": lat[-1] * 1e3,
        "concurrent_clients": args.clients,
        "concurrent_requests": ok,
        "concurrent_per_s": ok / elapsed,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    result = trio.run(main, parser.parse_args())
    print(f"POST /api/messages -> 202, sequential, {result['requests']} requests (SQLite):")
    print(f"  p50 {result['p50_ms']:.2f} ms   p99 {result['p99_ms']:.2f} ms")
    print(f"  max {result['max_ms']:.2f} ms")
    print(
        f"concurrent: {result['concurrent_clients']} clients, "
        f"{result['concurrent_requests']} requests, {result['concurrent_per_s']:.0f}/s"
    )
    print(json.dumps(result))
