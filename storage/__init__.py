"""Storage: one async :class:`Store` over Postgres (asyncpg) or an embedded SQLite.

``open_store(DATABASE_URL or None, data_dir)`` picks the backend, applies the
migrations and yields the Store. The durable inbox (``ingest``, ``claim_jobs``,
``recover``), the reply outbox (``record_reply``, ``mark_sent``,
``unsent_replies``), approvals, the token ledger, memories and the audit log
are its methods; every method is one transaction and no SQL lives outside
this package. Errors are :class:`StorageError` and its subclasses.

Inside, one private module per concern holds its records, its SQL and its
part of the Store (``_common`` describes the shape; ``_store`` composes them).
"""

from __future__ import annotations

from ._approvals import APPROVAL_STATUSES, Approval, ApprovalStatus
from ._audit import AuditEntry
from ._backend import Backend
from ._errors import (
    DatabaseInUse,
    IllegalTransition,
    MigrationError,
    NotFound,
    StorageError,
    StoreUnavailable,
)
from ._group import GroupCommit
from ._inbox import IngestResult
from ._jobs import JOB_STATUSES, Job, JobStatus, reply_key
from ._ledger import Scope, TokenSpend, TokenUsage
from ._memories import Memory
from ._messages import ARTIFACT_KINDS, Artifact, ArtifactKind, Role, StoredMessage, ThreadRecord
from ._migrate import Migration, known_migrations
from ._outbox import PendingReply
from ._store import Store, open_store
from ._users import Tier, UserRecord

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
    "reply_key",
]
