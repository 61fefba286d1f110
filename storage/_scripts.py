"""Transaction scripts: every read and write the Store does, written once for both backends.

A script is a generator: it yields one :class:`Q` (a statement) at a time and
is sent back that statement's rows; what it returns is the method's result.
A backend drives the whole script inside one transaction, in one hop to the
thread that owns the connection (the SQLite thread or the asyncpg loop), and
commits when it returns or rolls back when it raises. This is why the SQLite
backend pays one thread hop per transaction instead of one per statement
(about 170 us each, measured), and why no SQL lives outside this module and
the migrations.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from protocols import Inbound, Received

from ._dialect import Dialect, Q, Row
from ._errors import IllegalTransition, NotFound
from ._records import (
    Approval,
    ApprovalStatus,
    Artifact,
    ArtifactKind,
    AuditEntry,
    IngestResult,
    Job,
    JobStatus,
    Memory,
    PendingReply,
    Role,
    StoredMessage,
    ThreadRecord,
    Tier,
    TokenSpend,
    TokenUsage,
    UserRecord,
)

T = TypeVar("T")
Script = Generator[Q, list[Row], T]

_MSG = (
    "id, thread_id, user_id, role, author, text, platform_message_id, idempotency_key, "
    "reply_to, raw, created_at, sent_at"
)
_JOB = "id, thread_id, message_id, status, mode, payload, attempts, error, created_at, updated_at"
_THREAD = "id, platform, chat_id, summary, created_at, updated_at"
_USER = "id, platform, platform_user_id, display_name, tier, created_at, last_seen_at"
_ART = "id, message_id, kind, content, uri, created_at"
_APPROVAL = "id, thread_id, message_id, summary, plan, status, created_at, decided_at"
_MEMORY = "id, user_key, fact, source_message_id, created_at"

# Which states a job may move to each target from (see _records.JobStatus).
_JOB_FROM: dict[JobStatus, tuple[JobStatus, ...]] = {
    "done": ("running",),
    "failed": ("running",),
    "canceled": ("queued", "running"),
}


# ---------------------------------------------------------------- row -> record
def _message(d: Dialect, r: Row, artifacts: tuple[Artifact, ...] = ()) -> StoredMessage:
    return StoredMessage(
        id=r["id"],
        thread_id=r["thread_id"],
        user_id=r["user_id"],
        role=r["role"],
        author=r["author"],
        text=r["text"],
        platform_message_id=r["platform_message_id"],
        idempotency_key=r["idempotency_key"],
        reply_to=r["reply_to"],
        raw=d.from_json(r["raw"]),
        created_at=d.from_ts(r["created_at"]),
        sent_at=d.opt_ts(r["sent_at"]),
        artifacts=artifacts,
    )


def _job(d: Dialect, r: Row) -> Job:
    return Job(
        id=r["id"],
        thread_id=r["thread_id"],
        message_id=r["message_id"],
        status=r["status"],
        mode=r["mode"],
        payload=d.from_json(r["payload"]),
        attempts=r["attempts"],
        error=r["error"],
        created_at=d.from_ts(r["created_at"]),
        updated_at=d.from_ts(r["updated_at"]),
    )


def _thread(d: Dialect, r: Row) -> ThreadRecord:
    return ThreadRecord(
        id=r["id"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        summary=r["summary"],
        created_at=d.from_ts(r["created_at"]),
        updated_at=d.from_ts(r["updated_at"]),
    )


def _user(d: Dialect, r: Row) -> UserRecord:
    return UserRecord(
        id=r["id"],
        platform=r["platform"],
        platform_user_id=r["platform_user_id"],
        display_name=r["display_name"],
        tier=r["tier"],
        created_at=d.from_ts(r["created_at"]),
        last_seen_at=d.from_ts(r["last_seen_at"]),
    )


def _artifact(d: Dialect, r: Row) -> Artifact:
    return Artifact(
        id=r["id"],
        message_id=r["message_id"],
        kind=r["kind"],
        content=d.from_json(r["content"]),
        uri=r["uri"],
        created_at=d.from_ts(r["created_at"]),
    )


def _approval(d: Dialect, r: Row) -> Approval:
    return Approval(
        id=r["id"],
        thread_id=r["thread_id"],
        message_id=r["message_id"],
        summary=r["summary"],
        plan=r["plan"],
        status=r["status"],
        created_at=d.from_ts(r["created_at"]),
        decided_at=d.opt_ts(r["decided_at"]),
    )


def _memory(d: Dialect, r: Row) -> Memory:
    return Memory(
        id=r["id"],
        user_key=r["user_key"],
        fact=r["fact"],
        source_message_id=r["source_message_id"],
        created_at=d.from_ts(r["created_at"]),
    )


def _one(rows: list[Row], what: str, ident: int) -> Row:
    if not rows:
        raise NotFound(what, ident)
    return rows[0]


# ---------------------------------------------------------------- the durable inbox
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


def _where_in(
    d: Dialect, column: str, pg_type: str, values: Sequence[Any]
) -> tuple[str, tuple[Any, ...]]:
    predicate, args = d.any_of(pg_type, values)
    return f"{column} {predicate}", args


def ingest(d: Dialect, items: Sequence[Inbound], now: datetime) -> Script[list[IngestResult]]:
    """Store each inbound message with its queued job; a known one is returned as stored.

    Set-based: four statements for the whole batch, whatever its
    size (one statement per item per table made a 128-item Postgres batch
    cost 300 round trips), each with the same text whatever the batch size
    (see ``Dialect.rows``). Items are matched to returned rows by natural
    key, never by row order, which neither dialect promises for RETURNING.
    The same key twice in one batch is stored once; the later items get
    ``created=False``.
    """
    ts = d.ts(now)
    first: dict[str, Inbound] = {}
    for m in items:
        first.setdefault(m.idempotency_key, m)
    new = list(first.values())
    # No "which of these exist?" SELECT first: in the common case none do, and
    # on a young table Postgres plans that lookup as a sequential scan (seen:
    # 10 ms of a 30 ms batch). A redelivery only refreshes last_seen/updated_at.
    user_ids = yield from _upsert_users(d, new, ts)
    threads = yield from _upsert_threads(d, new, ts)
    thread_of: dict[int, ThreadRecord] = {t.id: t for t in threads.values()}
    placed = [
        (m, threads[(m.platform, m.chat_id)].id, user_ids[(m.platform, m.user_id)]) for m in new
    ]
    inserted = yield from _insert_inbound(d, placed, ts)
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
            f"created_at, updated_at) {source} RETURNING {_JOB}",
            args,
        )
        job_of.update((r["message_id"], _job(d, r)) for r in jobs)
    known = [key for key in first if key not in messages]
    if known:
        # Stored before: a redelivery, or another transaction that stored the
        # key first (Postgres made us wait for it on the unique index).
        where, args = _where_in(d, "idempotency_key", "text", known)
        rows = yield Q(f"SELECT {_MSG} FROM chat_messages WHERE {where}", args)
        messages.update((r["idempotency_key"], r) for r in rows)
    # Stored before (a redelivery, or a race lost): read their jobs and threads.
    msg_ids = [r["id"] for r in messages.values() if r["id"] not in job_of]
    if msg_ids:
        where, args = _where_in(d, "message_id", "bigint", msg_ids)
        jobs = yield Q(f"SELECT {_JOB} FROM reactive_jobs WHERE {where}", args)
        job_of.update((r["message_id"], _job(d, r)) for r in jobs)
    thread_ids = sorted({r["thread_id"] for r in messages.values()} - thread_of.keys())
    if thread_ids:
        where, args = _where_in(d, "id", "bigint", thread_ids)
        trows = yield Q(f"SELECT {_THREAD} FROM chat_threads WHERE {where}", args)
        thread_of.update((r["id"], _thread(d, r)) for r in trows)
    results = []
    for m in items:
        key = m.idempotency_key
        row = messages[key]
        results.append(
            IngestResult(
                message=_message(d, row),
                job=job_of[row["id"]],
                thread=thread_of[row["thread_id"]],
                created=key in created and first[key] is m,
            )
        )
    return results


def _insert_inbound(
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
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_MSG}",
        args,
    )
    return rows


def _upsert_users(d: Dialect, new: list[Inbound], ts: Any) -> Script[dict[tuple[str, str], int]]:
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


def _upsert_threads(
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
        f"SET updated_at = excluded.updated_at RETURNING {_THREAD}",
        args,
    )
    return {(r["platform"], r["chat_id"]): _thread(d, r) for r in rows}


def _author_id(n: int) -> str:
    """SQL for the ``users.id`` of the user key split into parameters ``$n``, ``$n+1``."""
    return f"(SELECT id FROM users WHERE platform = ${n} AND platform_user_id = ${n + 1})"


def _split_key(author: str) -> tuple[str, str]:
    platform, _, user_id = author.partition(":")
    return platform, user_id


def claim_jobs(
    d: Dialect, limit: int, thread_id: int | None, author: str | None, now: datetime
) -> Script[list[Job]]:
    """Move up to ``limit`` queued jobs (oldest first) to running and return them;
    only ``thread_id``'s and only ``author``'s (a user key) when given."""
    where = "status = 'queued'"
    args: tuple[Any, ...] = (limit, d.ts(now))
    if thread_id is not None:
        where += f" AND thread_id = ${len(args) + 1}"
        args += (thread_id,)
    if author is not None:
        where += f" AND user_id = {_author_id(len(args) + 1)}"
        args += _split_key(author)
    rows = yield Q(
        "UPDATE reactive_jobs SET status = 'running', attempts = attempts + 1, updated_at = $2 "
        f"WHERE status = 'queued' AND id IN (SELECT id FROM reactive_jobs WHERE {where} "
        f"ORDER BY id LIMIT $1{d.skip_locked}) RETURNING {_JOB}",
        args,
    )
    return sorted((_job(d, r) for r in rows), key=lambda j: j.id)


def finish_job(
    d: Dialect, job_id: int, status: JobStatus, error: str | None, now: datetime
) -> Script[Job]:
    """Move a job to done, failed or canceled, from the states that allow it."""
    allowed = _JOB_FROM[status]
    marks = ", ".join(f"'{s}'" for s in allowed)
    rows = yield Q(
        "UPDATE reactive_jobs SET status = $2, error = $3, updated_at = $4 "
        f"WHERE id = $1 AND status IN ({marks}) RETURNING {_JOB}",
        (job_id, status, error, d.ts(now)),
    )
    if rows:
        return _job(d, rows[0])
    current = _one(
        (yield Q("SELECT status FROM reactive_jobs WHERE id = $1", (job_id,))), "job", job_id
    )
    raise IllegalTransition("job", job_id, current["status"], status)


def get_job(d: Dialect, job_id: int) -> Script[Job]:
    """One job by id."""
    rows = yield Q(f"SELECT {_JOB} FROM reactive_jobs WHERE id = $1", (job_id,))
    return _job(d, _one(rows, "job", job_id))


def running_jobs(d: Dialect, thread_id: int, author: str | None) -> Script[list[Job]]:
    """The thread's jobs in ``running`` (only ``author``'s when given), oldest first."""
    mine = f" AND user_id = {_author_id(2)}" if author is not None else ""
    rows = yield Q(
        f"SELECT {_JOB} FROM reactive_jobs WHERE thread_id = $1 AND status = 'running'{mine} "
        "ORDER BY id",
        (thread_id, *(_split_key(author) if author is not None else ())),
    )
    return [_job(d, r) for r in rows]


def open_threads(d: Dialect, author: str) -> Script[list[ThreadRecord]]:
    """The threads in which ``author`` has a job queued or running, by id."""
    rows = yield Q(
        f"SELECT {_THREAD} FROM chat_threads WHERE id IN (SELECT thread_id FROM reactive_jobs "
        f"WHERE user_id = {_author_id(1)} AND status IN ('queued', 'running')) ORDER BY id",
        _split_key(author),
    )
    return [_thread(d, r) for r in rows]


def requeue_job(d: Dialect, job_id: int, now: datetime) -> Script[Job]:
    """Move a running job back to queued (its worker died; it will be claimed again)."""
    rows = yield Q(
        "UPDATE reactive_jobs SET status = 'queued', updated_at = $2 "
        f"WHERE id = $1 AND status = 'running' RETURNING {_JOB}",
        (job_id, d.ts(now)),
    )
    if rows:
        return _job(d, rows[0])
    current = _one(
        (yield Q("SELECT status FROM reactive_jobs WHERE id = $1", (job_id,))), "job", job_id
    )
    raise IllegalTransition("job", job_id, current["status"], "queued")


def job_for_message(d: Dialect, message_id: int) -> Script[Job | None]:
    """The job an inbound message made, if any."""
    rows = yield Q(f"SELECT {_JOB} FROM reactive_jobs WHERE message_id = $1", (message_id,))
    return _job(d, rows[0]) if rows else None


def queued_work(d: Dialect, limit: int, before: datetime | None) -> Script[list[Received]]:
    """Queued jobs with what routes them to their user's thread, oldest first; only
    those last changed before ``before`` when given."""
    age = " AND j.updated_at < $2" if before is not None else ""
    rows = yield Q(
        "SELECT j.id AS job_id, m.id AS message_id, t.id AS thread_id, t.platform, t.chat_id, "
        "u.platform_user_id, m.text FROM reactive_jobs j "
        "JOIN chat_messages m ON m.id = j.message_id JOIN chat_threads t ON t.id = j.thread_id "
        f"JOIN users u ON u.id = m.user_id WHERE j.status = 'queued'{age} ORDER BY j.id LIMIT $1",
        (limit,) + ((d.ts(before),) if before is not None else ()),
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
    reply to each in the same transaction (key ``error:<job id>``), so the user is
    told once, whoever sends it."""
    ts = d.ts(now)
    # A job whose plan waits for the user's OK is not interrupted work: it stays
    # running (its thread resumes waiting), however many restarts pass.
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
            (thread, "assistant", text, f"error:{job}", message, raw, ts)
            for job, thread, message in jobs
        ],
    )
    yield Q(
        "INSERT INTO chat_messages (thread_id, role, text, idempotency_key, reply_to, raw, "
        f"created_at) {source} ON CONFLICT (idempotency_key) DO NOTHING",
        args,
    )


# ---------------------------------------------------------------- messages and the outbox
def record_reply(
    d: Dialect,
    thread_id: int,
    text: str,
    key: str,
    role: Role,
    author: str,
    reply_to: int | None,
    raw: dict[str, Any],
    now: datetime,
) -> Script[tuple[StoredMessage, bool]]:
    """Record an outgoing message before it is sent; a known key returns the first record."""
    rows = yield Q(
        "INSERT INTO chat_messages (thread_id, role, author, text, idempotency_key, reply_to, raw, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_MSG}",
        (thread_id, role, author, text, key, reply_to, d.json(raw), d.ts(now)),
    )
    if rows:
        return _message(d, rows[0]), True
    rows = yield Q(f"SELECT {_MSG} FROM chat_messages WHERE idempotency_key = $1", (key,))
    return _message(d, rows[0]), False


def mark_sent(
    d: Dialect, message_id: int, platform_message_id: str | None, now: datetime
) -> Script[tuple[StoredMessage, bool]]:
    """Mark a recorded reply sent (once); a second call changes nothing."""
    rows = yield Q(
        "UPDATE chat_messages SET sent_at = $3, platform_message_id = $2 "
        f"WHERE id = $1 AND role <> 'user' AND sent_at IS NULL RETURNING {_MSG}",
        (message_id, platform_message_id, d.ts(now)),
    )
    if rows:
        return _message(d, rows[0]), True
    row = _one(
        (yield Q(f"SELECT {_MSG} FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    if row["role"] == "user":
        raise IllegalTransition("message", message_id, "user", "sent")
    return _message(d, row), False


def unsent_replies(
    d: Dialect, platform: str | None, limit: int, before: datetime | None
) -> Script[list[PendingReply]]:
    """Replies recorded but not confirmed sent, oldest first (only those recorded
    before ``before`` when given)."""
    where = ""
    args: tuple[Any, ...] = (limit,)
    if platform is not None:
        where += f" AND t.platform = ${len(args) + 1}"
        args += (platform,)
    if before is not None:
        where += f" AND m.created_at < ${len(args) + 1}"
        args += (d.ts(before),)
    cols = ", ".join(f"m.{c.strip()}" for c in _MSG.split(","))
    rows = yield Q(
        f"SELECT {cols}, t.platform AS t_platform, t.chat_id AS t_chat_id FROM chat_messages m "
        "JOIN chat_threads t ON t.id = m.thread_id "
        f"WHERE m.role <> 'user' AND m.sent_at IS NULL{where} ORDER BY m.id LIMIT $1",
        args,
    )
    return [PendingReply(_message(d, r), r["t_platform"], r["t_chat_id"]) for r in rows]


def recent_messages(d: Dialect, thread_id: int, limit: int) -> Script[list[StoredMessage]]:
    """The last ``limit`` messages of a thread, oldest first, each with its artifacts."""
    rows = yield Q(
        f"SELECT {_MSG} FROM chat_messages WHERE thread_id = $1 ORDER BY id DESC LIMIT $2",
        (thread_id, limit),
    )
    return (yield from _with_artifacts(d, list(reversed(rows))))


def _with_artifacts(d: Dialect, rows: list[Row]) -> Script[list[StoredMessage]]:
    """The messages of ``rows`` (in that order), each with its artifacts: one query
    by the rows' ids, so its cost follows the rows asked for, not the thread's length
    (it used to read every message id of the thread)."""
    if not rows:
        return []
    where, args = _where_in(d, "message_id", "bigint", [r["id"] for r in rows])
    arts = yield Q(f"SELECT {_ART} FROM message_artifacts WHERE {where} ORDER BY id", args)
    by_message: dict[int, list[Artifact]] = {}
    for a in arts:
        by_message.setdefault(a["message_id"], []).append(_artifact(d, a))
    return [_message(d, r, tuple(by_message.get(r["id"], ()))) for r in rows]


def messages_after(
    d: Dialect, thread_id: int, after_id: int, limit: int
) -> Script[list[StoredMessage]]:
    """The thread's messages (every role) with id > ``after_id``, oldest first, with
    their artifacts: what a thread's cached context has not seen yet."""
    rows = yield Q(
        f"SELECT {_MSG} FROM chat_messages WHERE thread_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        (thread_id, after_id, limit),
    )
    return (yield from _with_artifacts(d, list(rows)))


def replies_after(
    d: Dialect, thread_id: int, after_id: int, limit: int
) -> Script[list[StoredMessage]]:
    """The thread's replies (role assistant/system) with id > ``after_id``, oldest first."""
    rows = yield Q(
        f"SELECT {_MSG} FROM chat_messages WHERE thread_id = $1 AND id > $2 "
        "AND role <> 'user' ORDER BY id LIMIT $3",
        (thread_id, after_id, limit),
    )
    return [_message(d, r) for r in rows]


def get_message(d: Dialect, message_id: int) -> Script[StoredMessage]:
    """One message by id, with its artifacts."""
    row = _one(
        (yield Q(f"SELECT {_MSG} FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    arts = yield Q(
        f"SELECT {_ART} FROM message_artifacts WHERE message_id = $1 ORDER BY id", (message_id,)
    )
    return _message(d, row, tuple(_artifact(d, a) for a in arts))


def add_artifact(
    d: Dialect, message_id: int, kind: ArtifactKind, content: Any, uri: str | None, now: datetime
) -> Script[Artifact]:
    """Attach an artifact to a stored message."""
    _one(
        (yield Q("SELECT id FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    rows = yield Q(
        "INSERT INTO message_artifacts (message_id, kind, content, uri, created_at) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {_ART}",
        (message_id, kind, d.json(content), uri, d.ts(now)),
    )
    return _artifact(d, rows[0])


# ---------------------------------------------------------------- threads and users
def get_thread(d: Dialect, platform: str, chat_id: str) -> Script[ThreadRecord | None]:
    """The thread for (platform, chat_id), if any message made it."""
    rows = yield Q(
        f"SELECT {_THREAD} FROM chat_threads WHERE platform = $1 AND chat_id = $2",
        (platform, chat_id),
    )
    return _thread(d, rows[0]) if rows else None


def thread_by_id(d: Dialect, thread_id: int) -> Script[ThreadRecord | None]:
    """One thread by id, if it exists."""
    rows = yield Q(f"SELECT {_THREAD} FROM chat_threads WHERE id = $1", (thread_id,))
    return _thread(d, rows[0]) if rows else None


def message_author(d: Dialect, message_id: int) -> Script[str | None]:
    """The user key ("platform:id") of an inbound message's author."""
    rows = yield Q(
        "SELECT u.platform, u.platform_user_id FROM chat_messages m "
        "JOIN users u ON u.id = m.user_id WHERE m.id = $1",
        (message_id,),
    )
    return f"{rows[0]['platform']}:{rows[0]['platform_user_id']}" if rows else None


def set_thread_summary(
    d: Dialect, thread_id: int, summary: str, now: datetime
) -> Script[ThreadRecord]:
    """Replace a thread's stored summary of its older messages."""
    rows = yield Q(
        f"UPDATE chat_threads SET summary = $2, updated_at = $3 WHERE id = $1 RETURNING {_THREAD}",
        (thread_id, summary, d.ts(now)),
    )
    return _thread(d, _one(rows, "thread", thread_id))


def get_user(d: Dialect, platform: str, user_id: str) -> Script[UserRecord | None]:
    """A platform identity, if it ever wrote."""
    rows = yield Q(
        f"SELECT {_USER} FROM users WHERE platform = $1 AND platform_user_id = $2",
        (platform, user_id),
    )
    return _user(d, rows[0]) if rows else None


def set_user_tier(
    d: Dialect, platform: str, user_id: str, tier: Tier, now: datetime
) -> Script[UserRecord]:
    """Set a user's tier, creating the user if it never wrote."""
    rows = yield Q(
        "INSERT INTO users (platform, platform_user_id, tier, created_at, last_seen_at) "
        "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (platform, platform_user_id) "
        f"DO UPDATE SET tier = excluded.tier RETURNING {_USER}",
        (platform, user_id, tier, d.ts(now)),
    )
    return _user(d, rows[0])


# ---------------------------------------------------------------- approvals
def propose(
    d: Dialect, thread_id: int, message_id: int | None, summary: str, plan: str, now: datetime
) -> Script[Approval]:
    """Record a pending plan for the author of ``message_id`` in the thread; that
    author's previous pending plan there becomes superseded (another group member's
    plan is theirs and stays)."""
    ts = d.ts(now)
    author = "(SELECT user_id FROM chat_messages WHERE id = $2)"
    yield Q(
        "UPDATE approvals SET status = 'superseded', decided_at = $3 "
        f"WHERE thread_id = $1 AND status = 'pending' AND user_id IS NOT DISTINCT FROM {author}",
        (thread_id, message_id, ts),
    )
    rows = yield Q(
        "INSERT INTO approvals (thread_id, message_id, user_id, summary, plan, status, created_at) "
        f"VALUES ($1, $2, {author}, $3, $4, 'pending', $5) RETURNING {_APPROVAL}",
        (thread_id, message_id, summary, plan, ts),
    )
    return _approval(d, rows[0])


def propose_with_ack(
    d: Dialect,
    thread_id: int,
    message_id: int,
    summary: str,
    plan: str,
    ack: str,
    key: str,
    now: datetime,
) -> Script[tuple[Approval, StoredMessage]]:
    """A pending plan and the ack that shows it, in one transaction: a crash between
    the two left a plan nobody was shown, and the message was never answered."""
    approval = yield from propose(d, thread_id, message_id, summary, plan, now)
    raw = {"kind": "ack", "approval_id": approval.id}
    reply, _ = yield from record_reply(
        d, thread_id, ack, key, "assistant", "", message_id, raw, now
    )
    return approval, reply


def finish_with_reply(
    d: Dialect,
    job_id: int,
    status: JobStatus,
    error: str | None,
    reply: tuple[int, str, str, int | None, dict[str, Any]],
    now: datetime,
) -> Script[tuple[StoredMessage, Job]]:
    """Record a job's last reply (thread, text, key, reply_to, raw) and finish the job,
    in one transaction: the record says answered exactly when the answer is there."""
    thread_id, text, key, reply_to, raw = reply
    message, _ = yield from record_reply(
        d, thread_id, text, key, "assistant", "", reply_to, raw, now
    )
    job = yield from finish_job(d, job_id, status, error, now)
    return message, job


def decide(
    d: Dialect, approval_id: int, status: ApprovalStatus, now: datetime
) -> Script[tuple[Approval, bool]]:
    """Approve or reject a pending plan; one no longer pending is returned unchanged."""
    rows = yield Q(
        "UPDATE approvals SET status = $2, decided_at = $3 "
        f"WHERE id = $1 AND status = 'pending' RETURNING {_APPROVAL}",
        (approval_id, status, d.ts(now)),
    )
    if rows:
        return _approval(d, rows[0]), True
    rows = yield Q(f"SELECT {_APPROVAL} FROM approvals WHERE id = $1", (approval_id,))
    return _approval(d, _one(rows, "approval", approval_id)), False


def get_approval(d: Dialect, approval_id: int) -> Script[Approval | None]:
    """One approval by id, if it exists."""
    rows = yield Q(f"SELECT {_APPROVAL} FROM approvals WHERE id = $1", (approval_id,))
    return _approval(d, rows[0]) if rows else None


def approval_for_message(d: Dialect, message_id: int) -> Script[Approval | None]:
    """The newest approval proposed for an inbound message, if any."""
    rows = yield Q(
        f"SELECT {_APPROVAL} FROM approvals WHERE message_id = $1 ORDER BY id DESC LIMIT 1",
        (message_id,),
    )
    return _approval(d, rows[0]) if rows else None


def supersede_pending(
    d: Dialect, thread_id: int, author: str | None, now: datetime
) -> Script[Approval | None]:
    """Mark the thread's pending plan (``author``'s, when given) superseded; None when
    there was none."""
    mine = f" AND user_id = {_author_id(3)}" if author is not None else ""
    rows = yield Q(
        "UPDATE approvals SET status = 'superseded', decided_at = $2 "
        f"WHERE thread_id = $1 AND status = 'pending'{mine} RETURNING {_APPROVAL}",
        (thread_id, d.ts(now), *(_split_key(author) if author is not None else ())),
    )
    return _approval(d, rows[0]) if rows else None


def pending_approval(d: Dialect, thread_id: int, author: str | None) -> Script[Approval | None]:
    """The thread's pending plan (``author``'s, when given), if any: the oldest."""
    mine = f" AND user_id = {_author_id(2)}" if author is not None else ""
    rows = yield Q(
        f"SELECT {_APPROVAL} FROM approvals WHERE thread_id = $1 AND status = 'pending'{mine} "
        "ORDER BY id LIMIT 1",
        (thread_id, *(_split_key(author) if author is not None else ())),
    )
    return _approval(d, rows[0]) if rows else None


# ---------------------------------------------------------------- tokens, memory, audit
def record_tokens(d: Dialect, u: TokenUsage, now: datetime) -> Script[int]:
    """Append one call to the token ledger."""
    rows = yield Q(
        "INSERT INTO token_ledger (scope, provider, model, tokens_in, tokens_out, tokens_total, "
        "cost, meta, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        (
            u.scope,
            u.provider,
            u.model,
            u.tokens_in,
            u.tokens_out,
            u.tokens_in + u.tokens_out,
            u.cost,
            d.json(u.meta),
            d.ts(now),
        ),
    )
    return int(rows[0]["id"])


def token_spend(d: Dialect, scope: str, start: datetime, end: datetime) -> Script[TokenSpend]:
    """Sum of the ledger for ``scope`` with ``start <= created_at < end``."""
    rows = yield Q(
        "SELECT COUNT(*) AS calls, CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT) AS tin, "
        "CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT) AS tout, "
        "CAST(COALESCE(SUM(tokens_total), 0) AS BIGINT) AS ttotal, "
        "COALESCE(SUM(cost), 0.0) AS cost FROM token_ledger "
        "WHERE scope = $1 AND created_at >= $2 AND created_at < $3",
        (scope, d.ts(start), d.ts(end)),
    )
    r = rows[0]
    return TokenSpend(
        calls=int(r["calls"]),
        tokens_in=int(r["tin"]),
        tokens_out=int(r["tout"]),
        tokens_total=int(r["ttotal"]),
        cost=float(r["cost"]),
    )


def token_totals(d: Dialect) -> Script[list[tuple[str, str, str, int, int, int, float]]]:
    """All-time ledger sums by (scope, provider, model): calls, tokens in, out, cost."""
    rows = yield Q(
        "SELECT scope, provider, model, COUNT(*) AS calls, "
        "CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT) AS tin, "
        "CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT) AS tout, "
        "COALESCE(SUM(cost), 0.0) AS cost FROM token_ledger "
        "GROUP BY scope, provider, model ORDER BY scope, provider, model"
    )
    return [
        (
            r["scope"],
            r["provider"],
            r["model"],
            int(r["calls"]),
            int(r["tin"]),
            int(r["tout"]),
            float(r["cost"]),
        )
        for r in rows
    ]


def remember(
    d: Dialect, user_key: str, fact: str, source_message_id: int | None, now: datetime
) -> Script[Memory]:
    """Keep one fact about a user."""
    rows = yield Q(
        "INSERT INTO memories (user_key, fact, source_message_id, created_at) "
        f"VALUES ($1, $2, $3, $4) RETURNING {_MEMORY}",
        (user_key, fact, source_message_id, d.ts(now)),
    )
    return _memory(d, rows[0])


def recall(d: Dialect, user_key: str, limit: int) -> Script[list[Memory]]:
    """The user's last ``limit`` facts, oldest first; never another user's."""
    rows = yield Q(
        f"SELECT {_MEMORY} FROM memories WHERE user_key = $1 ORDER BY id DESC LIMIT $2",
        (user_key, limit),
    )
    return [_memory(d, r) for r in reversed(rows)]


def audit(
    d: Dialect, actor: str, action: str, detail: dict[str, Any], now: datetime
) -> Script[int]:
    """Append one entry to the audit log."""
    rows = yield Q(
        "INSERT INTO audit_log (actor, action, detail, created_at) VALUES ($1, $2, $3, $4) "
        "RETURNING id",
        (actor, action, d.json(detail), d.ts(now)),
    )
    return int(rows[0]["id"])


def audit_entries(d: Dialect, limit: int, action: str | None) -> Script[list[AuditEntry]]:
    """The newest ``limit`` audit entries, newest first, optionally of one action."""
    where = " WHERE action = $2" if action is not None else ""
    rows = yield Q(
        f"SELECT id, actor, action, detail, created_at FROM audit_log{where} "
        "ORDER BY id DESC LIMIT $1",
        (limit,) + ((action,) if action is not None else ()),
    )
    return [
        AuditEntry(
            r["id"], r["actor"], r["action"], d.from_json(r["detail"]), d.from_ts(r["created_at"])
        )
        for r in rows
    ]


def create_session(
    d: Dialect, user_key: str, token_hash: str, expires_at: datetime | None, now: datetime
) -> Script[int]:
    """Record a session token (its hash) for a user."""
    rows = yield Q(
        "INSERT INTO sessions (user_key, token_hash, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        (user_key, token_hash, d.ts(now), d.ts(expires_at) if expires_at else None),
    )
    return int(rows[0]["id"])


def session_user(d: Dialect, token_hash: str, now: datetime) -> Script[str | None]:
    """The user of an unexpired session, by token hash."""
    rows = yield Q(
        "SELECT user_key FROM sessions WHERE token_hash = $1 "
        "AND (expires_at IS NULL OR expires_at > $2)",
        (token_hash, d.ts(now)),
    )
    return str(rows[0]["user_key"]) if rows else None


def get_state(d: Dialect, connector: str, key: str) -> Script[str | None]:
    """A connector's stored value for ``key``, if any."""
    rows = yield Q(
        "SELECT value FROM connector_state WHERE connector = $1 AND key = $2", (connector, key)
    )
    return str(rows[0]["value"]) if rows else None


def set_state(d: Dialect, connector: str, key: str, value: str, now: datetime) -> Script[None]:
    """Store (or replace) a connector's value for ``key``."""
    yield Q(
        "INSERT INTO connector_state (connector, key, value, updated_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (connector, key, value, d.ts(now)),
    )


def ping(d: Dialect) -> Script[bool]:
    """A round trip to the database."""
    rows = yield Q("SELECT 1 AS one")
    return bool(rows and rows[0]["one"] == 1)


# ---------------------------------------------------------------- held inbound messages
# A held message is stored without a job until its door has enriched it
# (a voice note's transcript, a photo's description): nothing claims,
# recovers or re-dispatches it meanwhile. One connector_state row per held
# message marks it (namespace _HELD, key: the message id, value: how many
# enrichment attempts began), so a restarted door finds what a crash left.
_HELD = "held"


def ingest_held(
    d: Dialect, m: Inbound, now: datetime
) -> Script[tuple[StoredMessage, ThreadRecord, bool]]:
    """Store an inbound message held (no job) with its marker; a known key is
    returned as stored, changing nothing but the user's and thread's stamps."""
    ts = d.ts(now)
    user_ids = yield from _upsert_users(d, [m], ts)
    thread = (yield from _upsert_threads(d, [m], ts))[(m.platform, m.chat_id)]
    inserted = yield from _insert_inbound(
        d, [(m, thread.id, user_ids[(m.platform, m.user_id)])], ts
    )
    if inserted:
        yield Q(
            "INSERT INTO connector_state (connector, key, value, updated_at) "
            "VALUES ($1, $2, '0', $3)",
            (_HELD, str(inserted[0]["id"]), ts),
        )
        return _message(d, inserted[0]), thread, True
    rows = yield Q(
        f"SELECT {_MSG} FROM chat_messages WHERE idempotency_key = $1", (m.idempotency_key,)
    )
    return _message(d, rows[0]), thread, False


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
        (_HELD, platform, limit),
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
        (_HELD, str(message_id), d.ts(now)),
    )
    if not rows:
        return None
    message = yield from get_message(d, message_id)
    return message, int(rows[0]["value"])


def release_held(d: Dialect, message_id: int, text: str, now: datetime) -> Script[IngestResult]:
    """End a message's hold: set its text and create its job, queued, or canceled
    when a newer message of its thread already has one (the newest message wins,
    as a thread's claim decides). Released before: the record as it is."""
    ts = d.ts(now)
    held = yield Q(
        "DELETE FROM connector_state WHERE connector = $1 AND key = $2 RETURNING key",
        (_HELD, str(message_id)),
    )
    row = _one(
        (yield Q(f"SELECT {_MSG} FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    jobs = yield Q(f"SELECT {_JOB} FROM reactive_jobs WHERE message_id = $1", (message_id,))
    created = bool(held) and not jobs
    if created:
        # Newer by the same author in the same chat: in a group another member's
        # message supersedes nothing of this one (jobs are the chat's and the author's).
        newer = yield Q(
            "SELECT 1 AS one FROM reactive_jobs WHERE message_id > $1 AND thread_id = $2 "
            "AND user_id IS NOT DISTINCT FROM $3 LIMIT 1",
            (message_id, row["thread_id"], row["user_id"]),
        )
        status, error = ("canceled", "superseded by a newer message") if newer else ("queued", None)
        jobs = yield Q(
            "INSERT INTO reactive_jobs (thread_id, user_id, message_id, status, mode, payload, "
            "error, created_at, updated_at) VALUES ($1, $2, $3, $4, 'chat', $5, $6, $7, $7) "
            f"RETURNING {_JOB}",
            (row["thread_id"], row["user_id"], message_id, status, d.json({}), error, ts),
        )
        updated = yield Q(
            f"UPDATE chat_messages SET text = $2 WHERE id = $1 RETURNING {_MSG}",
            (message_id, text),
        )
        row = updated[0]
    elif not jobs:
        raise NotFound("held message", message_id)
    trows = yield Q(f"SELECT {_THREAD} FROM chat_threads WHERE id = $1", (row["thread_id"],))
    return IngestResult(
        message=_message(d, row),
        job=_job(d, jobs[0]),
        thread=_thread(d, trows[0]),
        created=created,
    )
