"""The Telegram door end to end: the application's tree, the fake Bot API, the fake LLM.

Everything is real but Telegram and the model: ``build_root`` (storage, brain,
user actors, the HTTP and Telegram doors), SQLite, httpx talking HTTP to
tests/fake_telegram.py, the anthropic SDK to tests/fake_llm.py. Updates are in
the shapes the Bot API documents. Synchronisation is on recorded calls
(``wait_calls``), never on sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import Store
from supervision import ActorSystem
from tests.appkit import open_app
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, HttpError, Text, ToolUse
from tests.fake_telegram import DATE, FakeTelegram
from tests.telegramkit import SECRET, connector, telegram_settings

MODEL = "claude-a"


@dataclass
class App:
    system: ActorSystem
    store: Store
    llm: FakeLLM
    tg: FakeTelegram
    http: httpx.AsyncClient


async def _open(tmp_path: Path, llm: FakeLLM, tg: FakeTelegram, **telegram: Any) -> Any:
    base = settings_for(llm, cascade=["a"])
    return telegram_settings(tg, tmp_path, base, stt_base_url=tg.url + "/v1", **telegram)


@pytest.fixture
async def app(
    tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram, request: pytest.FixtureRequest
) -> AsyncIterator[App]:
    telegram = getattr(request, "param", {})
    settings = await _open(tmp_path, fake_llm, tg, **telegram)
    async with open_app(settings, tmp_path) as (system, store, http):
        yield App(system, store, fake_llm, tg, http)


def sent_as_message(params: dict[str, Any]) -> dict[str, Any]:
    """The Message a sendMessage produced, as a callback_query carries it."""
    chat = {"id": int(params["chat_id"]), "type": "private"}
    bot = {"id": 7000000001, "is_bot": True}
    markup = params.get("reply_markup")
    return {"message_id": 77, "from": bot, "chat": chat, "date": DATE, "text": params["text"],
            "reply_markup": markup}  # fmt: skip


def ok_data(params: dict[str, Any]) -> str:
    data: str = params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    return data


async def test_message_ack_ok_button_reply(app: App) -> None:
    """A private text message: ack with an OK keyboard, the press is answered, the reply sent."""
    tg = app.tg
    app.llm.script(MODEL, intent(True), Text("Roses are red."))
    ada = tg.user()
    first = tg.message(ada, "write me a poem")
    tg.push(first)
    [ack] = await tg.wait_calls("sendMessage", 1)
    assert ack.params["chat_id"] == str(ada["id"])
    assert ack.params["text"].startswith("Understood: They want a poem.")
    assert ok_data(ack.params).startswith("ok:")
    assert tg.of("sendChatAction")[0].params == {"chat_id": "4242", "action": "typing"}
    tg.push(tg.callback(ada, ok_data(ack.params), sent_as_message(ack.params)))
    [answer] = await tg.wait_calls("answerCallbackQuery", 1)
    assert answer.params["text"] == "Working on it"
    replies = await tg.wait_calls("sendMessage", 2)
    assert replies[1].params["text"] == "Roses are red."
    assert "reply_markup" not in replies[1].params
    assert tg.of("editMessageReplyMarkup")  # the used button is removed
    thread = await app.store.get_thread("telegram", "4242")
    assert thread is not None
    texts = [m.text for m in await app.store.recent_messages(thread.id)]
    assert texts == ["write me a poem", ack.params["text"], "Roses are red."]
    assert not await app.store.unsent_replies("telegram")


async def test_the_same_update_twice_is_processed_once(app: App) -> None:
    tg = app.tg
    app.llm.script(MODEL, intent(False), Text("Hello once."))
    update = tg.message(tg.user(), "hello")
    tg.push(update, dict(update))  # a redelivery in the same batch
    await tg.wait_calls("sendMessage", 1)
    # The next poll confirms both: they were handled (the offset moves after that).
    polls = await tg.wait_calls("getUpdates", 2)
    assert polls[-1].params["offset"] == update["update_id"] + 1
    assert connector(app.system).intake.counts["duplicate"] == 1  # type: ignore[union-attr]
    assert [p["text"] for p in tg.sent] == ["Hello once."]
    assert app.llm.pending() == {}


async def test_offset_survives_a_connector_kill_and_users_are_untouched(app: App) -> None:
    """Killing /connectors/telegram restarts it from the stored offset; a redelivered
    update is not answered again; /users never restarts."""
    tg = app.tg
    app.llm.script(MODEL, intent(False), Text("First."))
    update = tg.message(tg.user(), "one")
    tg.push(update)
    await tg.wait_calls("sendMessage", 1)
    before = len(tg.of("getUpdates"))
    await tg.wait_calls("getUpdates", before + 1)  # polled again: the offset is stored
    assert await app.store.get_state("telegram", "offset") == str(update["update_id"] + 1)
    app.system.kill("/connectors/telegram", "test")
    tg.push(dict(update))  # Telegram redelivers what a dying poller may not have confirmed
    n = len(tg.of("getMe"))
    await tg.wait_calls("getMe", n + 1)
    polls = await tg.wait_calls("getUpdates", before + 2)
    assert polls[before + 1].params["offset"] == update["update_id"] + 1  # read back from storage
    app.llm.script(MODEL, intent(False), Text("Second."))
    tg.push(tg.message(tg.user(), "two"))
    sent = await tg.wait_calls("sendMessage", 2)
    assert [c.params["text"] for c in sent] == ["First.", "Second."]
    assert app.system.inspect("/connectors/telegram").restarts == 1
    assert app.system.inspect("/users").restarts == 0
    assert app.system.inspect("/users/telegram:4242").restarts == 0


async def test_a_stale_ok_is_answered_replaced(app: App) -> None:
    tg = app.tg
    ada = tg.user()
    app.llm.script(MODEL, intent(True, plan="Write a poem."))
    tg.push(tg.message(ada, "a poem"))
    [old] = await tg.wait_calls("sendMessage", 1)
    app.llm.script(MODEL, intent(True, plan="Write a song."))
    tg.push(tg.message(ada, "no, a song"))
    await tg.wait_calls("sendMessage", 2)
    tg.push(tg.callback(ada, ok_data(old.params), sent_as_message(old.params)))
    [answer] = await tg.wait_calls("answerCallbackQuery", 1)
    assert answer.params["text"] == "That plan was replaced"
    notice = (await tg.wait_calls("sendMessage", 3))[2]
    assert "replaced" in notice.params["text"]
    tg.push(tg.callback(ada, "ok:999999"))
    answers = await tg.wait_calls("answerCallbackQuery", 2)
    assert answers[1].params["text"] == "Not found"


async def test_a_voice_message_is_transcribed_into_an_artifact(app: App) -> None:
    tg = app.tg
    app.llm.script(MODEL, intent(False), Text("I will remind you."))
    tg.push(tg.voice(tg.user(), b"OggS\x00fake-opus", "remind me to water the plants"))
    [reply] = await tg.wait_calls("sendMessage", 1)
    assert reply.params["text"] == "I will remind you."
    assert tg.of("getFile") and b"whisper-1" in tg.stt_requests[0]
    thread = await app.store.get_thread("telegram", "4242")
    assert thread is not None
    first = (await app.store.recent_messages(thread.id))[0]
    assert first.text == "remind me to water the plants"
    [artifact] = first.artifacts
    assert artifact.kind == "voice_transcript"
    assert artifact.content["text"] == "remind me to water the plants"
    # The model saw the transcript as the user's words.
    assert "remind me to water the plants" in str(app.llm.requests[0].body["messages"])


async def test_a_photo_is_described_by_the_vision_model_into_an_artifact(app: App) -> None:
    tg = app.tg
    seen = {"description": "A red bicycle by a wall.", "text": "", "objects": ["bicycle"]}
    app.llm.script(MODEL, ToolUse("report_image", seen), intent(False), Text("Nice bike!"))
    tg.push(tg.photo(tg.user(), "what do you think?", image=b"\xff\xd8\xff jpeg bytes"))
    [reply] = await tg.wait_calls("sendMessage", 1)
    assert reply.params["text"] == "Nice bike!"
    described = app.llm.requests[0].body["messages"][0]["content"][0]
    assert described["type"] == "image" and described["source"]["media_type"] == "image/jpeg"
    thread = await app.store.get_thread("telegram", "4242")
    assert thread is not None
    first = (await app.store.recent_messages(thread.id))[0]
    assert first.text == "what do you think?\n\n[photo: A red bicycle by a wall.]"
    [artifact] = first.artifacts
    assert artifact.kind == "image_json" and artifact.content["objects"] == ["bicycle"]
    assert artifact.content["width"] == 1280  # the largest size
    assert "A red bicycle by a wall." in str(app.llm.requests[1].body["messages"])


async def test_a_photo_that_cannot_be_described_keeps_its_metadata(app: App) -> None:
    tg = app.tg
    app.llm.script(MODEL, HttpError.server(), intent(False), Text("A photo, I see."))
    tg.push(tg.photo(tg.user(), "look"))
    [reply] = await tg.wait_calls("sendMessage", 1)
    assert reply.params["text"] == "A photo, I see."
    thread = await app.store.get_thread("telegram", "4242")
    assert thread is not None
    [artifact] = (await app.store.recent_messages(thread.id))[0].artifacts
    assert artifact.kind == "file_meta" and artifact.content["kind"] == "photo"


async def test_group_mentions_are_answered_and_other_updates_ignored(app: App) -> None:
    tg = app.tg
    ada = tg.user()
    tg.push(
        tg.channel_post(),
        tg.my_chat_member(ada),
        tg.message(ada, "chatter between humans", tg.group()),
        tg.update("message", {"message_id": 1, "from": ada, "chat": tg.private(ada),
                              "date": DATE, "sticker": {"file_id": "CAACAgI", "emoji": "👍"}}),
    )  # fmt: skip
    app.llm.script(MODEL, intent(False), Text("Hi group."))
    tg.push(tg.mention(ada, "@greenroom_bot what is up?"))
    [reply] = await tg.wait_calls("sendMessage", 1)
    assert reply.params == {**reply.params, "chat_id": "-1001234567890", "text": "Hi group."}
    assert "what is up?" in str(app.llm.requests[0].body["messages"])
    ignored = await app.store.audit_entries(action="telegram.ignored_update")
    kinds = sorted(e.detail["kind"] for e in ignored)
    assert kinds == ["channel_post", "message", "message", "my_chat_member"]
    assert all("update" in e.detail for e in ignored)  # stored raw


WEBHOOK = {"mode": "webhook"}


@pytest.mark.parametrize("app", [WEBHOOK], indirect=True)
async def test_webhook_checks_the_secret_and_stores_before_200(app: App) -> None:
    tg = app.tg
    [hook] = await tg.wait_calls("setWebhook", 1)
    assert hook.params["secret_token"] == SECRET
    assert hook.params["url"].endswith("/telegram/webhook")
    assert hook.params["allowed_updates"] == ["message", "edited_message", "callback_query"]
    app.llm.script(MODEL, intent(False), Text("Via webhook."))
    update = tg.message(tg.user(), "hook")
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        refused = await app.http.post("/telegram/webhook", json=update, headers=headers)
        assert refused.status_code == 401
    good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for _ in range(2):  # Telegram retries a webhook it thinks failed
        answer = await app.http.post("/telegram/webhook", json=update, headers=good)
        assert answer.status_code == 200 and answer.json() == {"ok": True}
    thread = await app.store.get_thread("telegram", "4242")
    assert thread is not None  # durable before the 200
    [reply] = await tg.wait_calls("sendMessage", 1)
    assert reply.params["text"] == "Via webhook."
    assert connector(app.system).intake.counts == {  # type: ignore[union-attr]
        "ingested": 1, "duplicate": 1, "callback": 0, "ignored": 0,
    }  # fmt: skip
    bad = await app.http.post("/telegram/webhook", content=b"{not json", headers=good)
    assert bad.status_code == 400


async def test_the_webhook_route_is_404_in_polling_mode(app: App) -> None:
    answer = await app.http.post(
        "/telegram/webhook",
        json={"update_id": 1},
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert answer.status_code == 404
    assert not app.tg.leaked
