"""The durable inbox's jobs (``reactive_jobs``): claims, their end, recovery, queued work.

A job is made with its inbound message (``_inbox``); from then on this
module moves it through its lifecycle (see :data:`JobStatus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import trio

from protocols import Received, ReplyKind

from ._backend import Script
from ._common import (
    StorePart,
    author_id,
    author_key,
    by_author,
    check_after_id,
    check_limit,
    check_storable,
    one,
    split_key,
)
from ._connector_state import HELD
from ._dialect import Dialect, Q, Row
from ._errors import IllegalTransition
from ._messages import THREAD_COLS, ThreadRecord, to_thread

__all__ = [
    "JOB_COLS",
    "JOB_STATUSES",
    "Job",
    "JobStatus",
    "Jobs",
    "finish_job",
    "reply_key",
    "to_job",
]

# The durable inbox's lifecycle: queued -> running -> done | failed | canceled;
# running -> queued only through recover() (a crash interrupted it);
# queued -> canceled (superseded before it ran).
JobStatus = Literal["queued", "running", "done", "failed", "canceled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "failed", "canceled")


@dataclass(frozen=True, slots=True)
class Job:
    """One entry of the durable inbox (``reactive_jobs``)."""

    id: int
    thread_id: int
    message_id: int
    #: ``users.id`` of the message's author (None only for a job older than authors)
    user_id: int | None
    status: JobStatus
    mode: str
    payload: dict[str, Any]
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime


def reply_key(kind: ReplyKind, job_id: int) -> str:
    """The outbox key of a job's reply of ``kind`` (``error:<job id>``): one reply of
    each kind per job, whoever records it (the user actor, or ``recover`` giving up)."""
    return f"{kind}:{job_id}"


# ---------------------------------------------------------------- rows -> records
JOB_COLS = (
    "id, thread_id, message_id, user_id, status, mode, payload, attempts, error, created_at, "
    "updated_at"
)

# Which states a job may move to each target from (see JobStatus).
_JOB_FROM: dict[JobStatus, tuple[JobStatus, ...]] = {
    "done": ("running",),
    "failed": ("running",),
    "canceled": ("queued", "running"),
}


def to_job(d: Dialect, r: Row) -> Job:
    return Job(
        id=r["id"],
        thread_id=r["thread_id"],
        message_id=r["message_id"],
        user_id=r["user_id"],
        status=r["status"],
        mode=r["mode"],
        payload=d.from_json(r["payload"]),
        attempts=r["attempts"],
        error=r["error"],
        created_at=d.from_ts(r["created_at"]),
        updated_at=d.from_ts(r["updated_at"]),
    )


def _not_behind_held(job: str) -> str:
    """SQL: no earlier message of the author of ``job`` (reactive_jobs' name or alias
    in the query) in its chat is still held. A held photo is answered before the
    text sent after it, whatever wakes the author's actor first (another chat's
    message, an OK, a restart, the reconciler): its release makes the text's job
    claimable. Cheap: held markers are few (the CASE keeps Postgres from casting
    other connectors' keys, as in ``_held.held_messages``)."""
    return (
        "NOT EXISTS (SELECT 1 FROM connector_state s JOIN chat_messages h "
        f"ON h.id = CAST(CASE WHEN s.connector = '{HELD}' THEN s.key END AS BIGINT) "
        f"WHERE s.connector = '{HELD}' AND h.thread_id = {job}.thread_id "
        f"AND h.user_id = {job}.user_id AND h.id < {job}.message_id)"
    )


# ---------------------------------------------------------------- scripts
def claim_jobs(
    d: Dialect, limit: int, thread_id: int | None, author: str | None, now: datetime
) -> Script[list[Job]]:
    """Move up to ``limit`` queued jobs (oldest first) to running and return them;
    only ``thread_id``'s and only ``author``'s (a user key) when given; none waiting
    behind a held message."""
    where = f"status = 'queued' AND {_not_behind_held('reactive_jobs')}"
    args: tuple[Any, ...] = (limit, d.ts(now))
    if thread_id is not None:
        where += f" AND thread_id = ${len(args) + 1}"
        args += (thread_id,)
    mine, who = by_author(author, len(args) + 1)
    where += mine
    args += who
    rows = yield Q(
        "UPDATE reactive_jobs SET status = 'running', attempts = attempts + 1, updated_at = $2 "
        f"WHERE status = 'queued' AND id IN (SELECT id FROM reactive_jobs WHERE {where} "
        f"ORDER BY id LIMIT $1{d.skip_locked}) RETURNING {JOB_COLS}",
        args,
    )
    return sorted((to_job(d, r) for r in rows), key=lambda j: j.id)


def finish_job(
    d: Dialect, job_id: int, status: JobStatus, error: str | None, now: datetime
) -> Script[Job]:
    """Move a job to done, failed or canceled, from the states that allow it."""
    allowed = _JOB_FROM[status]
    marks = ", ".join(f"'{s}'" for s in allowed)
    rows = yield Q(
        "UPDATE reactive_jobs SET status = $2, error = $3, updated_at = $4 "
        f"WHERE id = $1 AND status IN ({marks}) RETURNING {JOB_COLS}",
        (job_id, status, error, d.ts(now)),
    )
    if rows:
        return to_job(d, rows[0])
    current = one(
        (yield Q("SELECT status FROM reactive_jobs WHERE id = $1", (job_id,))), "job", job_id
    )
    raise IllegalTransition("job", job_id, current["status"], status)


def get_job(d: Dialect, job_id: int) -> Script[Job]:
    """One job by id."""
    rows = yield Q(f"SELECT {JOB_COLS} FROM reactive_jobs WHERE id = $1", (job_id,))
    return to_job(d, one(rows, "job", job_id))


def running_jobs(d: Dialect, thread_id: int, author: str | None) -> Script[list[Job]]:
    """The thread's jobs in ``running`` (only ``author``'s when given), oldest first."""
    mine, who = by_author(author, 2)
    rows = yield Q(
        f"SELECT {JOB_COLS} FROM reactive_jobs WHERE thread_id = $1 AND status = 'running'{mine} "
        "ORDER BY id",
        (thread_id, *who),
    )
    return [to_job(d, r) for r in rows]


def open_threads(d: Dialect, author: str) -> Script[list[ThreadRecord]]:
    """The threads in which ``author`` has a job queued or running, by id."""
    rows = yield Q(
        f"SELECT {THREAD_COLS} FROM chat_threads WHERE id IN (SELECT thread_id FROM reactive_jobs "
        f"WHERE user_id = {author_id(1)} AND status IN ('queued', 'running')) ORDER BY id",
        split_key(author),
    )
    return [to_thread(d, r) for r in rows]


def requeue_job(d: Dialect, job_id: int, now: datetime) -> Script[Job]:
    """Move a running job back to queued (its worker died; it will be claimed again)."""
    rows = yield Q(
        "UPDATE reactive_jobs SET status = 'queued', updated_at = $2 "
        f"WHERE id = $1 AND status = 'running' RETURNING {JOB_COLS}",
        (job_id, d.ts(now)),
    )
    if rows:
        return to_job(d, rows[0])
    current = one(
        (yield Q("SELECT status FROM reactive_jobs WHERE id = $1", (job_id,))), "job", job_id
    )
    raise IllegalTransition("job", job_id, current["status"], "queued")


def job_for_message(d: Dialect, message_id: int) -> Script[Job | None]:
    """The job an inbound message made, if any."""
    rows = yield Q(f"SELECT {JOB_COLS} FROM reactive_jobs WHERE message_id = $1", (message_id,))
    return to_job(d, rows[0]) if rows else None


def queued_work(
    d: Dialect, limit: int, before: datetime | None, after_id: int
) -> Script[list[Received]]:
    """Queued jobs with what routes them to their user's actor, oldest first (none
    waiting behind a held message), with job ids above ``after_id``; only those last
    changed before ``before`` when given."""
    age = " AND j.updated_at < $3" if before is not None else ""
    rows = yield Q(
        "SELECT j.id AS job_id, m.id AS message_id, t.id AS thread_id, t.platform, t.chat_id, "
        "u.platform_user_id, m.text FROM reactive_jobs j "
        "JOIN chat_messages m ON m.id = j.message_id JOIN chat_threads t ON t.id = j.thread_id "
        f"JOIN users u ON u.id = m.user_id WHERE j.status = 'queued' AND j.id > $2 "
        f"AND {_not_behind_held('j')}{age} ORDER BY j.id LIMIT $1",
        (limit, after_id) + ((d.ts(before),) if before is not None else ()),
    )
    return [
        Received(
            job_id=r["job_id"],
            message_id=r["message_id"],
            thread_id=r["thread_id"],
            platform=r["platform"],
            chat_id=r["chat_id"],
            user_id=r["platform_user_id"],
            text=r["text"],
        )
        for r in rows
    ]


def recover(
    d: Dialect, max_attempts: int, gave_up: str | None, now: datetime
) -> Script[tuple[int, int]]:
    """Requeue jobs a crash left running (not those waiting for an OK); fail those
    already tried ``max_attempts`` times, recording ``gave_up`` (when given) as the
    reply to each in the same transaction (key ``error:<job id>``: :func:`reply_key`),
    so the user is told once, whoever sends it."""
    ts = d.ts(now)
    # A job whose plan waits for the user's OK is not interrupted work: it stays
    # running (its author's actor resumes waiting), however many restarts pass.
    waiting = (
        "NOT EXISTS (SELECT 1 FROM approvals a WHERE a.message_id = reactive_jobs.message_id "
        "AND a.status = 'pending')"
    )
    failed = yield Q(
        "UPDATE reactive_jobs SET status = 'failed', error = 'interrupted by restarts too often', "
        f"updated_at = $2 WHERE status = 'running' AND attempts >= $1 AND {waiting} "
        "RETURNING id, thread_id, message_id",
        (max_attempts, ts),
    )
    if failed and gave_up is not None:
        yield from _notices(d, [(r["id"], r["thread_id"], r["message_id"]) for r in failed],
                            gave_up, ts)  # fmt: skip
    requeued = yield Q(
        "UPDATE reactive_jobs SET status = 'queued', updated_at = $1 "
        f"WHERE status = 'running' AND {waiting} RETURNING id",
        (ts,),
    )
    return len(requeued), len(failed)


def _notices(d: Dialect, jobs: list[tuple[int, int, int]], text: str, ts: Any) -> Script[None]:
    """Record ``text`` as the error reply to each (job, thread, message), once per job."""
    raw = d.json({"kind": "error", "approval_id": None})
    source, args = d.rows(
        ("bigint", "text", "text", "text", "bigint", "jsonb", "timestamptz"),
        [
            (thread, "assistant", text, reply_key("error", job), message, raw, ts)
            for job, thread, message in jobs
        ],
    )
    yield Q(
        "INSERT INTO chat_messages (thread_id, role, text, idempotency_key, reply_to, raw, "
        f"created_at) {source} ON CONFLICT (idempotency_key) DO NOTHING",
        args,
    )


# ---------------------------------------------------------------- the Store's part
class Jobs(StorePart):
    """The Store's job lifecycle."""

    async def claim_jobs(
        self, limit: int = 1, *, thread_id: int | None = None, author: str | None = None
    ) -> list[Job]:
        """Hand out up to ``limit`` queued jobs, oldest first, each exactly once.

        They become ``running`` with ``attempts`` raised by one. Concurrent
        claimers (other tasks, other processes on Postgres) never get the same
        job. With ``thread_id``, only that chat's jobs; with ``author`` (a user
        key ``platform:id``), only jobs of that user's messages (in a group, each
        member's user actor claims its own). A job whose author has an earlier
        message in its chat still held (``ingest_held``: a photo not yet described)
        waits until that is released. ValueError for a malformed key. Once
        begun it is not interrupted by cancellation (see the comment): a caller
        cancelled before it began claims nothing.
        """
        check_limit("limit", limit)
        # Shielded: a claim that committed must reach its caller, or its jobs
        # would sit "running" with nobody working them until the next start.
        # The caller sees a pending cancellation at its next checkpoint.
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.CancelScope(shield=True):
            jobs: list[Job] = await self._run(
                claim_jobs, limit, thread_id, author_key(author), self._clock()
            )
        return jobs

    async def finish_job(self, job_id: int, status: JobStatus, error: str | None = None) -> Job:
        """Move a job to ``done``/``failed`` (from running) or ``canceled`` (from queued
        or running). Raises IllegalTransition otherwise, NotFound for an unknown id."""
        if status not in ("done", "failed", "canceled"):
            raise ValueError(f"status must be done, failed or canceled, not {status!r}")
        return await self._run(finish_job, job_id, status, error, self._clock())

    async def get_job(self, job_id: int) -> Job:
        """One job; NotFound for an unknown id."""
        return await self._run(get_job, job_id)

    async def running_jobs(self, thread_id: int, *, author: str | None = None) -> list[Job]:
        """The chat thread's jobs left ``running`` (only ``author``'s messages' when
        given), oldest first: the unfinished work a restarted user actor resumes
        there."""
        return await self._run(running_jobs, thread_id, author_key(author))

    async def open_threads(self, author: str) -> list[ThreadRecord]:
        """The threads (chats) in which the user ``author`` has a job queued or running,
        by id: where a restarted user actor has work to resume. ValueError for a
        malformed key."""
        return await self._run(open_threads, author_key(author))

    async def requeue_job(self, job_id: int) -> Job:
        """Move a running job back to ``queued`` so it is claimed (and counted) again.
        IllegalTransition unless it is running; NotFound for an unknown id."""
        return await self._run(requeue_job, job_id, self._clock())

    async def job_for_message(self, message_id: int) -> Job | None:
        """The job an inbound message made, or None (a reply has none)."""
        return await self._run(job_for_message, message_id)

    async def queued_work(
        self, limit: int = 1000, *, older_than_s: float | None = None, after_id: int = 0
    ) -> list[Received]:
        """Queued jobs as the ``Received`` that routes each to its user's actor,
        oldest first: what ``greenroom run`` re-dispatches after ``recover()``. Jobs
        that :meth:`claim_jobs` would not hand out yet (behind a held message) are
        not listed. With ``older_than_s``, only jobs unchanged for that long by the
        Store's clock (what the reconciler re-dispatches: work nobody picked up).
        Only job ids above ``after_id``: a sweep passes the last id it saw, so
        it moves on past work it gave up on instead of being handed it first
        forever. ValueError for a negative ``after_id``."""
        check_limit("limit", limit)
        check_after_id(after_id)
        return await self._run(queued_work, limit, self._before(older_than_s), after_id)

    async def recover(
        self, *, max_attempts: int = 2, gave_up: str | None = None
    ) -> tuple[int, int]:
        """At start: requeue the jobs a crash left ``running``; return (requeued, failed).

        A job already started ``max_attempts`` times is failed instead, so a
        message that crashes the process cannot loop forever; with ``gave_up``,
        that text is recorded in the same transaction as the reply to each failed
        job (outbox key ``error:<job id>``, :func:`reply_key`; unsent), so its author is
        told once. A job whose plan
        has a pending approval is left running: it waits for the user's OK. Call it once,
        before claiming, from the one process that owns the database.
        """
        check_limit("max_attempts", max_attempts)
        if gave_up is not None:
            check_storable(gave_up=gave_up)
        return await self._run(recover, max_attempts, gave_up, self._clock())
