"""Threads and messages with their artifacts (``chat_threads``, ``chat_messages``,
``message_artifacts``): what the other concerns build on.

A thread is one chat on one platform; its messages are every message in and
out of it (inbound ones written by ``_inbox``, replies by ``_outbox``); an
artifact is what was extracted from a message. Other concerns return these
records too and convert their rows with :func:`to_message` and :func:`to_thread`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._backend import Script
from ._common import StorePart, check_limit, check_storable, one, where_in
from ._dialect import Dialect, Q, Row

__all__ = [
    "ARTIFACT_KINDS",
    "MSG_COLS",
    "THREAD_COLS",
    "Artifact",
    "ArtifactKind",
    "Messages",
    "Role",
    "StoredMessage",
    "ThreadRecord",
    "get_message",
    "thread_by_id",
    "to_message",
    "to_thread",
]

Role = Literal["user", "assistant", "system"]

ArtifactKind = Literal["voice_transcript", "image_json", "ocr_text", "file_meta", "tool_result"]
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = (
    "voice_transcript",
    "image_json",
    "ocr_text",
    "file_meta",
    "tool_result",
)


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """One conversation on one platform (``chat_threads``), unique by (platform, chat_id)."""

    id: int
    platform: str
    chat_id: str
    summary: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Artifact:
    """Something extracted from a message: a transcript, image JSON, file metadata..."""

    id: int
    message_id: int
    kind: ArtifactKind
    content: Any
    uri: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message in or out (``chat_messages``).

    For a reply (role ``assistant``/``system``), ``sent_at`` is None until the
    platform confirmed it: recorded but unsent, the outbox's pending state.
    """

    id: int
    thread_id: int
    role: Role
    author: str
    text: str
    platform_message_id: str | None
    idempotency_key: str
    reply_to: int | None
    raw: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None
    artifacts: tuple[Artifact, ...] = field(default=())
    #: ``users.id`` of an inbound message's author; None for a reply
    user_id: int | None = None


# ---------------------------------------------------------------- rows -> records
MSG_COLS = (
    "id, thread_id, user_id, role, author, text, platform_message_id, idempotency_key, "
    "reply_to, raw, created_at, sent_at"
)

THREAD_COLS = "id, platform, chat_id, summary, created_at, updated_at"

_ART = "id, message_id, kind, content, uri, created_at"


def to_message(d: Dialect, r: Row, artifacts: tuple[Artifact, ...] = ()) -> StoredMessage:
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


def to_thread(d: Dialect, r: Row) -> ThreadRecord:
    return ThreadRecord(
        id=r["id"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        summary=r["summary"],
        created_at=d.from_ts(r["created_at"]),
        updated_at=d.from_ts(r["updated_at"]),
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


# ---------------------------------------------------------------- scripts
def recent_messages(d: Dialect, thread_id: int, limit: int) -> Script[list[StoredMessage]]:
    """The last ``limit`` messages of a thread, oldest first, each with its artifacts."""
    rows = yield Q(
        f"SELECT {MSG_COLS} FROM chat_messages WHERE thread_id = $1 ORDER BY id DESC LIMIT $2",
        (thread_id, limit),
    )
    return (yield from _with_artifacts(d, list(reversed(rows))))


def _with_artifacts(d: Dialect, rows: list[Row]) -> Script[list[StoredMessage]]:
    """The messages of ``rows`` (in that order), each with its artifacts: one query
    by the rows' ids, so its cost follows the rows asked for, not the thread's length
    (it used to read every message id of the thread)."""
    if not rows:
        return []
    where, args = where_in(d, "message_id", "bigint", [r["id"] for r in rows])
    arts = yield Q(f"SELECT {_ART} FROM message_artifacts WHERE {where} ORDER BY id", args)
    by_message: dict[int, list[Artifact]] = {}
    for a in arts:
        by_message.setdefault(a["message_id"], []).append(_artifact(d, a))
    return [to_message(d, r, tuple(by_message.get(r["id"], ()))) for r in rows]


def messages_after(
    d: Dialect, thread_id: int, after_id: int, limit: int
) -> Script[list[StoredMessage]]:
    """The thread's messages (every role) with id > ``after_id``, oldest first, with
    their artifacts: what a user actor's cached context of the chat has not seen yet."""
    rows = yield Q(
        f"SELECT {MSG_COLS} FROM chat_messages WHERE thread_id = $1 AND id > $2 "
        "ORDER BY id LIMIT $3",
        (thread_id, after_id, limit),
    )
    return (yield from _with_artifacts(d, list(rows)))


def replies_after(
    d: Dialect, thread_id: int, after_id: int, limit: int
) -> Script[list[StoredMessage]]:
    """The thread's replies (role assistant/system) with id > ``after_id``, oldest first."""
    rows = yield Q(
        f"SELECT {MSG_COLS} FROM chat_messages WHERE thread_id = $1 AND id > $2 "
        "AND role <> 'user' ORDER BY id LIMIT $3",
        (thread_id, after_id, limit),
    )
    return [to_message(d, r) for r in rows]


def get_message(d: Dialect, message_id: int) -> Script[StoredMessage]:
    """One message by id, with its artifacts."""
    row = one(
        (yield Q(f"SELECT {MSG_COLS} FROM chat_messages WHERE id = $1", (message_id,))),
        "message",
        message_id,
    )
    [message] = yield from _with_artifacts(d, [row])
    return message


def add_artifact(
    d: Dialect, message_id: int, kind: ArtifactKind, content: Any, uri: str | None, now: datetime
) -> Script[Artifact]:
    """Attach an artifact to a stored message."""
    one(
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


def get_thread(d: Dialect, platform: str, chat_id: str) -> Script[ThreadRecord | None]:
    """The thread for (platform, chat_id), if any message made it."""
    rows = yield Q(
        f"SELECT {THREAD_COLS} FROM chat_threads WHERE platform = $1 AND chat_id = $2",
        (platform, chat_id),
    )
    return to_thread(d, rows[0]) if rows else None


def thread_by_id(d: Dialect, thread_id: int) -> Script[ThreadRecord | None]:
    """One thread by id, if it exists."""
    rows = yield Q(f"SELECT {THREAD_COLS} FROM chat_threads WHERE id = $1", (thread_id,))
    return to_thread(d, rows[0]) if rows else None


def set_thread_summary(
    d: Dialect, thread_id: int, summary: str, now: datetime
) -> Script[ThreadRecord]:
    """Replace a thread's stored summary of its older messages."""
    rows = yield Q(
        "UPDATE chat_threads SET summary = $2, updated_at = $3 "
        f"WHERE id = $1 RETURNING {THREAD_COLS}",
        (thread_id, summary, d.ts(now)),
    )
    return to_thread(d, one(rows, "thread", thread_id))


# ---------------------------------------------------------------- the Store's part
class Messages(StorePart):
    """The Store's threads, messages and artifacts."""

    async def recent_messages(self, thread_id: int, limit: int = 30) -> list[StoredMessage]:
        """The thread's last ``limit`` messages, oldest first, with their artifacts."""
        check_limit("limit", limit)
        return await self._run(recent_messages, thread_id, limit)

    async def messages_after(
        self, thread_id: int, after_id: int = 0, *, limit: int = 100
    ) -> list[StoredMessage]:
        """The thread's messages of every role with an id above ``after_id``, oldest
        first, with their artifacts: what a user actor's cached context of the chat
        has not seen yet.
        Costs what it returns, whatever the thread's length."""
        check_limit("limit", limit)
        return await self._run(messages_after, thread_id, after_id, limit)

    async def replies_after(
        self, thread_id: int, after_id: int = 0, *, limit: int = 100
    ) -> list[StoredMessage]:
        """The thread's replies with an id above ``after_id``, oldest first: a
        feed a client resumes by the last id it saw (the HTTP door's events)."""
        check_limit("limit", limit)
        return await self._run(replies_after, thread_id, after_id, limit)

    async def get_message(self, message_id: int) -> StoredMessage:
        """One message with its artifacts; NotFound for an unknown id."""
        return await self._run(get_message, message_id)

    async def add_artifact(
        self, message_id: int, kind: ArtifactKind, content: Any, uri: str | None = None
    ) -> Artifact:
        """Attach a JSON-able artifact to a message; NotFound for an unknown message."""
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ARTIFACT_KINDS)}, not {kind!r}")
        check_storable(content=content, uri=uri or "")
        return await self._run(add_artifact, message_id, kind, content, uri, self._clock())

    async def get_thread(self, platform: str, chat_id: str) -> ThreadRecord | None:
        """The thread for (platform, chat_id), or None before its first message."""
        return await self._run(get_thread, platform, chat_id)

    async def thread_by_id(self, thread_id: int) -> ThreadRecord | None:
        """One thread by id, or None."""
        return await self._run(thread_by_id, thread_id)

    async def set_thread_summary(self, thread_id: int, summary: str) -> ThreadRecord:
        """Replace the thread's summary of its older messages; NotFound for an unknown id."""
        if not summary.strip():
            raise ValueError("summary must not be empty (keep the long context instead)")
        check_storable(summary=summary)
        return await self._run(set_thread_summary, thread_id, summary, self._clock())
