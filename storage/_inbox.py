"""The durable inbox's way in: ``ingest``, group-committed.

An inbound message is stored with its user, its thread and its queued job in
one transaction, deduplicated by its idempotency key (``_held`` stores one
without its job until its door has enriched it). The job's lifecycle after
that is ``_jobs``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import outcome

from protocols import Inbound, Received

from ._backend import Script
from ._common import StorePart, where_in
from ._dialect import Dialect, Q, Row
from ._errors import IllegalTransition, StoreUnavailable
from ._group import GroupCommit
from ._jobs import JOB_COLS, Job, to_job
from ._messages import (
    MSG_COLS,
    THREAD_COLS,
    StoredMessage,
    ThreadRecord,
    to_message,
    to_thread,
)

__all__ = ["Inbox", "IngestResult", "insert_inbound", "upsert_threads", "upsert_users"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ``ingest`` stored, or found stored already (``created`` False: a redelivery)."""

    message: StoredMessage
    job: Job
    thread: ThreadRecord
    created: bool

    def received(self, user_id: str) -> Received:
        """The ``chat.Received`` that hands this message to its author's actor
        (``user_id`` is the platform's id of the author)."""
        return Received(
            job_id=self.job.id,
            message_id=self.message.id,
            thread_id=self.thread.id,
            platform=self.thread.platform,
            chat_id=self.thread.chat_id,
            user_id=user_id,
            text=self.message.text,
        )


# ---------------------------------------------------------------- ingest
_MSG_TYPES = (
    "text",
    "bigint",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "jsonb",
    "timestamptz",
    "timestamptz",
)
_JOB_TYPES = ("bigint", "bigint", "bigint", "text", "text", "jsonb", "timestamptz", "timestamptz")


def ingest(
    d: Dialect, items: Sequence[Inbound], now: datetime
) -> Script[list[outcome.Outcome[IngestResult]]]:
    """Store each inbound message with its queued job; a known one is returned as stored.

    Set-based: four statements for the whole batch, whatever its
    size (one statement per item per table made a 128-item Postgres batch
    cost 300 round trips), each with the same text whatever the batch size
    (see ``Dialect.rows``). Items are matched to returned rows by natural
    key, never by row order, which neither dialect promises for RETURNING.
    The same key twice in one batch is stored once; the later items get
    ``created=False``. One outcome per item: the key of a held message (stored
    by ``ingest_held``, no job yet: a key is ingested one way only) is
    IllegalTransition for that item alone, not an error of the batch's
    transaction.
    """
    ts = d.ts(now)
    first: dict[str, Inbound] = {}
    for m in items:
        first.setdefault(m.idempotency_key, m)
    new = list(first.values())
    # No "which of these exist?" SELECT first: in the common case none do, and
    # on a young table Postgres plans that lookup as a sequential scan (seen:
    # 10 ms of a 30 ms batch). A redelivery only refreshes last_seen/updated_at.
    user_ids = yield from upsert_users(d, new, ts)
    threads = yield from upsert_threads(d, new, ts)
    thread_of: dict[int, ThreadRecord] = {t.id: t for t in threads.values()}
    placed = [
        (m, threads[(m.platform, m.chat_id)].id, user_ids[(m.platform, m.user_id)]) for m in new
    ]
    inserted = yield from insert_inbound(d, placed, ts)
    messages = {r["idempotency_key"]: r for r in inserted}
    created = set(messages)
    job_of: dict[int, Job] = {}
    if inserted:
        payload = d.json({})
        source, args = d.rows(
            _JOB_TYPES,
            [
                (
                    r["thread_id"],
                    r["user_id"],
                    r["id"],
                    "queued",
                    first[r["idempotency_key"]].mode,
                    payload,
                    ts,
                    ts,
                )
                for r in inserted
            ],
        )
        jobs = yield Q(
            "INSERT INTO reactive_jobs (thread_id, user_id, message_id, status, mode, payload, "
            f"created_at, updated_at) {source} RETURNING {JOB_COLS}",
            args,
        )
        job_of.update((r["message_id"], to_job(d, r)) for r in jobs)
    known = [key for key in first if key not in messages]
    if known:
        # Stored before: a redelivery, or another transaction that stored the
        # key first (Postgres made us wait for it on the unique index).
        where, args = where_in(d, "idempotency_key", "text", known)
        rows = yield Q(f"SELECT {MSG_COLS} FROM chat_messages WHERE {where}", args)
        messages.update((r["idempotency_key"], r) for r in rows)
    # Stored before (a redelivery, or a race lost): read their jobs and threads.
    msg_ids = [r["id"] for r in messages.values() if r["id"] not in job_of]
    if msg_ids:
        where, args = where_in(d, "message_id", "bigint", msg_ids)
        jobs = yield Q(f"SELECT {JOB_COLS} FROM reactive_jobs WHERE {where}", args)
        job_of.update((r["message_id"], to_job(d, r)) for r in jobs)
    thread_ids = sorted({r["thread_id"] for r in messages.values()} - thread_of.keys())
    if thread_ids:
        where, args = where_in(d, "id", "bigint", thread_ids)
        trows = yield Q(f"SELECT {THREAD_COLS} FROM chat_threads WHERE {where}", args)
        thread_of.update((r["id"], to_thread(d, r)) for r in trows)
    results: list[outcome.Outcome[IngestResult]] = []
    for m in items:
        key = m.idempotency_key
        row = messages[key]
        job = job_of.get(row["id"])
        if job is None:
            held = IllegalTransition("message", row["id"], "held", "queued")
            results.append(outcome.Error(held))
            continue
        result = IngestResult(
            message=to_message(d, row),
            job=job,
            thread=thread_of[row["thread_id"]],
            created=key in created and first[key] is m,
        )
        results.append(outcome.Value(result))
    return results


def insert_inbound(
    d: Dialect, items: Sequence[tuple[Inbound, int, int]], ts: Any
) -> Script[list[Row]]:
    """Insert inbound messages (each with its thread id and user id); return the rows
    inserted (a known idempotency key inserts nothing)."""
    source, args = d.rows(
        _MSG_TYPES,
        [
            (
                "user", thread_id, user_id, m.author, m.text, m.message_id, m.idempotency_key,
                d.json(m.raw), ts, d.ts(m.sent_at) if m.sent_at is not None else None,
            )
            for m, thread_id, user_id in items
        ],
    )  # fmt: skip
    rows = yield Q(
        "INSERT INTO chat_messages (role, thread_id, user_id, author, text, "
        f"platform_message_id, idempotency_key, raw, created_at, sent_at) {source} "
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {MSG_COLS}",
        args,
    )
    return rows


def upsert_users(d: Dialect, new: list[Inbound], ts: Any) -> Script[dict[tuple[str, str], int]]:
    # One row per identity: Postgres refuses an upsert that touches a row twice.
    latest: dict[tuple[str, str], str] = {}
    for m in new:
        if m.author or (m.platform, m.user_id) not in latest:
            latest[(m.platform, m.user_id)] = m.author
    # Sorted: two processes' batches lock rows in one order, so never deadlock.
    source, args = d.rows(
        ("text", "text", "text", "timestamptz", "timestamptz"),
        [
            (platform, user_id, author, ts, ts)
            for (platform, user_id), author in sorted(latest.items())
        ],
    )
    rows = yield Q(
        "INSERT INTO users (platform, platform_user_id, display_name, created_at, last_seen_at) "
        f"{source} ON CONFLICT (platform, platform_user_id) DO UPDATE "
        "SET last_seen_at = excluded.last_seen_at, display_name = CASE WHEN "
        "excluded.display_name = '' THEN users.display_name ELSE excluded.display_name END "
        "RETURNING id, platform, platform_user_id",
        args,
    )
    return {(r["platform"], r["platform_user_id"]): r["id"] for r in rows}


def upsert_threads(
    d: Dialect, new: list[Inbound], ts: Any
) -> Script[dict[tuple[str, str], ThreadRecord]]:
    chats = sorted({(m.platform, m.chat_id) for m in new})  # one lock order (see above)
    source, args = d.rows(
        ("text", "text", "timestamptz", "timestamptz"),
        [(platform, chat_id, ts, ts) for platform, chat_id in chats],
    )
    rows = yield Q(
        f"INSERT INTO chat_threads (platform, chat_id, created_at, updated_at) {source} "
        "ON CONFLICT (platform, chat_id) DO UPDATE "
        f"SET updated_at = excluded.updated_at RETURNING {THREAD_COLS}",
        args,
    )
    return {(r["platform"], r["chat_id"]): to_thread(d, r) for r in rows}


# ---------------------------------------------------------------- the Store's part
class Inbox(StorePart):
    """The Store's way in for inbound messages."""

    _group: GroupCommit[Inbound, IngestResult] | None  # set by Store

    @property
    def group_commit(self) -> GroupCommit[Inbound, IngestResult] | None:
        """The ingest batcher (its ``batches``/``items`` counters), or None when off."""
        return self._group

    async def ingest(self, inbound: Inbound) -> IngestResult:
        """Store ``inbound`` and its queued job in one transaction; return both.

        Idempotent on ``inbound.idempotency_key`` (platform, chat, message id):
        a second delivery returns the first record with ``created=False`` and
        creates nothing. When this returns, the record is durable (committed;
        on SQLite, fsynced). IllegalTransition for the key of a message stored
        held (``ingest_held``), which this call leaves as it is. With group
        commit, concurrent calls share a transaction (one item's error is its
        own); see ``GroupCommit.submit`` for cancellation.
        """
        if self._group is not None:
            return await self._group.submit(inbound)
        return (await self._run(ingest, [inbound], self._clock()))[0].unwrap()

    async def _flush_ingest(self, items: Sequence[Inbound]) -> list[outcome.Outcome[IngestResult]]:
        try:
            return await self._run(ingest, items, self._clock())
        except StoreUnavailable:
            raise  # the database, not an item: every caller gets it, nothing retried
        except Exception:
            if len(items) == 1:
                raise
        # One item spoiled the batch: commit the rest one by one so only it fails.
        out: list[outcome.Outcome[IngestResult]] = []
        for n, item in enumerate(items):
            try:
                out.append((await self._run(ingest, [item], self._clock()))[0])
            except StoreUnavailable as exc:
                # Down mid-fallback: fail the rest now rather than wait out a
                # connect timeout per item inside the shielded flush.
                out += [outcome.Error(exc) for _ in items[n:]]
                break
            except Exception as exc:
                out.append(outcome.Error(exc))
        return out
