"""Conversation benchmark: POST /api/messages to 202 and to the ack, short thread vs long.

The application's own tree (``build_root``: storage on SQLite, then on Postgres
from ``ops/pg.py``, the brain, user
threads, the HTTP door) with the stand-in LLM of ``tests/fake_llm.py``, which
answers at once: what is measured is greenroom's own overhead around a model
call (ingest, the thread, one Anthropic SDK round trip, the outbox, delivery,
the long-poll). Two web-chat guests side by side, messages alternating between
them: one whose thread already holds 10 messages, one whose thread holds
1,000 (DESIGN.md: context lives in the actor, so POST -> ack must not grow with
the thread; target within 20%). Prints a table and, last, one JSON object. Not
a test: nothing here asserts on time.
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

from _common import pct  # noqa: E402

from actors import build_root  # noqa: E402
from actors.brain import Brain  # noqa: E402
from config import Settings  # noqa: E402
from ops import pg  # noqa: E402
from protocols import Inbound  # noqa: E402
from storage import Store, open_store  # noqa: E402
from supervision import configure_logging, open_system  # noqa: E402
from tests.fake_llm import FakeLLM, ToolUse  # noqa: E402

INTENT = {
    "intent": "command",
    "summary": "They want a haiku.",
    "plan": "Write one.",
    "needs_confirmation": True,
    "confidence": 0.9,
}


async def prefill(store: Store, user_id: str, messages: int) -> None:
    """``messages`` turns of history (half the guest's, half replies), all answered."""
    for i in range(messages // 2):
        result = await store.ingest(
            Inbound(
                platform="http", chat_id=user_id, user_id=user_id, message_id=f"pre{i}",
                text=f"earlier message {i} " + "lorem ipsum " * 10,
            )
        )  # fmt: skip
        for job in await store.claim_jobs(10, thread_id=result.thread.id):
            await store.finish_job(job.id, "done")
        reply, _ = await store.record_reply(
            result.thread.id, f"earlier reply {i} " + "dolor sit amet " * 10, f"pre:{i}"
        )
        await store.mark_sent(reply.id)


class Guest:
    def __init__(self, http: httpx.AsyncClient, label: str) -> None:
        self.http = http
        self.label = label
        self.auth: dict[str, str] = {}
        self.user_id = ""
        self.seen = 0
        self.to_202: list[float] = []
        self.to_ack: list[float] = []

    async def open(self) -> None:
        session = (await self.http.post("/api/session")).json()
        self.auth = {"authorization": f"Bearer {session['token']}"}
        self.user_id = session["user"].partition(":")[2]

    async def message(self, fake: FakeLLM, i: int) -> None:
        fake.script("claude-a", ToolUse("report_intent", INTENT))
        t0 = time.perf_counter()
        r = await self.http.post("/api/messages", json={"text": f"haiku {i}"}, headers=self.auth)
        self.to_202.append(time.perf_counter() - t0)
        assert r.status_code == 202, r.text
        while True:
            events = (
                await self.http.get(
                    "/api/events", params={"after": self.seen, "wait": 10}, headers=self.auth
                )
            ).json()["events"]
            if events:
                self.seen = events[-1]["seq"]
                if any(e["kind"] == "ack" for e in events):
                    break
        self.to_ack.append(time.perf_counter() - t0)


async def main(n: int, sizes: list[int], database_url: str | None) -> None:
    configure_logging("warning", "json", open("/dev/null", "w"))  # noqa: SIM115
    fake = FakeLLM()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings.model_validate(
                {
                    "data_dir": tmp,
                    "http": {"port": 0, "session_rate_per_minute": 1000},
                    "anthropic": {"base_url": fake.url},
                    "anthropic_api_key": "sk-ant-bench",
                    "brain": {
                        "models": {"a": {"provider": "anthropic", "model": "claude-a"}},
                        "cascades": {"classify": ["a"], "answer": ["a"], "background": ["a"]},
                    },
                }
            )
            async with open_store(database_url, Path(tmp)) as store:
                brain = Brain(settings, store)
                async with open_system(build_root(settings, store, brain)) as system:
                    port = next(
                        c.actor.port  # type: ignore[union-attr]
                        for c in system.cells()
                        if c.path == "/connectors/http"
                    )
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                        guests = []
                        for size in sizes:
                            guest = Guest(http, f"thread of {size}")
                            await guest.open()
                            await prefill(store, guest.user_id, size)
                            guests.append(guest)
                        for g in guests:  # warm-up: activation loads the context once
                            await g.message(fake, -1)
                            g.to_202.clear()
                            g.to_ack.clear()
                        for i in range(n):
                            for g in guests:
                                await g.message(fake, i)
                    await brain.aclose()
        nursery.cancel_scope.cancel()
    ms = 1e3
    backend = "postgres" if database_url else "sqlite"
    print(f"{'figure (' + backend + ')':44} {'p50':>8} {'p99':>8}")
    out: dict[str, Any] = {"backend": backend, "messages_each": n}
    for g in guests:
        for label, values in (("POST -> 202", g.to_202), ("POST -> ack", g.to_ack)):
            p50, p99 = pct(values, 0.5) * ms, pct(values, 0.99) * ms
            print(f"{label + ' (ms), ' + g.label:44} {p50:8.2f} {p99:8.2f}")
            key = f"{label.split()[-1]}_{g.label.split()[-1]}"
            out[f"{key}_p50_ms"], out[f"{key}_p99_ms"] = round(p50, 2), round(p99, 2)
    if len(guests) == 2:
        short, long_ = (pct(g.to_ack, 0.5) for g in guests)
        ratio = long_ / short
        print(f"ack p50, long thread / short thread: {ratio:.2f} (target <= 1.20)")
        out["ack_p50_ratio_long_to_short"] = round(ratio, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="messages per guest (default 200)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10, 1000], help="thread lengths (default 10 1000)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        trio.run(main, args.n, args.sizes, None)
    if args.backend in ("postgres", "both"):
        server = pg.find_or_start()
        url = pg.create_database(server.admin_url, "gr_bench")
        try:
            trio.run(main, args.n, args.sizes, url)
        finally:
            pg.drop_database(server.admin_url, url)
            server.stop()
