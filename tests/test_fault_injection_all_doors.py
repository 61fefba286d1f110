"""Crash isolation with all three doors at once (issue 6's fault-injection run).

The application's tree with the HTTP, Telegram and Nostr doors: a web guest, a
Telegram user and a Nostr user (nostr-sdk, on a real nostr-relay and nostr-sdk's
LocalRelay) each write every round. Between rounds one door is hurt, in turn:
killed (the debug socket's ``kill``), or fed a message its ``receive`` refuses
(an injected exception in its receive path, as a bad ``inject`` would be), and
in some rounds Telegram fails the send of the reply (a 500 mid-send), which
leaves it in the outbox until that door restarts. Afterwards: nothing outside
``/connectors`` restarted, each door's other doors saw no gap, every message was
answered exactly once, and nothing was sent twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nostr_sdk as sdk
import pytest
import trio

from config import Settings
from storage import Store
from supervision import ActorSystem
from tests.appkit import http_port, open_app, settings_data
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, Text
from tests.fake_telegram import FakeTelegram, TgError
from tests.nostrkit import (
    AsyncioThread,
    RelayProcess,
    SdkClient,
    start_local_relay,
)
from tests.telegramkit import telegram_settings
from tests.test_http_e2e import Guest

MODEL = "claude-a"
ROUNDS = 9
DOORS = ("/connectors/http", "/connectors/telegram", "/connectors/nostr")


@dataclass
class World:
    system: ActorSystem
    store: Store
    llm: FakeLLM
    tg: FakeTelegram
    http: httpx.AsyncClient
    nostr: SdkClient
    bot: str  # the bot's Nostr public key


@pytest.fixture
async def world(
    tmp_path: Path,
    fake_llm: FakeLLM,
    tg: FakeTelegram,
    nostr_relay: RelayProcess,
) -> AsyncIterator[World]:
    aio = AsyncioThread()
    local, local_url = await start_local_relay(aio)
    bot_secret = bytes.fromhex(sdk.Keys.generate().secret_key().to_hex())
    settings = telegram_settings(tg, tmp_path, settings_for(fake_llm, cascade=["a"]))
    data = settings_data(settings)
    data["brain"]["cascades"]["background"] = ["b"]  # unscripted: fails harmlessly
    data["nostr"].update(relays=[nostr_relay.url, local_url], backoff_min_s=0.05,
                         backoff_max_s=0.5, publish_timeout_s=5)  # fmt: skip
    data["supervision"].update(backoff_min_s=0.01, backoff_max_s=0.1, connectors_backoff_max_s=0.1)
    data["nostr_private_key"] = bot_secret.hex()
    client = SdkClient(aio)
    try:
        async with open_app(Settings.model_validate(data), tmp_path) as (system, store, http):
            await client.connect([nostr_relay.url, local_url])
            bot = sdk.Keys.parse(bot_secret.hex()).public_key().to_hex()
            yield World(system, store, fake_llm, tg, http, client, bot)
            await client.close()
    finally:
        local.shutdown()
        aio.close()


async def restarted(events: trio.MemoryReceiveChannel[Any], path: str) -> None:
    with trio.fail_after(20):
        async for event in events:
            if event.path == path and event.kind == "restarted":
                return


async def test_three_doors_hurt_in_turn_answer_everything_once(world: World) -> None:
    response = await world.http.post("/api/session")
    body = response.json()
    web = Guest(world.http, body["user"], body["token"])
    ada = world.tg.user()
    bot = sdk.PublicKey.parse(world.bot)
    clients: list[httpx.AsyncClient] = []
    failed_sends = 0
    answers: dict[str, list[str]] = {"web": [], "telegram": [], "nostr": []}
    with world.system.subscribe() as events:
        for i in range(ROUNDS):
            # One exchange at a time: one scripted model queue serves all threads.
            world.llm.script(MODEL, intent(False), Text(f"web {i}"))
            await web.say(f"web message {i}")
            answers["web"].append((await web.next_event())["text"])
            failing = i % 3 == 1  # a round in which Telegram is the door hurt
            if failing:
                world.tg.fail("sendMessage", TgError.server())  # fails mid-send
            world.llm.script(MODEL, intent(False), Text(f"telegram {i}"))
            world.tg.push(world.tg.message(ada, f"telegram message {i}"))
            # This round's attempt (each earlier failure was resent once since).
            await world.tg.wait_calls("sendMessage", i + 1 + failed_sends, ok_only=False)
            world.llm.script(MODEL, intent(False), Text(f"nostr {i}"))
            note = sdk.EventBuilder(sdk.Kind(1), f"nostr message {i}")
            await world.nostr.send(note.tags([sdk.Tag.public_key(bot)]).finalize(world.nostr.keys))
            answers["nostr"].append((await world.nostr.next_event()).content())
            door = DOORS[i % 3]
            if (i // 3) % 2 == 0:
                world.system.kill(door, f"fault injection {i}")
            else:  # an exception injected into its receive path
                await world.system.lookup(door).tell(object())
            await restarted(events, door)
            if failing:  # the restarted Telegram door resends the failed reply, once
                await world.tg.wait_calls("sendMessage", i + 1)
                failed_sends += 1
            if door == "/connectors/http":
                web.http = httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{http_port(world.system)}", timeout=15
                )
                clients.append(web.http)
    sent = await world.tg.wait_calls("sendMessage", ROUNDS)
    answers["telegram"] = [c.params["text"] for c in sent]
    assert answers == {
        door: [f"{door} {i}" for i in range(ROUNDS)] for door in ("web", "telegram", "nostr")
    }
    assert len(world.tg.of("sendMessage")) == ROUNDS + failed_sends  # each failure resent once
    with trio.move_on_after(1):  # no Nostr reply arrives twice
        extra = await world.nostr.next_event(timeout=5)
        raise AssertionError(f"a Nostr reply arrived twice: {extra.content()!r}")
    feed = await web.http.get("/api/events", params={"after": 0}, headers=web.auth)
    assert [e["text"] for e in feed.json()["events"]] == answers["web"]
    restarts = {child.path: child.restarts for child in world.system.snapshot().children}
    assert restarts == {
        "/storage": 0, "/brain": 0, "/users": 0, "/connectors": 0, "/reconciler": 0, "/debug": 0,
    }  # fmt: skip
    assert all(u.restarts == 0 for u in world.system.snapshot("/users").children)
    assert {d: world.system.inspect(d).restarts for d in DOORS} == {d: 3 for d in DOORS}
    for client in clients:
        await client.aclose()
