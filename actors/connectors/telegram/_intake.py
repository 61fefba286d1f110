"""Handling one update: store it, hand it to its user's thread, or answer a button press.

:meth:`Intake.handle` returns only once the update is durable (ingested, or
its ignoring recorded) or fully answered (a button press): the poller
advances its offset and the webhook answers 200 after it, never before.
A second delivery of an update (same ``update_id``) is ``created=False`` in
storage and wakes nobody. Storage errors propagate: the connector fails and
restarts, and the update comes again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import ValidationError

from protocols import ApprovalResult, Approve, Inbound, user_key
from storage import Store
from supervision import (
    ActorFailed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    EntityRef,
    UnknownPath,
)

from .._route import hand_off
from ._api import BotApi
from ._errors import TelegramError
from ._stt import Transcriber, TranscriptionFailed
from ._updates import BotIdentity, Callback, Ignored, Incoming, parse_update

__all__ = ["ANSWERS", "PLATFORM", "Intake", "Outcome"]

PLATFORM = "telegram"
Outcome = Literal["ingested", "duplicate", "callback", "ignored"]
#: answerCallbackQuery texts, by what became of the OK.
ANSWERS = {
    "approved": "Working on it",
    "superseded": "That plan was replaced",
    "rejected": "That plan was declined",
    "not_found": "Not found",
    "busy": "Busy, please press again in a moment",
}
NO_STT = "[voice message: speech-to-text is not configured, so I could not listen to it]"
STT_FAILED = "[voice message: it could not be transcribed]"


#: ``describe(user_key, image, media_type)``: what an image shows (``description``,
#: ``text``, ``objects``), or None when it could not be described. Called for the
#: largest size of every photo; the tree passes the brain's ``describe_image``.
Describer = Callable[[str, bytes, str], Awaitable[dict[str, Any] | None]]


class Intake:
    """One connector incarnation's update handling (see the module docstring)."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        system: ActorSystem,
        bot: BotIdentity,
        *,
        transcriber: Transcriber | None,
        describe: Describer | None = None,
        max_file_bytes: int,
        ask_timeout_s: float,
        log: Any,
    ) -> None:
        self.api = api
        self.store = store
        self.system = system
        self.bot = bot
        self.transcriber = transcriber
        self.describe = describe
        self.max_file_bytes = max_file_bytes
        self.ask_timeout_s = ask_timeout_s
        self.log = log
        self.counts: dict[Outcome, int] = {
            "ingested": 0, "duplicate": 0, "callback": 0, "ignored": 0,
        }  # fmt: skip

    async def handle(self, update: Any) -> Outcome:
        """Act on one raw update; see the module docstring. A checkpoint."""
        parsed = parse_update(update, self.bot)
        match parsed:
            case Incoming():
                outcome = await self._incoming(parsed, update)
            case Callback():
                await self._callback(parsed)
                outcome = "callback"
            case Ignored():
                await self._ignore(parsed, update)
                outcome = "ignored"
        self.counts[outcome] += 1
        return outcome

    # ------------------------------------------------------------------ messages
    async def _incoming(self, inc: Incoming, update: dict[str, Any]) -> Outcome:
        text, artifact = inc.text, None
        if inc.media is not None:
            text, artifact = await self._media(inc)
        try:
            inbound = Inbound(
                platform=PLATFORM,
                chat_id=inc.chat_id,
                user_id=inc.user_id,
                message_id=f"u{inc.update_id}",
                text=text,
                author=inc.author,
                sent_at=inc.sent_at,
                raw=update,
            )
        except ValidationError as exc:
            why = exc.errors()[0].get("msg", "invalid")
            await self._ignore(Ignored(inc.update_id, "message", f"unstorable: {why}"), {})
            return "ignored"
        result = await self.store.ingest(inbound)
        if not result.created:
            self.log.info("telegram_duplicate_update", update_id=inc.update_id)
            return "duplicate"
        if artifact is not None:
            kind, content = artifact
            await self.store.add_artifact(result.message.id, kind, content)
        await hand_off(self.system, result, inc.user_id, timeout_s=self.ask_timeout_s, text=text)
        try:
            await self.api.send_chat_action(inc.chat_id, "typing")
        except TelegramError as exc:  # a nicety: never worth a retry
            self.log.info("telegram_typing_failed", chat_id=inc.chat_id, error=str(exc))
        return "ingested"

    async def _media(self, inc: Incoming) -> tuple[str, tuple[Any, dict[str, Any]] | None]:
        """The message text for a voice/audio/photo message, and its artifact."""
        media = inc.media
        assert media is not None
        caption = inc.text.strip()
        if media.kind == "photo":
            return await self._photo(inc, caption)
        if self.transcriber is None:
            return _join(caption, NO_STT), None
        try:
            audio, path = await self.api.download(media.file_id, self.max_file_bytes)
            transcript = await self.transcriber.transcribe(
                audio, path.rsplit("/", 1)[-1] or "voice.ogg", media.mime_type
            )
        except (TelegramError, TranscriptionFailed) as exc:
            self.log.warning(
                "telegram_transcription_failed", update_id=inc.update_id, error=str(exc)
            )
            return _join(caption, STT_FAILED), None
        content = {"text": transcript, "file_id": media.file_id, "kind": media.kind, **media.meta}
        return _join(caption, transcript or "[voice message: silence]"), (
            "voice_transcript",
            content,
        )

    async def _photo(
        self, inc: Incoming, caption: str
    ) -> tuple[str, tuple[Any, dict[str, Any]] | None]:
        """The largest size, described by a vision model into an ``image_json``
        artifact; without a describer (or when it fails) only its metadata is kept."""
        media = inc.media
        assert media is not None
        meta = {"file_id": media.file_id, "file_size": media.file_size, **media.meta}
        if self.describe is not None:
            try:
                image, _ = await self.api.download(media.file_id, self.max_file_bytes)
            except TelegramError as exc:
                self.log.warning("telegram_photo_download_failed", update_id=inc.update_id,
                                 error=str(exc))  # fmt: skip
            else:
                # Telegram re-encodes every photo as JPEG.
                described = await self.describe(
                    user_key(PLATFORM, inc.user_id), image, "image/jpeg"
                )
                if described is not None:
                    text = _join(caption, f"[photo: {described['description']}]")
                    return text, ("image_json", {**described, **meta})
        return caption or "[photo]", ("file_meta", {"kind": "photo", **meta})

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
            self.log.warning("telegram_approve_failed", thread=key, error=repr(exc))
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


def _join(caption: str, text: str) -> str:
    return f"{caption}\n\n{text}" if caption else text
