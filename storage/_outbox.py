"""The outbox: replies recorded before they are sent, marked sent after, and listed
while unsent; a job's last reply and its end in one transaction.

Replies are ``chat_messages`` rows (role assistant or system) with an
idempotency key, so a restart never sends one twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocols import Deliver

from ._backend import Script
from ._common import (
    StorePart,
    check_after_id,
    check_limit,
    check_reply_key,
    check_storable,
    one,
)
from ._dialect import Dialect, Q
from ._errors import IllegalTransition
from ._jobs import Job, JobStatus, finish_job
from ._messages import MSG_COLS, Role, StoredMessage, to_message

__all__ = ["Outbox", "PendingReply", "record_reply"]


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A reply recorded but not yet confirmed sent, with where it goes."""

    message: StoredMessage
    platform: str
    chat_id: str

    def deliver(self) -> Deliver:
        """The ``chat.Deliver`` that hands this reply to its door again, rebuilt from
        what was recorded with it (``raw``: ``kind``, ``approval_id``)."""
        raw = self.message.raw
        kind = raw.get("kind")
        approval = raw.get("approval_id")
        reply_to = self.message.reply_to
        return Deliver(
            message_id=self.message.id,
            platform=self.platform,
            chat_id=self.chat_id,
            text=self.message.text,
            kind=kind if kind in ("ack", "reply", "notice", "error") else "reply",
            approval_id=approval if isinstance(approval, int) else None,
            correlation_id=f"m{reply_to}" if reply_to is not None else "",
        )


# ---------------------------------------------------------------- scripts
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
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {MSG_COLS}",
        (thread_id, role, author, text, key, reply_to, d.json(raw), d.ts(now)),
    )
    if rows:
        return to_message(d, rows[0]), True
    rows = yield Q(f"SELECT {MSG_COLS} FROM chat_messages WHERE idempotency_key = $1", (key,))
    return to_message(d, rows[0]), False


def mark_sent(
    d: Dialect, message_id: int, platform_message_id: str | None, now: datetime
) -> Script[tuple[StoredMessage, bool]]:
    """Mark a recorded reply sent (once); a second call changes nothing."""
    rows = yield Q(
        "UPDATE chat_messages SET sent_at = $3, platform_message_id = $2 "
        f"WHERE id = $1 AND role <> 'user' AND sent_at IS NULL RETURNING {MSG_COLS}",
        (message_id, platform_message_id, d.ts(now)),
    )
    if rows:
        return to_message(d, rows[0]), True
    row = one(
        (yield Q(f"SELECT {MSG_COLS} FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    if row["role"] == "user":
        raise IllegalTransition("message", message_id, "user", "sent")
    return to_message(d, row), False


def unsent_replies(
    d: Dialect, platform: str | None, limit: int, before: datetime | None, after_id: int
) -> Script[list[PendingReply]]:
    """Replies recorded but not confirmed sent, oldest first, with message ids above
    ``after_id`` (only those recorded before ``before`` when given)."""
    where = " AND m.id > $2"
    args: tuple[Any, ...] = (limit, after_id)
    if platform is not None:
        where += f" AND t.platform = ${len(args) + 1}"
        args += (platform,)
    if before is not None:
        where += f" AND m.created_at < ${len(args) + 1}"
        args += (d.ts(before),)
    cols = ", ".join(f"m.{c.strip()}" for c in MSG_COLS.split(","))
    rows = yield Q(
        f"SELECT {cols}, t.platform AS t_platform, t.chat_id AS t_chat_id FROM chat_messages m "
        "JOIN chat_threads t ON t.id = m.thread_id "
        f"WHERE m.role <> 'user' AND m.sent_at IS NULL{where} ORDER BY m.id LIMIT $1",
        args,
    )
    return [PendingReply(to_message(d, r), r["t_platform"], r["t_chat_id"]) for r in rows]


def finish_with_reply(
    d: Dialect,
    job_id: int,
    status: JobStatus,
    error: str | None,
    thread_id: int,
    text: str,
    key: str,
    reply_to: int | None,
    raw: dict[str, Any],
    now: datetime,
) -> Script[tuple[StoredMessage, Job]]:
    """Record a job's last reply and finish the job, in one transaction: the record
    says answered exactly when the answer is there."""
    message, _ = yield from record_reply(
        d, thread_id, text, key, "assistant", "", reply_to, raw, now
    )
    job = yield from finish_job(d, job_id, status, error, now)
    return message, job


# ---------------------------------------------------------------- the Store's part
class Outbox(StorePart):
    """The Store's outbox."""

    async def record_reply(
        self,
        thread_id: int,
        text: str,
        idempotency_key: str,
        *,
        role: Role = "assistant",
        author: str = "",
        reply_to: int | None = None,
        raw: dict[str, Any] | None = None,
    ) -> tuple[StoredMessage, bool]:
        """Record an outgoing message before it is sent; return (record, created).

        Idempotent on ``idempotency_key``: a repeat returns the first record
        (``created`` False), whose ``sent_at`` says whether it already went
        out. ValueError for text or raw that cannot be stored (NUL, lone
        surrogates, NaN), and for a key in the inbound namespace (``in:``).
        """
        if role not in ("assistant", "system"):
            raise ValueError(f"role must be assistant or system, not {role!r}")
        check_reply_key(idempotency_key)
        check_storable(text=text, idempotency_key=idempotency_key, author=author, raw=raw or {})
        return await self._run(
            record_reply,
            thread_id,
            text,
            idempotency_key,
            role,
            author,
            reply_to,
            raw or {},
            self._clock(),
        )

    async def mark_sent(
        self, message_id: int, platform_message_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        """Mark a recorded reply as delivered; return (record, changed).

        A second call changes nothing (``changed`` False). NotFound for an
        unknown id; IllegalTransition for a user's message.
        """
        return await self._run(mark_sent, message_id, platform_message_id, self._clock())

    async def unsent_replies(
        self,
        platform: str | None = None,
        *,
        limit: int = 1000,
        older_than_s: float | None = None,
        after_id: int = 0,
    ) -> list[PendingReply]:
        """Replies recorded but not marked sent, oldest first: what a connector hands
        back to its platform at start. Nothing marked sent is ever listed. With
        ``older_than_s``, only replies recorded at least that long ago (the
        reconciler's). Only message ids above ``after_id``: a sweep passes the last
        id it saw, so it moves on past replies it gave up on. ValueError for a
        negative ``after_id``."""
        check_limit("limit", limit)
        check_after_id(after_id)
        before = self._before(older_than_s)
        return await self._run(unsent_replies, platform, limit, before, after_id)

    async def finish_with_reply(
        self,
        job_id: int,
        status: JobStatus,
        *,
        thread_id: int,
        text: str,
        key: str,
        reply_to: int | None,
        raw: dict[str, Any],
        error: str | None = None,
    ) -> tuple[StoredMessage, Job]:
        """Record the job's last reply (as :meth:`record_reply`, idempotent on ``key``)
        and finish the job (as :meth:`finish_job`) in one transaction: the job says
        ``done`` exactly when its answer is in the outbox. Raises what either raises
        (IllegalTransition, NotFound, ValueError), and then neither happened."""
        if status not in ("done", "failed", "canceled"):
            raise ValueError(f"status must be done, failed or canceled, not {status!r}")
        check_storable(text=text, key=key, raw=raw, error=error or "")
        check_reply_key(key)
        return await self._run(
            finish_with_reply,
            job_id,
            status,
            error,
            thread_id,
            text,
            key,
            reply_to,
            raw,
            self._clock(),
        )
