"""The Store contract: every test runs against SQLite and Postgres (the ``store`` fixture).

What one backend does, the other must do the same way; a behaviour only one
of them has is a bug in the other.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import trio

from protocols import Inbound
from storage import (
    DatabaseInUse,
    IllegalTransition,
    NotFound,
    StorageError,
    Store,
    TokenUsage,
    known_migrations,
    open_store,
    reply_key,
)
from storage._backend import Script
from storage._dialect import Dialect, Q
from tests.conftest import Clock
from tests.pgkit import Sessions


def inbound(
    n: int | str, *, chat: str = "100", user: str = "7", text: str = "hi", **kw: object
) -> Inbound:
    return Inbound(
        platform="telegram", chat_id=chat, user_id=user, message_id=str(n), text=text, **kw
    )


# ---------------------------------------------------------------- migrations
async def test_migrations_apply_from_empty_and_rerun_as_no_op(
    database_url: str | None, tmp_path: Path
) -> None:
    async with open_store(database_url, tmp_path, migrate=False) as st:
        assert await st.migrate() == [m.version for m in known_migrations(st.backend)]
        assert await st.migrate() == []
    async with open_store(database_url, tmp_path) as st:  # applied at start: nothing left
        assert await st.migrate() == []
        assert (await st.ingest(inbound(1))).created


async def test_an_exclusive_open_keeps_a_second_process_out_until_closed(
    database_url: str | None, tmp_path: Path
) -> None:
    """Two greenroom processes on one database would requeue each other's running
    jobs at start (recover) and answer those messages twice."""
    async with open_store(database_url, tmp_path, exclusive=True) as owner:
        with pytest.raises(DatabaseInUse, match="another greenroom process"):
            async with open_store(database_url, tmp_path, exclusive=True):
                pass
        async with open_store(database_url, tmp_path) as reader:  # not exclusive: allowed
            assert await reader.ping() and await owner.ping()
    async with open_store(database_url, tmp_path, exclusive=True) as again:
        assert await again.ping()


def test_both_dialects_ship_the_same_migration_numbers() -> None:
    sqlite = [(m.version, m.name) for m in known_migrations("sqlite")]
    postgres = [(m.version, m.name) for m in known_migrations("postgres")]
    assert sqlite == postgres
    assert sqlite[:4] == [
        (1, "initial"),
        (2, "connector_state"),
        (3, "per_author"),
        (4, "approvals_by_message"),
    ]


def _version_2_rows(d: Dialect, now: datetime) -> Script[dict[str, int]]:
    """What greenroom at schema version 2 stored for a group chat: Alice's message
    with a queued job, Bob's with a running job and a pending plan; neither the jobs
    nor the plan had an author column yet."""
    ts = d.ts(now)
    ids: dict[str, int] = {}
    for name in ("alice", "bob"):
        [user] = yield Q(
            "INSERT INTO users (platform, platform_user_id, created_at, last_seen_at) "
            "VALUES ('telegram', $1, $2, $2) RETURNING id",
            (name, ts),
        )
        ids[name] = user["id"]
    [thread] = yield Q(
        "INSERT INTO chat_threads (platform, chat_id, created_at, updated_at) "
        "VALUES ('telegram', 'g', $1, $1) RETURNING id",
        (ts,),
    )
    ids["thread"] = thread["id"]
    for name, status, attempts in (("alice", "queued", 0), ("bob", "running", 1)):
        [message] = yield Q(
            "INSERT INTO chat_messages (thread_id, user_id, role, text, idempotency_key, "
            "created_at) VALUES ($1, $2, 'user', 'hi', $3, $4) RETURNING id",
            (thread["id"], ids[name], f"in:v2-{name}", ts),
        )
        [job] = yield Q(
            "INSERT INTO reactive_jobs (thread_id, message_id, status, attempts, created_at, "
            "updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            (thread["id"], message["id"], status, attempts, ts),
        )
        ids[f"{name}_message"], ids[f"{name}_job"] = message["id"], job["id"]
    [plan] = yield Q(
        "INSERT INTO approvals (thread_id, message_id, summary, plan, status, created_at) "
        "VALUES ($1, $2, 'B', 'b', 'pending', $3) RETURNING id",
        (thread["id"], ids["bob_message"], ts),
    )
    ids["plan"] = plan["id"]
    return ids


async def test_migrating_a_populated_version_2_database_gives_jobs_and_plans_their_authors(
    database_url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of issue 11: no test ran migration 0003 (jobs and plans per author) on
    a database with rows in it. A version-2 database's queued job, running job and
    pending plan are found by their authors after migrating, and by nobody else."""
    with monkeypatch.context() as patch:  # greenroom as of schema version 2
        for backend in ("_sqlite", "_postgres"):
            patch.setattr(f"storage.{backend}.known_migrations", lambda d: known_migrations(d)[:2])
        async with open_store(database_url, tmp_path, migrate=False) as st:
            assert await st.migrate() == [1, 2]
            ids = await st._run(_version_2_rows, st.now())
    async with open_store(database_url, tmp_path, migrate=False) as st:
        assert await st.migrate() == [m.version for m in known_migrations(st.backend)][2:]
        thread = ids["thread"]
        [job] = await st.claim_jobs(10, thread_id=thread, author="telegram:alice")
        assert (job.id, job.user_id) == (ids["alice_job"], ids["alice"])
        assert await st.claim_jobs(10, author="telegram:bob") == []  # Bob's is running
        [running] = await st.running_jobs(thread, author="telegram:bob")
        assert (running.id, running.user_id) == (ids["bob_job"], ids["bob"])
        assert await st.running_jobs(thread, author="telegram:alice") == [
            await st.get_job(ids["alice_job"])
        ]
        plan = await st.pending_approval(thread, author="telegram:bob")
        assert plan is not None and (plan.id, plan.user_id) == (ids["plan"], ids["bob"])
        assert await st.pending_approval(thread, author="telegram:alice") is None
        assert [t.id for t in await st.open_threads("telegram:bob")] == [thread]
        # Alice's new plan leaves Bob's pending (one per chat and author).
        mine = await st.propose(thread, "A", "a", message_id=ids["alice_message"])
        bobs = await st.get_approval(ids["plan"])
        assert bobs is not None and bobs.status == "pending" and mine.user_id == ids["alice"]


# ---------------------------------------------------------------- the durable inbox
async def test_ingest_stores_message_job_thread_and_user(store: Store, clock: Clock) -> None:
    sent = clock.now.replace(microsecond=0)
    r = await store.ingest(
        inbound(1, text="hello", author="Ada", sent_at=sent, raw={"u": [1, "x"]})
    )
    assert r.created
    assert (r.message.role, r.message.text, r.message.author) == ("user", "hello", "Ada")
    assert r.message.platform_message_id == "1" and r.message.raw == {"u": [1, "x"]}
    assert r.message.created_at == clock.now and r.message.sent_at == sent
    assert (r.job.status, r.job.attempts, r.job.mode) == ("queued", 0, "chat")
    assert r.job.message_id == r.message.id and r.job.thread_id == r.thread.id
    assert (r.thread.platform, r.thread.chat_id) == ("telegram", "100")
    user = await store.get_user("telegram", "7")
    assert user is not None and user.display_name == "Ada" and user.tier == "public"
    assert user.key == "telegram:7"
    assert await store.get_thread("telegram", "100") == r.thread
    assert await store.get_thread("telegram", "nope") is None


async def test_a_second_delivery_returns_the_first_record_and_creates_nothing(store: Store) -> None:
    first = await store.ingest(inbound(1, text="once"))
    again = await store.ingest(inbound(1, text="a retry may differ"))
    assert not again.created
    assert again.message == first.message and again.job == first.job
    assert len(await store.recent_messages(first.thread.id)) == 1
    assert len(await store.claim_jobs(10)) == 1


async def test_concurrent_deliveries_of_one_message_store_it_once(store: Store) -> None:
    results = []

    async def deliver() -> None:
        results.append(await store.ingest(inbound(5)))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(deliver)
    assert sum(r.created for r in results) == 1
    assert len({r.message.id for r in results}) == 1
    assert len(await store.claim_jobs(50)) == 1


async def test_concurrent_ingests_share_transactions_and_each_gets_its_own_record(
    store: Store,
) -> None:
    results: dict[str, int] = {}

    async def producer(p: int) -> None:
        for i in range(10):
            r = await store.ingest(inbound(f"{p}-{i}", chat=str(p), user=str(p)))
            assert r.created and r.message.platform_message_id == f"{p}-{i}"
            results[f"{p}-{i}"] = r.message.id

    async with trio.open_nursery() as nursery:
        for p in range(16):
            nursery.start_soon(producer, p)
    assert len(results) == 160 and len(set(results.values())) == 160
    group = store.group_commit
    assert group is not None and group.items == 160 and group.batches < 160


async def test_unicode_and_a_one_megabyte_text_round_trip(store: Store) -> None:
    texts = ["héllo wörld", "日本語のテキスト", "emoji 🎉👩‍👩‍👧", "rtl שלום", "x" * (1 << 20)]
    for i, text in enumerate(texts):
        await store.ingest(inbound(i, text=text, author="Zoë 🦊", raw={"t": text[:50]}))
    thread = await store.get_thread("telegram", "100")
    assert thread is not None
    stored = await store.recent_messages(thread.id, limit=10)
    assert [m.text for m in stored] == texts
    assert stored[0].author == "Zoë 🦊" and stored[2].raw == {"t": texts[2]}


def test_what_a_backend_cannot_store_is_refused_at_the_door() -> None:
    with pytest.raises(ValueError, match="NUL"):
        inbound(1, text="a\x00b")
    with pytest.raises(ValueError, match="NUL"):
        inbound(1, raw={"k": ["\x00"]})
    with pytest.raises(ValueError, match="surrogate"):
        inbound(1, text="x\ud800")  # any JSON body can carry "\ud800"
    with pytest.raises(ValueError, match="NaN"):
        inbound(1, raw={"f": float("nan")})
    with pytest.raises(ValueError, match="timezone"):
        inbound(1, sent_at=datetime(2026, 1, 1, 12, 0))  # naive: whose noon?


async def test_ids_holding_the_key_separator_are_different_messages(store: Store) -> None:
    """Regression (review of issue 3): the inbox key was "in:platform:chat:id", so
    chat "a:b" message "c" and chat "a" message "b:c" were one message and the
    second was acknowledged and lost."""
    first = await store.ingest(inbound("c", chat="a:b", text="one"))
    second = await store.ingest(inbound("b:c", chat="a", text="two"))
    assert first.created and second.created
    assert first.message.id != second.message.id and second.message.text == "two"


async def test_every_method_refuses_what_one_backend_would_store_differently(
    store: Store,
) -> None:
    """Postgres refuses NUL and lone surrogates, SQLite refuses NaN in NOT NULL
    columns: the Store refuses them first, the same way on both."""
    r = await store.ingest(inbound(1))
    bad = "nul\x00"
    calls = [
        store.record_reply(r.thread.id, "x\ud800", "k1"),
        store.record_reply(r.thread.id, "ok", "k2", raw={"v": float("inf")}),
        store.remember("telegram:7", bad),
        store.audit("op", "act", {"d": bad}),
        store.set_thread_summary(r.thread.id, bad),
        store.add_artifact(r.message.id, "ocr_text", {"t": bad}),
        store.record_tokens(TokenUsage("reactive", "p", "m", 1, 1, float("nan"))),
        store.record_tokens(TokenUsage("reactive", "p", "m", 1, 1, 0.1, {"x": bad})),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"NUL|surrogate|NaN"):
            await call
    with pytest.raises(ValueError, match="must not start with 'in:'"):
        await store.record_reply(r.thread.id, "x", r.message.idempotency_key)
    with pytest.raises(StorageError):
        await store.get_job(2**70)  # past 64 bits: refused, not an OverflowError


async def test_a_claim_cancelled_before_it_began_claims_nothing(store: Store) -> None:
    job = (await store.ingest(inbound(1))).job
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.claim_jobs(1)
    assert scope.cancelled_caught
    assert (await store.get_job(job.id)).status == "queued"
    assert [j.id for j in await store.claim_jobs(1)] == [job.id]


async def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(
    database_url: str | None, tmp_path: Path
) -> None:
    """Regression (review of issue 3): SQLite read the applied versions outside
    the write transaction, so `greenroom migrate` racing `greenroom run` could
    both apply step 1 and one failed with "table users already exists"."""
    applied: list[list[int]] = []

    async def opener() -> None:
        async with open_store(database_url, tmp_path, migrate=False) as st:
            applied.append(await st.migrate())

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(opener)
    every = [m.version for m in known_migrations("sqlite")]
    assert len(every) >= 3 and sorted(applied) == [[], [], [], every]


async def test_claim_hands_out_oldest_first_each_job_once(store: Store) -> None:
    ids = [(await store.ingest(inbound(i))).job.id for i in range(5)]
    first = await store.claim_jobs(2)
    assert [j.id for j in first] == ids[:2]
    assert all(j.status == "running" and j.attempts == 1 for j in first)
    rest = await store.claim_jobs(10)
    assert [j.id for j in rest] == ids[2:]
    assert await store.claim_jobs(10) == []


async def test_claim_can_be_limited_to_one_thread(store: Store) -> None:
    a = await store.ingest(inbound(1, chat="a"))
    b = await store.ingest(inbound(2, chat="b"))
    assert [j.id for j in await store.claim_jobs(5, thread_id=b.thread.id)] == [b.job.id]
    assert [j.id for j in await store.claim_jobs(5)] == [a.job.id]


async def test_two_concurrent_claimers_never_get_the_same_job(
    store: Store, database_url: str | None, tmp_path: Path
) -> None:
    for i in range(120):
        await store.ingest(inbound(i))
    claimed: list[int] = []

    async def claimer(st: Store) -> None:
        while jobs := await st.claim_jobs(3):
            claimed.extend(j.id for j in jobs)
            await trio.lowlevel.checkpoint()

    # A second Store is a second pool / connection: on Postgres the claims race
    # in two server sessions, which is what SKIP LOCKED is for.
    async with open_store(database_url, tmp_path) as other, trio.open_nursery() as nursery:
        nursery.start_soon(claimer, store)
        nursery.start_soon(claimer, other)
        nursery.start_soon(claimer, store)
    assert len(claimed) == 120 and len(set(claimed)) == 120


async def test_finish_job_follows_the_lifecycle(store: Store) -> None:
    queued = (await store.ingest(inbound(1))).job
    with pytest.raises(IllegalTransition, match="'queued'; it cannot become 'done'"):
        await store.finish_job(queued.id, "done")
    running = (await store.claim_jobs())[0]
    done = await store.finish_job(running.id, "done")
    assert done.status == "done" and await store.get_job(running.id) == done
    with pytest.raises(IllegalTransition):
        await store.finish_job(running.id, "failed", "late")
    other = (await store.ingest(inbound(2))).job
    assert (await store.finish_job(other.id, "canceled")).status == "canceled"
    third = (await store.ingest(inbound(3))).job
    await store.claim_jobs()
    failed = await store.finish_job(third.id, "failed", "the model said no")
    assert (failed.status, failed.error) == ("failed", "the model said no")
    with pytest.raises(NotFound):
        await store.finish_job(99999, "done")
    with pytest.raises(NotFound):
        await store.get_job(99999)
    with pytest.raises(ValueError, match="status must be"):
        await store.finish_job(third.id, "queued")  # type: ignore[arg-type]


async def test_recover_requeues_running_jobs_and_fails_ones_tried_too_often(store: Store) -> None:
    a = (await store.ingest(inbound(1))).job
    b = (await store.ingest(inbound(2))).job
    c = (await store.ingest(inbound(3))).job
    await store.claim_jobs(2)  # a and b running, attempt 1
    assert await store.recover() == (2, 0)
    assert (await store.get_job(a.id)).status == "queued"
    assert (await store.get_job(c.id)).status == "queued"
    again = await store.claim_jobs(1)  # a again: attempt 2
    assert [j.id for j in again] == [a.id] and again[0].attempts == 2
    assert await store.recover(max_attempts=2) == (0, 1)
    gave_up = await store.get_job(a.id)
    assert gave_up.status == "failed" and gave_up.error is not None
    assert (await store.get_job(b.id)).status == "queued"


async def test_recover_leaves_a_job_waiting_for_an_ok_alone(store: Store) -> None:
    r = await store.ingest(inbound(1))
    [job] = await store.claim_jobs(1)
    await store.propose(r.thread.id, "s", "p", message_id=r.message.id)
    for _ in range(3):  # however many restarts
        assert await store.recover() == (0, 0)
    assert (await store.get_job(job.id)).status == "running"


# ---------------------------------------------------------------- the outbox
async def test_a_reply_is_recorded_once_listed_until_sent_and_never_after(store: Store) -> None:
    thread = (await store.ingest(inbound(1))).thread
    reply, created = await store.record_reply(thread.id, "Understood: ...", "ack:1", raw={"ok": 3})
    assert created and reply.role == "assistant" and reply.sent_at is None
    same, created = await store.record_reply(thread.id, "different text", "ack:1")
    assert not created and same == reply
    pending = await store.unsent_replies()
    assert [(p.message.id, p.platform, p.chat_id) for p in pending] == [
        (reply.id, "telegram", "100")
    ]
    assert await store.unsent_replies("nostr") == []
    sent, changed = await store.mark_sent(reply.id, "tg-555")
    assert changed and sent.sent_at is not None and sent.platform_message_id == "tg-555"
    again, changed = await store.mark_sent(reply.id, "tg-556")
    assert not changed and again == sent
    assert await store.unsent_replies() == []
    repeat, created = await store.record_reply(thread.id, "x", "ack:1")
    assert not created and repeat.sent_at is not None  # the caller sees it went out


async def test_outbox_refuses_bad_input(store: Store) -> None:
    r = await store.ingest(inbound(1))
    with pytest.raises(IllegalTransition):
        await store.mark_sent(r.message.id)
    with pytest.raises(NotFound):
        await store.mark_sent(424242)
    with pytest.raises(ValueError, match="role"):
        await store.record_reply(r.thread.id, "x", "k", role="user")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idempotency_key"):
        await store.record_reply(r.thread.id, "x", "")
    with pytest.raises(ValueError, match="NUL"):
        await store.record_reply(r.thread.id, "a\x00", "k2")


# ---------------------------------------------------------------- context and artifacts
async def test_recent_messages_are_the_last_n_oldest_first_with_artifacts(store: Store) -> None:
    thread = None
    for i in range(35):
        r = await store.ingest(inbound(i, text=f"m{i}"))
        thread = r.thread
        if i in (3, 33):
            await store.add_artifact(r.message.id, "voice_transcript", {"text": f"v{i}"})
            await store.add_artifact(r.message.id, "file_meta", {"size": i}, uri=f"file://{i}")
    assert thread is not None
    await store.record_reply(thread.id, "answer", "reply:35")
    last = await store.recent_messages(thread.id)
    assert len(last) == 30
    assert [m.text for m in last] == [f"m{i}" for i in range(6, 35)] + ["answer"]
    with_art = next(m for m in last if m.text == "m33")
    assert [(a.kind, a.content, a.uri) for a in with_art.artifacts] == [
        ("voice_transcript", {"text": "v33"}, None),
        ("file_meta", {"size": 33}, "file://33"),
    ]
    assert all(not m.artifacts for m in last if m.text != "m33")
    full = await store.get_message(with_art.id)
    assert full == with_art
    assert [m.text for m in await store.recent_messages(thread.id, limit=2)] == ["m34", "answer"]


async def test_artifacts_and_messages_refuse_unknown_ids_and_kinds(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_artifact(12345, "ocr_text", {"t": "x"})
    with pytest.raises(NotFound):
        await store.get_message(12345)
    r = await store.ingest(inbound(1))
    with pytest.raises(ValueError, match="kind must be one of"):
        await store.add_artifact(r.message.id, "video", {})  # type: ignore[arg-type]
    assert await store.recent_messages(98765) == []


async def test_thread_summary_and_user_tier(store: Store) -> None:
    r = await store.ingest(inbound(1, author="Bo"))
    updated = await store.set_thread_summary(r.thread.id, "They talked about trio.")
    assert updated.summary == "They talked about trio."
    assert (await store.get_thread("telegram", "100")) == updated
    with pytest.raises(ValueError, match="summary"):
        await store.set_thread_summary(r.thread.id, "  ")
    with pytest.raises(NotFound):
        await store.set_thread_summary(5555, "x")
    admin = await store.set_user_tier("telegram", "7", "admin")
    assert admin.tier == "admin" and admin.display_name == "Bo"
    await store.ingest(inbound(2))  # no author this time: the name is kept
    user = await store.get_user("telegram", "7")
    assert user is not None and user.tier == "admin" and user.display_name == "Bo"
    new = await store.set_user_tier("nostr", "npub1x", "public")
    assert new.platform == "nostr" and await store.get_user("nostr", "npub1y") is None


# ---------------------------------------------------------------- approvals
async def test_a_new_plan_supersedes_the_pending_one_and_a_stale_ok_is_visible(
    store: Store,
) -> None:
    r = await store.ingest(inbound(1))
    assert await store.pending_approval(r.thread.id) is None
    old = await store.propose(r.thread.id, "wants a poem", "write a poem", message_id=r.message.id)
    assert old.status == "pending" and await store.pending_approval(r.thread.id) == old
    r2 = await store.ingest(inbound(2))  # the same author, the same chat
    new = await store.propose(r.thread.id, "wants a song", "write a song", message_id=r2.message.id)
    assert await store.pending_approval(r.thread.id) == new
    stale, changed = await store.decide(old.id, "approved")
    assert not changed and stale.status == "superseded"
    ok, changed = await store.decide(new.id, "approved")
    assert changed and ok.status == "approved" and ok.decided_at is not None
    again, changed = await store.decide(new.id, "rejected")
    assert not changed and again.status == "approved"
    assert await store.pending_approval(r.thread.id) is None
    r3 = await store.ingest(inbound(3))
    third = await store.propose(r.thread.id, "s", "p", message_id=r3.message.id)
    gone = await store.supersede_pending(r.thread.id)
    assert gone is not None and gone.id == third.id and gone.status == "superseded"
    assert await store.supersede_pending(r.thread.id) is None
    with pytest.raises(NotFound):
        await store.decide(777, "approved")
    with pytest.raises(ValueError, match="approved or rejected"):
        await store.decide(third.id, "pending")  # type: ignore[arg-type]


async def test_in_a_group_each_author_has_their_own_pending_plan_and_jobs(store: Store) -> None:
    """Issue 10 item 2: in a group, one member's message claimed, superseded and
    answered another member's work (jobs and the pending plan were the chat's)."""
    a1 = await store.ingest(inbound(1, chat="g", user="alice"))
    b1 = await store.ingest(inbound(2, chat="g", user="bob"))
    thread = a1.thread.id
    assert b1.thread.id == thread
    # Claims by author: Alice's thread never takes Bob's job.
    [mine] = await store.claim_jobs(10, thread_id=thread, author="telegram:alice")
    assert mine.id == a1.job.id
    assert await store.claim_jobs(10, thread_id=thread, author="telegram:alice") == []
    assert [j.id for j in await store.running_jobs(thread, author="telegram:alice")] == [mine.id]
    assert await store.running_jobs(thread, author="telegram:bob") == []
    [theirs] = await store.claim_jobs(10, thread_id=thread, author="telegram:bob")
    assert theirs.id == b1.job.id
    assert {t.id for t in await store.open_threads("telegram:bob")} == {thread}
    # Plans by author: Bob's new plan leaves Alice's pending.
    pa = await store.propose(thread, "A", "a", message_id=a1.message.id)
    pb = await store.propose(thread, "B", "b", message_id=b1.message.id)
    assert await store.pending_approval(thread, author="telegram:alice") == pa
    assert await store.pending_approval(thread, author="telegram:bob") == pb
    b2 = await store.ingest(inbound(3, chat="g", user="bob"))
    pb2 = await store.propose(thread, "B2", "b2", message_id=b2.message.id)
    assert (await store.get_approval(pb.id)).status == "superseded"  # type: ignore[union-attr]
    assert (await store.get_approval(pa.id)).status == "pending"  # type: ignore[union-attr]
    gone = await store.supersede_pending(thread, author="telegram:alice")
    assert gone is not None and gone.id == pa.id
    assert await store.pending_approval(thread, author="telegram:bob") == pb2
    with pytest.raises(ValueError, match="user key"):
        await store.claim_jobs(1, author="alice")


async def test_jobs_and_plans_name_their_author(store: Store) -> None:
    """Review of issue 11: a job and a plan carry ``user_id`` (``users.id`` of the
    message's author), so a caller need not look up whose they are."""
    a = await store.ingest(inbound(1, chat="g", user="alice"))
    b = await store.ingest(inbound(2, chat="g", user="bob"))
    alice, bob = a.message.user_id, b.message.user_id
    assert alice is not None and bob is not None and alice != bob
    assert (a.job.user_id, b.job.user_id) == (alice, bob)
    [claimed] = await store.claim_jobs(1)
    assert claimed.user_id == alice and (await store.get_job(b.job.id)).user_id == bob
    plan = await store.propose(a.thread.id, "s", "p", message_id=b.message.id)
    assert plan.user_id == bob
    assert (await store.pending_approval(a.thread.id, author="telegram:bob")) == plan
    assert (await store.propose(a.thread.id, "s", "p")).user_id is None  # no message: no author


async def test_a_plan_and_its_ack_are_one_transaction(store: Store) -> None:
    """Issue 10 item 6b: the plan and its ack were two transactions; a kill between
    them left a pending plan nobody was shown."""
    r = await store.ingest(inbound(1))
    [job] = await store.claim_jobs(1)
    approval, ack = await store.propose_with_ack(
        r.thread.id, r.message.id, "wants a poem", "write one", ack="Understood: …", key="ack:1"
    )
    assert approval.status == "pending" and approval.message_id == r.message.id
    assert (ack.text, ack.idempotency_key, ack.reply_to) == ("Understood: …", "ack:1", r.message.id)
    assert ack.raw == {"kind": "ack", "approval_id": approval.id} and ack.sent_at is None
    [pending] = await store.unsent_replies()
    assert pending.message.id == ack.id
    # A failure inside rolls both back: a reserved key refuses the whole call.
    with pytest.raises(ValueError):
        await store.propose_with_ack(r.thread.id, r.message.id, "s", "p", ack="x", key="in:x")
    assert await store.pending_approval(r.thread.id) == approval
    assert job.status == "running"


async def test_a_job_and_its_last_reply_are_one_transaction(store: Store) -> None:
    """Issue 10 item 6b: a reply recorded and its job finished in two steps let a
    supersede between them record an answered job as canceled."""
    r = await store.ingest(inbound(1))
    [job] = await store.claim_jobs(1)
    raw = {"kind": "reply", "approval_id": None}
    reply, done = await store.finish_with_reply(
        job.id, "done", thread_id=r.thread.id, text="42", key=f"reply:{job.id}",
        reply_to=r.message.id, raw=raw,
    )  # fmt: skip
    assert done.status == "done" and reply.text == "42" and reply.raw == raw
    # Finishing twice is illegal, and then the (new) reply is not recorded either.
    with pytest.raises(IllegalTransition):
        await store.finish_with_reply(
            job.id, "done", thread_id=r.thread.id, text="again", key="reply:again",
            reply_to=r.message.id, raw=raw,
        )  # fmt: skip
    assert [m.text for m in await store.replies_after(r.thread.id)] == ["42"]


async def test_recover_tells_the_author_of_a_job_it_gives_up_on(store: Store) -> None:
    """Issue 10 item 6b: a job interrupted twice was failed by recover() and nobody
    was told: the thread's notice never ran because the job had left running."""
    r = await store.ingest(inbound(1))
    for _ in range(2):
        await store.claim_jobs(1)
        await store.recover(gave_up="Sorry, I gave up.")
    assert (await store.get_job(r.job.id)).status == "failed"
    [notice] = await store.unsent_replies()
    assert notice.message.text == "Sorry, I gave up." and notice.chat_id == "100"
    assert notice.message.idempotency_key == f"error:{r.job.id}" == reply_key("error", r.job.id)
    assert notice.message.reply_to == r.message.id
    assert notice.message.raw == {"kind": "error", "approval_id": None}
    assert await store.recover(gave_up="Sorry, I gave up.") == (0, 0)
    assert len(await store.unsent_replies()) == 1


async def test_messages_after_reads_what_a_cached_context_has_not_seen(
    store: Store, clock: Clock
) -> None:
    r1 = await store.ingest(inbound(1, text="one"))
    await store.add_artifact(r1.message.id, "voice_transcript", {"text": "one"})
    reply, _ = await store.record_reply(r1.thread.id, "two", "k2")
    r3 = await store.ingest(inbound(3, text="three"))
    got = await store.messages_after(r1.thread.id)
    assert [m.text for m in got] == ["one", "two", "three"]
    assert got[0].artifacts[0].content == {"text": "one"} and got[0].user_id is not None
    assert got[1].user_id is None and got[1].role == "assistant"
    assert [m.id for m in await store.messages_after(r1.thread.id, reply.id)] == [r3.message.id]
    assert await store.messages_after(r1.thread.id, r3.message.id) == []
    # The reconciler's age filters, by the Store's clock.
    clock.advance(seconds=61)
    assert [w.job_id for w in await store.queued_work(older_than_s=60)] == [
        r1.job.id,
        r3.job.id,
    ]
    r4 = await store.ingest(inbound(4))
    assert r4.job.id not in [w.job_id for w in await store.queued_work(older_than_s=60)]
    assert [p.message.id for p in await store.unsent_replies(older_than_s=60)] == [reply.id]
    assert await store.unsent_replies(older_than_s=120) == []


async def test_a_sweep_moves_past_what_it_gave_up_on(store: Store, clock: Clock) -> None:
    """Review of issue 11: the reconciler read the oldest queued jobs and unsent
    replies each time, so a page of items it could not move (a door that is down)
    starved everything after them. ``after_id`` lists only ids above the last one
    a sweep saw, by job id and by message id."""
    made = [await store.ingest(inbound(i, chat=f"c{i}")) for i in range(5)]
    jobs, thread = [r.job.id for r in made], made[0].thread.id
    replies = [(await store.record_reply(thread, "r", f"reply:{i}"))[0].id for i in range(5)]
    clock.advance(seconds=61)
    seen: list[int] = []
    after = 0
    while page := await store.queued_work(2, older_than_s=60, after_id=after):
        seen += [w.job_id for w in page]
        after = page[-1].job_id
    assert seen == jobs
    assert [w.job_id for w in await store.queued_work(after_id=jobs[2])] == jobs[3:]
    unsent: list[int] = []
    after = 0
    while batch := await store.unsent_replies(limit=2, older_than_s=60, after_id=after):
        unsent += [p.message.id for p in batch]
        after = batch[-1].message.id
    assert unsent == replies
    assert [p.message.id for p in await store.unsent_replies("telegram", after_id=replies[3])] == [
        replies[4]
    ]
    assert await store.unsent_replies("nostr", after_id=0) == []
    for call in (store.queued_work(after_id=-1), store.unsent_replies(after_id=-1)):
        with pytest.raises(ValueError, match="after_id must be an int >= 0"):
            await call


# ---------------------------------------------------------------- tokens, memory, audit
async def test_token_spend_sums_by_scope_and_utc_day(store: Store, clock: Clock) -> None:
    today = clock.now.date()
    await store.record_tokens(TokenUsage("reactive", "anthropic", "haiku", 100, 20, 0.001))
    await store.record_tokens(TokenUsage("reactive", "openai", "gpt", 5, 5, 0.5, {"job": 1}))
    await store.record_tokens(TokenUsage("proactive", "anthropic", "haiku", 1000, 0, 0.01))
    clock.advance(days=1)
    await store.record_tokens(TokenUsage("reactive", "anthropic", "haiku", 7, 3, 0.2))
    spend = await store.token_spend("reactive", today)
    assert (spend.calls, spend.tokens_in, spend.tokens_out, spend.tokens_total) == (2, 105, 25, 130)
    assert spend.cost == pytest.approx(0.501)
    assert (await store.token_spend("proactive", today)).tokens_total == 1000
    assert (await store.token_spend("reactive", clock.now.date())).tokens_total == 10
    assert await store.token_totals() == [
        ("proactive", "anthropic", "haiku", 1, 1000, 0, pytest.approx(0.01)),
        ("reactive", "anthropic", "haiku", 2, 107, 23, pytest.approx(0.201)),
        ("reactive", "openai", "gpt", 1, 5, 5, pytest.approx(0.5)),
    ]
    empty = await store.token_spend("proactive", date(2020, 1, 1))
    assert (empty.calls, empty.tokens_total, empty.cost) == (0, 0, 0.0)
    with pytest.raises(ValueError, match="scope"):
        await store.record_tokens(TokenUsage("other", "p", "m", 1, 1, 0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        await store.record_tokens(TokenUsage("reactive", "p", "m", -1, 1, 0.0))


async def test_memories_belong_to_one_user(store: Store) -> None:
    m1 = await store.remember("telegram:1", "likes tea")
    await store.remember("telegram:2", "likes coffee")
    m3 = await store.remember("telegram:1", "lives in Lyon", source_message_id=None)
    mine = await store.recall("telegram:1")
    assert [m.fact for m in mine] == ["likes tea", "lives in Lyon"]
    assert [m.id for m in mine] == [m1.id, m3.id]
    assert [m.fact for m in await store.recall("telegram:1", limit=1)] == ["lives in Lyon"]
    assert [m.fact for m in await store.recall("telegram:2")] == ["likes coffee"]
    with pytest.raises(ValueError, match="fact"):
        await store.remember("telegram:1", " ")


async def test_audit_log_keeps_who_did_what(store: Store) -> None:
    a = await store.audit("uid:0", "debug.kill", {"path": "/connectors/http", "reason": "test"})
    b = await store.audit("uid:0", "debug.inject", {"path": "/users/x"})
    entries = await store.audit_entries()
    assert [e.id for e in entries] == [b, a]
    assert entries[1].detail == {"path": "/connectors/http", "reason": "test"}
    kills = await store.audit_entries(action="debug.kill")
    assert [e.action for e in kills] == ["debug.kill"] and kills[0].actor == "uid:0"
    with pytest.raises(ValueError, match="limit"):
        await store.audit_entries(0)


async def test_concurrent_writers_of_every_kind_lose_nothing(store: Store) -> None:
    thread = (await store.ingest(inbound("seed"))).thread

    async def writer(w: int) -> None:
        for i in range(8):
            await store.ingest(inbound(f"w{w}-{i}", chat=f"c{w}"))
            await store.record_reply(thread.id, f"r{w}-{i}", f"reply:{w}:{i}")
            await store.audit(f"w{w}", "write", {"i": i})
            await store.remember(f"u:{w}", f"fact {i}")

    async with trio.open_nursery() as nursery:
        for w in range(8):
            nursery.start_soon(writer, w)
    assert len(await store.unsent_replies(limit=1000)) == 64
    assert len(await store.audit_entries(limit=1000)) == 64
    for w in range(8):
        assert len(await store.recall(f"u:{w}")) == 8
    assert len(await store.claim_jobs(100)) == 65
    assert await store.ping()


async def test_limits_are_validated(store: Store) -> None:
    for call in (store.claim_jobs(0), store.recent_messages(1, 0), store.recall("u", -1)):
        with pytest.raises(ValueError, match=">= 1"):
            await call


async def test_replies_after_is_a_resumable_feed_of_one_threads_replies(store: Store) -> None:
    r = await store.ingest(inbound(1))
    other = await store.ingest(inbound(2, chat="other"))
    a, _ = await store.record_reply(r.thread.id, "ack", "ack:1", raw={"kind": "ack"})
    await store.record_reply(other.thread.id, "not yours", "ack:2")
    await store.ingest(inbound(3))  # a user message is not a reply
    b, _ = await store.record_reply(r.thread.id, "answer", "reply:1")
    assert [m.id for m in await store.replies_after(r.thread.id)] == [a.id, b.id]
    assert [m.text for m in await store.replies_after(r.thread.id, a.id)] == ["answer"]
    assert await store.replies_after(r.thread.id, b.id) == []
    assert [m.id for m in await store.replies_after(r.thread.id, limit=1)] == [a.id]


async def test_sessions_are_found_by_token_hash_until_they_expire(
    store: Store, clock: Clock
) -> None:
    h1, h2 = "a" * 64, "b" * 64
    await store.create_session("http:u1", h1)
    await store.create_session("http:u2", h2, expires_at=clock.now + timedelta(hours=1))
    assert await store.session_user(h1) == "http:u1"
    assert await store.session_user(h2) == "http:u2"
    assert await store.session_user("c" * 64) is None
    assert await store.session_user("x\x00") is None
    clock.advance(hours=2)
    assert await store.session_user(h2) is None and await store.session_user(h1) == "http:u1"
    with pytest.raises(StorageError):
        await store.create_session("http:u3", h1)  # a hash is one session
    with pytest.raises(ValueError, match="hash"):
        await store.create_session("http:u3", "short")


async def test_a_restarted_threads_unfinished_work_is_found_and_requeued(store: Store) -> None:
    a = await store.ingest(inbound(1, chat="a", user="ua", text="first"))
    b = await store.ingest(inbound(2, chat="b", user="ub", text="second"))
    assert await store.queued_work() == [a.received("ua"), b.received("ub")]
    assert [(w.chat_id, w.text) for w in await store.queued_work()] == [
        ("a", "first"),
        ("b", "second"),
    ]
    [claimed] = await store.claim_jobs(1, thread_id=a.thread.id)
    assert [j.id for j in await store.running_jobs(a.thread.id)] == [claimed.id]
    assert await store.running_jobs(b.thread.id) == []
    assert [w.job_id for w in await store.queued_work()] == [b.job.id]
    again = await store.requeue_job(claimed.id)
    assert (again.status, again.attempts) == ("queued", 1)
    with pytest.raises(IllegalTransition):
        await store.requeue_job(claimed.id)
    assert await store.job_for_message(a.message.id) == again
    reply, _ = await store.record_reply(a.thread.id, "x", "reply:1")
    assert await store.job_for_message(reply.id) is None


async def test_get_approval(store: Store) -> None:
    r = await store.ingest(inbound(1))
    proposed = await store.propose(r.thread.id, "s", "p", message_id=r.message.id)
    assert await store.get_approval(proposed.id) == proposed
    assert await store.get_approval(proposed.id + 100) is None
    assert await store.approval_for_message(r.message.id) == proposed
    newer = await store.propose(r.thread.id, "s2", "p2", message_id=r.message.id)
    assert await store.approval_for_message(r.message.id) == newer
    assert await store.approval_for_message(r.message.id + 100) is None


async def test_a_postgres_owner_whose_session_died_takes_the_database_back(
    pg_url: str, tmp_path: Path, sessions: Sessions
) -> None:
    """Review of issue 3: the ownership lock lives on one server session; if the
    server drops it, a second process could take over unnoticed and both would
    answer the same messages."""
    async with open_store(pg_url, tmp_path, exclusive=True) as owner:
        await owner.check_ownership()  # healthy: nothing to do
        first = await sessions.owner_pid()
        assert first is not None
        await sessions.terminate(first)
        await owner.check_ownership()  # the session died: taken back
        second = await sessions.owner_pid()
        assert second is not None and second != first
        with pytest.raises(DatabaseInUse):
            async with open_store(pg_url, tmp_path, exclusive=True):
                pass
        await sessions.terminate(second)
        async with open_store(pg_url, tmp_path, exclusive=True) as usurper:
            with pytest.raises(DatabaseInUse):
                await owner.check_ownership()
            await usurper.check_ownership()


async def test_connector_state_is_kept_per_connector_and_key(store: Store) -> None:
    assert await store.get_state("telegram", "offset") is None
    await store.set_state("telegram", "offset", "100")
    await store.set_state("telegram", "offset", "101")
    await store.set_state("nostr", "offset", "x")
    assert await store.get_state("telegram", "offset") == "101"
    assert await store.get_state("nostr", "offset") == "x"
    with pytest.raises(ValueError, match="NUL"):
        await store.set_state("telegram", "offset", "\x00")


async def test_thread_by_id_and_a_messages_author(store: Store) -> None:
    r = await store.ingest(inbound(1, chat="group-9", user="77"))
    assert await store.thread_by_id(r.thread.id) == r.thread
    assert await store.thread_by_id(r.thread.id + 50) is None
    user = await store.get_user("telegram", "77")
    assert user is not None and r.message.user_id == user.id and r.job.user_id == user.id
    reply, _ = await store.record_reply(r.thread.id, "x", "reply:a")
    assert reply.user_id is None
