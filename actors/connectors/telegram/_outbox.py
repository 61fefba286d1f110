"""Sending replies: one worker per chat, paced, split at 4096, 429-aware, outbox-faithful.

A ``chat.Deliver`` is queued under its chat; the first one for a chat makes
the connector spawn :meth:`Outbox.drain` for it, which sends that chat's
replies in order and ends when the queue is empty. Chats do not wait for each
other beyond the global pace.

Promises (DESIGN.md "Durable before acknowledged"): a reply is marked sent
(``Store.mark_sent`` with Telegram's message ids) only after Telegram
confirmed every piece. A 429 is waited out (``retry_after``, on trio's clock)
and retried; a request that certainly never left (connection refused) is
retried a few times; any other failure is logged and the reply stays unsent
in the outbox, and the door's next start or the reconciler sends it again.
A request that left but whose answer never came (a timeout, a broken reply)
may have landed: it is sent again once (at-least-once, as the README says),
and if that one is uncertain too the reply is marked sent as ``?`` and logged,
so one answer reaches a chat at most twice, never once per reconciler sweep.
A long reply's progress is kept under ``sent:<id>`` in the connector state, so
a restart resumes after the pieces already delivered.
"""

from __future__ import annotations

import collections
from typing import Any

import trio

from protocols import Deliver
from storage import StorageError, Store
from supervision import correlated

from ._api import BotApi
from ._errors import RetryAfter, TelegramError, TelegramUnavailable
from ._limits import Pacer
from ._split import split_text

__all__ = ["STATE", "Outbox", "ok_keyboard"]

#: The connector-state namespace (``Store.get_state``) of the Telegram door.
STATE = "telegram"
#: 429s tolerated for one piece before the reply is left in the outbox.
_MAX_RETRY_AFTERS = 5
#: Retries of a request that never left (connection refused), 1 s, 2 s, 4 s apart.
_MAX_CONNECT_RETRIES = 3


class _Uncertain:
    """A send that left but got no answer: it may have landed."""


_UNCERTAIN = _Uncertain()


def ok_keyboard(approval_id: int) -> dict[str, Any]:
    """The inline keyboard under an ack: one OK button carrying ``ok:<approval_id>``."""
    button = {"text": "OK", "callback_data": f"ok:{approval_id}"}
    return {"inline_keyboard": [[button]]}


class Outbox:
    """Per-chat queues of replies and their sending (see the module docstring)."""

    def __init__(
        self, api: BotApi, store: Store, pacer: Pacer, *, max_retry_after_s: float, log: Any
    ) -> None:
        self.api = api
        self.store = store
        self.pacer = pacer
        self.max_retry_after_s = max_retry_after_s
        self.log = log
        self.sent = 0  # replies confirmed by Telegram and marked sent
        self.failed = 0  # replies left unsent after an error
        self.skipped = 0  # replies found already sent
        self._queues: dict[str, collections.deque[Deliver]] = {}
        self._known: set[int] = set()  # message ids queued or being sent

    def add(self, deliver: Deliver) -> bool:
        """Queue ``deliver``; True when its chat needs a new :meth:`drain` worker.

        A reply already queued (the start-up resend meeting a fresh Deliver) is
        dropped here. Not a checkpoint."""
        if deliver.message_id in self._known:
            return False
        self._known.add(deliver.message_id)
        queue = self._queues.get(deliver.chat_id)
        if queue is not None:
            queue.append(deliver)
            return False
        self._queues[deliver.chat_id] = collections.deque([deliver])
        return True

    async def drain(self, chat_id: str) -> None:
        """Send ``chat_id``'s queued replies in order until none is left. Cancelled
        (the connector stops), what is unsent stays in the outbox for the next start."""
        queue = self._queues[chat_id]
        try:
            while queue:
                deliver = queue[0]
                with correlated(deliver.correlation_id):
                    await self.send(deliver)
                queue.popleft()
                self._known.discard(deliver.message_id)
        finally:
            if not queue:
                del self._queues[chat_id]

    async def send(self, deliver: Deliver) -> bool:
        """Send one reply (all its pieces) and mark it sent; False when it stays unsent.

        A reply already marked sent (a Deliver that crossed a restart's re-send)
        is skipped: the outbox, not the message, says whether it went out."""
        if (await self.store.get_message(deliver.message_id)).sent_at is not None:
            self.skipped += 1
            return True
        pieces = split_text(deliver.text)
        key = f"sent:{deliver.message_id}"
        ids: list[str] = []
        if len(pieces) > 1:
            done = await self.store.get_state(STATE, key)
            ids = done.split(",") if done else []
        for n in range(len(ids), len(pieces)):
            last = n == len(pieces) - 1
            markup = None
            if last and deliver.kind == "ack" and deliver.approval_id is not None:
                markup = ok_keyboard(deliver.approval_id)
            message = await self._send_piece(deliver, pieces[n], markup)
            if isinstance(message, _Uncertain):
                return await self._uncertain(deliver, ids)
            if message is None:
                self.failed += 1
                return False
            ids.append(str(message.get("message_id", "")))
            if not last:
                await self.store.set_state(STATE, key, ",".join(ids))
        try:
            await self.store.mark_sent(deliver.message_id, ",".join(ids))
        except StorageError as exc:
            # Sent but not marked: the next start sends it again. Logged loudly.
            self.log.error("telegram_mark_sent_failed", id=deliver.message_id, error=repr(exc))
            return False
        self.sent += 1
        return True

    async def _uncertain(self, deliver: Deliver, ids: list[str]) -> bool:
        """The piece may have landed. The first time, note it and leave the reply
        unsent (sent again later: at-least-once); the second time, give up on it as
        sent (``?``), so it is not sent once per sweep. False: not confirmed."""
        self.failed += 1
        key = f"maybe:{deliver.message_id}"
        if await self.store.get_state(STATE, key) is None:
            await self.store.set_state(STATE, key, "1")
            return False
        self.log.warning(
            "telegram_send_uncertain_twice", id=deliver.message_id,
            outcome="marked sent: it may have arrived twice, or not at all",
        )  # fmt: skip
        await self.store.mark_sent(deliver.message_id, ",".join([*ids, "?"]))
        return False

    async def _send_piece(
        self, deliver: Deliver, text: str, markup: dict[str, Any] | None
    ) -> dict[str, Any] | _Uncertain | None:
        chat = deliver.chat_id
        flood = refused = 0
        while True:
            await self.pacer.wait(chat)
            try:
                return await self.api.send_message(chat, text, markup)
            except RetryAfter as exc:
                flood += 1
                if flood > _MAX_RETRY_AFTERS or exc.retry_after > self.max_retry_after_s:
                    self._give_up(deliver, exc)
                    return None
                self.log.warning(
                    "telegram_retry_after", chat_id=chat, id=deliver.message_id,
                    retry_after=exc.retry_after,
                )  # fmt: skip
                self.pacer.hold(chat, exc.retry_after, trio.current_time())
            except TelegramUnavailable as exc:
                if exc.sent:
                    self._give_up(deliver, exc)
                    return _UNCERTAIN
                if refused >= _MAX_CONNECT_RETRIES:
                    self._give_up(deliver, exc)
                    return None
                await trio.sleep(2.0**refused)
                refused += 1
            except TelegramError as exc:
                self._give_up(deliver, exc)
                return None

    def _give_up(self, deliver: Deliver, exc: TelegramError) -> None:
        self.log.warning(
            "telegram_send_failed", chat_id=deliver.chat_id, id=deliver.message_id,
            error=str(exc), outcome="left unsent in the outbox",
        )  # fmt: skip
