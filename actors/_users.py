"""User threads: one actor per ``<platform>:<id>`` under the ``/users`` Directory.

A thread turns each durable inbound message (``chat.Received``) into the
ack/OK flow of DESIGN.md ("A message, end to end"): classify with the cheap
model, say ``Understood: ... Will: ...`` with an OK action and record a
pending approval, or answer at once when no confirmation is needed; on OK
(``chat.Approve``) run the main model and reply. A newer message supersedes
the pending plan and cancels work in flight. LLM calls run in a task the
actor owns, so the thread stays responsive.

Everything it knows is in storage, so a restarted thread resumes: its
context and pending plan are reloaded, a job left running is retried once
(and failed with a notice after that), and every reply goes through the
outbox with a key derived from its job (``ack:<job>``, ``reply:<job>``), so
a retried job never sends the same reply twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import trio

from actors.brain import (
    Brain,
    BrainError,
    CallContext,
    InvalidIntent,
    NoModelConfigured,
)
from protocols import (
    ApprovalResult,
    Approve,
    ChatTurn,
    Deliver,
    Ping,
    Pong,
    Received,
    ReplyKind,
)
from storage import Approval, Job, Store, StoredMessage
from supervision import Actor, TaskHandle, correlated

#: The longest ack shown to a user (DESIGN.md: <= 1000 characters).
MAX_ACK_CHARS = 1000
#: A job interrupted this many times (crash, restart) is failed, not retried.
MAX_ATTEMPTS = 2
STALE_OK = "That plan was replaced by your newer message, so I did not run it."
APOLOGY = "Sorry, I could not reach any language model just now. Please try again in a minute."
NOT_UNDERSTOOD = "Sorry, I could not make sense of that message. Could you rephrase it?"
GAVE_UP = "Sorry, I was interrupted twice while working on that message and gave up on it."


@dataclass(frozen=True)
class ThreadConfig:
    """What every user thread shares: the store, the brain, the context bounds."""

    store: Store
    brain: Brain
    context_size: int = 30  # messages of context given to the model
    compact_after: int = 40  # a thread longer than this is summarised ...
    keep_recent: int = 20  # ... all but the newest this many
    memory_every: int = 5  # facts are extracted every this many user messages


def is_ok(text: str) -> bool:
    """Whether a message is the user saying OK to the pending plan (the OK action
    where a platform has no button: "reply OK")."""
    return text.strip().strip(".!").lower() in {"ok", "okay"}


def ack_text(summary: str, plan: str) -> str:
    """``Understood: <summary> Will: <plan>``, cut to MAX_ACK_CHARS."""
    text = f"Understood: {summary.strip()} Will: {plan.strip()}"
    return text if len(text) <= MAX_ACK_CHARS else text[: MAX_ACK_CHARS - 1] + "…"


def to_turn(message: StoredMessage) -> ChatTurn:
    """A stored message as the model sees it."""
    return ChatTurn(
        role=message.role,
        text=message.text,
        at=message.created_at,
        artifacts=tuple({"kind": a.kind, "content": a.content} for a in message.artifacts),
    )


class UserThread(Actor):
    """One user's conversation; see the module docstring.

    Accepts ``Received`` (from a connector), ``Approve`` (asked by a connector;
    answered with ``ApprovalResult``) and ``Ping``. A message that just says OK
    while a plan is pending approves it (``is_ok``).
    """

    accepts = (Received, Approve, Ping)

    def __init__(self, key: str, config: ThreadConfig) -> None:
        platform, sep, user_id = key.partition(":")
        if not sep or not user_id:
            raise ValueError(f"a user key is 'platform:id', not {key!r}")
        self.key = key
        self.platform = platform
        self.user_id = user_id
        self.config = config
        self.store = config.store
        self.thread_id: int | None = None
        self.chat_id = user_id  # a private chat's id is the user's (updated by Received)
        self.work: TaskHandle | None = None
        self.work_job: int | None = None
        self.pings = 0

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        thread = await self.store.get_thread(self.platform, self.chat_id)
        if thread is not None:
            self.thread_id = thread.id
            await self._resume()

    async def _resume(self) -> None:
        """Pick up what a previous incarnation left: running jobs, then queued ones."""
        assert self.thread_id is not None
        for job in await self.store.running_jobs(self.thread_id):
            approval = await self.store.approval_for_message(job.message_id)
            if approval is not None and approval.status == "pending":
                continue  # acknowledged, waiting for OK: nothing to redo
            if job.attempts >= MAX_ATTEMPTS:
                await self.store.finish_job(job.id, "failed", "interrupted too often")
                await self._say(job, "error", GAVE_UP, key=f"error:{job.id}")
            else:
                await self.store.requeue_job(job.id)  # claimed again below: attempts + 1
        await self._take_work()

    # ------------------------------------------------------------------ messages
    async def receive(self, msg: Any) -> Any:
        match msg:
            case Received():
                self.thread_id = msg.thread_id
                self.chat_id = msg.chat_id
                await self._take_work()
            case Approve(approval_id=approval_id):
                return await self._approve(approval_id)
            case Ping(note=note):
                self.pings += 1
                return Pong(note=f"{self.key}: ping {self.pings}" + (f" ({note})" if note else ""))
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")
        return None

    async def _take_work(self) -> None:
        """Claim this thread's queued jobs; the newest wins, older ones are superseded."""
        assert self.thread_id is not None
        jobs = await self.store.claim_jobs(50, thread_id=self.thread_id)
        if not jobs:
            return
        newest = jobs[-1]
        for job in jobs[:-1]:
            await self.store.finish_job(job.id, "canceled", "superseded by a newer message")
        message = await self.store.get_message(newest.message_id)
        if is_ok(message.text):
            pending = await self.store.pending_approval(self.thread_id)
            if pending is not None:
                # "reply OK": the action on platforms without buttons (Nostr).
                await self.store.finish_job(newest.id, "done", None)
                await self._approve(pending.id)
                return
        await self._supersede(newest)
        self.work_job = newest.id
        self.work = self.spawn_task(self._run_job, newest, message.text, name=f"job-{newest.id}")

    async def _supersede(self, newest: Job) -> None:
        """Cancel work in flight and retire the pending plan: a newer message came.

        The plan of ``newest`` itself (resumed after a restart) is kept."""
        assert self.thread_id is not None
        if self.work is not None and self.work_job != newest.id:
            self.work.cancel()
            await self.work.wait()
            if self.work_job is not None:
                await self._cancel_job(self.work_job)
        self.work = self.work_job = None
        pending = await self.store.pending_approval(self.thread_id)
        if pending is not None and pending.message_id != newest.message_id:
            await self.store.supersede_pending(self.thread_id)
            old = await self._job_of(pending)
            if old is not None and old.id != newest.id:
                await self._cancel_job(old.id)

    async def _cancel_job(self, job_id: int) -> None:
        job = await self.store.get_job(job_id)
        if job.status in ("queued", "running"):
            await self.store.finish_job(job_id, "canceled", "superseded by a newer message")

    async def _approve(self, approval_id: int) -> ApprovalResult:
        approval = await self.store.get_approval(approval_id)
        if approval is None or approval.message_id is None:
            return ApprovalResult(status="not_found")
        if approval.thread_id != self.thread_id:
            # Another chat of this user (a group, say)? Only its author may approve.
            if await self.store.message_author(approval.message_id) != self.key:
                return ApprovalResult(status="not_found")
            thread = await self.store.thread_by_id(approval.thread_id)
            if thread is None:
                return ApprovalResult(status="not_found")
            self.thread_id, self.chat_id = thread.id, thread.chat_id
        approval, changed = await self.store.decide(approval_id, "approved")
        if not changed:
            if approval.status == "superseded":
                job = await self._job_of(approval)
                await self._notice(STALE_OK, key=f"stale:{approval_id}", job=job)
            return ApprovalResult(status=approval.status)
        job = await self._job_of(approval)
        if job is not None and job.status == "running":
            message = await self.store.get_message(job.message_id)
            self.work_job = job.id
            self.work = self.spawn_task(
                self._answer_job, job, message.text, approval.plan, name=f"answer-{job.id}"
            )
        return ApprovalResult(status="approved")

    async def _job_of(self, approval: Approval) -> Job | None:
        if approval.message_id is None:
            return None
        return await self.store.job_for_message(approval.message_id)

    # ------------------------------------------------------------------ the work (owned tasks)
    async def _run_job(self, job: Job, text: str) -> None:
        """Classify, then ack (and wait for OK) or answer at once. Resumable: a job
        already acknowledged or approved is not classified again. Every log line,
        the brain's included, carries the inbound message's correlation id."""
        with correlated(f"m{job.message_id}"):
            await self._classify_job(job, text)

    async def _classify_job(self, job: Job, text: str) -> None:
        approval = await self.store.approval_for_message(job.message_id)
        if approval is not None:
            match approval.status:
                case "pending":
                    return  # the ack went out; the OK will come as Approve
                case "approved":
                    await self._answer(job, text, approval.plan)
                case _:
                    await self.store.finish_job(job.id, "canceled", f"plan {approval.status}")
            return
        ctx = await self._ctx()
        context = await self._context()
        try:
            intent = await self.config.brain.classify(ctx, context, text)
        except NoModelConfigured as exc:
            await self._finish(job, "done", "notice", f"I cannot answer yet: {exc}.")
            return
        except InvalidIntent:
            await self._finish(job, "failed", "error", NOT_UNDERSTOOD)
            return
        except BrainError:  # every model failed, or answered nothing usable
            await self._finish(job, "failed", "error", APOLOGY)
            return
        if not intent.needs_confirmation:
            # Nothing was stored since the context was read: answer from it.
            await self._answer(job, text, None, ctx, context)
            return
        assert self.thread_id is not None
        approval = await self.store.propose(
            self.thread_id, intent.summary, intent.plan, message_id=job.message_id
        )
        await self._say(
            job, "ack", ack_text(intent.summary, intent.plan), key=f"ack:{job.id}",
            approval_id=approval.id,
        )  # fmt: skip
        # The job stays running until the OK (or a newer message) decides it.

    async def _answer_job(self, job: Job, text: str, plan: str | None) -> None:
        with correlated(f"m{job.message_id}"):
            await self._answer(job, text, plan)

    async def _answer(
        self,
        job: Job,
        text: str,
        plan: str | None,
        ctx: CallContext | None = None,
        context: list[ChatTurn] | None = None,
    ) -> None:
        ctx = ctx or await self._ctx()
        if context is None:
            context = await self._context()
        try:
            answer = await self.config.brain.answer(ctx, context, text, plan)
        except NoModelConfigured as exc:
            await self._finish(job, "done", "notice", f"I cannot answer yet: {exc}.")
            return
        except BrainError:  # every model failed, or answered nothing usable
            await self._finish(job, "failed", "error", APOLOGY)
            return
        await self._finish(job, "done", "reply", answer)
        await self._after_reply(ctx)

    async def _after_reply(self, ctx: CallContext) -> None:
        """Compaction and memory extraction: best effort, never at the cost of the reply."""
        assert self.thread_id is not None
        recent = await self.store.recent_messages(self.thread_id, self.config.compact_after + 1)
        if len(recent) > self.config.compact_after:
            older = recent[: -self.config.keep_recent]
            try:
                summary = await self.config.brain.summarize(ctx, [to_turn(m) for m in older])
            except Exception as exc:  # keep the long context rather than lose it
                self.log.warning("compaction_failed", error=repr(exc))
            else:
                if summary.strip():
                    await self.store.set_thread_summary(self.thread_id, summary)
        users = [m for m in recent if m.role == "user"]
        if users and len(users) % self.config.memory_every == 0:
            try:
                facts = await self.config.brain.extract_memories(ctx, [to_turn(m) for m in recent])
            except Exception as exc:
                self.log.warning("memory_extraction_failed", error=repr(exc))
                return
            for fact in facts:
                if fact.strip():
                    await self.store.remember(self.key, fact, source_message_id=users[-1].id)

    # ------------------------------------------------------------------ helpers
    async def _ctx(self) -> CallContext:
        user = await self.store.get_user(self.platform, self.user_id)
        tier = user.tier if user is not None else "public"
        return CallContext(user_key=self.key, tier=tier, thread_id=self.thread_id)

    async def _context(self) -> list[ChatTurn]:
        assert self.thread_id is not None
        messages = await self.store.recent_messages(self.thread_id, self.config.context_size)
        turns = [to_turn(m) for m in messages]
        thread = await self.store.get_thread(self.platform, self.chat_id)
        if thread is not None and thread.summary and turns:
            summary = ChatTurn(
                role="system", text=f"Summary of earlier messages: {thread.summary}", at=turns[0].at
            )
            turns.insert(0, summary)
        return turns

    async def _finish(
        self, job: Job, status: Literal["done", "failed"], kind: ReplyKind, text: str
    ) -> None:
        # Reply first, then close the job: a crash between the two retries the
        # job, and the outbox key makes the retry's reply the same record.
        await self._say(job, kind, text, key=f"{kind}:{job.id}")
        await self.store.finish_job(job.id, status, None if status == "done" else text)
        if self.work_job == job.id:
            self.work = self.work_job = None

    async def _notice(self, text: str, *, key: str, job: Job | None) -> None:
        assert self.thread_id is not None
        await self._send(
            text, "notice", key=key, approval_id=None, reply_to=job.message_id if job else None
        )

    async def _say(
        self, job: Job, kind: ReplyKind, text: str, *, key: str, approval_id: int | None = None
    ) -> None:
        await self._send(text, kind, key=key, approval_id=approval_id, reply_to=job.message_id)

    async def _send(
        self, text: str, kind: ReplyKind, *, key: str, approval_id: int | None, reply_to: int | None
    ) -> None:
        """Record the reply in the outbox, then hand it to the connector (once)."""
        assert self.thread_id is not None
        raw = {"kind": kind, "approval_id": approval_id}
        message, _ = await self.store.record_reply(
            self.thread_id, text, key, reply_to=reply_to, raw=raw
        )
        if message.sent_at is not None:
            return  # sent before a restart: never twice
        deliver = Deliver(
            message_id=message.id,
            platform=self.platform,
            chat_id=self.chat_id,
            text=message.text,
            kind=kind,
            approval_id=approval_id,
            correlation_id=f"m{reply_to}" if reply_to is not None else "",
        )
        with trio.move_on_after(5):
            # A missing or stuck connector must not wedge the thread: the reply
            # is in the outbox and the connector sends it when it (re)starts.
            await self.system.tell(f"/connectors/{self.platform}", deliver)
