"""The Telegram webhook path (issue 10, item 8): durable and 200 first, enrichment after.

The application's own tree (``build_root``, as ``greenroom run`` makes it, on a
SQLite Store) with the Telegram door in webhook mode against
tests/fake_telegram.py over HTTP, and the model (classify, answer, and the
brain's vision call that describes photos) against tests/fake_llm.py. The
vision call's answer is gated by the test (``gated``), so "the 200 came before
the vision call finished" is shown by holding it, not by timing. Real clock
(real sockets): every wait is on an event or a recorded call, under a hang
guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from protocols import Ping, Reconcile
from protocols.telegram import Identify
from storage import Store
from supervision import ActorSystem, EntityRef
from tests.appkit import open_app
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, Gated, Recorded, Text, ToolUse, gated
from tests.fake_telegram import FakeTelegram
from tests.kit import until
from tests.telegramkit import SECRET, connector, telegram_settings

MODEL = "claude-a"
GOOD = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
SEEN = {"description": "A red bicycle by a wall.", "text": "", "objects": ["bicycle"]}
#: Real seconds any one wait may take before the test fails as hung.
HANG_S = 15.0


#: The vision call's answer (the brain's describe_image, through the fake model).
VISION = ToolUse("report_image", SEEN)


def tool(request: Recorded) -> str | None:
    """The forced tool of a model request (``report_image`` for the vision call)."""
    choice = request.body.get("tool_choice") or {}
    return choice.get("name") if isinstance(choice, dict) else None


@dataclass
class World:
    system: ActorSystem
    store: Store
    llm: FakeLLM
    tg: FakeTelegram
    http: httpx.AsyncClient

    async def post(self, update: dict[str, Any]) -> httpx.Response:
        with trio.fail_after(HANG_S):
            return await self.http.post("/telegram/webhook", json=update, headers=GOOD)

    async def sent(self, n: int) -> list[str]:
        calls = await self.tg.wait_calls("sendMessage", n, within=HANG_S)
        return [c.params["text"] for c in calls]

    def vision_calls(self) -> int:
        return sum(tool(r) == "report_image" for r in self.llm.requests)

    def other_model_calls(self) -> list[Recorded]:
        return [r for r in self.llm.requests if tool(r) != "report_image"]


async def arrived(call: Gated) -> None:
    with trio.fail_after(HANG_S):
        await call.arrived.wait()


@pytest.fixture
async def world(tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram) -> AsyncIterator[World]:
    """The application's own tree (``build_root``: the brain describes photos through
    the fake model) with the Telegram door in webhook mode."""
    base = settings_for(fake_llm, cascade=["a"])
    settings = telegram_settings(tg, tmp_path, base, mode="webhook")
    async with open_app(settings, tmp_path) as (system, store, http):
        await tg.wait_calls("setWebhook", 1, within=HANG_S)
        yield World(system, store, fake_llm, tg, http)


async def _message_of(store: Store, chat: str = "4242") -> Any:
    thread = await store.get_thread("telegram", chat)
    assert thread is not None
    return await store.recent_messages(thread.id)


async def test_a_photo_is_answered_200_before_its_vision_call_and_handed_over_after(
    world: World,
) -> None:
    """Issue 10, item 8: the webhook answers 200 once the photo message is durable,
    while the vision call is still running; the user's actor is told only after
    the description is stored, so the model reads it. (The old door described the
    photo before storing it and before answering: this POST hung on the describer.)"""
    vision = gated(VISION)
    world.llm.script(MODEL, vision, intent(False), Text("Nice bike!"))
    update = world.tg.photo(world.tg.user(), "what do you think?", image=b"\xff\xd8\xff jpeg")
    answer = await world.post(update)
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    [stored] = await _message_of(world.store)  # durable before the 200
    assert stored.text == "what do you think?\n\n[photo]"
    await arrived(vision)  # the vision call runs after the 200 ...
    assert await world.store.job_for_message(stored.id) is None  # ... and nobody was told
    assert world.other_model_calls() == []
    vision.gate.set()
    assert await world.sent(1) == ["Nice bike!"]
    # Described before any other model call.
    assert [tool(r) for r in world.llm.requests] == ["report_image", "report_intent", None]
    first = (await _message_of(world.store))[0]
    assert first.text == "what do you think?\n\n[photo: A red bicycle by a wall.]"
    assert [a.kind for a in first.artifacts] == ["image_json"]
    assert "A red bicycle by a wall." in str(world.other_model_calls()[0].body["messages"])
    assert len(world.tg.of("getFile")) == 1


async def test_a_redelivered_photo_does_no_second_download_or_vision_call(world: World) -> None:
    """Issue 10, item 8: Telegram retries a webhook it thinks failed. The redelivery
    (same update_id) is found in storage first: 200 at once, no getFile, no vision
    call, whether the first delivery is still being enriched or long answered. (The
    old door downloaded and described every delivery before its duplicate check.)"""
    vision = gated(VISION)
    world.llm.script(MODEL, vision, intent(False), Text("A bicycle."))
    update = world.tg.photo(world.tg.user(), "look", image=b"\xff\xd8\xff jpeg")
    assert (await world.post(update)).status_code == 200
    await arrived(vision)
    again = await world.post(dict(update))  # while the first is being described
    assert again.status_code == 200
    vision.gate.set()
    assert await world.sent(1) == ["A bicycle."]
    late = await world.post(dict(update))  # after it was answered
    assert late.status_code == 200
    assert world.vision_calls() == 1
    assert len(world.tg.of("getFile")) == 1
    # An ask after the route's tells is handled after them: the counts are final.
    await world.system.lookup("/connectors/telegram").ask(Identify())
    assert connector(world.system).counts["duplicate"] == 2
    assert world.llm.pending() == {}  # no second classify: answered once
    assert [p["text"] for p in world.tg.sent] == ["A bicycle."]


async def test_a_photo_delivered_twice_is_downloaded_and_described_once(world: World) -> None:
    """Issue 10, item 8, with a vision call that answers at once: the second delivery
    of an answered photo update is 200 with no getFile and no vision call. (The old
    door downloaded and described it again before it found the duplicate.)"""
    world.llm.script(MODEL, VISION, intent(False), Text("Once."))
    update = world.tg.photo(world.tg.user(), "twice", image=b"\xff\xd8\xff jpeg")
    assert (await world.post(update)).status_code == 200
    assert await world.sent(1) == ["Once."]
    begun: list[int] = []
    begin_held = world.store.begin_held

    async def counted(message_id: int) -> Any:
        begun.append(message_id)
        return await begin_held(message_id)

    world.store.begin_held = counted  # type: ignore[method-assign]
    assert (await world.post(dict(update))).status_code == 200
    await world.system.lookup("/connectors/telegram").ask(Identify())  # after the route's tell
    door = connector(world.system)
    assert door.handover is not None
    handover = door.handover
    await until(lambda: not handover.waiting)
    assert (world.vision_calls(), len(world.tg.of("getFile"))) == (1, 1)
    assert [p["text"] for p in world.tg.sent] == ["Once."]
    # Review of issue 10: a redelivery of a message released long ago went back into
    # the door's enrichment queue (held messages have no job, released ones do).
    assert begun == []


async def test_a_door_killed_between_200_and_enrichment_enriches_at_restart_once(
    world: World,
) -> None:
    """Issue 10, item 8: the Telegram door dies after the 200, mid vision call. The
    message is held in storage, so the restarted door enriches it again (its
    resume at connect), releases it and hands it over: answered exactly once."""
    vision = gated(VISION)  # never released: the crash interrupts it
    world.llm.script(MODEL, vision, VISION, intent(False), Text("Seen it."))
    update = world.tg.photo(world.tg.user(), "and this?", image=b"\xff\xd8\xff jpeg")
    assert (await world.post(update)).status_code == 200
    await arrived(vision)  # the first attempt hangs in the vision call
    getme = len(world.tg.of("getMe"))
    world.system.kill("/connectors/telegram", "test: a crash mid-enrichment")
    await world.tg.wait_calls("getMe", getme + 1, within=HANG_S)  # restarted
    assert await world.sent(1) == ["Seen it."]
    assert world.vision_calls() == 2  # the interrupted call, then the restart's
    assert world.system.inspect("/connectors/telegram").restarts == 1
    [photo, reply] = await _message_of(world.store)
    assert photo.text == "and this?\n\n[photo: A red bicycle by a wall.]"
    assert [a.kind for a in photo.artifacts] == ["image_json"]  # one attempt finished
    assert reply.text == "Seen it."
    assert await world.store.held_messages("telegram") == []
    assert world.llm.pending() == {}


@pytest.mark.parametrize("woken", [False, True], ids=["quiet", "woken"])
async def test_a_question_after_a_photo_waits_for_its_description(
    world: World, woken: bool
) -> None:
    """Issue 10, item 8: "photo, then 'what is this?'". The text is stored (and
    answered 200) at once, but handed over only after the photo before it in the
    chat was enriched, so its answer reads the description; the photo itself is
    then context, not a second job (the newest message wins, as before).

    ``woken``, from the review of issue 10: the order was kept only in the door's
    memory, so anything that woke the author's actor meanwhile (a message in
    another chat, an OK, a restart, the reconciler: here a Ping and a sweep) had
    the question answered before the photo was described. The Store now hands out
    no job behind its author's held message in the same chat."""
    vision = gated(VISION)
    world.llm.script(MODEL, vision, intent(False), Text("It is a bicycle."))
    ada = world.tg.user()
    assert (await world.post(world.tg.photo(ada, image=b"\xff\xd8\xff jpeg"))).status_code == 200
    await arrived(vision)
    assert (await world.post(world.tg.message(ada, "what is this?"))).status_code == 200
    photo, question = await _message_of(world.store)
    assert question.text == "what is this?"
    if woken:
        actor = EntityRef(world.system.lookup("/users"), f"telegram:{ada['id']}")
        await actor.ask(Ping(), timeout=HANG_S)
        await world.system.lookup("/reconciler").ask(Reconcile(), timeout=HANG_S)
        job = await world.store.job_for_message(question.id)
        assert job is not None and job.status == "queued"
    assert world.other_model_calls() == []  # the question waits behind the photo
    vision.gate.set()
    assert await world.sent(1) == ["It is a bicycle."]
    photo_job = await world.store.job_for_message(photo.id)
    assert photo_job is not None and photo_job.status == "canceled"
    assert "A red bicycle by a wall." in str(world.other_model_calls()[0].body["messages"])
    assert world.llm.pending() == {}


async def test_bodies_the_route_refuses_store_nothing(world: World) -> None:
    """The route parses untrusted input before it stores: a JSON array and a message
    storage cannot hold (a NUL) are 400, as before, and nothing is stored."""
    ada = world.tg.user()
    for body in ([], world.tg.message(ada, "nul \x00 here")):
        with trio.fail_after(HANG_S):
            answer = await world.http.post("/telegram/webhook", json=body, headers=GOOD)
        assert answer.status_code == 400 and answer.json()["error"] == "malformed_update"
    assert await world.store.get_thread("telegram", "4242") is None
