"""Crash isolation (issue 6): doors killed and failing mid-send while people chat.

The application's tree with the HTTP and Telegram doors, the fake Bot API and
the fake LLM. A web guest and a Telegram user write every round; between
rounds one door is killed (alternating, as the debug socket's ``kill``
does), and in some rounds Telegram refuses the send of the reply (a 500
mid-send), so the reply stays in the outbox until its door restarts.
Afterwards: nothing outside ``/connectors`` restarted, every message was
answered exactly once on its own door, and nothing was sent twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from config import Settings
from tests.appkit import http_port, open_app, settings_data
from tests.brainkit import settings_for
from tests.fake_llm import FakeLLM, Text
from tests.fake_telegram import FakeTelegram, TgError
from tests.telegramkit import telegram_settings
from tests.test_http_e2e import Guest
from tests.test_telegram_e2e import MODEL, App, intent

ROUNDS = 8


@pytest.fixture
async def app(
    tmp_path: Path,
    fake_llm: FakeLLM,
    tg: FakeTelegram,
) -> AsyncIterator[App]:
    """The whole tree with the HTTP and Telegram doors. Background work (memory
    extraction) goes to model "b", which nothing scripts: it fails harmlessly
    instead of taking the scripted answers of the conversations."""
    base = settings_for(fake_llm, cascade=["a"])
    settings = telegram_settings(tg, tmp_path, base)
    data = settings_data(settings)
    data["brain"]["cascades"]["background"] = ["b"]
    async with open_app(Settings.model_validate(data), tmp_path) as (system, store, http):
        yield App(system, store, fake_llm, tg, http)


async def guest(app: App) -> Guest:
    response = await app.http.post("/api/session")
    assert response.status_code == 201, response.text
    body = response.json()
    return Guest(app.http, body["user"], body["token"])


async def test_doors_killed_and_failing_mid_send_lose_nothing_and_send_nothing_twice(
    app: App,
) -> None:
    web = await guest(app)
    ada = app.tg.user()
    clients = []
    kills = {"/connectors/http": 0, "/connectors/telegram": 0}
    failed_sends = 0
    web_answers: list[str] = []
    with app.system.subscribe() as events:
        for i in range(ROUNDS):
            # One scripted model queue serves both threads, so each exchange runs
            # to its answer before the next starts (which thread took which
            # scripted reply must not be left to the scheduler).
            app.llm.script(MODEL, intent(False), Text("answer"))
            await web.say(f"web {i}")
            web_answers.append((await web.next_event())["text"])
            if i % 4 == 0:
                app.tg.fail("sendMessage", TgError.server())  # this round's send fails
                failed_sends += 1
            app.llm.script(MODEL, intent(False), Text("answer"))
            app.tg.push(app.tg.message(ada, f"tg {i}"))
            await app.tg.wait_calls("sendMessage", i + 1, ok_only=False)
            door = "/connectors/telegram" if i % 2 == 0 else "/connectors/http"
            app.system.kill(door, f"fault injection {i}")
            kills[door] += 1
            with trio.fail_after(10):
                async for event in events:
                    if event.path == door and event.kind == "restarted":
                        break
            if door == "/connectors/http":
                web.http = httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{http_port(app.system)}", timeout=15
                )
                clients.append(web.http)
    # Every failed send went out after its door restarted: exactly once each.
    sent = await app.tg.wait_calls("sendMessage", ROUNDS)
    assert [c.params["text"] for c in sent] == ["answer"] * ROUNDS
    assert len(app.tg.of("sendMessage")) == ROUNDS + failed_sends
    assert web_answers == ["answer"] * ROUNDS
    feed = await web.http.get("/api/events", params={"after": 0}, headers=web.auth)
    assert [e["text"] for e in feed.json()["events"]] == ["answer"] * ROUNDS
    # Nothing outside /connectors noticed.
    tree = app.system.snapshot()
    restarts = {child.path: child.restarts for child in tree.children}
    assert restarts == {
        "/storage": 0,
        "/brain": 0,
        "/users": 0,
        "/connectors": 0,
        "/reconciler": 0,
        "/debug": 0,
    }
    for user in app.system.snapshot("/users").children:
        assert user.restarts == 0, user.path
    assert app.system.inspect("/connectors/http").restarts == kills["/connectors/http"]
    assert app.system.inspect("/connectors/telegram").restarts == kills["/connectors/telegram"]
    for client in clients:
        await client.aclose()


async def test_a_door_that_keeps_failing_backs_off_alone_and_readyz_names_it(app: App) -> None:
    """Telegram rejects the token (401) at every start: the Telegram door fails again
    and again, more often than the root's intensity allows, backing off longer each
    time; /connectors stays up, /readyz names the door, and the web keeps chatting."""
    web = await guest(app)
    app.tg.fail("getMe", *[TgError(401, "Unauthorized")] * 100)
    with app.system.subscribe() as events:
        app.system.kill("/connectors/telegram", "restart into a rejected token")
        backoffs = 0
        with trio.fail_after(30):
            async for event in events:
                if event.path == "/connectors/telegram" and event.kind == "backoff":
                    backoffs += 1
                    if backoffs == 5:
                        break
    ready = await app.http.get("/readyz")
    assert ready.status_code == 503
    assert "/connectors/telegram is backoff" in ready.json()["checks"]["connectors"]
    app.llm.script(MODEL, intent(False), Text("still here"))
    await web.say("are you there?")
    assert (await web.next_event())["text"] == "still here"
    restarts = {child.path: child.restarts for child in app.system.snapshot().children}
    assert restarts["/connectors"] == 0 and restarts["/users"] == 0
    assert app.system.inspect("/connectors/http").restarts == 0
