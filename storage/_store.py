"""The Store: greenroom's one storage interface, over either backend.

Every method is one transaction (a script from ``_scripts``), so each either
happened entirely or not at all. Every method is a checkpoint. Cancelling a
caller mid-call may still leave the write done (the transaction completes on
its thread) unless its docstring says otherwise; every write that a retry
could repeat is therefore idempotent by a key (``ingest`` by the platform's
message id, ``record_reply`` by the idempotency key, ``mark_sent`` and
``decide`` by state). Unreachable databases raise :class:`StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import outcome
import trio

from protocols import INBOUND_KEY_PREFIX, Clock, Inbound, Received, storable_problem, system_clock
from supervision import ActorSystem

from . import _scripts as s
from ._dialect import Dialect
from ._errors import StoreUnavailable
from ._group import GroupCommit
from ._records import (
    ARTIFACT_KINDS,
    Approval,
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

__all__ = ["Backend", "Store", "open_store"]


class Backend(Protocol):
    """What the Store needs of a backend: run a script in a transaction, migrate, close."""

    dialect: Dialect
    target: str  # what to call the database in messages (Postgres: URL, password masked)

    async def run(self, fn: Callable[..., s.Script[Any]], *args: Any) -> Any: ...
    async def take_ownership(self) -> None: ...
    async def check_ownership(self) -> None: ...
    async def migrate(self) -> list[int]: ...
    async def aclose(self) -> None: ...


#: Ids and limits past this are refused before they reach a driver (SQLite
#: raises OverflowError on a 64-bit overflow, Postgres a DataError).
_MAX_INT = (1 << 63) - 1


def _check_limit(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_INT:
        raise ValueError(f"{name} must be an int >= 1, not {value!r}")


def _check_reply_key(key: str) -> None:
    if not key:
        raise ValueError("idempotency_key must not be empty")
    if key.startswith(INBOUND_KEY_PREFIX):
        raise ValueError(f"idempotency_key must not start with {INBOUND_KEY_PREFIX!r} (inbound)")


def _author(key: str | None) -> str | None:
    """A user key ``platform:id`` as given, or ValueError naming it."""
    if key is not None and (
        not isinstance(key, str) or ":" not in key[1:-1] or storable_problem(key)
    ):
        raise ValueError(f"author must be a user key 'platform:id', not {key!r}")
    return key


def _check_storable(**values: Any) -> None:
    """ValueError naming the first value neither backend can store the same way."""
    for name, value in values.items():
        problem = storable_problem(value)
        if problem:
            raise ValueError(f"{name} {problem}")


class Store:
    """greenroom's storage. Made by :func:`open_store`; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        *,
        group_commit: bool = True,
        max_batch: int = 256,
        clock: Clock = system_clock,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._group: GroupCommit[Inbound, IngestResult] | None = (
            GroupCommit(self._flush_ingest, max_batch=max_batch) if group_commit else None
        )

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._backend.dialect.name

    @property
    def target(self) -> str:
        """The database, as safe to show (a file path, or the URL with its password masked)."""
        return self._backend.target

    @property
    def clock(self) -> Clock:
        """The wall clock this Store stamps every record with: the one clock the
        application reads "now" and "today" from (see ``protocols.Clock``)."""
        return self._clock

    def now(self) -> datetime:
        """What time it is by :attr:`clock` (aware, UTC). Not a checkpoint."""
        return self._clock()

    @property
    def group_commit(self) -> GroupCommit[Inbound, IngestResult] | None:
        """The ingest batcher (its ``batches``/``items`` counters), or None when off."""
        return self._group

    async def _run(self, fn: Callable[..., s.Script[Any]], *args: Any) -> Any:
        return await self._backend.run(fn, *args)

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty: up to date)."""
        return await self._backend.migrate()

    async def aclose(self) -> None:
        """Close the backend (pool or thread). Idempotent."""
        await self._backend.aclose()

    async def check_ownership(self) -> None:
        """For a store opened ``exclusive``: make sure this process still owns the
        database, taking it back if the server dropped the lock's session. Raises
        DatabaseInUse when another process took it meanwhile (this one must stop:
        both would answer the same messages). A no-op otherwise."""
        await self._backend.check_ownership()

    async def ping(self) -> bool:
        """One round trip to the database; raises StoreUnavailable when it is down."""
        return bool(await self._run(s.ping))

    # ------------------------------------------------------------ the durable inbox
    async def ingest(self, inbound: Inbound) -> IngestResult:
        """Store ``inbound`` and its queued job in one transaction; return both.

        Idempotent on ``inbound.idempotency_key`` (platform, chat, message id):
        a second delivery returns the first record with ``created=False`` and
        creates nothing. When this returns, the record is durable (committed;
        on SQLite, fsynced). With group commit, concurrent calls share a
        transaction; see ``GroupCommit.submit`` for cancellation.
        """
        if self._group is not None:
            return await self._group.submit(inbound)
        results: list[IngestResult] = await self._run(s.ingest, [inbound], self._clock())
        return results[0]

    async def _flush_ingest(self, items: Sequence[Inbound]) -> list[outcome.Outcome[IngestResult]]:
        try:
            results = await self._run(s.ingest, items, self._clock())
            return [outcome.Value(r) for r in results]
        except StoreUnavailable:
            raise  # the database, not an item: every caller gets it, nothing retried
        except Exception:
            if len(items) == 1:
                raise
        # One item spoiled the batch: commit the rest one by one so only it fails.
        out: list[outcome.Outcome[IngestResult]] = []
        for n, item in enumerate(items):
            try:
                out.append(outcome.Value((await self._run(s.ingest, [item], self._clock()))[0]))
            except StoreUnavailable as exc:
                # Down mid-fallback: fail the rest now rather than wait out a
                # connect timeout per item inside the shielded flush.
                out += [outcome.Error(exc) for _ in items[n:]]
                break
            except Exception as exc:
                out.append(outcome.Error(exc))
        return out

    async def claim_jobs(
        self, limit: int = 1, *, thread_id: int | None = None, author: str | None = None
    ) -> list[Job]:
        """Hand out up to ``limit`` queued jobs, oldest first, each exactly once.

        They become ``running`` with ``attempts`` raised by one. Concurrent
        claimers (other tasks, other processes on Postgres) never get the same
        job. With ``thread_id``, only that thread's jobs; with ``author`` (a user
        key ``platform:id``), only jobs of that user's messages (in a group, each
        member's thread claims its own). ValueError for a malformed key. Once begun it is not
        interrupted by cancellation (see the comment): a caller cancelled
        before it began claims nothing.
        """
        _check_limit("limit", limit)
        # Shielded: a claim that committed must reach its caller, or its jobs
        # would sit "running" with nobody working them until the next start.
        # The caller sees a pending cancellation at its next checkpoint.
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.CancelScope(shield=True):
            jobs: list[Job] = await self._run(
                s.claim_jobs, limit, thread_id, _author(author), self._clock()
            )
        return jobs

    async def finish_job(self, job_id: int, status: JobStatus, error: str | None = None) -> Job:
        """Move a job to ``done``/``failed`` (from running) or ``canceled`` (from queued
        or running). Raises IllegalTransition otherwise, NotFound for an unknown id."""
        if status not in ("done", "failed", "canceled"):
            raise ValueError(f"status must be done, failed or canceled, not {status!r}")
        return await self._run(s.finish_job, job_id, status, error, self._clock())  # type: ignore[no-any-return]

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
        _check_storable(text=text, key=key, raw=raw, error=error or "")
        _check_reply_key(key)
        reply = (thread_id, text, key, reply_to, raw)
        return await self._run(  # type: ignore[no-any-return]
            s.finish_with_reply, job_id, status, error, reply, self._clock()
        )

    async def get_job(self, job_id: int) -> Job:
        """One job; NotFound for an unknown id."""
        return await self._run(s.get_job, job_id)  # type: ignore[no-any-return]

    async def running_jobs(self, thread_id: int, *, author: str | None = None) -> list[Job]:
        """The thread's jobs left ``running`` (only ``author``'s messages' when given),
        oldest first: a restarted thread's unfinished work."""
        return await self._run(s.running_jobs, thread_id, _author(author))  # type: ignore[no-any-return]

    async def open_threads(self, author: str) -> list[ThreadRecord]:
        """The threads (chats) in which the user ``author`` has a job queued or running,
        by id: where a restarted user thread has work to resume. ValueError for a
        malformed key."""
        return await self._run(s.open_threads, _author(author))  # type: ignore[no-any-return]

    async def requeue_job(self, job_id: int) -> Job:
        """Move a running job back to ``queued`` so it is claimed (and counted) again.
        IllegalTransition unless it is running; NotFound for an unknown id."""
        return await self._run(s.requeue_job, job_id, self._clock())  # type: ignore[no-any-return]

    async def job_for_message(self, message_id: int) -> Job | None:
        """The job an inbound message made, or None (a reply has none)."""
        return await self._run(s.job_for_message, message_id)  # type: ignore[no-any-return]

    async def queued_work(
        self, limit: int = 1000, *, older_than_s: float | None = None
    ) -> list[Received]:
        """Queued jobs as the ``Received`` that routes each to its user's thread,
        oldest first: what ``greenroom run`` re-dispatches after ``recover()``. With
        ``older_than_s``, only jobs unchanged for that long by the Store's clock (what
        the reconciler re-dispatches: work nobody picked up)."""
        _check_limit("limit", limit)
        return await self._run(s.queued_work, limit, self._before(older_than_s))  # type: ignore[no-any-return]

    async def recover(
        self, *, max_attempts: int = 2, gave_up: str | None = None
    ) -> tuple[int, int]:
        """At start: requeue the jobs a crash left ``running``; return (requeued, failed).

        A job already started ``max_attempts`` times is failed instead, so a
        message that crashes the process cannot loop forever; with ``gave_up``,
        that text is recorded in the same transaction as the reply to each failed
        job (outbox key ``error:<job id>``, unsent), so its author is told once. A job whose plan
        has a pending approval is left running: it waits for the user's OK. Call it once,
        before claiming, from the one process that owns the database.
        """
        _check_limit("max_attempts", max_attempts)
        if gave_up is not None:
            _check_storable(gave_up=gave_up)
        return await self._run(s.recover, max_attempts, gave_up, self._clock())  # type: ignore[no-any-return]

    # ------------------------------------------------------------ messages and the outbox
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
        _check_reply_key(idempotency_key)
        _check_storable(text=text, idempotency_key=idempotency_key, author=author, raw=raw or {})
        return await self._run(  # type: ignore[no-any-return]
            s.record_reply,
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
        return await self._run(s.mark_sent, message_id, platform_message_id, self._clock())  # type: ignore[no-any-return]

    async def unsent_replies(
        self, platform: str | None = None, *, limit: int = 1000, older_than_s: float | None = None
    ) -> list[PendingReply]:
        """Replies recorded but not marked sent, oldest first: what a connector hands
        back to its platform at start. Nothing marked sent is ever listed. With
        ``older_than_s``, only replies recorded at least that long ago (the reconciler's)."""
        _check_limit("limit", limit)
        before = self._before(older_than_s)
        return await self._run(s.unsent_replies, platform, limit, before)  # type: ignore[no-any-return]

    def _before(self, older_than_s: float | None) -> datetime | None:
        if older_than_s is None:
            return None
        if isinstance(older_than_s, bool) or not older_than_s >= 0:
            raise ValueError(f"older_than_s must be >= 0 or None, not {older_than_s!r}")
        return self._clock() - timedelta(seconds=older_than_s)

    async def recent_messages(self, thread_id: int, limit: int = 30) -> list[StoredMessage]:
        """The thread's last ``limit`` messages, oldest first, with their artifacts."""
        _check_limit("limit", limit)
        return await self._run(s.recent_messages, thread_id, limit)  # type: ignore[no-any-return]

    async def messages_after(
        self, thread_id: int, after_id: int = 0, *, limit: int = 100
    ) -> list[StoredMessage]:
        """The thread's messages of every role with an id above ``after_id``, oldest
        first, with their artifacts: what a thread's cached context has not seen yet.
        Costs what it returns, whatever the thread's length."""
        _check_limit("limit", limit)
        return await self._run(s.messages_after, thread_id, after_id, limit)  # type: ignore[no-any-return]

    async def replies_after(
        self, thread_id: int, after_id: int = 0, *, limit: int = 100
    ) -> list[StoredMessage]:
        """The thread's replies with an id above ``after_id``, oldest first: a
        feed a client resumes by the last id it saw (the HTTP door's events)."""
        _check_limit("limit", limit)
        return await self._run(s.replies_after, thread_id, after_id, limit)  # type: ignore[no-any-return]

    async def get_message(self, message_id: int) -> StoredMessage:
        """One message with its artifacts; NotFound for an unknown id."""
        return await self._run(s.get_message, message_id)  # type: ignore[no-any-return]

    async def add_artifact(
        self, message_id: int, kind: ArtifactKind, content: Any, uri: str | None = None
    ) -> Artifact:
        """Attach a JSON-able artifact to a message; NotFound for an unknown message."""
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ARTIFACT_KINDS)}, not {kind!r}")
        _check_storable(content=content, uri=uri or "")
        return await self._run(s.add_artifact, message_id, kind, content, uri, self._clock())  # type: ignore[no-any-return]

    # ------------------------------------------------------------ threads and users
    async def get_thread(self, platform: str, chat_id: str) -> ThreadRecord | None:
        """The thread for (platform, chat_id), or None before its first message."""
        return await self._run(s.get_thread, platform, chat_id)  # type: ignore[no-any-return]

    async def thread_by_id(self, thread_id: int) -> ThreadRecord | None:
        """One thread by id, or None."""
        return await self._run(s.thread_by_id, thread_id)  # type: ignore[no-any-return]

    async def message_author(self, message_id: int) -> str | None:
        """The user key (``platform:id``) of an inbound message's author, or None
        (unknown id, or a reply, which has no author user)."""
        return await self._run(s.message_author, message_id)  # type: ignore[no-any-return]

    async def set_thread_summary(self, thread_id: int, summary: str) -> ThreadRecord:
        """Replace the thread's summary of its older messages; NotFound for an unknown id."""
        if not summary.strip():
            raise ValueError("summary must not be empty (keep the long context instead)")
        _check_storable(summary=summary)
        return await self._run(s.set_thread_summary, thread_id, summary, self._clock())  # type: ignore[no-any-return]

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """A platform identity, or None if it never wrote."""
        return await self._run(s.get_user, platform, user_id)  # type: ignore[no-any-return]

    async def set_user_tier(self, platform: str, user_id: str, tier: Tier) -> UserRecord:
        """Set a user's tier (``public``/``admin``), creating the user if needed."""
        if tier not in ("public", "admin"):
            raise ValueError(f"tier must be public or admin, not {tier!r}")
        return await self._run(s.set_user_tier, platform, user_id, tier, self._clock())  # type: ignore[no-any-return]

    # ------------------------------------------------------------ approvals
    async def propose(
        self, thread_id: int, summary: str, plan: str, *, message_id: int | None = None
    ) -> Approval:
        """Record a pending plan for the thread; its previous pending plan, if any,
        becomes ``superseded`` in the same transaction (never two pending)."""
        return await self._run(s.propose, thread_id, message_id, summary, plan, self._clock())  # type: ignore[no-any-return]

    async def propose_with_ack(
        self, thread_id: int, message_id: int, summary: str, plan: str, *, ack: str, key: str
    ) -> tuple[Approval, StoredMessage]:
        """:meth:`propose` the plan for ``message_id`` and record its ``ack`` reply
        (outbox key ``key``, raw ``{"kind": "ack", "approval_id"}``), in one
        transaction: either the user can be shown the plan or there is none.

        If the key was recorded before, that record is returned (the plan is still
        proposed: call it once per message, after ``approval_for_message``)."""
        _check_storable(summary=summary, plan=plan, ack=ack, key=key)
        _check_reply_key(key)
        return await self._run(  # type: ignore[no-any-return]
            s.propose_with_ack, thread_id, message_id, summary, plan, ack, key, self._clock()
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
        return await self._run(s.decide, approval_id, status, self._clock())  # type: ignore[no-any-return]

    async def get_approval(self, approval_id: int) -> Approval | None:
        """One approval, or None for an unknown id."""
        return await self._run(s.get_approval, approval_id)  # type: ignore[no-any-return]

    async def approval_for_message(self, message_id: int) -> Approval | None:
        """The newest plan proposed for an inbound message (how a resumed job
        knows it was already acknowledged, or approved), or None."""
        return await self._run(s.approval_for_message, message_id)  # type: ignore[no-any-return]

    async def supersede_pending(
        self, thread_id: int, *, author: str | None = None
    ) -> Approval | None:
        """Mark the thread's pending plan (``author``'s, when given) superseded; return
        it, or None if there was none."""
        return await self._run(s.supersede_pending, thread_id, _author(author), self._clock())  # type: ignore[no-any-return]

    async def pending_approval(
        self, thread_id: int, *, author: str | None = None
    ) -> Approval | None:
        """The thread's pending plan, if any; with ``author`` (a user key), that user's
        (a group holds one pending plan per member)."""
        return await self._run(s.pending_approval, thread_id, _author(author))  # type: ignore[no-any-return]

    # ------------------------------------------------------------ tokens, memory, audit
    async def record_tokens(self, usage: TokenUsage) -> int:
        """Append one LLM call to the token ledger; return its id."""
        if usage.scope not in ("proactive", "reactive"):
            raise ValueError(f"scope must be proactive or reactive, not {usage.scope!r}")
        if not (0 <= usage.tokens_in <= _MAX_INT and 0 <= usage.tokens_out <= _MAX_INT):
            raise ValueError("token counts must be >= 0")
        _check_storable(cost=float(usage.cost), meta=usage.meta, model=usage.model)
        return await self._run(s.record_tokens, usage, self._clock())  # type: ignore[no-any-return]

    async def token_spend(self, scope: Scope, day: date) -> TokenSpend:
        """What ``scope`` spent on the UTC calendar day ``day``."""
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return await self._run(s.token_spend, scope, start, start + timedelta(days=1))  # type: ignore[no-any-return]

    async def token_totals(self) -> list[tuple[str, str, str, int, int, int, float]]:
        """All-time ledger sums as ``(scope, provider, model, calls, tokens_in,
        tokens_out, cost)``, sorted: monotonic, as Prometheus counters must be.
        Scans the ledger (one aggregate per scrape)."""
        return await self._run(s.token_totals)  # type: ignore[no-any-return]

    async def remember(
        self, user_key: str, fact: str, *, source_message_id: int | None = None
    ) -> Memory:
        """Keep one fact about the user ``user_key`` (``platform:id``)."""
        if not fact.strip():
            raise ValueError("fact must not be empty")
        _check_storable(fact=fact, user_key=user_key)
        return await self._run(s.remember, user_key, fact, source_message_id, self._clock())  # type: ignore[no-any-return]

    async def recall(self, user_key: str, limit: int = 50) -> list[Memory]:
        """That user's last ``limit`` facts, oldest first; never another user's."""
        _check_limit("limit", limit)
        return await self._run(s.recall, user_key, limit)  # type: ignore[no-any-return]

    async def create_session(
        self, user_key: str, token_hash: str, *, expires_at: datetime | None = None
    ) -> int:
        """Record a session for ``user_key`` by the hash of its token (never the
        token itself); return its id. StorageError for a hash already used."""
        if len(token_hash) < 32:
            raise ValueError("token_hash must be a hash (32 characters or more)")
        _check_storable(user_key=user_key, token_hash=token_hash)
        return await self._run(s.create_session, user_key, token_hash, expires_at, self._clock())  # type: ignore[no-any-return]

    async def session_user(self, token_hash: str) -> str | None:
        """The user key of the unexpired session with this token hash, or None."""
        if storable_problem(token_hash):
            return None  # no stored hash can match it
        return await self._run(s.session_user, token_hash, self._clock())  # type: ignore[no-any-return]

    async def get_state(self, connector: str, key: str) -> str | None:
        """What a connector stored under ``key`` (an offset, a cursor), or None."""
        return await self._run(s.get_state, connector, key)  # type: ignore[no-any-return]

    async def set_state(self, connector: str, key: str, value: str) -> None:
        """Store a connector's ``value`` under ``key``, replacing the previous one."""
        _check_storable(connector=connector, key=key, value=value)
        await self._run(s.set_state, connector, key, value, self._clock())

    async def audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
        """Append an entry to the audit log (who, what, details); return its id.

        ValueError for details neither backend can store (NUL, NaN, non-JSON)."""
        _check_storable(actor=actor, action=action, detail=detail or {})
        return await self._run(s.audit, actor, action, detail or {}, self._clock())  # type: ignore[no-any-return]

    async def audit_entries(
        self, limit: int = 100, *, action: str | None = None
    ) -> list[AuditEntry]:
        """The newest audit entries, newest first, optionally only one ``action``."""
        _check_limit("limit", limit)
        return await self._run(s.audit_entries, limit, action)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ held inbound messages
    # A message a door must enrich before its thread reads it (a voice note's
    # transcript, a photo's description) is stored held: durable and
    # deduplicated like any inbound message, but without a job, so nothing
    # claims, recovers or re-dispatches it until the door releases it.
    async def ingest_held(self, inbound: Inbound) -> tuple[StoredMessage, ThreadRecord, bool]:
        """Store ``inbound`` held (no job yet); return (message, thread, created).

        Idempotent on ``inbound.idempotency_key`` like :meth:`ingest`: a second
        delivery returns the first record with ``created`` False, held or
        released. Durable when it returns. Not group-committed (one
        transaction per call): held messages are the rare, slow kind. A
        message's key must be ingested one way only: :meth:`ingest` of a held
        message's key raises.
        """
        return await self._run(s.ingest_held, inbound, self._clock())  # type: ignore[no-any-return]

    async def held_messages(self, platform: str, *, limit: int = 100) -> list[tuple[int, str]]:
        """(message id, chat id) of ``platform``'s held messages, oldest first: what a
        door restarted after a crash must still enrich."""
        _check_limit("limit", limit)
        return await self._run(s.held_messages, platform, limit)  # type: ignore[no-any-return]

    async def begin_held(self, message_id: int) -> tuple[StoredMessage, int] | None:
        """Count one more enrichment attempt of a held message and return it (with
        its artifacts: what an earlier attempt already produced) and the attempt's
        number, 1 for the first; None when it is not held (released, or never)."""
        return await self._run(s.begin_held, message_id, self._clock())  # type: ignore[no-any-return]

    async def release_held(self, message_id: int, text: str) -> IngestResult:
        """End a message's hold in one transaction: its text becomes ``text`` and its
        job is created, queued, or already canceled when a newer message of the
        same thread has a job (the newest message wins, as a thread's claim
        decides, whatever order the jobs were made in). ``created`` says whether
        this call released it; a second call returns the record unchanged.
        NotFound for a message that has neither a hold nor a job; ValueError for
        text storage refuses.
        """
        _check_storable(text=text)
        return await self._run(s.release_held, message_id, text, self._clock())  # type: ignore[no-any-return]


@asynccontextmanager
async def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    system: ActorSystem | None = None,
    migrate: bool = True,
    exclusive: bool = False,
    group_commit: bool = True,
    max_batch: int = 256,
    clock: Clock = system_clock,
) -> AsyncIterator[Store]:
    """Open the store and close it on leaving the block.

    ``database_url`` ``postgresql://...`` (or ``postgres://``) selects Postgres;
    None selects SQLite at ``<data_dir>/greenroom.db`` (the directory is
    created). With ``exclusive``, this process takes ownership of the
    database until the block ends (``greenroom run`` does: ``recover()`` is
    only safe in the one process that works the inbox). Pending migrations
    are applied first unless ``migrate`` is False. Raises StoreUnavailable
    (one line, password masked) when the database cannot be opened,
    DatabaseInUse when another process owns it, MigrationError when its
    schema cannot be brought up to date, ValueError for any other scheme.
    """
    from ._postgres import PostgresBackend
    from ._sqlite import SqliteBackend

    backend: Backend
    if database_url is None:
        path = Path(data_dir) / "greenroom.db"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(str(path), exc.strerror or str(exc)) from None
        backend = await SqliteBackend.open(path, system)
    elif database_url.startswith(("postgresql://", "postgres://")):
        backend = await PostgresBackend.open(database_url)
    else:
        raise ValueError("database_url must start with postgresql:// (or be unset for SQLite)")
    try:
        store = Store(backend, group_commit=group_commit, max_batch=max_batch, clock=clock)
        if exclusive:
            await backend.take_ownership()
        if migrate:
            await store.migrate()
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()
