"""``/connectors/telegram``: the Telegram door.

Lifecycle: ``on_start`` builds the Bot API client and spawns the connect task
and returns at once, so a Telegram outage never fails the actor (which would
escalate through ``/connectors``): the task asks ``getMe`` (to recognise
mentions in groups) with backoff, then either sets the webhook
(``setWebhook`` with ``secret_token`` and ``allowed_updates``) or removes it
and long-polls ``getUpdates``. It also re-sends the replies a previous run
left unsent (``Store.unsent_replies("telegram")``).

Polling: the offset is kept in storage (``get_state("telegram", "offset")``)
and advanced only after every update of a batch is durable; 409 Conflict
(another poller, or a webhook set elsewhere) and outages are logged in one
line each and retried with exponential backoff up to
``conflict_backoff_max_s``; a 429 waits its ``retry_after``.

Messages: ``chat.Deliver`` (queued in the :class:`Outbox`, sent by a task
per chat) and ``telegram.Update`` (a webhook update from the HTTP door,
answered ``"ok"`` once durable, ``"busy"`` before ``getMe`` succeeded).
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from config import Settings
from protocols import Deliver
from protocols.telegram import TelegramUpdate
from storage import Store
from supervision import Actor

from ._api import BotApi
from ._errors import ApiError, Conflict, RetryAfter, TelegramUnavailable
from ._intake import PLATFORM, Describer, Intake
from ._limits import Pacer
from ._outbox import STATE, Outbox
from ._stt import Transcriber
from ._updates import BotIdentity

__all__ = ["TelegramConnector"]

#: Replies re-sent per round at start.
_UNSENT_BATCH = 500
#: The first retry delay after a conflict or an outage; doubled up to the configured cap.
_BACKOFF_MIN_S = 1.0


class TelegramConnector(Actor):
    """The Telegram door; see the module docstring. ``transport`` and
    ``stt_transport`` replace httpx's transports (tests only)."""

    accepts = (Deliver, TelegramUpdate)

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
        self.intake: Intake | None = None
        self.outbox: Outbox | None = None
        self.ready = trio.Event()  # set once getMe answered and intake runs
        self.offset = 0  # polling: the next update_id wanted
        self.conflicts = 0  # 409s seen by this incarnation

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
            case TelegramUpdate(update=update):
                if self.intake is None:
                    return "busy"  # the HTTP door answers 503; Telegram retries
                return await self.intake.handle(update)
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    def _queue(self, deliver: Deliver) -> None:
        assert self.outbox is not None
        if self.outbox.add(deliver):
            self.spawn_task(self.outbox.drain, deliver.chat_id, name=f"send-{deliver.chat_id}")

    # ------------------------------------------------------------------ tasks
    async def _resend_unsent(self) -> None:
        """Queue what a previous run recorded but did not get confirmed."""
        seen: set[int] = set()
        while True:
            batch = await self.store.unsent_replies(PLATFORM, limit=_UNSENT_BATCH)
            fresh = [p for p in batch if p.message.id not in seen]
            for pending in fresh:
                seen.add(pending.message.id)
                raw = pending.message.raw
                kind = raw.get("kind")
                approval = raw.get("approval_id")
                self._queue(
                    Deliver(
                        message_id=pending.message.id,
                        platform=PLATFORM,
                        chat_id=pending.chat_id,
                        text=pending.message.text,
                        kind=kind if kind in ("ack", "reply", "notice", "error") else "reply",
                        approval_id=approval if isinstance(approval, int) else None,
                    )
                )
            if fresh:
                self.log.info("telegram_unsent_requeued", count=len(fresh))
            if len(batch) < _UNSENT_BATCH or not fresh:
                return

    async def _connect(self) -> None:
        """getMe (with backoff), then the webhook or the poll loop."""
        api = self.api
        assert api is not None
        me = await self._retrying("getMe", api.get_me)
        bot = BotIdentity(int(me.get("id", 0)), str(me.get("username") or ""))
        self.intake = Intake(
            api,
            self.store,
            self.system,
            bot,
            transcriber=self.transcriber,
            describe=self._describe,
            max_file_bytes=self.conf.max_file_bytes,
            ask_timeout_s=self.settings.kernel.ask_timeout_s,
            log=self.log,
        )
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
