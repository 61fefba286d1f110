"""Held inbound messages: stored and deduplicated at once, their job made only once
their door has enriched them (a voice note's transcript, a photo's description).

A held message has no job, so nothing claims, recovers or re-dispatches it
until its door releases it; ``release_held`` then makes its job as ``ingest``
would have. Meanwhile its author's later jobs in its chat wait too (``_jobs``
hands none out behind a held message), so a text sent after a photo is not
answered before the photo is described.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from protocols import Inbound

from ._backend import Script
from ._common import StorePart, check_limit, check_storable
from ._connector_state import HELD
from ._dialect import Dialect, Q
from ._errors import NotFound
from ._inbox import IngestResult, insert_inbound, upsert_threads, upsert_users
from ._jobs import JOB_COLS, job_for_message, to_job
from ._messages import MSG_COLS, StoredMessage, ThreadRecord, get_message, thread_by_id, to_message

__all__ = ["Held"]


# ---------------------------------------------------------------- scripts
# A held message is stored without a job until its door has enriched it
# (a voice note's transcript, a photo's description): nothing claims,
# recovers or re-dispatches it meanwhile, nor its author's later messages in
# its chat (see ``_jobs``). One connector_state row per held message marks it
# (namespace HELD, key: the message id, value: how many enrichment attempts
# began), so a restarted door finds what a crash left.


def ingest_held(
    d: Dialect, m: Inbound, now: datetime
) -> Script[tuple[StoredMessage, ThreadRecord, bool]]:
    """Store an inbound message held (no job) with its marker; a known key is
    returned as stored, changing nothing but the user's and thread's stamps."""
    ts = d.ts(now)
    user_ids = yield from upsert_users(d, [m], ts)
    thread = (yield from upsert_threads(d, [m], ts))[(m.platform, m.chat_id)]
    inserted = yield from insert_inbound(d, [(m, thread.id, user_ids[(m.platform, m.user_id)])], ts)
    if inserted:
        yield Q(
            "INSERT INTO connector_state (connector, key, value, updated_at) "
            "VALUES ($1, $2, '0', $3)",
            (HELD, str(inserted[0]["id"]), ts),
        )
        return to_message(d, inserted[0]), thread, True
    rows = yield Q(
        f"SELECT {MSG_COLS} FROM chat_messages WHERE idempotency_key = $1", (m.idempotency_key,)
    )
    return to_message(d, rows[0]), thread, False


def held_messages(d: Dialect, platform: str, limit: int) -> Script[list[tuple[int, str]]]:
    """(message id, chat id) of the platform's held messages, oldest first."""
    rows = yield Q(
        # The CASE keeps Postgres from casting other connectors' keys ("offset"),
        # whatever order its plan evaluates the join and the filter in.
        "SELECT m.id, t.chat_id FROM connector_state s "
        "JOIN chat_messages m "
        "ON m.id = CAST(CASE WHEN s.connector = $1 THEN s.key END AS BIGINT) "
        "JOIN chat_threads t ON t.id = m.thread_id "
        "WHERE s.connector = $1 AND t.platform = $2 ORDER BY m.id LIMIT $3",
        (HELD, platform, limit),
    )
    return [(int(r["id"]), str(r["chat_id"])) for r in rows]


def begin_held(
    d: Dialect, message_id: int, now: datetime
) -> Script[tuple[StoredMessage, int] | None]:
    """Count one more enrichment attempt of a held message; return it (with its
    artifacts) and the attempt's number, or None when it is not held."""
    rows = yield Q(
        "UPDATE connector_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT), "
        "updated_at = $3 WHERE connector = $1 AND key = $2 RETURNING value",
        (HELD, str(message_id), d.ts(now)),
    )
    if not rows:
        return None
    message = yield from get_message(d, message_id)
    return message, int(rows[0]["value"])


def release_held(d: Dialect, message_id: int, text: str, now: datetime) -> Script[IngestResult]:
    """End a message's hold: set its text and create its job, queued, or canceled
    when a newer message of the same author in its chat already has one (the newest
    message wins, as the author's actor's claim decides). Released before: the
    record as it is. The message comes with its artifacts (what the door made)."""
    ts = d.ts(now)
    held = yield Q(
        "DELETE FROM connector_state WHERE connector = $1 AND key = $2 RETURNING key",
        (HELD, str(message_id)),
    )
    message = yield from get_message(d, message_id)
    job = yield from job_for_message(d, message_id)
    created = bool(held) and job is None
    if created:
        # Newer by the same author in the same chat: in a group another member's
        # message supersedes nothing of this one (jobs are the chat's and the author's).
        newer = yield Q(
            "SELECT 1 AS one FROM reactive_jobs WHERE message_id > $1 AND thread_id = $2 "
            "AND user_id IS NOT DISTINCT FROM $3 LIMIT 1",
            (message_id, message.thread_id, message.user_id),
        )
        status, error = ("canceled", "superseded by a newer message") if newer else ("queued", None)
        jobs = yield Q(
            "INSERT INTO reactive_jobs (thread_id, user_id, message_id, status, mode, payload, "
            "error, created_at, updated_at) VALUES ($1, $2, $3, $4, 'chat', $5, $6, $7, $7) "
            f"RETURNING {JOB_COLS}",
            (message.thread_id, message.user_id, message_id, status, d.json({}), error, ts),
        )
        job = to_job(d, jobs[0])
        yield Q("UPDATE chat_messages SET text = $2 WHERE id = $1", (message_id, text))
        message = replace(message, text=text)
    elif job is None:
        raise NotFound("held message", message_id)
    thread = yield from thread_by_id(d, message.thread_id)
    if thread is None:  # cannot be: a message's thread is its foreign key
        raise NotFound("thread", message.thread_id)
    return IngestResult(message=message, job=job, thread=thread, created=created)


# ---------------------------------------------------------------- the Store's part
class Held(StorePart):
    """The Store's held inbound messages."""

    async def ingest_held(self, inbound: Inbound) -> tuple[StoredMessage, ThreadRecord, bool]:
        """Store ``inbound`` held (no job yet); return (message, thread, created).

        Idempotent on ``inbound.idempotency_key`` like :meth:`ingest`: a second
        delivery returns the first record with ``created`` False, held or
        released. Durable when it returns. Not group-committed (one
        transaction per call): held messages are the rare, slow kind. A
        message's key must be ingested one way only: :meth:`ingest` of a held
        message's key raises IllegalTransition (``held`` cannot become ``queued``).
        """
        return await self._run(ingest_held, inbound, self._clock())

    async def held_messages(self, platform: str, *, limit: int = 100) -> list[tuple[int, str]]:
        """(message id, chat id) of ``platform``'s held messages, oldest first: what a
        door restarted after a crash must still enrich."""
        check_limit("limit", limit)
        return await self._run(held_messages, platform, limit)

    async def begin_held(self, message_id: int) -> tuple[StoredMessage, int] | None:
        """Count one more enrichment attempt of a held message and return it (with
        its artifacts: what an earlier attempt already produced) and the attempt's
        number, 1 for the first; None when it is not held (released, or never)."""
        return await self._run(begin_held, message_id, self._clock())

    async def release_held(self, message_id: int, text: str) -> IngestResult:
        """End a message's hold in one transaction: its text becomes ``text`` and its
        job is created, queued, or already canceled when a newer message of the
        same author in the same chat has a job (the newest message wins, as the
        author's actor's claim decides, whatever order the jobs were made in;
        another group member's message supersedes nothing of it). The message
        comes with its artifacts. ``created`` says whether this call released
        it; a second call returns the record unchanged. NotFound for a message
        that has neither a hold nor a job; ValueError for text storage refuses.
        """
        check_storable(text=text)
        return await self._run(release_held, message_id, text, self._clock())
