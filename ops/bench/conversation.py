"""Conversation benchmark: time from POST /api/messages to 202 and to the ack event.

The application's own tree (``build_root``: storage on SQLite, the brain, user
threads, the HTTP door) with the stand-in LLM of ``tests/fake_llm.py``, which
answers at once: what is measured is greenroom's own overhead around a model
call (ingest, the thread, one Anthropic SDK round trip, the outbox, delivery,
the long-poll). One guest, messages one after another. Prints a table and,
last, one JSON object. Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from actors import build_root  # noqa: E402
from actors.brain import Brain  # noqa: E402
from config import Settings  # noqa: E402
from storage import open_store  # noqa: E402
from supervision import configure_logging, open_system  # noqa: E402
from tests.fake_llm import FakeLLM, ToolUse  # noqa: E402

INTENT = {
    "intent": "command",
    "summary": "They want a haiku.",
    "plan": "Write one.",
    "needs_confirmation": True,
    "confidence": 0.9,
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> None:
    configure_logging("warning", "json", open("/dev/null", "w"))  # noqa: SIM115
    fake = FakeLLM()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings.model_validate(
                {
                    "data_dir": tmp,
                    "http": {"port": 0},
                    "anthropic": {"base_url": fake.url},
                    "anthropic_api_key": "sk-ant-bench",
                    "brain": {
                        "models": {"a": {"provider": "anthropic", "model": "claude-a"}},
                        "cascades": {"classify": ["a"], "answer": ["a"], "background": ["a"]},
                    },
                }
            )
            async with open_store(None, Path(tmp)) as store:
                brain = Brain(settings, store)
                async with open_system(build_root(settings, store, brain)) as system:
                    port = next(
                        c.actor.port  # type: ignore[union-attr]
                        for c in system.cells()
                        if c.path == "/connectors/http"
                    )
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                        session = (await http.post("/api/session")).json()
                        auth = {"authorization": f"Bearer {session['token']}"}
                        to_202: list[float] = []
                        to_ack: list[float] = []
                        seen = 0
                        for i in range(n):
                            fake.script("claude-a", ToolUse("report_intent", INTENT))
                            t0 = time.perf_counter()
                            r = await http.post(
                                "/api/messages", json={"text": f"haiku {i}"}, headers=auth
                            )
                            to_202.append(time.perf_counter() - t0)
                            assert r.status_code == 202, r.text
                            while True:
                                events = (
                                    await http.get(
                                        "/api/events",
                                        params={"after": seen, "wait": 10},
                                        headers=auth,
                                    )
                                ).json()["events"]
                                if events:
                                    seen = events[-1]["seq"]
                                    if any(e["kind"] == "ack" for e in events):
                                        break
                            to_ack.append(time.perf_counter() - t0)
                    await brain.aclose()
        nursery.cancel_scope.cancel()
    ms = 1e3
    print(f"{'figure':34} {'p50':>8} {'p99':>8}")
    for label, values in (("POST /api/messages -> 202 (ms)", to_202), ("POST -> ack (ms)", to_ack)):
        print(f"{label:34} {pct(values, 0.5) * ms:8.2f} {pct(values, 0.99) * ms:8.2f}")
    print(
        json.dumps(
            {
                "post_to_202_p50_ms": round(pct(to_202, 0.5) * ms, 2),
                "post_to_202_p99_ms": round(pct(to_202, 0.99) * ms, 2),
                "post_to_ack_p50_ms": round(pct(to_ack, 0.5) * ms, 2),
                "post_to_ack_p99_ms": round(pct(to_ack, 0.99) * ms, 2),
                "messages": n,
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="messages (default 200)")
    trio.run(main, parser.parse_args().n)
