"""Approvals (``approvals``): plans waiting for their user's OK, one pending per chat
and author."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ._backend import Script
from ._common import (
    StorePart,
    author_key,
    by_author,
    check_reply_key,
    check_storable,
    one,
)
from ._dialect import Dialect, Q, Row
from ._messages import StoredMessage
from ._outbox import record_reply

__all__ = ["APPROVAL_STATUSES", "Approval", "ApprovalStatus", "Approvals"]

# pending -> approved | rejected | superseded; nothing leaves the last three.
ApprovalStatus = Literal["pending", "approved", "rejected", "superseded"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("pending", "approved", "rejected", "superseded")


@dataclass(frozen=True, slots=True)
class Approval:
    """A plan waiting for the user's OK (``approvals``)."""

    id: int
    thread_id: int
    message_id: int | None
    #: ``users.id`` of the author of ``message_id``, whose plan it is (None without one)
    user_id: int | None
    summary: str
    plan: str
    status: ApprovalStatus
    created_at: datetime
    decided_at: datetime | None


# ---------------------------------------------------------------- rows -> records
_APPROVAL = "id, thread_id, message_id, user_id, summary, plan, status, created_at, decided_at"


def _approval(d: Dialect, r: Row) -> Approval:
    return Approval(
        id=r["id"],
        thread_id=r["thread_id"],
        message_id=r["message_id"],
        user_id=r["user_id"],
        summary=r["summary"],
        plan=r["plan"],
        status=r["status"],
        created_at=d.from_ts(r["created_at"]),
        decided_at=d.opt_ts(r["decided_at"]),
    )


# ---------------------------------------------------------------- scripts
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
    return _approval(d, one(rows, "approval", approval_id)), False


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
    mine, who = by_author(author, 3)
    rows = yield Q(
        "UPDATE approvals SET status = 'superseded', decided_at = $2 "
        f"WHERE thread_id = $1 AND status = 'pending'{mine} RETURNING {_APPROVAL}",
        (thread_id, d.ts(now), *who),
    )
    return _approval(d, rows[0]) if rows else None


def pending_approval(d: Dialect, thread_id: int, author: str | None) -> Script[Approval | None]:
    """The thread's pending plan (``author``'s, when given), if any: the oldest."""
    mine, who = by_author(author, 2)
    rows = yield Q(
        f"SELECT {_APPROVAL} FROM approvals WHERE thread_id = $1 AND status = 'pending'{mine} "
        "ORDER BY id LIMIT 1",
        (thread_id, *who),
    )
    return _approval(d, rows[0]) if rows else None


# ---------------------------------------------------------------- the Store's part
class Approvals(StorePart):
    """The Store's approvals."""

    async def propose(
        self, thread_id: int, summary: str, plan: str, *, message_id: int | None = None
    ) -> Approval:
        """Record a pending plan for the thread and the author of ``message_id``; that
        author's previous pending plan there, if any, becomes ``superseded`` in the
        same transaction (one pending plan per chat and author: another group
        member's stays pending)."""
        return await self._run(propose, thread_id, message_id, summary, plan, self._clock())

    async def propose_with_ack(
        self, thread_id: int, message_id: int, summary: str, plan: str, *, ack: str, key: str
    ) -> tuple[Approval, StoredMessage]:
        """:meth:`propose` the plan for ``message_id`` and record its ``ack`` reply
        (outbox key ``key``, raw ``{"kind": "ack", "approval_id"}``), in one
        transaction: either the user can be shown the plan or there is none.

        If the key was recorded before, that record is returned (the plan is still
        proposed: call it once per message, after ``approval_for_message``)."""
        check_storable(summary=summary, plan=plan, ack=ack, key=key)
        check_reply_key(key)
        return await self._run(
            propose_with_ack, thread_id, message_id, summary, plan, ack, key, self._clock()
        )

    async def decide(
        self, approval_id: int, status: Literal["approved", "rejected"]
    ) -> tuple[Approval, bool]:
        """Approve or reject a pending plan; return (approval, changed).

        A plan no longer pending (superseded, or already decided) is returned
        as it stands with ``changed`` False: that is how a stale OK is told
        apart. NotFound for an unknown id.
        """
        if status not in ("approved", "rejected"):
            raise ValueError(f"status must be approved or rejected, not {status!r}")
        return await self._run(decide, approval_id, status, self._clock())

    async def get_approval(self, approval_id: int) -> Approval | None:
        """One approval, or None for an unknown id."""
        return await self._run(get_approval, approval_id)

    async def approval_for_message(self, message_id: int) -> Approval | None:
        """The newest plan proposed for an inbound message (how a resumed job
        knows it was already acknowledged, or approved), or None."""
        return await self._run(approval_for_message, message_id)

    async def supersede_pending(
        self, thread_id: int, *, author: str | None = None
    ) -> Approval | None:
        """Mark the thread's pending plan (``author``'s, when given) superseded; return
        it, or None if there was none."""
        return await self._run(supersede_pending, thread_id, author_key(author), self._clock())

    async def pending_approval(
        self, thread_id: int, *, author: str | None = None
    ) -> Approval | None:
        """The thread's pending plan, if any; with ``author`` (a user key), that user's
        (a group holds one pending plan per member)."""
        return await self._run(pending_approval, thread_id, author_key(author))
