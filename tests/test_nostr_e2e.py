"""The Nostr door end to end: the real tree, a real relay, an independent client.

Everything is real but the model: ``build_root`` with the Nostr door on three
relays — nostr-relay (PyPI, its own venv, a real process on loopback),
nostr-sdk's in-memory LocalRelay, and a stub relay that passes on events no
real relay would (a forged signature) — a SQLite Store and the fake LLM. A
nostr-sdk client, connected to both real relays, mentions and DMs the bot and
checks that the answers verify and decrypt on its side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nostr_sdk as sdk
import pytest
import trio

from actors.connectors.nostr import OK_HINT, Hub
from config import Settings
from protocols.nostr import parse_event, public_key_of, sign, verify
from storage import Store
from supervision import ActorSystem
from tests.appkit import open_app
from tests.brainkit import intent as _intent
from tests.brainkit import settings_for
from tests.fake_llm import FakeLLM, Text, ToolUse
from tests.nostrkit import (
    AsyncioThread,
    RelayProcess,
    SdkClient,
    StubRelay,
    start_local_relay,
)

MODEL = "claude-a"


def intent(needs_confirmation: bool) -> ToolUse:
    return _intent(needs_confirmation, "They say hello.", "Greet them back.", kind="question")


@dataclass
class World:
    system: ActorSystem
    store: Store
    fake: FakeLLM
    hub: Hub
    client: SdkClient
    aio: AsyncioThread
    local: Any  # nostr-sdk LocalRelay
    stub: StubRelay
    relays: list[str]
    me: str  # the bot's public key, fresh per test (the real relay keeps old events)

    def bot(self) -> sdk.PublicKey:
        return sdk.PublicKey.parse(self.me)


def nostr_hub(system: ActorSystem) -> Hub:
    for cell in system.cells():
        if cell.path == "/connectors/nostr":
            hub = getattr(cell.actor, "hub", None)
            assert isinstance(hub, Hub)
            return hub
    raise AssertionError("no /connectors/nostr")


@pytest.fixture
async def world(
    tmp_path: Path,
    fake_llm: FakeLLM,
    nostr_relay: RelayProcess,
    nursery: trio.Nursery,
) -> AsyncIterator[World]:
    bot_secret = bytes.fromhex(sdk.Keys.generate().secret_key().to_hex())
    aio = AsyncioThread()
    local, local_url = await start_local_relay(aio)
    stub = StubRelay()
    await nursery.start(stub.serve)
    relays = [nostr_relay.url, local_url, stub.url]
    base = settings_for(fake_llm)
    settings = Settings.model_validate(
        {
            **base.model_dump(),
            "data_dir": str(tmp_path),
            "http": {"port": 0},
            "anthropic_api_key": "sk-ant-test-key",
            "nostr_private_key": bot_secret.hex(),
            "nostr": {"relays": relays, "backoff_min_s": 0.05, "backoff_max_s": 0.5,
                      "publish_timeout_s": 5},
        }
    )  # fmt: skip
    client = SdkClient(aio)
    try:
        async with open_app(settings, tmp_path) as (system, store, _):
            await client.connect([nostr_relay.url, local_url])
            await stub.wait_subscribed()
            yield World(system, store, fake_llm, nostr_hub(system), client, aio, local,
                        stub, relays, public_key_of(bot_secret))  # fmt: skip
            await client.close()
    finally:
        local.shutdown()
        aio.close()


def mention(world: World, text: str) -> sdk.Event:
    builder = sdk.EventBuilder(sdk.Kind(1), text).tags([sdk.Tag.public_key(world.bot())])
    return builder.finalize(world.client.keys)


async def test_a_mention_sent_to_two_relays_is_answered_once_with_nip10_tags(
    world: World,
) -> None:
    world.fake.script(MODEL, intent(False), Text("Hello back!"))
    note = mention(world, "hello @bot")
    assert len(await world.client.send(note)) == 2  # both real relays took it
    reply = await world.client.next_event()
    assert reply.verify() and reply.author().to_hex() == world.me
    assert reply.kind().as_u16() == 1 and reply.content() == "Hello back!"
    tags = [t.to_vec() for t in reply.tags()]
    assert ["e", note.id().to_hex(), "", "root"] in tags
    assert ["p", world.client.pubkey] in tags
    counters = await world.hub.wait_until(lambda c: c.received + c.duplicates >= 2)
    assert (counters.received, counters.duplicates) == (1, 1)
    thread = await world.store.get_thread("nostr", world.client.pubkey)
    assert thread is not None
    texts = [(m.role, m.text) for m in await world.store.recent_messages(thread.id)]
    assert texts == [("user", "hello @bot"), ("assistant", "Hello back!")]
    await world.hub.wait_until(lambda c: c.published >= 1)  # every relay answered
    assert not await world.store.unsent_replies("nostr")  # marked sent after an OK
    assert [e["id"] for e in world.stub.published] == [reply.id().to_hex()]


async def test_an_ack_asks_to_reply_ok(world: World) -> None:
    world.fake.script(MODEL, intent(True))
    await world.client.send(mention(world, "do something big"))
    ack = await world.client.next_event()
    assert ack.content().startswith("Understood: They say hello. Will: Greet them back.")
    assert ack.content().endswith(OK_HINT)


async def test_a_nip04_dm_is_answered_in_nip04(world: World) -> None:
    world.fake.script(MODEL, intent(False), Text("A private hello."))
    client = world.client
    content = sdk.nip04_encrypt(client.keys.secret_key(), world.bot(), "psst, bot")
    dm = sdk.EventBuilder(sdk.Kind(4), content).tags([sdk.Tag.public_key(world.bot())])
    await client.send(dm.finalize(client.keys))
    reply = await client.next_event()
    assert reply.verify() and reply.kind().as_u16() == 4
    text = sdk.nip04_decrypt(client.keys.secret_key(), world.bot(), reply.content())
    assert text == "A private hello."


async def test_a_nip17_dm_is_answered_in_a_gift_wrap(world: World) -> None:
    world.fake.script(MODEL, intent(False), Text("Wrapped hello."))
    client = world.client
    await client.send(sdk.nip17_make_private_msg(client.keys, world.bot(), "wrapped psst"))
    wrap = await client.next_event()
    assert wrap.verify() and wrap.kind().as_u16() == 1059
    opened = sdk.UnwrappedGift.from_gift_wrap(client.keys, wrap)
    assert opened.sender().to_hex() == world.me
    assert (opened.rumor().kind().as_u16(), opened.rumor().content()) == (14, "Wrapped hello.")
    messages = await world.store.recent_messages(
        (await world.store.get_thread("nostr", client.pubkey)).id  # type: ignore[union-attr]
    )
    assert messages[0].text == "wrapped psst" and messages[0].raw["protocol"] == "nip17"


async def test_a_forged_signature_is_dropped_and_counted(world: World) -> None:
    good = sign(world.client.secret(), 1, "hi", [["p", world.me]]).to_dict()
    forged = {**good, "content": "send me your money"}  # id no longer matches
    bad_sig = {**good, "sig": good["sig"][:-2] + ("00" if good["sig"][-2:] != "00" else "11")}
    await world.stub.push(forged)
    await world.stub.push(bad_sig)
    counters = await world.hub.wait_until(lambda c: c.invalid >= 2)
    assert counters.invalid == 2 and counters.received == 0
    assert await world.store.get_thread("nostr", world.client.pubkey) is None


async def test_one_relay_down_does_not_block_the_others(world: World) -> None:
    world.local.shutdown()  # the in-memory relay goes away for good
    await world.aio.run(
        lambda: world.client.client.remove_relay(sdk.RelayUrl.parse(world.relays[1]))
    )
    world.fake.script(MODEL, intent(False), Text("Still here."))
    await world.client.send(mention(world, "are you there?"))
    reply = await world.client.next_event()
    assert reply.content() == "Still here."
    await world.hub.wait_until(lambda c: c.published >= 1)
    assert not await world.store.unsent_replies("nostr")


async def test_our_reply_verifies_with_our_own_parser(world: World) -> None:
    world.fake.script(MODEL, intent(False), Text("Check me."))
    await world.client.send(mention(world, "check"))
    reply = await world.client.next_event()
    assert verify(parse_event(json.loads(reply.as_json()))).pubkey == world.me
