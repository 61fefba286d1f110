"""User actors: the ack/OK flow end to end with the real Brain, Store and a fake LLM.

The tree is the application's (users Directory of UserActor) with a Probe
standing at /connectors/telegram to receive what the threads deliver. The
LLM is tests/fake_llm.py, spoken to by the real anthropic SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from actors import UserActor, UserConfig, ack_text
from actors._users import APOLOGY, GAVE_UP, STALE_OK
from actors.brain import Brain
from protocols import ApprovalResult, Approve, Deliver, Inbound, Received
from storage import Store, open_store
from supervision import Actor, ActorSystem, ChildSpec, Directory, EntityRef, Supervisor, open_system
from supervision.testing import Probe
from tests.brainkit import intent as _intent
from tests.brainkit import settings_for
from tests.fake_llm import FakeLLM, Hang, HttpError, Script, Text, ToolUse
from tests.kit import until

MODEL = "claude-a"  # the fake's id of brainkit's model "a"


def intent(
    needs_confirmation: bool, summary: str = "They want a poem.", plan: str = "Write one."
) -> ToolUse:
    return _intent(needs_confirmation, summary, plan)


@dataclass
class Chat:
    system: ActorSystem
    store: Store
    fake: FakeLLM
    door: Any  # what stands at /connectors/telegram: a Probe unless the test chose
    n: int = 0

    async def say(
        self, text: str, user: str = "42", chat: str | None = None, author: str = ""
    ) -> Received:
        """What a connector does: ingest (durable), then tell the user's actor."""
        self.n += 1
        chat = chat or user
        result = await self.store.ingest(
            Inbound(
                platform="telegram",
                chat_id=chat,
                user_id=user,
                message_id=str(self.n),
                text=text,
                author=author,
            )
        )
        received = Received(
            job_id=result.job.id,
            message_id=result.message.id,
            thread_id=result.thread.id,
            platform="telegram",
            chat_id=chat,
            user_id=user,
            text=text,
        )
        await EntityRef(self.system.lookup("/users"), f"telegram:{user}").tell(received)
        return received

    async def delivered(self, kind: str | None = None) -> Deliver:
        msg = await self.door.expect(Deliver, within=10)
        if kind is not None:
            assert msg.kind == kind, msg
        return msg

    async def approve(self, approval_id: int, user: str = "42") -> str:
        thread = EntityRef(self.system.lookup("/users"), f"telegram:{user}")
        result = await thread.ask(Approve(approval_id=approval_id), timeout=10)
        assert isinstance(result, ApprovalResult)
        return result.status


def app_tree(
    config: UserConfig, doors: list[Actor], make_door: Callable[[], Actor] = Probe
) -> Supervisor:
    """users (the real user actors) and ``make_door()`` (a Probe) standing in for the
    telegram door; every door built is appended to ``doors``."""

    def door() -> Actor:
        doors.append(make_door())
        return doors[-1]

    return Supervisor(
        [
            ChildSpec("users", lambda: Directory(lambda key: UserActor(key, config))),
            ChildSpec("connectors", lambda: Supervisor([ChildSpec("telegram", door)])),
        ]
    )


@asynccontextmanager
async def open_chat(
    tmp_path: Path, fake: FakeLLM, *, door: Callable[[], Actor] = Probe, **bounds: int
) -> AsyncIterator[Chat]:
    """The tree over a fresh SQLite Store and a Brain on the fake LLM; ``door`` makes
    what stands at /connectors/telegram; ``bounds`` override UserConfig's context
    bounds."""
    async with open_store(None, tmp_path) as store:
        brain = Brain(settings_for(fake), store)
        config = UserConfig(store=store, brain=brain, **bounds)
        doors: list[Actor] = []
        tree = lambda: app_tree(config, doors, door)  # noqa: E731
        try:
            async with open_system(tree, ask_timeout_s=10) as system:
                yield Chat(system, store, fake, doors[-1])
        finally:
            await brain.aclose()


@pytest.fixture
async def chat(tmp_path: Path, fake_llm: FakeLLM) -> AsyncIterator[Chat]:
    async with open_chat(tmp_path, fake_llm) as opened:
        yield opened


async def test_ack_then_ok_then_answer(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(True), Text("Roses are red."))
    sent = await chat.say("write me a poem")
    ack = await chat.delivered("ack")
    assert ack.text == ack_text("They want a poem.", "Write one.") and ack.approval_id
    assert ack.chat_id == "42" and ack.platform == "telegram"
    pending = await chat.store.pending_approval(sent.thread_id)
    assert pending is not None and pending.id == ack.approval_id
    assert (await chat.store.get_job(sent.job_id)).status == "running"  # waiting for OK
    assert await chat.approve(ack.approval_id) == "approved"
    reply = await chat.delivered("reply")
    assert reply.text == "Roses are red."
    assert (await chat.store.get_job(sent.job_id)).status == "done"
    # The main model saw the approved plan; the classifier was forced to report_intent.
    classify, answer = chat.fake.requests
    assert classify.body["tool_choice"] == {"type": "tool", "name": "report_intent"}
    assert "Write one." in json.dumps(answer.body)
    assert chat.fake.pending() == {}


async def test_no_confirmation_needed_answers_at_once(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(False), Text("It is noon."))
    sent = await chat.say("what time is it?")
    reply = await chat.delivered("reply")
    assert reply.text == "It is noon." and reply.approval_id is None
    assert await chat.store.pending_approval(sent.thread_id) is None
    assert (await chat.store.get_job(sent.job_id)).status == "done"


async def test_a_new_message_supersedes_the_pending_plan_and_a_stale_ok_is_told(
    chat: Chat,
) -> None:
    chat.fake.script(MODEL, intent(True, "Poem.", "Write a poem."))
    first = await chat.say("write me a poem")
    old_ack = await chat.delivered("ack")
    chat.fake.script(MODEL, intent(True, "Song.", "Write a song."))
    await chat.say("no, a song")
    new_ack = await chat.delivered("ack")
    assert new_ack.approval_id != old_ack.approval_id
    assert old_ack.approval_id is not None
    assert (await chat.store.get_approval(old_ack.approval_id)).status == "superseded"  # type: ignore[union-attr]
    assert (await chat.store.get_job(first.job_id)).status == "canceled"
    assert await chat.approve(old_ack.approval_id) == "superseded"
    notice = await chat.delivered("notice")
    assert notice.text == STALE_OK
    # The new message was classified with the old one in its context.
    assert "write me a poem" in json.dumps(chat.fake.requests[-1].body)


async def test_a_message_during_classification_cancels_it(chat: Chat) -> None:
    chat.fake.script(MODEL, Hang())
    first = await chat.say("first")
    await chat.fake.wait_hanging(1)
    chat.fake.script(MODEL, intent(False), Text("Answer to the second."))
    await chat.say("second")
    reply = await chat.delivered("reply")
    assert reply.text == "Answer to the second."
    assert (await chat.store.get_job(first.job_id)).status == "canceled"


async def test_an_ok_for_another_users_plan_is_not_found(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(True))
    await chat.say("write me a poem", user="42")
    ack = await chat.delivered("ack")
    assert ack.approval_id is not None
    await chat.say("hello", user="7")  # user 7's thread exists too
    chat.fake.script(MODEL, intent(False), Text("hi"))
    await chat.delivered("reply")
    assert await chat.approve(ack.approval_id, user="7") == "not_found"
    assert await chat.approve(ack.approval_id + 1000, user="42") == "not_found"


async def test_two_users_never_see_each_others_context(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(False), Text("Noted."))
    await chat.say("my locker code is 4711", user="alice")
    await chat.delivered("reply")
    chat.fake.script(MODEL, intent(False), Text("I don't know."))
    await chat.say("what is the locker code?", user="bob")
    await chat.delivered("reply")
    bobs = [r for r in chat.fake.requests if "what is the locker code?" in json.dumps(r.body)]
    assert len(bobs) == 2 and all("4711" not in json.dumps(r.body) for r in bobs)


async def test_no_model_configured_gives_a_clear_notice(tmp_path: Path) -> None:
    async with open_store(None, tmp_path) as store:
        from config import Settings

        brain = Brain(Settings(), store)  # no key anywhere
        config = UserConfig(store=store, brain=brain)
        doors: list[Actor] = []
        async with open_system(lambda: app_tree(config, doors)) as system:
            chat = Chat(system, store, FakeLLM(), doors[-1])
            sent = await chat.say("hello?")
            notice = await chat.delivered("notice")
            assert notice.text.startswith("I cannot answer yet: no model is configured")
            assert "ANTHROPIC_API_KEY" in notice.text
            assert (await store.get_job(sent.job_id)).status == "done"
        await brain.aclose()


async def test_a_thread_killed_mid_job_retries_once_and_replies_once(chat: Chat) -> None:
    chat.fake.script(MODEL, Hang())
    sent = await chat.say("slow question")
    await chat.fake.wait_hanging(1)
    chat.fake.script(MODEL, intent(False), Text("Done at last."))
    chat.system.kill("/users/telegram:42", "test")
    reply = await chat.delivered("reply")
    assert reply.text == "Done at last."
    job = await chat.store.get_job(sent.job_id)
    assert (job.status, job.attempts) == ("done", 2)
    replies = await chat.store.replies_after(sent.thread_id)
    assert [m.text for m in replies] == ["Done at last."]
    await chat.door.expect_nothing(for_=0.2)


async def test_a_job_interrupted_twice_is_failed_with_a_notice(chat: Chat) -> None:
    chat.fake.script(MODEL, Hang())
    sent = await chat.say("cursed question")
    await chat.fake.wait_hanging(1)
    chat.fake.script(MODEL, Hang())
    chat.system.kill("/users/telegram:42", "first")
    await chat.fake.wait_hanging(2)
    chat.system.kill("/users/telegram:42", "second")
    error = await chat.delivered("error")
    assert error.text == GAVE_UP
    assert (await chat.store.get_job(sent.job_id)).status == "failed"


async def test_a_pending_plan_survives_a_thread_crash(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(True))
    await chat.say("write me a poem")
    ack = await chat.delivered("ack")
    assert ack.approval_id is not None
    chat.system.kill("/users/telegram:42", "test")
    chat.fake.script(MODEL, Text("A poem, after all."))
    assert await chat.approve(ack.approval_id) == "approved"
    reply = await chat.delivered("reply")
    assert reply.text == "A poem, after all."
    await chat.door.expect_nothing(for_=0.2)  # the ack was not sent again


async def test_when_every_model_fails_the_user_gets_one_apology(chat: Chat) -> None:
    chat.fake.script(MODEL, HttpError.server())
    sent = await chat.say("hello")
    error = await chat.delivered("error")
    assert error.text == APOLOGY
    job = await chat.store.get_job(sent.job_id)
    assert job.status == "failed"
    await chat.door.expect_nothing(for_=0.2)


@pytest.fixture
async def small_chat(tmp_path: Path, fake_llm: FakeLLM) -> AsyncIterator[Chat]:
    """A chat whose threads compact past 4 messages (keeping 2), so it happens
    within a few turns."""
    async with open_chat(
        tmp_path, fake_llm, compact_after=4, keep_recent=2, memory_every=100
    ) as opened:
        yield opened


async def turn(chat: Chat, text: str, answer: str, *after: Script) -> Received:
    """One exchange answered at once; ``after`` scripts the background calls that follow."""
    chat.fake.script(MODEL, intent(False), Text(answer), *after)
    sent = await chat.say(text)
    await chat.delivered("reply")
    return sent


async def settled(chat: Chat, user: str = "42") -> None:
    """Until the user actor's owned work (a reply's compaction, memory extraction) ended:
    waits on the scheduler, not on a clock."""
    await until(lambda: not chat.system.inspect(f"/users/telegram:{user}").tasks)


async def test_a_long_thread_is_summarised_and_a_failed_summary_keeps_the_context(
    small_chat: Chat,
) -> None:
    chat = small_chat
    await turn(chat, "one", "1")
    await turn(chat, "two", "2")  # 4 messages: not past the bound yet
    await settled(chat)
    thread = await chat.store.get_thread("telegram", "42")
    assert thread is not None and thread.summary == ""
    await turn(chat, "three", "3", HttpError.server())  # the summary fails
    await settled(chat)
    thread = await chat.store.get_thread("telegram", "42")
    assert thread is not None and thread.summary == ""  # no empty or failed summary saved
    await turn(chat, "four", "4", Text("They counted to four."))
    await settled(chat)
    thread = await chat.store.get_thread("telegram", "42")
    assert thread is not None and thread.summary == "They counted to four."
    assert chat.fake.pending() == {}
    # The next call carries the summary in place of the older messages.
    await turn(chat, "five", "5", Text("Still counting."))
    await settled(chat)
    assert "They counted to four." in json.dumps(chat.fake.requests[-2].body)


async def test_facts_are_extracted_every_nth_user_message(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    async with open_chat(tmp_path, fake_llm, memory_every=2) as chat:
        await turn(chat, "I live in Lyon", "Nice.")
        await settled(chat)
        assert await chat.store.recall("telegram:42") == []
        facts = ToolUse("report_memories", {"facts": ["Lives in Lyon"]})
        await turn(chat, "and I like tea", "Noted.", facts)
        await settled(chat)
        assert [m.fact for m in await chat.store.recall("telegram:42")] == ["Lives in Lyon"]


async def test_replying_ok_approves_the_pending_plan(chat: Chat) -> None:
    """Nostr has no buttons: its OK action is "reply OK"."""
    chat.fake.script(MODEL, intent(True), Text("Here is the poem."))
    first = await chat.say("write me a poem")
    await chat.delivered("ack")
    ok = await chat.say(" OK! ")
    reply = await chat.delivered("reply")
    assert reply.text == "Here is the poem."
    assert (await chat.store.get_job(first.job_id)).status == "done"
    assert (await chat.store.get_job(ok.job_id)).status == "done"
    assert len(chat.fake.requests) == 2  # "OK" itself was never classified


async def test_ok_without_a_pending_plan_is_an_ordinary_message(chat: Chat) -> None:
    chat.fake.script(MODEL, intent(False), Text("OK to you too."))
    await chat.say("ok")
    assert (await chat.delivered("reply")).text == "OK to you too."


async def test_a_plan_made_in_a_group_is_approved_by_its_author_after_a_restart(
    chat: Chat,
) -> None:
    """A user's actor serves all their chats; after a restart it loads the private
    one, and an OK for a plan made in a group still finds that group."""
    chat.fake.script(MODEL, intent(True), Text("Done, in the group."))
    await chat.say("make a plan", user="42", chat="group-1")
    ack = await chat.delivered("ack")
    assert ack.chat_id == "group-1" and ack.approval_id is not None
    chat.system.kill("/users/telegram:42", "restart")
    assert await chat.approve(ack.approval_id, user="7") == "not_found"  # not the author
    assert await chat.approve(ack.approval_id, user="42") == "approved"
    reply = await chat.delivered("reply")
    assert (reply.chat_id, reply.text) == ("group-1", "Done, in the group.")


async def test_a_messages_log_lines_and_its_reply_carry_its_correlation_id(chat: Chat) -> None:
    """DESIGN.md, Observability: a correlation id follows a message end to end; the
    thread's and the brain's lines while working on it carry ``m<message id>``, and
    so does the Deliver the connector logs its sending under."""
    chat.fake.script(MODEL, HttpError.server())
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        sent = await chat.say("hello")
        error = await chat.delivered("error")
    cid = f"m{sent.message_id}"
    assert error.correlation_id == cid
    failed = [e for e in logs if e["event"] == "brain.all_models_failed"]
    assert failed and all(e.get("cid") == cid for e in failed)
