"""Issue 10 item 6: nothing waits for a restart to be recovered.

The application's tree with the real Telegram door (tests/fake_telegram.py),
the fake LLM and SQLite. ``/reconciler`` sweeps storage: a job queued too long
goes to its user's actor again, a reply unsent too long goes to its door again, each
still exactly once. Sweeps are asked for (``chat.Reconcile``) so the test
decides when they happen; one test lets the interval drive them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from protocols import Inbound, Reconcile, Reconciled
from tests.appkit import open_app
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, Text
from tests.fake_telegram import FakeTelegram, Landed, TgError
from tests.kit import until
from tests.telegramkit import connector, telegram_settings
from tests.test_telegram_e2e import App

MODEL = "claude-a"
#: Anything older than this counts as stale (the Store's clock is the real one here).
FRESH_S = 0.001


def settings(tmp_path: Path, llm: FakeLLM, tg: FakeTelegram, **reconciler: Any) -> Any:
    base = settings_for(llm, cascade=["a"])
    s = telegram_settings(tg, tmp_path, base)
    conf = {"interval_s": 3600.0, "queued_after_s": FRESH_S, "unsent_after_s": FRESH_S,
            **reconciler}  # fmt: skip
    return s.model_copy(update={"reconciler": s.reconciler.model_copy(update=conf)})


@pytest.fixture
async def app(tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram) -> AsyncIterator[App]:
    async with open_app(settings(tmp_path, fake_llm, tg), tmp_path) as (system, store, http):
        yield App(system, store, fake_llm, tg, http)


def failed_sends(app: App) -> int:
    outbox = connector(app.system).outbox
    assert outbox is not None
    return outbox.failed


async def until_failed(app: App, n: int) -> None:
    await until(lambda: failed_sends(app) == n)


async def sweep(app: App) -> Reconciled:
    result = await app.system.lookup("/reconciler").ask(Reconcile(), timeout=10)
    assert isinstance(result, Reconciled)
    return result


async def test_a_failed_telegram_send_is_sent_again_without_a_restart(app: App) -> None:
    """Old code: a reply whose send failed stayed in the outbox until the door's
    next start; nothing swept it."""
    app.tg.fail("sendMessage", TgError.server())
    app.llm.script(MODEL, intent(False), Text("Sent in the end."))
    app.tg.push(app.tg.message(app.tg.user(), "hello"))
    [failed] = await app.tg.wait_calls("sendMessage", 1, ok_only=False)
    assert not failed.params.get("_ok")
    await until(lambda: failed_sends(app) == 1)  # the door gave up on it: left unsent
    assert len(await app.store.unsent_replies("telegram")) == 1
    assert await sweep(app) == Reconciled(jobs=0, replies=1, skipped=0)
    [sent] = await app.tg.wait_calls("sendMessage", 1)
    assert sent.params["text"] == "Sent in the end."
    outbox = connector(app.system).outbox
    assert outbox is not None
    await until(lambda: outbox.sent == 1)  # marked sent
    assert await sweep(app) == Reconciled(jobs=0, replies=0, skipped=0)  # nothing left
    assert [p["text"] for p in app.tg.sent] == ["Sent in the end."]  # once


async def test_a_job_nobody_told_its_thread_about_is_answered_once(app: App) -> None:
    """Old code: a message stored but never handed to its user's actor (a full mailbox, a
    thread down at that moment) waited for the next start of greenroom."""
    app.llm.script(MODEL, intent(False), Text("Found you."))
    stored = await app.store.ingest(
        Inbound(platform="telegram", chat_id="4242", user_id="4242", message_id="u1", text="hi")
    )
    assert await sweep(app) == Reconciled(jobs=1, replies=0, skipped=0)
    [reply] = await app.tg.wait_calls("sendMessage", 1)
    assert reply.params["text"] == "Found you." and reply.params["chat_id"] == "4242"
    job = await app.store.get_job(stored.job.id)
    assert job.status == "done" and job.attempts == 1
    assert await sweep(app) == Reconciled(jobs=0, replies=0, skipped=0)
    assert [p["text"] for p in app.tg.sent] == ["Found you."]


async def test_a_reply_its_door_keeps_refusing_is_tried_max_resends_times(
    tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram
) -> None:
    """Bounded: a blocked bot is not asked every interval forever (one log line)."""
    conf = settings(tmp_path, fake_llm, tg, max_resends=2)
    async with open_app(conf, tmp_path) as (system, store, http):
        app = App(system, store, fake_llm, tg, http)
        tg.fail("sendMessage", *[TgError.blocked()] * 3)
        fake_llm.script(MODEL, intent(False), Text("Nobody reads this."))
        tg.push(tg.message(tg.user(), "hello"))
        await tg.wait_calls("sendMessage", 1, ok_only=False)
        await until(lambda: failed_sends(app) == 1)
        with structlog.testing.capture_logs() as logs:
            results = []
            for n in range(4):
                results.append(await sweep(app))
                await until_failed(app, min(n + 2, 3))
        assert results == [
            Reconciled(jobs=0, replies=1, skipped=0),
            Reconciled(jobs=0, replies=1, skipped=0),
            Reconciled(jobs=0, replies=0, skipped=1),
            Reconciled(jobs=0, replies=0, skipped=1),
        ]
        assert len(tg.of("sendMessage")) == 3  # the first send and two resends, no more
        assert [e["event"] for e in logs].count("reconcile_gave_up") == 1


async def test_the_interval_drives_the_sweep(
    tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram
) -> None:
    async with open_app(settings(tmp_path, fake_llm, tg, interval_s=0.05), tmp_path) as (
        system,
        store,
        _,
    ):
        fake_llm.script(MODEL, intent(False), Text("On time."))
        await store.ingest(
            Inbound(platform="telegram", chat_id="7", user_id="7", message_id="u1", text="hi")
        )
        [reply] = await tg.wait_calls("sendMessage", 1)
        assert reply.params["text"] == "On time."
        reconciler = system.lookup("/reconciler")._cell.actor
        assert getattr(reconciler, "sweeps", 0) >= 1


async def test_a_send_that_may_have_landed_is_sent_again_once_not_every_sweep(app: App) -> None:
    """Review of issue 10: a Telegram send whose answer was lost (it may have landed)
    stayed unsent and the reconciler sent it again on every sweep, up to
    ``max_resends`` times: one answer could reach a chat six times. Now it is sent
    again once (at-least-once), and then given up on as sent."""
    app.tg.fail("sendMessage", Landed(), Landed())
    app.llm.script(MODEL, intent(False), Text("Maybe twice."))
    app.tg.push(app.tg.message(app.tg.user(), "hello"))
    await until(lambda: failed_sends(app) == 1)
    assert await sweep(app) == Reconciled(jobs=0, replies=1, skipped=0)
    await until(lambda: failed_sends(app) == 2)
    for _ in range(3):
        assert await sweep(app) == Reconciled(jobs=0, replies=0, skipped=0)
    assert [p["text"] for p in app.tg.sent] == ["Maybe twice.", "Maybe twice."]
    assert await app.store.unsent_replies("telegram") == []


async def test_replies_that_used_up_their_resends_do_not_starve_the_rest(
    tmp_path: Path, fake_llm: FakeLLM, tg: FakeTelegram
) -> None:
    """Review of issue 10: every sweep read the oldest ``batch`` unsent replies;
    replies that had used up ``max_resends`` stayed unsent and filled every page,
    so a reply behind them was never sent out again. Pages now move on."""
    conf = settings(tmp_path, fake_llm, tg, batch=2, max_resends=2)
    async with open_app(conf, tmp_path) as (system, store, http):
        app = App(system, store, fake_llm, tg, http)
        tg.fail("sendMessage", *[TgError.blocked()] * 30)  # the bot is blocked everywhere
        for n in range(3):
            fake_llm.script(MODEL, intent(False), Text(f"reply {n}"))
            tg.push(tg.message(tg.user(uid=100 + n), f"hello {n}"))
            await until_failed(app, n + 1)
        failed = 3
        for _ in range(8):
            failed += (await sweep(app)).replies
            await until_failed(app, failed)  # the door tried each one told
        # Each reply: its first send and two resends; none starved.
        assert failed == 9
        sends = [c.params["chat_id"] for c in tg.of("sendMessage")]
        assert sorted(sends) == sorted(["100", "101", "102"] * 3)
