"""End to end over the HTTP API, with the application's own tree and the fake LLM.

Everything is real but the model: ``build_root`` (storage, brain, user
threads, the HTTP door, the debug socket), a SQLite Store, the anthropic SDK
talking to tests/fake_llm.py, and httpx talking HTTP to the door.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from config import Settings
from storage import Store
from supervision import ActorSystem
from tests.appkit import http_port, open_app
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, Hang, HttpError, Text, ToolUse

MODEL = "claude-a"


@dataclass
class Guest:
    http: httpx.AsyncClient
    user: str
    token: str
    seen: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    async def say(self, text: str) -> int:
        response = await self.http.post("/api/messages", json={"text": text}, headers=self.auth)
        assert response.status_code == 202, response.text
        return int(response.json()["id"])

    async def next_event(self) -> dict[str, Any]:
        """The next event after the last one seen (long-poll; fails after 10 s)."""
        with trio.fail_after(10):
            while True:
                response = await self.http.get(
                    "/api/events", params={"after": self.seen, "wait": 5}, headers=self.auth
                )
                assert response.status_code == 200, response.text
                events = response.json()["events"]
                if events:
                    self.seen = events[0]["seq"]
                    return dict(events[0])

    async def approve(self, approval_id: int) -> httpx.Response:
        return await self.http.post(f"/api/approvals/{approval_id}", headers=self.auth)


@dataclass
class App:
    system: ActorSystem
    store: Store
    fake: FakeLLM
    http: httpx.AsyncClient

    async def guest(self) -> Guest:
        response = await self.http.post("/api/session")
        assert response.status_code == 201, response.text
        body = response.json()
        return Guest(self.http, body["user"], body["token"])


@pytest.fixture
async def app(tmp_path: Path, fake_llm: FakeLLM) -> AsyncIterator[App]:
    base = settings_for(fake_llm, cascade=["a", "b", "c"])
    settings = Settings.model_validate(
        {
            **base.model_dump(),
            "data_dir": str(tmp_path),
            "http": {"port": 0, "session_rate_per_minute": 100},
            # Restarts in milliseconds, so a test can kill a door many times.
            "supervision": {
                "backoff_min_s": 0.001,
                "backoff_max_s": 0.01,
                "connectors_backoff_max_s": 0.01,
            },
            "anthropic_api_key": "sk-ant-test-key",
        }
    )
    async with open_app(settings, tmp_path) as (system, store, http):
        yield App(system, store, fake_llm, http)


async def test_session_message_ack_ok_reply(app: App) -> None:
    app.fake.script(MODEL, intent(True), Text("Roses are red."))
    guest = await app.guest()
    assert guest.user.startswith("http:")
    await guest.say("write me a poem")
    ack = await guest.next_event()
    assert ack["kind"] == "ack" and ack["text"].startswith("Understood: They want a poem.")
    assert (await guest.approve(ack["approval_id"])).json() == {"status": "approved"}
    reply = await guest.next_event()
    assert (reply["kind"], reply["text"]) == ("reply", "Roses are red.")


async def test_supersede_and_a_stale_ok_is_409_with_a_notice(app: App) -> None:
    guest = await app.guest()
    app.fake.script(MODEL, intent(True, plan="Write a poem."))
    await guest.say("a poem")
    old = await guest.next_event()
    app.fake.script(MODEL, intent(True, plan="Write a song."))
    await guest.say("no, a song")
    new = await guest.next_event()
    assert new["approval_id"] != old["approval_id"]
    stale = await guest.approve(old["approval_id"])
    assert stale.status_code == 409
    notice = await guest.next_event()
    assert notice["kind"] == "notice" and "replaced" in notice["text"]


async def test_the_cascade_falls_through_three_models(app: App) -> None:
    guest = await app.guest()
    app.fake.script("claude-a", HttpError.overloaded())
    app.fake.script("claude-b", HttpError.server())
    app.fake.script("claude-c", intent(False))
    app.fake.script("claude-a", Text("Made it."))  # the answer cascade starts at a again
    await guest.say("hello")
    reply = await guest.next_event()
    assert reply["text"] == "Made it."
    assert [r.model for r in app.fake.requests] == ["claude-a", "claude-b", "claude-c", "claude-a"]


async def test_a_guest_cannot_use_an_admin_tool(app: App) -> None:
    guest = await app.guest()
    app.fake.script(
        MODEL,
        intent(False),
        ToolUse("token_spend_today", {}),  # the model tries anyway
        Text("I cannot show that."),
    )
    await guest.say("what did you spend today?")
    reply = await guest.next_event()
    assert reply["text"] == "I cannot show that."
    answer_calls = [r for r in app.fake.requests if "token_spend_today" in json.dumps(r.body)]
    assert all("token_spend_today" not in r.tool_names for r in answer_calls)  # never shown
    refused = await app.store.audit_entries(action="brain.tool_refused")
    assert refused and refused[0].actor == guest.user


async def test_two_guests_see_only_their_own_events(app: App) -> None:
    alice, bob = await app.guest(), await app.guest()
    app.fake.script(MODEL, intent(False), Text("Noted, Alice."))
    await alice.say("my code is 4711")
    assert (await alice.next_event())["text"] == "Noted, Alice."
    app.fake.script(MODEL, intent(False), Text("Hello Bob."))
    await bob.say("greetings from bob-zq")
    assert (await bob.next_event())["text"] == "Hello Bob."
    bob_feed = await app.http.get("/api/events", params={"after": 0}, headers=bob.auth)
    assert [e["text"] for e in bob_feed.json()["events"]] == ["Hello Bob."]
    bobs = [r for r in app.fake.requests if "bob-zq" in json.dumps(r.body)]
    assert len(bobs) == 2 and all("4711" not in json.dumps(r.body) for r in bobs)
    other = await bob.approve(1)
    assert other.status_code == 404


async def test_a_thread_killed_mid_job_replies_exactly_once(app: App) -> None:
    guest = await app.guest()
    app.fake.script(MODEL, Hang())
    await guest.say("slow one")
    await app.fake.wait_hanging(1)
    app.fake.script(MODEL, intent(False), Text("Only once."))
    app.system.kill(f"/users/{guest.user}", "test")
    reply = await guest.next_event()
    assert reply["text"] == "Only once."
    feed = await app.http.get("/api/events", params={"after": 0}, headers=guest.auth)
    assert [e["text"] for e in feed.json()["events"]] == ["Only once."]


async def test_readyz_and_metrics_see_the_whole_tree_and_the_ledger(app: App) -> None:
    ready = await app.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    guest = await app.guest()
    app.fake.script(MODEL, intent(False), Text("ok"))  # usage: 100 in, 20 out each
    await guest.say("count me")
    await guest.next_event()
    metrics = (await app.http.get("/metrics")).text
    labels = 'scope="reactive",provider="anthropic",model="claude-a"'
    assert f"greenroom_llm_calls_total{{{labels}}} 2" in metrics
    assert f'greenroom_llm_tokens_total{{{labels},direction="in"}} 200' in metrics
    assert f'greenroom_llm_tokens_total{{{labels},direction="out"}} 40' in metrics
    assert "# TYPE greenroom_llm_cost_usd_total counter" in metrics


async def test_a_door_killed_again_and_again_takes_nothing_else_down(app: App) -> None:
    """Issue 6, crash isolation (the HTTP door's part): /connectors/http killed ten
    times in a row, more than the root's intensity (3 in 5 s) allows, while a guest
    chats: /connectors never gives up, nothing outside it restarts, every message is
    answered exactly once."""
    guest = await app.guest()
    answers = []
    with app.system.subscribe() as events:
        for i in range(10):
            app.fake.script(MODEL, intent(False), Text(f"answer {i}"))
            await guest.say(f"message {i}")
            answers.append((await guest.next_event())["text"])
            app.system.kill("/connectors/http", f"kill {i}")
            with trio.fail_after(10):
                async for event in events:
                    if event.path == "/connectors/http" and event.kind == "restarted":
                        break
            if guest.http is not app.http:
                await guest.http.aclose()
            # The door listens on a fresh port after each restart (port 0).
            guest.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port(app.system)}")
    assert answers == [f"answer {i}" for i in range(10)]
    tree = app.system.snapshot()
    restarts = {child.path: child.restarts for child in tree.children}
    assert restarts["/connectors"] == 0 and restarts["/users"] == 0
    assert restarts["/brain"] == 0 and restarts["/storage"] == 0
    assert app.system.inspect("/connectors/http").restarts == 10
    feed = await guest.http.get("/api/events", params={"after": 0}, headers=guest.auth)
    assert [e["text"] for e in feed.json()["events"]] == answers  # no duplicate, no gap
    await guest.http.aclose()
