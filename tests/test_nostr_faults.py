"""Crash isolation on the Nostr door (issue 6), and the "reply OK" action end to end.

The world of tests/test_nostr_e2e.py: the application's tree on a real relay,
nostr-sdk's LocalRelay and a stub relay, with a nostr-sdk client. Between
rounds of mentions the Nostr door, or one of its relay children, is killed.
Afterwards: every mention was answered exactly once, and nothing outside
``/connectors`` restarted.
"""

from __future__ import annotations

import trio

from tests.fake_llm import Text
from tests.test_nostr_e2e import MODEL, World, intent, mention, world  # noqa: F401

ROUNDS = 6


async def restarted(events: trio.MemoryReceiveChannel, path: str) -> None:  # type: ignore[type-arg]
    with trio.fail_after(15):
        async for event in events:
            if event.path == path and event.kind == "restarted":
                return


async def test_the_nostr_door_killed_between_mentions_answers_each_once(
    world: World,  # noqa: F811
) -> None:
    relay_children = [c.path for c in world.system.snapshot("/connectors/nostr").children]
    assert relay_children, "the door has one child per relay"
    answers = []
    with world.system.subscribe() as events:
        for i in range(ROUNDS):
            world.fake.script(MODEL, intent(False), Text(f"answer {i}"))
            await world.client.send(mention(world, f"mention {i}"))
            answers.append((await world.client.next_event()).content())
            # Alternate: the whole door, then one relay's child.
            path = "/connectors/nostr" if i % 2 == 0 else relay_children[i % len(relay_children)]
            world.system.kill(path, f"fault injection {i}")
            await restarted(events, path)
    assert answers == [f"answer {i}" for i in range(ROUNDS)]
    with trio.move_on_after(1):  # nothing more arrives: no reply was sent twice
        extra = await world.client.next_event(timeout=5)
        raise AssertionError(f"a reply arrived twice: {extra.content()!r}")
    thread = await world.store.get_thread("nostr", world.client.pubkey)
    assert thread is not None
    replies = await world.store.replies_after(thread.id)
    assert [m.text for m in replies] == answers and all(m.sent_at for m in replies)
    restarts = {child.path: child.restarts for child in world.system.snapshot().children}
    assert restarts["/users"] == 0 and restarts["/brain"] == 0 and restarts["/connectors"] == 0


async def test_replying_ok_on_nostr_runs_the_plan(world: World) -> None:  # noqa: F811
    world.fake.script(MODEL, intent(True), Text("Hello, as planned."))
    await world.client.send(mention(world, "greet me, carefully"))
    ack = await world.client.next_event()
    assert ack.content().startswith("Understood:")
    await world.client.send(mention(world, "OK"))
    answer = await world.client.next_event()
    assert answer.content() == "Hello, as planned."
