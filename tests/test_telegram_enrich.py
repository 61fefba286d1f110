"""Held media messages (issue 10, item 8): the Store's hold, and the door's enrichment.

The Store part runs against both backends (``store``: SQLite and a fresh
Postgres database). The door part runs the real TelegramConnector against
tests/fake_telegram.py through ``httpx.MockTransport`` on trio's virtual clock
(so a step timeout of 60 s takes no time), with a recorder standing in for
the user actors under ``/users``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from actors.connectors.telegram import BotIdentity, Incoming, TelegramConnector, parse_update
from protocols import Inbound, Received
from protocols.telegram import TelegramStored, to_inbound
from storage import IllegalTransition, IngestResult, NotFound, Store, open_store
from supervision import Actor, ActorSystem, ChildSpec, Directory, Supervisor
from tests.fake_telegram import BOT, FakeTelegram
from tests.telegramkit import telegram_settings

ME = BotIdentity(BOT["id"], BOT["username"])
SEEN = {"description": "A red bicycle by a wall.", "text": "", "objects": ["bicycle"]}
HANG_S = 20.0


def inbound(n: int, chat: str = "100", text: str = "") -> Inbound:
    return Inbound(platform="telegram", chat_id=chat, user_id="7", message_id=f"u{n}", text=text)


# ---------------------------------------------------------------------- the Store's hold
async def test_a_held_message_has_no_job_until_released(store: Store) -> None:
    """Issue 10, item 8: a held message is durable and deduplicated, but has no job
    (nothing claims or re-dispatches it) until its release sets its final text and
    creates its job, once."""
    message, thread, created = await store.ingest_held(inbound(1, text="[photo]"))
    assert created and message.text == "[photo]" and thread.chat_id == "100"
    again, _, created_again = await store.ingest_held(inbound(1, text="[photo]"))
    assert again.id == message.id and not created_again
    assert await store.job_for_message(message.id) is None
    assert await store.claim_jobs(10) == [] and await store.queued_work() == []
    assert await store.recover() == (0, 0)
    assert await store.held_messages("telegram") == [(message.id, "100")]
    assert await store.held_messages("nostr") == []
    begun = await store.begin_held(message.id)
    assert begun is not None and begun[1] == 1 and begun[0].id == message.id
    assert (await store.begin_held(message.id) or (None, 0))[1] == 2
    released = await store.release_held(message.id, "[photo: a cat]")
    assert released.created and released.job.status == "queued"
    assert released.message.text == "[photo: a cat]" and released.thread.id == thread.id
    assert await store.held_messages("telegram") == []
    assert await store.begin_held(message.id) is None
    twice = await store.release_held(message.id, "other")
    assert not twice.created and twice.job.id == released.job.id
    assert (await store.get_message(message.id)).text == "[photo: a cat]"
    [claimed] = await store.claim_jobs(10)
    assert claimed.id == released.job.id
    # A redelivery of a released message is still just a duplicate.
    assert not (await store.ingest_held(inbound(1)))[2]


async def test_a_held_message_released_after_a_newer_one_is_born_superseded(store: Store) -> None:
    """Issue 10, item 8: a photo enriched while a later text of its chat was stored
    gets its job already canceled: the newest message wins by message order, as a
    thread's claim decides, not by which job happened to be made last."""
    photo, _, _ = await store.ingest_held(inbound(1, text="[photo]"))
    other_chat, _, _ = await store.ingest_held(inbound(3, chat="200", text="[photo]"))
    question = await store.ingest(inbound(2, text="what is this?"))
    released = await store.release_held(photo.id, "[photo: a cat]")
    assert released.created and released.job.status == "canceled"
    assert released.job.error == "superseded by a newer message"
    other = await store.release_held(other_chat.id, "x")
    assert other.job.status == "queued"  # another chat: nothing newer there
    assert [j.id for j in await store.claim_jobs(10)] == [question.job.id, other.job.id]


async def test_a_text_after_a_held_photo_is_not_handed_out_before_the_photo_is_released(
    store: Store,
) -> None:
    """Review of issue 11 (an ordering bug): a photo is stored held (no job) until
    its door has described it; a text its author sent right after in the same chat
    got a queued job at once, and anything that woke the author's actor (a message
    in another chat, an OK, a restart, the reconciler) claimed and answered the text
    before the photo was described. Now the Store hands out no job while an
    earlier message of the same author in the same chat is held; the release
    makes it claimable. Other chats and other authors are not held back."""
    before = await store.ingest(inbound(0, text="hello"))  # earlier than the photo: free
    photo, _, _ = await store.ingest_held(inbound(1, text="[photo]"))
    text = await store.ingest(inbound(2, text="what is this?"))
    elsewhere = await store.ingest(inbound(3, chat="200", text="hi"))  # the author's other chat
    bob = await store.ingest(
        Inbound(platform="telegram", chat_id="100", user_id="bob", message_id="u4", text="hey")
    )  # another author in the same (group) chat
    free = [before.job.id, elsewhere.job.id, bob.job.id]
    assert [w.job_id for w in await store.queued_work()] == free
    mine = await store.claim_jobs(10, thread_id=text.thread.id, author="telegram:7")
    assert [j.id for j in mine] == [before.job.id]
    assert [j.id for j in await store.claim_jobs(10)] == free[1:]
    assert await store.claim_jobs(10) == [] and await store.queued_work() == []
    released = await store.release_held(photo.id, "[photo: a cat]")
    assert released.job.status == "canceled"  # the newer text answers, with it in context
    assert [w.job_id for w in await store.queued_work()] == [text.job.id]
    [claimed] = await store.claim_jobs(10, thread_id=text.thread.id, author="telegram:7")
    assert claimed.id == text.job.id


async def test_in_a_group_a_held_photo_is_its_authors_work(store: Store) -> None:
    """Issue 10 item 2 with item 8: a released job belongs to its author (the old
    release made a job with no author, which its author's actor could not claim),
    and another member's newer message does not supersede it."""
    alice = Inbound(platform="telegram", chat_id="g", user_id="alice", message_id="u1")
    photo, _, _ = await store.ingest_held(alice)
    bob = await store.ingest(
        Inbound(platform="telegram", chat_id="g", user_id="bob", message_id="u2", text="hi")
    )
    released = await store.release_held(photo.id, "[photo: a cat]")
    assert released.job.status == "queued"
    [mine] = await store.claim_jobs(10, thread_id=bob.thread.id, author="telegram:alice")
    assert mine.id == released.job.id
    [theirs] = await store.claim_jobs(10, thread_id=bob.thread.id, author="telegram:bob")
    assert theirs.id == bob.job.id


async def test_releasing_what_was_never_held(store: Store) -> None:
    """A plain inbound message is "released" as it is; a reply (no job) is NotFound."""
    plain = await store.ingest(inbound(1, text="hi"))
    result = await store.release_held(plain.message.id, "changed")
    assert not result.created and result.job.id == plain.job.id
    assert (await store.get_message(plain.message.id)).text == "hi"
    reply, _ = await store.record_reply(plain.thread.id, "hello", "r1")
    with pytest.raises(NotFound):
        await store.release_held(reply.id, "x")
    assert await store.begin_held(reply.id) is None
    with pytest.raises(ValueError, match="NUL"):
        await store.release_held(plain.message.id, "nul\x00")


async def test_ingesting_a_held_messages_key_fails_that_item_alone(store: Store) -> None:
    """Review of issue 11: ``ingest`` of a held message's key (a key is ingested one
    way only) raised a bare KeyError from the job lookup, which failed the whole
    group-commit batch's transaction. Now that item alone gets IllegalTransition
    naming the message, and its batch-mates are stored."""
    held, _, _ = await store.ingest_held(inbound(1, text="[photo]"))
    results: dict[int, IngestResult | Exception] = {}

    async def deliver(n: int) -> None:
        try:
            results[n] = await store.ingest(inbound(n, text="hi"))
        except Exception as exc:
            results[n] = exc

    async with trio.open_nursery() as nursery:
        for n in range(1, 6):
            nursery.start_soon(deliver, n)
    error = results.pop(1)
    assert isinstance(error, IllegalTransition)
    assert (error.what, error.ident, error.current, error.wanted) == (
        "message", held.id, "held", "queued",
    )  # fmt: skip
    assert all(isinstance(r, IngestResult) and r.created for r in results.values())
    with pytest.raises(IllegalTransition, match="'held'; it cannot become 'queued'"):
        await store.ingest(inbound(1))  # alone, too
    assert await store.held_messages("telegram") == [(held.id, "100")]  # still held


# ---------------------------------------------------------------------- the door's enrichment
class Recorder(Actor):
    """A user actor that records the ``Received`` it is told."""

    def __init__(self, key: str, seen: list[Received], lot: trio.lowlevel.ParkingLot) -> None:
        self.key, self.seen, self.lot = key, seen, lot

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, Received):
            self.seen.append(msg)
            self.lot.unpark_all()
        return None


class Threads:
    """What the recorders under ``/users`` were told."""

    def __init__(self) -> None:
        self.seen: list[Received] = []
        self.lot = trio.lowlevel.ParkingLot()

    async def wait(self, n: int) -> list[Received]:
        while len(self.seen) < n:
            await self.lot.park()
        return self.seen


class Vision:
    """The describer: counts calls; ``hang`` makes every call wait forever."""

    def __init__(self, *, hang: bool = False) -> None:
        self.calls = 0
        self.hang = hang

    async def __call__(self, key: str, image: bytes, media_type: str) -> dict[str, Any] | None:
        self.calls += 1
        if self.hang:
            await trio.sleep_forever()
        return dict(SEEN)


@pytest.fixture
async def sqlite(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Store]:
    done = threading.Event()

    async def guard() -> None:  # a hung test fails in real time, whatever the virtual clock
        if not await trio.to_thread.run_sync(done.wait, HANG_S, abandon_on_cancel=True):
            raise AssertionError(f"hang guard: the test ran for more than {HANG_S} real seconds")

    nursery.start_soon(guard)
    try:
        async with open_store(None, tmp_path) as st:
            yield st
    finally:
        done.set()  # the guard's thread ends with the test, not HANG_S later


async def start_door(
    system: ActorSystem, tmp_path: Path, tg: FakeTelegram, store: Store, vision: Vision, **conf: Any
) -> Threads:
    """/users (recorders) and /telegram under the root (webhook mode unless ``conf``
    says otherwise, so that nothing polls)."""
    threads = Threads()
    settings = telegram_settings(tg, tmp_path, **{"mode": "webhook", **conf})
    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    users = Directory(lambda key: Recorder(key, threads.seen, threads.lot), idle_timeout_s=None)
    await root.actor.start_child(ChildSpec("users", lambda: users))
    door = ChildSpec(
        "telegram",
        lambda: TelegramConnector(settings, store, transport=tg.transport(), describe=vision),
    )
    await root.actor.start_child(door)
    return threads


async def held_photo(store: Store, tg: FakeTelegram, caption: str = "look") -> tuple[int, Incoming]:
    """A photo update stored held, as the webhook route stores it."""
    update = tg.photo(tg.user(), caption, image=b"\xff\xd8\xff jpeg")
    inc = parse_update(update, ME)
    assert isinstance(inc, Incoming)
    made = to_inbound(inc, update)
    assert isinstance(made, Inbound)
    message, _, _ = await store.ingest_held(made)
    return message.id, inc


async def test_a_restart_reuses_the_artifact_an_interrupted_attempt_wrote(
    system: ActorSystem, tmp_path: Path, sqlite: Store
) -> None:
    """Issue 10, item 8: a crash after the description was stored but before the
    release. The restarted door finds the message still held, with its artifact:
    it releases and hands it over without downloading or calling the vision model."""
    tg, vision = FakeTelegram(), Vision()
    message_id, _ = await held_photo(sqlite, tg)
    assert await sqlite.begin_held(message_id) is not None  # the interrupted attempt
    await sqlite.add_artifact(message_id, "image_json", {**SEEN, "width": 1280})
    threads = await start_door(system, tmp_path, tg, sqlite, vision)
    [received] = await threads.wait(1)
    assert received.message_id == message_id and received.user_id == "4242"
    assert received.text == "look\n\n[photo: A red bicycle by a wall.]"
    assert vision.calls == 0 and tg.of("getFile") == []
    stored = await sqlite.get_message(message_id)
    assert [a.kind for a in stored.artifacts] == ["image_json"]  # no second artifact
    assert await sqlite.held_messages("telegram") == []


async def test_a_vision_call_that_never_answers_is_cut_at_the_step_timeout(
    system: ActorSystem, tmp_path: Path, sqlite: Store
) -> None:
    """Issue 10, item 8: every enrichment step is bounded (``enrich_timeout_s``, 60 s
    by default, virtual here). A polled photo's vision call hangs; the poller
    goes on storing the next message, which waits behind the photo (its chat's
    order) until the step timed out; then the photo goes on with its metadata
    and the question is handed over with it in context. (The old door awaited
    the vision call without a bound, inside the poll loop: everything hung.)"""
    tg, vision = FakeTelegram(), Vision(hang=True)
    tg.push(tg.photo(tg.user(), image=b"\xff\xd8\xff jpeg"))
    with structlog.testing.capture_logs() as logs:
        threads = await start_door(system, tmp_path, tg, sqlite, vision, mode="polling")
        tg.push(tg.message(tg.user(), "still there?"))
        # The photo's release is told too (its job was born canceled, the question
        # being newer): that wakes the author's actor, which claims the question.
        [photo_told, told] = await threads.wait(2)
    assert told.text == "still there?"
    assert vision.calls == 1
    cut = [e for e in logs if e["event"] == "telegram_photo_not_described"]
    assert [e["error"] for e in cut] == ["timeout"]
    thread = await sqlite.get_thread("telegram", "4242")
    assert thread is not None
    photo, question = await sqlite.recent_messages(thread.id)
    assert question.id == told.message_id and photo.text == "[photo]"
    assert photo_told.message_id == photo.id
    assert [(a.kind, a.content["kind"]) for a in photo.artifacts] == [("file_meta", "photo")]
    photo_job = await sqlite.job_for_message(photo.id)
    assert photo_job is not None and photo_job.status == "canceled"  # the question is newer


async def test_a_message_that_keeps_crashing_the_door_goes_on_unenriched(
    system: ActorSystem, tmp_path: Path, sqlite: Store
) -> None:
    """Issue 10, item 8: the re-enrichment at start is bounded. A message whose
    enrichment was interrupted ``enrich_attempts`` times is released without
    another download, with a note, so it cannot crash the door forever."""
    tg, vision = FakeTelegram(), Vision()
    message_id, _ = await held_photo(sqlite, tg, caption="again")
    for _ in range(2):
        assert await sqlite.begin_held(message_id) is not None  # two interrupted attempts
    threads = await start_door(system, tmp_path, tg, sqlite, vision, enrich_attempts=2)
    [received] = await threads.wait(1)
    assert received.text == "again\n\n[photo not read: reading it was interrupted too often]"
    assert vision.calls == 0 and tg.of("getFile") == []


async def test_held_messages_of_one_chat_are_handed_over_in_order(
    system: ActorSystem, tmp_path: Path, sqlite: Store
) -> None:
    """Issue 10, item 8: two photos of one chat that a restarted door enriches are
    released and handed over in the order they came (one chat's queue), each
    with its own description."""
    tg, vision = FakeTelegram(), Vision()
    first, _ = await held_photo(sqlite, tg, caption="one")
    second, _ = await held_photo(sqlite, tg, caption="two")
    threads = await start_door(system, tmp_path, tg, sqlite, vision)
    told = await threads.wait(2)
    assert [r.message_id for r in told] == [first, second]
    assert [r.text.split("\n")[0] for r in told] == ["one", "two"]
    assert vision.calls == 2


async def test_typing_is_shown_once_per_chat_while_it_lasts(
    system: ActorSystem, tmp_path: Path, sqlite: Store
) -> None:
    """Issue 10, item 8: "typing" is a best-effort nicety after the 200. One
    sendChatAction shows it for about 5 s, so a chat is sent one per 5 s, not one
    per message (at 1,000 messages/s one per message was a quarter of the door's
    time); every message is still handed over."""
    tg = FakeTelegram()
    threads = await start_door(system, tmp_path, tg, sqlite, Vision())
    await tg.wait_calls("setWebhook", 1, within=None)
    door = system.lookup("/telegram")

    def stored(n: int, chat: str) -> TelegramStored:
        return TelegramStored(
            update_id=n,
            message_id=n,
            thread_id=1,
            chat_id=chat,
            user_id=chat,
            created=True,
            job_id=n,
            queued=True,
            text="hi",
        )

    for n, chat in enumerate(["4242", "4242", "77", "4242"], start=1):
        await door.tell(stored(n, chat))
    await threads.wait(4)
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(c.params["chat_id"] for c in tg.of("sendChatAction")) == ["4242", "77"]
    await trio.sleep(5.0)  # virtual: the first "typing" has faded
    await door.tell(stored(5, "4242"))
    await threads.wait(5)
    calls = await tg.wait_calls("sendChatAction", 3, within=None)
    assert [c.params for c in calls][2] == {"chat_id": "4242", "action": "typing"}
