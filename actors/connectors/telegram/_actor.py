"""``/connectors/telegram``: the Telegram door.

Lifecycle: ``on_start`` builds the Bot API client and spawns the connect task
and returns at once, so a Telegram outage never fails the actor (which would
escalate through ``/connectors``): the task asks ``getMe`` (to recognise
mentions in groups) with backoff, then resumes the held messages a crash left
unenriched, then either sets the webhook (``setWebhook`` with
``secret_token`` and ``allowed_updates``) or removes it and long-polls
``getUpdates``. It also re-sends the replies a previous run left unsent
(``Store.unsent_replies("telegram")``).

Polling: the offset is kept in storage (``get_state("telegram", "offset")``)
and advanced only after every update of a batch is durable; 409 Conflict
(another poller, or a webhook set elsewhere) and outages are logged in one
line each and retried with exponential backoff up to
``conflict_backoff_max_s``; a 429 waits its ``retry_after``.

Webhook (issue 10, item 8): the HTTP door's route stores each message itself
(see ``protocols.telegram``), puts a ``TelegramStored`` in this door's mailbox
(waiting at most ``ask_timeout_s`` for room) and answers Telegram 200; this
door's work on it (hand-over, enrichment, typing) comes after, and is the same
for a polled update.

Messages:

- ``chat.Deliver``: queued in the :class:`Outbox`, sent by a task per chat;
- ``telegram.Stored``: a message the route (or the poller) made durable.
  A text message goes to its author's actor at once (``chat.Received``); a held
  media message is enriched in work this door owns (``_enrich``, at most
  ``max_enrichments`` at once, each step bounded by ``enrich_timeout_s``),
  released, and only then handed over, in arrival order per chat
  (``_handover``). ``sendChatAction`` "typing" follows, best effort;
- ``telegram.Update``: one whole update (a button press, an ignored kind),
  answered once handled, ``"busy"`` before ``getMe`` succeeded;
- ``telegram.Identify``: who the bot is (None before ``getMe``).

Held messages nobody is enriching (a crash, a lost tell) are looked for at
every connect and every ``resume_interval_s``.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from config import Settings
from protocols import Deliver, Received
from protocols.telegram import PLATFORM, BotIdentity, Identify, TelegramStored, TelegramUpdate
from storage import Store
from supervision import Actor

from .._route import tell_author
from ._api import BotApi
from ._enrich import Describer, Enricher
from ._errors import ApiError, Conflict, RetryAfter, TelegramError, TelegramUnavailable
from ._handover import MAX_QUEUED, Handover
from ._intake import Intake, Outcome
from ._limits import Pacer
from ._outbox import STATE, Outbox
from ._stt import Transcriber

__all__ = ["TelegramConnector"]

#: Replies re-sent per round at start.
_UNSENT_BATCH = 500
#: The first retry delay after a conflict or an outage; doubled up to the configured cap.
_BACKOFF_MIN_S = 1.0
#: sendChatAction calls in flight at most; more are skipped (typing is a nicety, and
#: httpx's pool scans every connection per request: a big pool costs each call).
_MAX_TYPING = 8
#: Seconds one sendChatAction shows "typing" for (Bot API: "5 seconds or less"); a
#: chat shown it less than this ago is not sent another (rejected: one per message,
#: which at 1,000 messages/s was a quarter of the door's time, for nothing seen).
_TYPING_S = 5.0
#: Chats remembered for that before old entries are pruned.
_TYPING_CHATS = 10_000
#: The share of ``[telegram] global_rate_per_s`` typing may use: Telegram counts
#: every call against one bot's limits, and a 429 earned by typing would hold the
#: real answers back (at 1,000 messages/s, 200 typing calls a second were a sixth
#: of the door's time); the rest of the budget is the replies'.
_TYPING_SHARE = 0.25


class TelegramConnector(Actor):
    """The Telegram door; see the module docstring. ``transport`` and
    ``stt_transport`` replace httpx's transports (tests only)."""

    accepts = (Deliver, TelegramStored, TelegramUpdate, Identify)

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        stt_transport: httpx.AsyncBaseTransport | None = None,
        describe: Describer | None = None,
    ) -> None:
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is unset: the Telegram door cannot start")
        self.settings = settings
        self.conf = settings.telegram
        self.store = store
        self._transport = transport
        self._stt_transport = stt_transport
        self._describe = describe
        self.api: BotApi | None = None
        self.transcriber: Transcriber | None = None
        self.bot: BotIdentity | None = None  # from getMe
        self.intake: Intake | None = None
        self.outbox: Outbox | None = None
        self.enricher: Enricher | None = None
        self.handover: Handover | None = None
        self.identified = trio.Event()  # set once getMe answered: updates can be parsed
        self.ready = trio.Event()  # set once the webhook is set, or polling begins
        self.offset = 0  # polling: the next update_id wanted
        self.conflicts = 0  # 409s seen by this incarnation
        self.counts: dict[Outcome, int] = {
            "ingested": 0, "duplicate": 0, "callback": 0, "ignored": 0,
        }  # fmt: skip
        self.typing = 0  # sendChatAction calls in flight
        self._typing_since: dict[str, float] = {}  # chat -> trio time of its last one
        # A token bucket at _TYPING_SHARE of the global rate, one second of burst.
        self._typing_rate = settings.telegram.global_rate_per_s * _TYPING_SHARE
        self._typing_tokens = self._typing_rate
        self._typing_at = 0.0
        self._enriching = trio.CapacityLimiter(self.conf.max_enrichments)

    async def on_start(self) -> None:
        """Build the clients and spawn the connect task; never waits for Telegram."""
        token = self.settings.telegram_bot_token
        assert token is not None
        conf = self.conf
        self.api = BotApi(
            token.get_secret_value(),
            conf.api_base,
            timeout_s=conf.request_timeout_s,
            transport=self._transport,
        )
        if conf.stt_base_url:
            key = self.settings.openai_api_key
            self.transcriber = Transcriber(
                conf.stt_base_url,
                conf.stt_model,
                api_key=None if key is None else key.get_secret_value(),
                timeout_s=conf.request_timeout_s * 2,
                transport=self._stt_transport,
            )
        pacer = Pacer(conf.chat_rate_per_s, conf.global_rate_per_s)
        self.outbox = Outbox(
            self.api, self.store, pacer, max_retry_after_s=conf.max_retry_after_s, log=self.log
        )
        self.enricher = Enricher(
            self.api,
            self.store,
            transcriber=self.transcriber,
            describe=self._describe,
            max_file_bytes=conf.max_file_bytes,
            step_timeout_s=conf.enrich_timeout_s,
            max_attempts=conf.enrich_attempts,
            log=self.log,
        )
        self.handover = Handover(
            enrich=self._enrich, tell=self._hand_over, spawn=self.spawn_task, log=self.log
        )
        self.spawn_task(self._resend_unsent, name="resend")
        self.spawn_task(self._connect, name="connect")

    async def on_stop(self) -> None:
        """Close the HTTP clients (shielded: they close even when the stop is hurried)."""
        with trio.CancelScope(shield=True):
            if self.api is not None:
                await self.api.aclose()
            if self.transcriber is not None:
                await self.transcriber.aclose()

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Deliver(platform=platform) if platform != PLATFORM:
                self.log.warning("deliver_wrong_platform", platform=platform, id=msg.message_id)
                return None
            case Deliver():
                self._queue(msg)
                return None
            case TelegramStored():
                await self._stored(msg)
                return None
            case TelegramUpdate(update=update):
                if self.intake is None:
                    return "busy"  # the HTTP door answers 503; Telegram retries
                return await self.intake.handle(update)
            case Identify():
                return self.bot
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    def _queue(self, deliver: Deliver) -> None:
        assert self.outbox is not None
        if self.outbox.add(deliver):
            self.spawn_task(self.outbox.drain, deliver.chat_id, name=f"send-{deliver.chat_id}")

    # ------------------------------------------------------------------ after the 200
    async def _stored(self, stored: TelegramStored) -> None:
        """Act on a message made durable: count it; hand a text message over (after
        any held one before it in its chat); have a held one enriched. A redelivery
        is handed over again only while its job is still queued, and its held
        message enriched only if nobody is at it: no second download or model
        call. Never raises for the actor's sake; a checkpoint when it hands over."""
        assert self.handover is not None
        self.counts["ingested" if stored.created else "duplicate"] += 1
        if stored.job_id is None:
            if self.handover.hold(stored.message_id, stored.chat_id) and stored.created:
                self._typing(stored.chat_id)  # enrichment takes a while: show it
            return
        if not stored.queued:
            return  # its author's actor has it already
        received = Received(
            job_id=stored.job_id,
            message_id=stored.message_id,
            thread_id=stored.thread_id,
            platform=PLATFORM,
            chat_id=stored.chat_id,
            user_id=stored.user_id,
            text=stored.text,
        )
        await self.handover.ready(received)
        if stored.created:
            self._typing(stored.chat_id)

    async def _enrich(self, message_id: int) -> Received | None:
        """Enrich one held message (once ``getMe`` told who the bot is, at most
        ``max_enrichments`` at once); what to hand over, or None."""
        assert self.enricher is not None
        await self.identified.wait()
        assert self.bot is not None
        async with self._enriching:
            return await self.enricher.enrich(message_id, self.bot)

    async def _hand_over(self, received: Received) -> None:
        """Tell the author's actor ``received`` (see ``tell_author``: at most
        ``ask_timeout_s`` for room, never raising). A checkpoint when it waits."""
        await tell_author(self.system, received, timeout_s=self.settings.kernel.ask_timeout_s)

    def _typing(self, chat_id: str) -> None:
        """Show "typing" in the chat, best effort: once per _TYPING_S per chat, never
        more than _MAX_TYPING calls at once nor more than _TYPING_SHARE of the bot's
        global rate. Not a checkpoint."""
        now = trio.current_time()
        if self.api is None or self.typing >= _MAX_TYPING:
            return
        if now - self._typing_since.get(chat_id, -_TYPING_S) < _TYPING_S:
            return  # still showing
        rate = self._typing_rate
        self._typing_tokens = min(rate, self._typing_tokens + (now - self._typing_at) * rate)
        self._typing_at = now
        if self._typing_tokens < 1:
            return  # the bot's budget is the replies' now
        self._typing_tokens -= 1
        if len(self._typing_since) >= _TYPING_CHATS:
            # Only the last _TYPING_S matter; the token bucket keeps those few.
            cutoff = now - _TYPING_S
            self._typing_since = {c: t for c, t in self._typing_since.items() if t > cutoff}
        self._typing_since[chat_id] = now
        self.typing += 1
        self.spawn_task(self._send_typing, self.api, chat_id, name=f"typing-{chat_id}")

    async def _send_typing(self, api: BotApi, chat_id: str) -> None:
        try:
            with trio.move_on_after(self.conf.request_timeout_s):
                await api.send_chat_action(chat_id, "typing")
        except TelegramError as exc:  # a nicety: never worth a retry
            self.log.info("telegram_typing_failed", chat_id=chat_id, error=str(exc))
        finally:
            self.typing -= 1

    # ------------------------------------------------------------------ tasks
    async def _resend_unsent(self) -> None:
        """Queue what a previous run recorded but did not get confirmed."""
        seen: set[int] = set()
        while True:
            batch = await self.store.unsent_replies(PLATFORM, limit=_UNSENT_BATCH)
            fresh = [p for p in batch if p.message.id not in seen]
            for pending in fresh:
                seen.add(pending.message.id)
                self._queue(pending.deliver())
            if fresh:
                self.log.info("telegram_unsent_requeued", count=len(fresh))
            if len(batch) < _UNSENT_BATCH or not fresh:
                return

    async def _connect(self) -> None:
        """getMe (with backoff), the resume of held messages, then the webhook or the
        poll loop."""
        api = self.api
        assert api is not None
        me = await self._retrying("getMe", api.get_me)
        bot = self.bot = BotIdentity(int(me.get("id", 0)), str(me.get("username") or ""))
        self.intake = Intake(
            api,
            self.store,
            self.system,
            bot,
            stored=self._stored,
            counts=self.counts,
            ask_timeout_s=self.settings.kernel.ask_timeout_s,
            log=self.log,
        )
        self.identified.set()
        self.spawn_task(self._resume_held, name="resume-held")
        allowed = list(self.conf.allowed_updates)
        if self.conf.mode == "webhook":
            secret = self.settings.telegram_webhook_secret
            assert secret is not None  # Settings refuses webhook mode without it
            url = self.conf.webhook_url
            await self._retrying(
                "setWebhook", api.set_webhook, url, secret.get_secret_value(), allowed
            )
            self.log.info("telegram_ready", mode="webhook", bot=bot.username)
            self.ready.set()
            return
        await self._retrying("deleteWebhook", api.delete_webhook)
        stored = await self.store.get_state(STATE, "offset")
        self.offset = int(stored) if stored and stored.isdigit() else 0
        self.log.info("telegram_ready", mode="polling", bot=bot.username, offset=self.offset)
        self.ready.set()
        await self._poll(allowed)

    async def _poll(self, allowed: list[str]) -> None:
        api, intake = self.api, self.intake
        assert api is not None and intake is not None
        while True:
            updates = await self._retrying(
                "getUpdates", api.get_updates, self.offset, self.conf.poll_timeout_s, allowed
            )
            if not updates:
                continue
            for update in updates:
                await intake.handle(update)
            ids = [u["update_id"] for u in updates if isinstance(u.get("update_id"), int)]
            if ids and max(ids) + 1 > self.offset:
                # Every update of the batch is durable: now they may be confirmed.
                self.offset = max(ids) + 1
                await self.store.set_state(STATE, "offset", str(self.offset))

    async def _resume_held(self) -> None:
        """Every ``resume_interval_s`` (the first time at once): queue for enrichment
        the held messages nobody here is enriching (a crash interrupted them, or
        their tell was lost), oldest first, as many as the queues take."""
        assert self.handover is not None
        while True:
            held = await self.store.held_messages(PLATFORM, limit=MAX_QUEUED)
            resumed = sum(
                self.handover.hold(message_id, chat_id)
                for message_id, chat_id in held
                if not self.handover.holding(message_id)
            )
            if resumed:
                self.log.info("telegram_held_resumed", count=resumed)
            await trio.sleep(self.conf.resume_interval_s)

    async def _retrying(self, method: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, retried after 409, 429 and outages with backoff; any other
        ApiError (401: a revoked token) fails the actor."""
        delay = _BACKOFF_MIN_S
        while True:
            try:
                return await fn(*args)
            except RetryAfter as exc:
                self.log.warning("telegram_retry_after", method=method, retry_after=exc.retry_after)
                await trio.sleep(exc.retry_after)
                continue
            except Conflict as exc:
                self.conflicts += 1
                self.log.warning(
                    "telegram_conflict", method=method, description=exc.description,
                    retry_in_s=delay,
                    hint="another process polls with this bot token, or a webhook is set",
                )  # fmt: skip
            except TelegramUnavailable as exc:
                self.log.warning(
                    "telegram_unavailable", method=method, error=str(exc), retry_in_s=delay
                )
            except ApiError:
                raise
            await trio.sleep(delay)
            delay = min(delay * 2, self.conf.conflict_backoff_max_s)
