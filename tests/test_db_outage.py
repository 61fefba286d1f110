"""Issue 10 item 5: losing the database must not end greenroom.

A real ``greenroom run`` child on a real Postgres of the test's own (a
throwaway cluster from ``ops/pg.py``), web-chat users over HTTP, the fake LLM.
Answers are in flight when the server is stopped for 60 s: the user actors
fail on their writes and, restarted, on loading their work; they must back off
per user instead of exhausting the directory's and the root's restart budgets
(the old code's root gave up in about 2 s). Meanwhile greenroom stays up,
``/healthz`` answers, ``/readyz`` says storage is down and new messages get 503.
When the server is back, every message a user got a 202 for is answered once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from ops import pg
from storage import open_store
from tests.fake_llm import FakeLLM, Gated, Hang, HttpError, Script, Stall
from tests.test_kill9 import Client, child_app, responder, verify

OUTAGE_S = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server() -> Iterator[pg.Server]:
    """A Postgres server this test may stop and start."""
    try:
        server = pg.start_throwaway()
    except RuntimeError as exc:
        pytest.fail(f"the outage test needs initdb/pg_ctl: {exc}")
    yield server
    server.stop()


async def test_a_60_s_database_outage_ends_nothing_and_loses_nothing(
    tmp_path: Path, fake_llm: FakeLLM, own_server: pg.Server
) -> None:
    url = await trio.to_thread.run_sync(pg.create_database, own_server.admin_url)
    gate, in_flight = trio.Event(), trio.Event()
    held: list[Gated] = []

    def model(body: dict[str, Any]) -> Script:
        """Plans at once; answers wait at the gate until the database is gone."""
        reply = responder(body)
        if (body.get("tool_choice") or {}).get("name") == "report_intent" or gate.is_set():
            return reply
        assert not isinstance(reply, Gated | HttpError | Hang | Stall)
        held.append(Gated(reply, gate, trio.Event()))
        if len(held) == 5:
            in_flight.set()
        return held[-1]

    async with child_app(tmp_path, fake_llm, url) as (child, http):
        users = [Client(http, n, child.progress) for n in range(5)]
        async with trio.open_nursery() as nursery:
            await child.start(nursery)
            with trio.fail_after(OUTAGE_S + 120):  # a hang guard for the whole run
                for c in users:  # a first exchange each, the model answering at once
                    await c.run(1)
                fake_llm.responder = model
                async with trio.open_nursery() as talk:
                    for n, c in enumerate(users):
                        talk.start_soon(c.say, f"u{n} m1")
                    await in_flight.wait()  # every user's answer is with the model
                    await trio.to_thread.run_sync(own_server.pause)
                    gate.set()  # the answers land while the database is gone
                    for _ in range(int(OUTAGE_S // 10)):
                        await outage_checks(http, users[0])
                        assert child.alive, "greenroom ended during the outage"
                        await trio.sleep(10)  # the outage's length, not a sync point
                    await trio.to_thread.run_sync(own_server.resume)
                for n, c in enumerate(users):  # and service as usual afterwards
                    await c.say(f"u{n} m2")
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text
            assert await child.stop() == 0
            nursery.cancel_scope.cancel()
    async with open_store(url, tmp_path / "data") as store:
        counts = await verify(store, users)
    assert counts["messages"] == 15


async def outage_checks(http: httpx.AsyncClient, user: Client) -> None:
    """What a user and an operator see while the database is down."""
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "storage" in ready.text and "unavailable" in ready.text, ready.text
    posted = await http.post(
        "/api/messages",
        json={"text": "during the outage"},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    assert posted.status_code == 503, posted.text
