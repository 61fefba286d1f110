"""User actors: one per ``<platform>:<id>`` under the ``/users`` Directory.

A user actor turns each durable inbound message (``chat.Received``) into the
ack/OK flow of DESIGN.md ("A message, end to end"): classify with the cheap
model, say ``Understood: ... Will: ...`` with an OK action and record a
pending approval, or answer at once when no confirmation is needed; on OK
(``chat.Approve``) run the main model and reply. LLM calls run in tasks the
actor owns, so it stays responsive.

One actor per user, several chats per user (a private chat, groups): what is
the user's (tier, memory) lives on the actor; what belongs to one chat (its
cached context, its pending plan, its work in flight, its supersede) lives in
that chat's :class:`ChatState`, and an owned task is handed its chat and its
job when it starts, never reading "the chat this user wrote in last". A new
message supersedes the pending plan and the work of its own chat only; in a
group, only its author's (each member's actor claims, supersedes and answers
its own messages; turns keep their author).

Everything it knows is in storage, so a restarted user actor resumes every chat in
which its user has open work: a pending plan can still be approved, a job left
running is retried once (and failed with a notice after that), and every reply
goes through the outbox with a key derived from its job (``ack:<job>``,
``reply:<job>``), recorded in the same transaction as the state it reports
(the plan with its ack, the job's end with its reply), so a crash between the
two cannot leave a plan nobody was shown or a job that says canceled though it
was answered.
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
    Ping,
    Pong,
    Received,
    ReplyKind,
)
from storage import Approval, Job, PendingReply, Store, StoredMessage, reply_key
from supervision import Actor, TaskHandle, correlated

from ._context import ChatContext, to_turn

__all__ = [
    "APOLOGY",
    "GAVE_UP",
    "MAX_ACK_CHARS",
    "MAX_ATTEMPTS",
    "STALE_OK",
    "ChatState",
    "UserActor",
    "UserConfig",
    "ack_text",
    "is_ok",
]

#: The longest ack shown to a user (DESIGN.md: <= 1000 characters).
MAX_ACK_CHARS = 1000
#: A job interrupted this many times (crash, restart) is failed, not retried.
MAX_ATTEMPTS = 2
#: How long handing a recorded reply to its door may wait (a full mailbox); the
#: reply is in the outbox either way, and the reconciler sends what waits too long.
DELIVER_TIMEOUT_S = 5.0
STALE_OK = "That plan was replaced by your newer message, so I did not run it."
APOLOGY = "Sorry, I could not reach any language model just now. Please try again in a minute."
NOT_UNDERSTOOD = "Sorry, I could not make sense of that message. Could you rephrase it?"
GAVE_UP = "Sorry, I was interrupted twice while working on that message and gave up on it."


@dataclass(frozen=True)
class UserConfig:
    """What every user actor shares: the store, the brain, the context bounds."""

    store: Store
    brain: Brain
    context_size: int = 30  # messages of context given to the model
    compact_after: int = 40  # a chat longer than this is summarised ...
    keep_recent: int = 20  # ... all but the newest this many
    memory_every: int = 5  # facts are extracted every this many of the user's messages

    @property
    def cache_size(self) -> int:
        """Messages a chat keeps in memory: enough for the context and for compaction."""
        return max(self.context_size, self.compact_after + 1)


def is_ok(text: str) -> bool:
    """Whether a message is the user saying OK to the pending plan (the OK action
    where a platform has no button: "reply OK")."""
    return text.strip().strip(".!").lower() in {"ok", "okay"}


def ack_text(summary: str, plan: str) -> str:
    """``Understood: <summary> Will: <plan>``, cut to MAX_ACK_CHARS."""
    text = f"Understood: {summary.strip()} Will: {plan.strip()}"
    return text if len(text) <= MAX_ACK_CHARS else text[: MAX_ACK_CHARS - 1] + "…"


@dataclass
class ChatState:
    """What one user actor keeps for one of its user's chats."""

    thread_id: int
    chat_id: str
    context: ChatContext
    #: the work in flight in this chat (classifying or answering one job), if any
    work: TaskHandle | None = None
    work_job: int | None = None
    #: the user's own messages here since facts were last extracted (None: not yet
    #: counted since activation; see UserActor._unremembered)
    since_memory: int | None = None


class UserActor(Actor):
    """One user's conversations; see the module docstring.

    Accepts ``Received`` (from a connector), ``Approve`` (asked by a connector;
    answered with ``ApprovalResult``) and ``Ping``. A message that just says OK
    while the user has a plan pending in that chat approves it (``is_ok``).
    """

    accepts = (Received, Approve, Ping)

    def __init__(self, key: str, config: UserConfig) -> None:
        platform, sep, user_id = key.partition(":")
        if not sep or not user_id:
            raise ValueError(f"a user key is 'platform:id', not {key!r}")
        self.key = key
        self.platform = platform
        self.user_id = user_id
        self.config = config
        self.store = config.store
        self.chats: dict[int, ChatState] = {}
        self.me: int | None = None  # users.id, read when first needed
        self.pings = 0

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        """Resume every chat in which this user has work queued or running."""
        for thread in await self.store.open_threads(self.key):
            await self._resume(self._chat(thread.id, thread.chat_id))

    async def _resume(self, chat: ChatState) -> None:
        """Pick up what a previous incarnation left in ``chat``: running jobs, then queued."""
        for job in await self.store.running_jobs(chat.thread_id, author=self.key):
            approval = await self.store.approval_for_message(job.message_id)
            if approval is not None and approval.status == "pending":
                continue  # acknowledged, waiting for OK: nothing to redo
            if job.attempts >= MAX_ATTEMPTS:
                await self._finish(chat, job, "failed", "error", GAVE_UP)
            else:
                await self.store.requeue_job(job.id)  # claimed again below: attempts + 1
        await self._take_work(chat)

    def _chat(self, thread_id: int, chat_id: str) -> ChatState:
        chat = self.chats.get(thread_id)
        if chat is None:
            group = chat_id != self.user_id
            context = ChatContext(thread_id, self.config.cache_size, group=group)
            chat = self.chats[thread_id] = ChatState(thread_id, chat_id, context)
        return chat

    # ------------------------------------------------------------------ messages
    async def receive(self, msg: Any) -> Any:
        match msg:
            case Received(thread_id=thread_id, chat_id=chat_id):
                await self._take_work(self._chat(thread_id, chat_id))
            case Approve(approval_id=approval_id):
                return await self._approve(approval_id)
            case Ping(note=note):
                self.pings += 1
                return Pong(note=f"{self.key}: ping {self.pings}" + (f" ({note})" if note else ""))
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")
        return None

    async def _take_work(self, chat: ChatState) -> None:
        """Claim this user's queued jobs in ``chat``; the newest wins, older ones are
        superseded."""
        jobs = await self.store.claim_jobs(50, thread_id=chat.thread_id, author=self.key)
        if not jobs:
            return
        newest = jobs[-1]
        for job in jobs[:-1]:
            await self.store.finish_job(job.id, "canceled", "superseded by a newer message")
        await chat.context.refresh(self.store)
        message = chat.context.get(newest.message_id) or await self.store.get_message(
            newest.message_id
        )
        if is_ok(message.text):
            pending = await self.store.pending_approval(chat.thread_id, author=self.key)
            if pending is not None:
                # "reply OK": the action on platforms without buttons (Nostr).
                await self.store.finish_job(newest.id, "done", None)
                await self._approve(pending.id)
                return
        await self._supersede(chat, newest)
        self._start(chat, newest.id, self._run_job, chat, newest, message)

    def _start(self, chat: ChatState, job_id: int, fn: Any, *args: Any) -> None:
        chat.work_job = job_id
        chat.work = self.spawn_task(fn, *args, name=f"job-{job_id}")

    async def _supersede(self, chat: ChatState, newest: Job) -> None:
        """Cancel the work in flight in ``chat`` and retire this user's pending plan
        there: a newer message came. The plan of ``newest`` itself (resumed after a
        restart) is kept. Other chats are untouched."""
        if chat.work is not None and chat.work_job != newest.id:
            self.log.info("work_superseded", job=chat.work_job, by=newest.id)
            chat.work.cancel()
            await chat.work.wait()  # a reply being recorded finishes first (shielded)
            if chat.work_job is not None:
                await self._cancel_job(chat.work_job)
        chat.work = chat.work_job = None
        pending = await self.store.pending_approval(chat.thread_id, author=self.key)
        if pending is not None and pending.message_id != newest.message_id:
            await self.store.supersede_pending(chat.thread_id, author=self.key)
            old = await self._job_of(pending)
            if old is not None and old.id != newest.id:
                await self._cancel_job(old.id)

    async def _cancel_job(self, job_id: int) -> None:
        job = await self.store.get_job(job_id)
        if job.status in ("queued", "running"):
            await self.store.finish_job(job_id, "canceled", "superseded by a newer message")

    async def _approve(self, approval_id: int) -> ApprovalResult:
        """The user pressed OK on ``approval_id``: only its author may, in whichever of
        their chats the plan was made."""
        approval = await self.store.get_approval(approval_id)
        if approval is None or approval.message_id is None:
            return ApprovalResult(status="not_found")
        if approval.user_id is None or approval.user_id != await self._my_id():
            return ApprovalResult(status="not_found")  # not this user's plan (a group)
        chat = self.chats.get(approval.thread_id)
        if chat is None:
            thread = await self.store.thread_by_id(approval.thread_id)
            if thread is None:
                return ApprovalResult(status="not_found")
            chat = self._chat(thread.id, thread.chat_id)
        approval, changed = await self.store.decide(approval_id, "approved")
        if not changed:
            if approval.status == "superseded":
                job = await self._job_of(approval)
                await self._notice(chat, STALE_OK, key=f"stale:{approval_id}", job=job)
            return ApprovalResult(status=approval.status)
        job = await self._job_of(approval)
        if job is not None and job.status == "running":
            if chat.work is not None and chat.work_job != job.id:
                # Cannot normally happen (a newer message superseded this plan
                # first); if it does, the approved plan wins over stale work.
                await self._supersede(chat, job)
            await chat.context.refresh(self.store)
            message = chat.context.get(job.message_id) or await self.store.get_message(
                job.message_id
            )
            self._start(chat, job.id, self._answer_job, chat, job, message, approval.plan)
        return ApprovalResult(status="approved")

    async def _job_of(self, approval: Approval) -> Job | None:
        if approval.message_id is None:
            return None
        return await self.store.job_for_message(approval.message_id)

    # ------------------------------------------------------------------ the work (owned tasks)
    async def _run_job(self, chat: ChatState, job: Job, message: StoredMessage) -> None:
        """Classify, then ack (and wait for OK) or answer at once. Resumable: a job
        already acknowledged or approved is not classified again. Every log line,
        the brain's included, carries the inbound message's correlation id."""
        with correlated(f"m{job.message_id}"):
            await self._classify_job(chat, job, message)

    async def _classify_job(self, chat: ChatState, job: Job, message: StoredMessage) -> None:
        approval = await self.store.approval_for_message(job.message_id)
        if approval is not None:
            match approval.status:
                case "pending":
                    return  # the ack is in the outbox; the OK will come as Approve
                case "approved":
                    await self._answer(chat, job, message, approval.plan)
                case _:
                    await self._finish(chat, job, "canceled", None, f"plan {approval.status}")
            return
        ctx = await self._ctx(chat)
        context = chat.context.turns(message.id, self.config.context_size)
        try:
            intent = await self.config.brain.classify(ctx, context, chat.context.turn(message))
        except NoModelConfigured as exc:
            await self._finish(chat, job, "done", "notice", f"I cannot answer yet: {exc}.")
            return
        except InvalidIntent:
            await self._finish(chat, job, "failed", "error", NOT_UNDERSTOOD)
            return
        except BrainError:  # every model failed, or answered nothing usable
            await self._finish(chat, job, "failed", "error", APOLOGY)
            return
        if not intent.needs_confirmation:
            # Nothing this answer depends on was stored since the context was read.
            await self._answer(chat, job, message, None, ctx, context)
            return
        with trio.CancelScope(shield=True):
            # The plan and its ack are one transaction, then handed to the door: a
            # supersede arriving now waits for this rather than leave it half done.
            approval, ack = await self.store.propose_with_ack(
                chat.thread_id, job.message_id, intent.summary, intent.plan,
                ack=ack_text(intent.summary, intent.plan), key=reply_key("ack", job.id),
            )  # fmt: skip
            chat.context.add(ack)
            await self._deliver(chat, ack)
        # The job stays running until the OK (or a newer message) decides it.
        if chat.work_job == job.id:
            chat.work = chat.work_job = None

    async def _answer_job(
        self, chat: ChatState, job: Job, message: StoredMessage, plan: str | None
    ) -> None:
        with correlated(f"m{job.message_id}"):
            await self._answer(chat, job, message, plan)

    async def _answer(
        self,
        chat: ChatState,
        job: Job,
        message: StoredMessage,
        plan: str | None,
        ctx: CallContext | None = None,
        context: list[ChatTurn] | None = None,
    ) -> None:
        ctx = ctx or await self._ctx(chat)
        if context is None:
            context = chat.context.turns(message.id, self.config.context_size)
        try:
            current = chat.context.turn(message)
            answer = await self.config.brain.answer(ctx, context, current, plan)
        except NoModelConfigured as exc:
            await self._finish(chat, job, "done", "notice", f"I cannot answer yet: {exc}.")
            return
        except BrainError:  # every model failed, or answered nothing usable
            await self._finish(chat, job, "failed", "error", APOLOGY)
            return
        await self._finish(chat, job, "done", "reply", answer)
        await self._after_reply(chat, ctx)

    async def _after_reply(self, chat: ChatState, ctx: CallContext) -> None:
        """Compaction and memory extraction: best effort, never at the cost of the reply."""
        config = self.config
        cached = chat.context.messages
        if len(cached) > config.compact_after and chat.context.since_compaction >= max(
            1, config.compact_after - config.keep_recent
        ):
            older = [to_turn(m) for m in cached[: -config.keep_recent]]
            if chat.context.summary:  # a summary carries what came before it
                older.insert(0, ChatTurn(role="system", text=chat.context.summary, at=older[0].at))
            # Taken before the call: an answer finishing meanwhile in this chat must
            # not summarise the same window again (and race this one's result).
            pending, chat.context.since_compaction = chat.context.since_compaction, 0
            try:
                summary = await config.brain.summarize(ctx, older)
            except Exception as exc:  # keep the long context rather than lose it
                self.log.warning("compaction_failed", error=repr(exc))
                summary = ""
            if summary.strip():
                await self.store.set_thread_summary(chat.thread_id, summary)
                chat.context.summary = summary
            else:
                chat.context.since_compaction += pending  # not done: try again next time
        me = self.me
        if chat.since_memory is None:
            chat.since_memory = await self._unremembered(chat)
        else:
            chat.since_memory += 1
        if chat.since_memory < config.memory_every:
            return
        chat.since_memory = 0
        own = chat.context.own_turns(me) if me is not None else []
        if not own:
            return
        try:
            facts = await config.brain.extract_memories(ctx, own)
        except Exception as exc:
            self.log.warning("memory_extraction_failed", error=repr(exc))
            return
        source = max(m.id for m in chat.context.messages if m.user_id == me)
        for fact in facts:
            if fact.strip():
                await self.store.remember(self.key, fact, source_message_id=source)

    # ------------------------------------------------------------------ helpers
    async def _my_id(self) -> int | None:
        """This user's ``users.id`` (kept from the last read of the user)."""
        if self.me is None:
            user = await self.store.get_user(self.platform, self.user_id)
            self.me = user.id if user is not None else None
        return self.me

    async def _unremembered(self, chat: ChatState) -> int:
        """The user's own messages in this chat's cache since facts were last taken
        from them (by the newest memory's source), so the count survives passivation
        and restarts: one read, at the chat's first reply after activation."""
        if self.me is None:
            return 0
        last = await self.store.recall(self.key, 1)
        since = (last[-1].source_message_id or 0) if last else 0
        mine = [m for m in chat.context.messages if m.role == "user" and m.user_id == self.me]
        return sum(1 for m in mine if m.id > since)

    async def _ctx(self, chat: ChatState) -> CallContext:
        """Who a call is for. Reads the user every time (an operator may change the
        tier while the actor lives) and keeps its id (``self.me``) from the same read."""
        user = await self.store.get_user(self.platform, self.user_id)
        if user is not None:
            self.me = user.id
        tier = user.tier if user is not None else "public"
        return CallContext(user_key=self.key, tier=tier, thread_id=chat.thread_id)

    async def _finish(
        self,
        chat: ChatState,
        job: Job,
        status: Literal["done", "failed", "canceled"],
        kind: ReplyKind | None,
        text: str,
    ) -> None:
        """End ``job`` with its last reply (``kind`` None: no reply, ``text`` is the
        reason) in one transaction, then hand the reply to the door. Shielded: an
        answer in hand is recorded and sent even if a newer message is superseding
        this work (a supersede waits for it), so the record says what happened."""
        with trio.CancelScope(shield=True):
            if kind is None:
                await self.store.finish_job(job.id, status, text)
            else:
                raw = {"kind": kind, "approval_id": None}
                key = reply_key(kind, job.id)
                reply, _ = await self.store.finish_with_reply(
                    job.id, status, thread_id=chat.thread_id, text=text, key=key,
                    reply_to=job.message_id, raw=raw, error=None if status == "done" else text,
                )  # fmt: skip
                chat.context.add(reply)
                await self._deliver(chat, reply)
        if chat.work_job == job.id:
            chat.work = chat.work_job = None

    async def _notice(self, chat: ChatState, text: str, *, key: str, job: Job | None) -> None:
        raw = {"kind": "notice", "approval_id": None}
        reply_to = job.message_id if job else None
        message, _ = await self.store.record_reply(
            chat.thread_id, text, key, reply_to=reply_to, raw=raw
        )
        chat.context.add(message)
        await self._deliver(chat, message)

    async def _deliver(self, chat: ChatState, message: StoredMessage) -> None:
        """Hand a recorded reply to its chat's door (once: one already sent is not)."""
        if message.sent_at is not None:
            return  # sent before a restart: never twice
        deliver = PendingReply(message, self.platform, chat.chat_id).deliver()
        with trio.move_on_after(DELIVER_TIMEOUT_S):
            # A missing or stuck connector must not wedge this actor: the reply is
            # in the outbox; the door sends it when it (re)starts, the reconciler
            # when it waited too long.
            await self.system.tell(f"/connectors/{self.platform}", deliver)
