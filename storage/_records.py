"""What the Store hands back: immutable records, one per table row it reads.

Plain frozen dataclasses rather than pydantic models: they are built from
trusted rows on the hot path, where validation would only cost time. Every
timestamp is a timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from protocols import Deliver, Received

__all__ = [
    "APPROVAL_STATUSES",
    "ARTIFACT_KINDS",
    "JOB_STATUSES",
    "Approval",
    "ApprovalStatus",
    "Artifact",
    "ArtifactKind",
    "AuditEntry",
    "IngestResult",
    "Job",
    "JobStatus",
    "Memory",
    "PendingReply",
    "Role",
    "Scope",
    "StoredMessage",
    "ThreadRecord",
    "Tier",
    "TokenSpend",
    "TokenUsage",
    "UserRecord",
]

Role = Literal["user", "assistant", "system"]
Tier = Literal["public", "admin"]
Scope = Literal["proactive", "reactive"]
ArtifactKind = Literal["voice_transcript", "image_json", "ocr_text", "file_meta", "tool_result"]
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = (
    "voice_transcript",
    "image_json",
    "ocr_text",
    "file_meta",
    "tool_result",
)
# The durable inbox's lifecycle: queued -> running -> done | failed | canceled;
# running -> queued only through recover() (a crash interrupted it);
# queued -> canceled (superseded before it ran).
JobStatus = Literal["queued", "running", "done", "failed", "canceled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "failed", "canceled")
# pending -> approved | rejected | superseded; nothing leaves the last three.
ApprovalStatus = Literal["pending", "approved", "rejected", "superseded"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("pending", "approved", "rejected", "superseded")


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A platform identity (``users``)."""

    id: int
    platform: str
    platform_user_id: str
    display_name: str
    tier: Tier
    created_at: datetime
    last_seen_at: datetime

    @property
    def key(self) -> str:
        """``"<platform>:<platform_user_id>"``, the user's thread key."""
        return f"{self.platform}:{self.platform_user_id}"


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


@dataclass(frozen=True, slots=True)
class Job:
    """One entry of the durable inbox (``reactive_jobs``)."""

    id: int
    thread_id: int
    message_id: int
    status: JobStatus
    mode: str
    payload: dict[str, Any]
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ``ingest`` stored, or found stored already (``created`` False: a redelivery)."""

    message: StoredMessage
    job: Job
    thread: ThreadRecord
    created: bool

    def received(self, user_id: str, text: str | None = None) -> Received:
        """The ``chat.Received`` that hands this message to its author's thread
        (``user_id`` is the platform's id of the author; ``text`` defaults to the
        stored text, e.g. a connector may pass a voice transcript)."""
        return Received(
            job_id=self.job.id,
            message_id=self.message.id,
            thread_id=self.thread.id,
            platform=self.thread.platform,
            chat_id=self.thread.chat_id,
            user_id=user_id,
            text=self.message.text if text is None else text,
        )


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


@dataclass(frozen=True, slots=True)
class Approval:
    """A plan waiting for the user's OK (``approvals``)."""

    id: int
    thread_id: int
    message_id: int | None
    summary: str
    plan: str
    status: ApprovalStatus
    created_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One LLM call's cost, as written to ``token_ledger``."""

    scope: Scope
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenSpend:
    """The sum of the ledger for one scope and one UTC day."""

    calls: int
    tokens_in: int
    tokens_out: int
    tokens_total: int
    cost: float


@dataclass(frozen=True, slots=True)
class Memory:
    """A fact kept about one user (``memories``)."""

    id: int
    user_key: str
    fact: str
    source_message_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what (``audit_log``): operator actions, refused tool calls."""

    id: int
    actor: str
    action: str
    detail: dict[str, Any]
    created_at: datetime
