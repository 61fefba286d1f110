"""The Telegram door's parts, and its sending and polling on trio's virtual clock.

Connector tests run the real TelegramConnector against tests/fake_telegram.py
through ``httpx.MockTransport`` (no sockets, so the autojumping MockClock
drives every wait: pacing, ``retry_after``, 409 backoff) and a real SQLite
Store.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from actors.connectors.telegram import (
    BotApi,
    BotIdentity,
    Callback,
    Conflict,
    Ignored,
    Incoming,
    Pacer,
    RetryAfter,
    TelegramConnector,
    TelegramUnavailable,
    parse_update,
    redact,
    split_text,
    utf16_len,
)
from protocols import Deliver, Inbound
from storage import Store, open_store
from supervision import ActorSystem, ChildSpec, Supervisor
from tests.fake_telegram import BOT, TOKEN, FakeTelegram, TgError
from tests.telegramkit import telegram_settings

ME = BotIdentity(BOT["id"], BOT["username"])
#: No virtual-clock deadline (see FakeTelegram.wait_calls): ``real_time_guard`` instead.
VIRTUAL = None
#: Real seconds a connector test may take before it is failed as hung.
HANG_S = 20.0


@pytest.fixture
async def real_time_guard(nursery: trio.Nursery) -> None:
    """Fail a hung test after HANG_S real seconds, whatever the virtual clock does:
    a thread sleeps in real time (and, blocked, lets the MockClock jump meanwhile)."""

    async def guard() -> None:
        await trio.to_thread.run_sync(time.sleep, HANG_S, abandon_on_cancel=True)
        raise AssertionError(f"hang guard: the test ran for more than {HANG_S} real seconds")

    nursery.start_soon(guard)


# ---------------------------------------------------------------------- parsing
def test_parse_private_text_edit_callback_and_media() -> None:
    tg = FakeTelegram()
    ada = tg.user()
    text = parse_update(tg.message(ada, "hi"), ME)
    assert isinstance(text, Incoming) and (text.chat_id, text.user_id, text.text) == (
        "4242",
        "4242",
        "hi",
    )
    assert text.author == "Ada" and text.sent_at is not None
    edit = parse_update(tg.edited(ada, "hi again"), ME)
    assert isinstance(edit, Incoming) and edit.edited and edit.sent_at.timestamp() == 1_764_000_060  # type: ignore[union-attr]
    press = parse_update(tg.callback(ada, "ok:12"), ME)
    assert isinstance(press, Callback) and press.data == "ok:12" and press.user_id == "4242"
    photo = parse_update(tg.photo(ada, "look"), ME)
    assert isinstance(photo, Incoming) and photo.media is not None
    assert photo.media.meta["width"] == 1280 and photo.text == "look"  # the largest size
    voice = parse_update(tg.voice(ada, b"x", "t"), ME)
    assert isinstance(voice, Incoming) and voice.media is not None and voice.media.kind == "voice"


def test_parse_groups_need_a_mention_or_reply() -> None:
    tg = FakeTelegram()
    ada = tg.user()
    plain = parse_update(tg.message(ada, "just humans", tg.group()), ME)
    assert isinstance(plain, Ignored) and "not addressed" in plain.reason
    mention = parse_update(tg.mention(ada, "héllo 👋 @greenroom_bot how are you"), ME)
    assert isinstance(mention, Incoming) and mention.text == "héllo 👋  how are you"
    reply = tg.message(
        ada,
        "and you?",
        tg.group(),
        reply_to_message={"message_id": 1, "from": BOT, "chat": tg.group(), "date": 1},
    )
    assert isinstance(parse_update(reply, ME), Incoming)


@pytest.mark.parametrize(
    "update",
    [None, [], {}, {"update_id": "7"}, {"update_id": 1, "message": "x"},
     {"update_id": 2, "message": {"chat": {"id": 1}}},
     {"update_id": 3, "poll": {"id": "1"}}, {"update_id": 4, "callback_query": {"id": 5}}],
)  # fmt: skip
def test_parse_never_raises_on_garbage(update: Any) -> None:
    assert isinstance(parse_update(update, ME), Ignored)


# ---------------------------------------------------------------------- splitting and pacing
def test_split_prefers_paragraphs_and_counts_utf16() -> None:
    paragraphs = ["a" * 3000, "b" * 3000, "c" * 100]
    pieces = split_text("\n\n".join(paragraphs))
    assert pieces == ["a" * 3000, "b" * 3000 + "\n\n" + "c" * 100]
    emoji = "😀" * 3000  # 6000 UTF-16 units
    assert (
        all(utf16_len(p) <= 4096 for p in split_text(emoji)) and "".join(split_text(emoji)) == emoji
    )
    assert split_text("   ") == ["…"]
    words = " ".join(["word"] * 2000)
    assert all(not p.startswith(" ") and p.endswith("word") for p in split_text(words))


def test_pacer_spaces_per_chat_and_overall() -> None:
    pacer = Pacer(chat_per_s=1.0, global_per_s=4.0)
    assert [pacer.reserve("a", 0.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert pacer.reserve("b", 0.0) == 2.25  # the bot's pace: 0.25 s after "a"'s last
    pacer.hold("d", 3.0, 10.0)
    assert pacer.reserve("d", 10.0) == 13.0
    with pytest.raises(ValueError, match="chat_per_s must be > 0"):
        Pacer(0, 1)


# ---------------------------------------------------------------------- the client
async def test_api_translates_errors_and_never_shows_the_token() -> None:
    tg = FakeTelegram()
    api = BotApi(TOKEN, "http://telegram.test", transport=tg.transport())
    tg.fail("sendMessage", TgError.flood(7))
    with pytest.raises(RetryAfter) as flood:
        await api.send_message("1", "x")
    assert flood.value.retry_after == 7 and "Too Many Requests" in str(flood.value)
    tg.conflicts = 1
    with pytest.raises(Conflict):
        await api.get_updates(0, 0)
    tg.fail("sendMessage", TgError.server())
    with pytest.raises(TelegramUnavailable):
        await api.send_message("1", "x")
    bad = BotApi("1:wrong", "http://telegram.test", transport=tg.transport())
    with pytest.raises(Exception, match="401 Unauthorized") as exc:
        await bad.get_me()
    assert TOKEN not in repr(exc.value) and TOKEN not in repr(api)
    refused = BotApi(TOKEN, "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(TelegramUnavailable) as down:
        await refused.get_me()
    assert TOKEN not in str(down.value) and not down.value.sent
    assert redact(f"POST http://x/bot{TOKEN}/getMe") == "POST http://x/bot***/getMe"
    for client in (api, bad, refused):
        await client.aclose()


# ---------------------------------------------------------------------- the connector
@asynccontextmanager
async def door(
    system: ActorSystem, tmp_path: Path, tg: FakeTelegram, store: Store, **telegram: Any
) -> AsyncIterator[list[TelegramConnector]]:
    settings = telegram_settings(tg, tmp_path, **telegram)
    made: list[TelegramConnector] = []

    def factory() -> TelegramConnector:
        made.append(TelegramConnector(settings, store, transport=tg.transport()))
        return made[-1]

    root = system.root_cell
    assert root is not None and isinstance(root.actor, Supervisor)
    await root.actor.start_child(ChildSpec("telegram", factory))
    yield made


async def outbox_reply(
    store: Store, text: str, chat: str = "4242", key: str = "r1", **raw: Any
) -> Deliver:
    inbound = Inbound(
        platform="telegram", chat_id=chat, user_id=chat, message_id=f"u{key}", text="hi"
    )
    thread = (await store.ingest(inbound)).thread
    kind = raw.get("kind", "reply")
    stored, _ = await store.record_reply(
        thread.id, text, key, raw={"kind": kind, "approval_id": raw.get("approval_id")}
    )
    return Deliver(
        message_id=stored.id,
        platform="telegram",
        chat_id=chat,
        text=text,
        kind=kind,
        approval_id=raw.get("approval_id"),
    )


@pytest.fixture
async def store(tmp_path: Path, real_time_guard: None) -> AsyncIterator[Store]:
    async with open_store(None, tmp_path) as st:
        yield st


WEBHOOK = {"mode": "webhook"}


async def test_429_retry_after_is_waited_on_the_clock(
    system: ActorSystem, tmp_path: Path, store: Store
) -> None:
    tg = FakeTelegram()
    tg.fail("sendMessage", TgError.flood(3))
    async with door(system, tmp_path, tg, store, **WEBHOOK):
        deliver = await outbox_reply(store, "after the flood")
        await system.lookup("/telegram").tell(deliver)
        [sent] = await tg.wait_calls("sendMessage", 1, within=VIRTUAL)
    first, second = tg.of("sendMessage")
    assert second.at - first.at >= 3.0
    assert sent.params["text"] == "after the flood"
    assert not await store.unsent_replies("telegram")


async def test_a_long_reply_is_split_and_paced_with_the_ok_on_the_last_piece(
    system: ActorSystem, tmp_path: Path, store: Store
) -> None:
    tg = FakeTelegram()
    text = "\n\n".join(["x" * 4000, "y" * 4000, "z" * 10])
    async with door(system, tmp_path, tg, store, **WEBHOOK):
        deliver = await outbox_reply(store, text, kind="ack", approval_id=9)
        await system.lookup("/telegram").tell(deliver)
        sent = await tg.wait_calls("sendMessage", 2, within=VIRTUAL)
    assert [utf16_len(c.params["text"]) for c in sent] == [4000, 4012]
    assert "reply_markup" not in sent[0].params
    assert sent[1].params["reply_markup"] == {
        "inline_keyboard": [[{"text": "OK", "callback_data": "ok:9"}]]
    }
    assert sent[1].at - sent[0].at >= 1.0  # one chat: about one message a second
    stored = await store.get_message(deliver.message_id)
    assert stored.sent_at is not None and stored.platform_message_id is not None
    assert len(stored.platform_message_id.split(",")) == 2


async def test_a_failed_send_stays_unsent_and_a_restart_sends_it_once(
    system: ActorSystem, tmp_path: Path, store: Store
) -> None:
    tg = FakeTelegram()
    tg.fail("sendMessage", TgError.server())  # may have reached Telegram: no blind resend
    with structlog.testing.capture_logs() as logs:
        async with door(system, tmp_path, tg, store, **WEBHOOK):
            deliver = await outbox_reply(store, "exactly once")
            await system.lookup("/telegram").tell(deliver)
            await tg.wait_calls("sendMessage", 1, within=VIRTUAL, ok_only=False)
            assert [p.message.id for p in await store.unsent_replies("telegram")] == [
                deliver.message_id
            ]
            system.kill("/telegram", "test")
            await tg.wait_calls("sendMessage", 1, within=VIRTUAL)
            await system.lookup("/telegram").tell(deliver)  # a late Deliver changes nothing
            later = await outbox_reply(store, "later", key="r2")
            await system.lookup("/telegram").tell(later)  # same chat: sent after the late one
            await tg.wait_calls("sendMessage", 2, within=VIRTUAL)
    assert [p["text"] for p in tg.sent] == ["exactly once", "later"]
    assert not await store.unsent_replies("telegram")
    assert any(e["event"] == "telegram_send_failed" for e in logs)
    assert TOKEN not in repr(logs)


async def test_409_conflict_is_logged_and_retried_with_backoff(
    system: ActorSystem, tmp_path: Path, store: Store
) -> None:
    tg = FakeTelegram()
    tg.conflicts = 3
    with structlog.testing.capture_logs() as logs:
        async with door(system, tmp_path, tg, store) as made:
            polls = await tg.wait_calls("getUpdates", 4, within=VIRTUAL)
            update = tg.message(tg.user(), "after the conflict")
            tg.push(update)
            await tg.wait_calls("getUpdates", 6, within=VIRTUAL)
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0 and gaps[2] >= 4.0
    conflicts = [e for e in logs if e["event"] == "telegram_conflict"]
    assert len(conflicts) == 3 and "only one bot instance" in conflicts[0]["description"]
    assert made[-1].conflicts == 3 and system.inspect("/telegram").restarts == 0
    assert await store.get_state("telegram", "offset") == str(update["update_id"] + 1)
    assert tg.of("deleteWebhook")  # polling removes any webhook first
