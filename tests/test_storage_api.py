"""storage's public names: what callers import from ``storage`` (issue 11 moved every
one of them into a module per concern; none may go missing)."""

from __future__ import annotations

import inspect

import storage


def test_storage_exports_exactly_its_public_names() -> None:
    assert sorted(storage.__all__) == sorted(
        [
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
    )
    for name in storage.__all__:
        assert getattr(storage, name) is not None


def test_the_store_is_one_object_with_every_method() -> None:
    """The Store is composed of parts, but callers see one object with one method
    per operation, each a coroutine (one transaction)."""
    methods = {
        name
        for name, value in inspect.getmembers(storage.Store)
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }
    assert methods == {
        "aclose", "add_artifact", "approval_for_message", "audit", "audit_entries",
        "begin_held", "check_ownership", "claim_jobs", "create_session", "decide",
        "finish_job", "finish_with_reply", "get_approval", "get_job", "get_message",
        "get_state", "get_thread", "get_user", "held_messages", "ingest", "ingest_held",
        "job_for_message", "mark_sent", "messages_after", "migrate",
        "open_threads", "pending_approval", "ping", "propose", "propose_with_ack",
        "queued_work", "recall", "recent_messages", "record_reply", "record_tokens",
        "recover", "release_held", "remember", "replies_after", "requeue_job",
        "running_jobs", "session_user", "set_state", "set_thread_summary", "set_user_tier",
        "supersede_pending", "thread_by_id", "token_spend", "token_totals", "unsent_replies",
    }  # fmt: skip
