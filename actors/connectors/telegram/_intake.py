"""Handling one update the door fetched (polling) or was asked with (``TelegramUpdate``).

:meth:`Intake.handle` returns only once the update is durable (its message
stored, or its ignoring recorded) or fully answered (a button press): the
poller advances its offset after it, never before. A message is stored as
the webhook route stores it (``to_inbound``: a text message with its queued
job, a media message held) and then given to ``stored`` as the
:class:`TelegramStored` the route would tell, so both paths hand over,
enrich and count alike. A second delivery of an update (same ``update_id``)
is ``created=False`` in storage: no download, no model call. Storage errors
propagate: the connector fails and restarts, and the update comes again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from protocols import ApprovalResult, Approve, user_key
from protocols.telegram import (
    PLATFORM,
    BotIdentity,
    Callback,
    Ignored,
    Incoming,
    TelegramStored,
    parse_update,
)
from storage import Store
from supervision import (
    ActorFailed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    EntityRef,
    UnknownPath,
)

from .._route import store_telegram
from ._api import BotApi
from ._errors import TelegramError

__all__ = ["ANSWERS", "Intake", "Outcome"]

Outcome = Literal["ingested", "duplicate", "callback", "ignored"]
#: answerCallbackQuery texts, by what became of the OK.
ANSWERS = {
    "approved": "Working on it",
    "superseded": "That plan was replaced",
    "rejected": "That plan was declined",
    "not_found": "Not found",
    "busy": "Busy, please press again in a moment",
}


class Intake:
    """One connector incarnation's update handling (see the module docstring)."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        system: ActorSystem,
        bot: BotIdentity,
        *,
        stored: Callable[[TelegramStored], Awaitable[None]],
        counts: dict[Outcome, int],
        ask_timeout_s: float,
        log: Any,
    ) -> None:
        self.api = api
        self.store = store
        self.system = system
        self.bot = bot
        self.stored = stored
        self.ask_timeout_s = ask_timeout_s
        self.log = log
        self.counts = counts  # the door's: messages the webhook route stored count here too

    async def handle(self, update: Any) -> Outcome:
        """Act on one raw update; see the module docstring. A checkpoint."""
        parsed = parse_update(update, self.bot)
        match parsed:
            case Incoming():
                stored = await store_telegram(self.store, parsed, update)
                if isinstance(stored, Ignored):
                    await self._ignore(stored, {})
                    self.counts["ignored"] += 1
                    return "ignored"
                await self.stored(stored)  # counts it as ingested or duplicate
                return "ingested" if stored.created else "duplicate"
            case Callback():
                await self._callback(parsed)
                outcome: Outcome = "callback"
            case Ignored():
                await self._ignore(parsed, update)
                outcome = "ignored"
        self.counts[outcome] += 1
        return outcome

    # ------------------------------------------------------------------ the OK button
    async def _callback(self, cb: Callback) -> None:
        """Ask the presser's thread to approve, then always answer the button."""
        status = "not_found"
        kind, _, ident = cb.data.partition(":")
        if kind == "ok" and ident.isdigit() and len(ident) < 19:
            status = await self._approve(cb.user_id, int(ident))
        try:
            await self.api.answer_callback_query(cb.id, ANSWERS[status])
        except TelegramError as exc:  # too old (> 15 min?) or already answered
            self.log.info("telegram_callback_answer_failed", update_id=cb.update_id, error=str(exc))
        if status in ("approved", "superseded") and cb.chat_id and cb.message_id:
            try:  # the button has done its work: remove it (best effort)
                await self.api.edit_reply_markup(cb.chat_id, cb.message_id)
            except TelegramError as exc:
                self.log.info("telegram_keyboard_not_removed", error=str(exc))

    async def _approve(self, user_id: str, approval_id: int) -> str:
        key = user_key(PLATFORM, user_id)
        try:
            ref = EntityRef(self.system.lookup("/users"), key)
            result = await ref.ask(Approve(approval_id=approval_id), timeout=self.ask_timeout_s)
        except (AskTimeout, ActorFailed, ActorStopped, UnknownPath) as exc:
            self.log.warning("telegram_approve_failed", user=key, error=repr(exc))
            return "busy"
        if not isinstance(result, ApprovalResult):
            raise TypeError(f"/users/{key} answered Approve with {type(result).__name__}")
        return result.status

    # ------------------------------------------------------------------ the rest
    async def _ignore(self, ignored: Ignored, update: dict[str, Any]) -> None:
        """Record an ignored update raw in the audit log (answering nobody)."""
        self.log.info(
            "telegram_update_ignored", update_id=ignored.update_id, kind=ignored.kind,
            reason=ignored.reason,
        )  # fmt: skip
        detail = {"update_id": ignored.update_id, "kind": ignored.kind, "reason": ignored.reason}
        try:
            await self.store.audit(
                PLATFORM, "telegram.ignored_update", {**detail, "update": update}
            )
        except ValueError:  # the raw update holds what storage refuses (NUL...)
            await self.store.audit(PLATFORM, "telegram.ignored_update", detail)
