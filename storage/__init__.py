"""Storage: one async :class:`Store` over Postgres (asyncpg) or an embedded SQLite.

``open_store(DATABASE_URL or None, data_dir)`` picks the backend, applies the
migrations and yields the Store. The durable inbox (``ingest``, ``claim_jobs``,
``recover``), the reply outbox (``record_reply``, ``mark_sent``,
``unsent_replies``), approvals, the token ledger, memories and the audit log
are its methods; every method is one transaction and no SQL lives outside
this package. Errors are :class:`StorageError` and its subclasses.
"""

from __future__ import annotations

from ._errors import (
    DatabaseInUse,
    IllegalTransition,
    MigrationError,
    NotFound,
    StorageError,
    StoreUnavailable,
)
from ._group import GroupCommit
from ._migrate import Migration, known_migrations
from ._records import (
    APPROVAL_STATUSES,
    ARTIFACT_KINDS,
    JOB_STATUSES,
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
    Scope,
    StoredMessage,
    ThreadRecord,
    Tier,
    TokenSpend,
    TokenUsage,
    UserRecord,
)
from ._store import Backend, Store, open_store

__all__ = [
    "APPROVAL_STATUSES",
    "ARTIFACT_KINDS",
    "JOB_STATUSES",
    "Approval",
    "ApprovalStatus",
    "Artifact",
    "ArtifactKind",
    "AuditEntry",
    "Backend",
    "DatabaseInUse",
    "GroupCommit",
    "IllegalTransition",
    "IngestResult",
    "Job",
    "JobStatus",
    "Memory",
    "Migration",
    "MigrationError",
    "NotFound",
    "PendingReply",
    "Role",
    "Scope",
    "StorageError",
    "Store",
    "StoreUnavailable",
    "StoredMessage",
    "ThreadRecord",
    "Tier",
    "TokenSpend",
    "TokenUsage",
    "UserRecord",
    "known_migrations",
    "open_store",
]
