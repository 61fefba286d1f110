"""What the routes do, apart from HTTP: sessions, ingest and hand-off, the feed, readiness.

:class:`Door` holds the door's state for one incarnation of the connector
(feed, counters, rate limiter, a cache of thread ids) and talks to the rest
of greenroom: the Store directly (the request path stays one ingest long) and
the user actors through ``/users``. Every method that can fail for a reason
the client should hear raises :class:`ApiError`; storage and kernel errors are
translated here, at the boundary.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
import trio
from pydantic import ValidationError

from config import Settings
from protocols import ApprovalResult, Approve, Inbound, Ping, Pong, user_key
from protocols.telegram import BotIdentity
from storage import StorageError, Store, StoredMessage
from supervision import (
    ActorFailed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    EntityRef,
    KernelError,
    UnknownPath,
)

from .._route import tell_author
from ._auth import RateLimiter, bearer_token, hash_token, mint_token, new_user_id
from ._errors import ApiError
from ._feed import Feed, FeedFull
from ._metrics import Counters
from ._schema import Event

__all__ = ["FEED_PAGE", "PLATFORM", "Door", "event_of", "storage_error"]

_log = structlog.get_logger("greenroom.http")

PLATFORM = "http"
#: Events per answer of the feed; a client with more to read asks again.
FEED_PAGE = 100
#: Thread ids cached (chat id -> thread id never changes once the thread exists).
_THREAD_CACHE = 100_000
#: Seconds a client is told to wait after a 503 for backpressure.
_BUSY_RETRY_S = "1"


def _busy(message: str) -> ApiError:
    return ApiError(503, "busy", message, {"Retry-After": _BUSY_RETRY_S})


def event_of(msg: StoredMessage) -> Event:
    """A stored reply as the feed shows it (``kind`` from its ``raw``; ``reply`` if unset)."""
    raw = msg.raw
    kind = raw.get("kind")
    approval = raw.get("approval_id")
    return Event(
        seq=msg.id,
        kind=kind if kind in ("ack", "reply", "notice", "error") else "reply",
        text=msg.text,
        approval_id=approval if isinstance(approval, int) else None,
        at=msg.created_at,
    )


@dataclass
class Door:
    """One incarnation's state and its operations (see the module docstring)."""

    config: Settings
    store: Store
    system: ActorSystem
    counters: Counters = field(default_factory=Counters)
    feed: Feed = field(init=False)
    limiter: RateLimiter = field(init=False)
    _threads: dict[str, int] = field(default_factory=dict)
    #: the Telegram bot's identity (protocols.telegram.BotIdentity), once its door said
    telegram_bot: BotIdentity | None = None

    def __post_init__(self) -> None:
        self.settings = self.config.http
        self.ask_timeout_s = self.config.kernel.ask_timeout_s
        self.feed = Feed(self.settings.max_waiters)
        self.limiter = RateLimiter(self.settings.session_rate_per_minute, trio.current_time)

    # ------------------------------------------------------------------ sessions
    async def new_session(self, client: str) -> tuple[str, str]:
        """A new guest: (user key ``http:<id>``, token). 429 past the per-address rate.

        Only the token's hash is stored. If cancelled after the write, the
        session exists but nobody has its token: harmless, it expires.
        """
        wait = self.limiter.acquire(client)
        if wait > 0:
            self.counters.sessions_limited += 1
            raise ApiError(
                429,
                "rate_limited",
                f"too many new sessions from this address; retry in {wait:.0f} s",
                {"Retry-After": RateLimiter.retry_after(wait)},
            )
        key, token = user_key(PLATFORM, new_user_id()), mint_token()
        expires = self.store.now() + timedelta(seconds=self.settings.session_ttl_s)
        await self.store.create_session(key, hash_token(token), expires_at=expires)
        self.counters.sessions += 1
        return key, token

    async def authenticate(self, authorization: str | None) -> str:
        """The user id (the ``<id>`` of ``http:<id>``) of a Bearer header; 401 otherwise."""
        token = bearer_token(authorization)
        challenge = {"WWW-Authenticate": "Bearer"}
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing Authorization: Bearer <token> header (POST /api/session gives one)",
                challenge,
            )
        key = await self.store.session_user(hash_token(token))
        prefix = PLATFORM + ":"
        if key is None or not key.startswith(prefix):
            raise ApiError(401, "unauthorized", "unknown or expired token", challenge)
        return key[len(prefix) :]

    # ------------------------------------------------------------------ messages
    def thread(self, user_id: str) -> EntityRef:
        """The user's actor under ``/users`` (activated on first send); 503 when
        ``/users`` is not running."""
        try:
            return EntityRef(self.system.lookup("/users"), user_key(PLATFORM, user_id))
        except UnknownPath:
            raise _busy("the user actors are not running; try again shortly") from None

    def check_room(self, user_id: str) -> None:
        """503 when the user's actor is live with a full mailbox (read from outside:
        nothing is stored for a message that could not be handed on)."""
        try:
            info = self.system.inspect(f"/users/{user_key(PLATFORM, user_id)}")
        except UnknownPath:
            return  # not live: it starts with an empty mailbox
        if info.mailbox_depth >= info.mailbox_capacity:
            self.counters.rejected_busy += 1
            raise _busy("your conversation is busy; try again shortly")

    async def accept(self, user_id: str, text: str, client_id: str | None) -> int:
        """Store one message durably, then wake the user's actor; return its id.

        413 for text past ``max_text_bytes``, 422 for blank or unstorable text,
        503 for a full mailbox (before anything is stored). A redelivery (same
        ``client_id``) returns the first id and wakes nobody. Cancelled before
        ``ingest`` returned: maybe stored, never acknowledged; a retry with the
        same ``client_id`` settles it.
        """
        if len(text.encode("utf-8", "surrogatepass")) > self.settings.max_text_bytes:
            raise ApiError(
                413,
                "text_too_large",
                f"text is longer than {self.settings.max_text_bytes} bytes (UTF-8)",
            )
        if not text.strip():
            raise ApiError(422, "empty_text", "text must not be empty")
        self.check_room(user_id)
        try:
            inbound = Inbound(
                platform=PLATFORM,
                chat_id=user_id,
                user_id=user_id,
                message_id=client_id or uuid.uuid4().hex,
                text=text,
            )
        except ValidationError as exc:
            problem = exc.errors()[0].get("msg", "invalid")
            raise ApiError(422, "invalid_text", f"text cannot be stored: {problem}") from None
        result = await self.store.ingest(inbound)
        if result.created:
            self.counters.messages_in += 1
            # Durable now: the answer is 202 whatever the hand-off meets. Its bound
            # covers the race with check_room and keeps a wedged thread from
            # holding requests.
            await tell_author(self.system, result.received(user_id), timeout_s=self.ask_timeout_s)
        return result.message.id

    async def approve(self, user_id: str, approval_id: int) -> None:
        """Tell the user's actor the OK; return when it approved. 409 superseded or
        rejected, 404 not this user's, 503 when the thread cannot answer in time."""
        ref = self.thread(user_id)
        try:
            result = await ref.ask(Approve(approval_id=approval_id), timeout=self.ask_timeout_s)
        except AskTimeout:
            raise _busy("your conversation did not answer in time; try again") from None
        except (ActorFailed, ActorStopped):
            raise _busy("your conversation is restarting; try again shortly") from None
        if not isinstance(result, ApprovalResult):
            raise TypeError(f"{ref!r} answered Approve with {type(result).__name__}")
        match result.status:
            case "approved":
                return
            case "superseded":
                raise ApiError(409, "superseded", "that plan was replaced by a newer message")
            case "rejected":
                raise ApiError(409, "rejected", "that plan was already rejected")
            case "not_found":
                raise ApiError(404, "not_found", f"no plan {approval_id} in your conversation")

    # ------------------------------------------------------------------ the feed
    async def read_events(self, chat_id: str, after: int) -> list[Event]:
        """The chat's replies with ``seq > after``, oldest first, at most FEED_PAGE."""
        thread_id = self._threads.get(chat_id)
        if thread_id is None:
            thread = await self.store.get_thread(PLATFORM, chat_id)
            if thread is None:
                return []  # nothing written yet
            thread_id = thread.id
            if len(self._threads) >= _THREAD_CACHE:
                del self._threads[next(iter(self._threads))]
            self._threads[chat_id] = thread_id
        replies = await self.store.replies_after(thread_id, after, limit=FEED_PAGE)
        return [event_of(m) for m in replies]

    async def poll(self, chat_id: str, after: int, wait: float) -> list[Event]:
        """Long-poll: the events after ``after``, waiting up to ``wait`` seconds (capped
        at ``long_poll_max_s``) for one. Returns early, maybe empty, at shutdown.
        Cancellation leaves nothing behind. 503 with too many waiters."""
        deadline = trio.current_time() + min(wait, self.settings.long_poll_max_s)
        while True:
            try:
                with self.feed.watch(chat_id) as woken:
                    found = await self.read_events(chat_id, after)
                    if found or self.feed.closed or trio.current_time() >= deadline:
                        return found
                    with trio.move_on_at(deadline):
                        await woken.wait()
            except FeedFull as exc:
                self.counters.rejected_busy += 1
                raise _busy(str(exc)) from None

    async def stream(self, chat_id: str, after: int, keepalive_s: float) -> AsyncIterator[str]:
        """Server-sent events: every event after ``after`` as ``id: seq`` + ``data: json``,
        then each new one as it arrives, a comment line every ``keepalive_s``; ends at
        shutdown. Resume with ``Last-Event-ID``. The watch never spans a ``yield``, so a
        client that goes away never leaves a waiter counted."""
        yield "retry: 2000\n\n"
        while not self.feed.closed:
            try:
                with self.feed.watch(chat_id) as woken:
                    found = await self.read_events(chat_id, after)
                    if not found:
                        with trio.move_on_after(keepalive_s):
                            await woken.wait()
            except FeedFull:
                return  # the client reconnects (retry:) and gets a 503 if still full
            if not found:
                if not woken.is_set():
                    yield ": keepalive\n\n"
                continue
            for event in found:
                yield f"id: {event.seq}\ndata: {event.model_dump_json()}\n\n"
            after = found[-1].seq

    # ------------------------------------------------------------------ readiness
    async def readiness(self) -> dict[str, str]:
        """Each check's state: ``ok`` or why not. Storage answers ``kernel.Ping`` with
        "...: ok"; every child of ``/connectors`` is running."""
        checks: dict[str, str] = {}
        try:
            pong = await self.system.lookup("/storage").ask(Ping(), timeout=self.ask_timeout_s)
            note = pong.note if isinstance(pong, Pong) else repr(pong)
            checks["storage"] = "ok" if note.endswith(": ok") else note
        except UnknownPath:
            checks["storage"] = "/storage is not running"
        except KernelError as exc:
            checks["storage"] = f"/storage did not answer: {type(exc).__name__}"
        try:
            doors = self.system.snapshot("/connectors").children
        except UnknownPath:
            checks["connectors"] = "/connectors is not running"
        else:
            down = [f"{c.path} is {c.state}" for c in doors if c.state != "running"]
            checks["connectors"] = "; ".join(down) if down else "ok"
        return checks


def storage_error(exc: StorageError) -> ApiError:
    """A storage failure as the client sees it: 503, retry later (details only in the log)."""
    _log.warning("storage_error", error_type=type(exc).__name__, error=str(exc))
    message = "storage is unavailable; try again shortly"
    return ApiError(503, "storage_unavailable", message, {"Retry-After": "5"})
